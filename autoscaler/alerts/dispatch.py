"""Aggregation groups, their timers, inhibition, silences, time intervals and dedup.

Alertmanager's dispatcher and notification pipeline with an injected clock: ``put``
files alerts into the groups of every route they match; ``tick(now)`` flushes the
groups that are due. A group's first flush waits ``group_wait``, later ones
``group_interval``; an unchanged firing group is re-sent after ``repeat_interval``.
A failed delivery is logged and counted, and, since the notification log is not
updated, sent again: after 10s, 20s, 40s ... (at most ``group_interval``). Nothing is
dropped silently.

Each integration sends on its own thread, one message at a time: a receiver that is
down or slow (retries, ``Retry-After``, timeouts) holds up its own messages only, never
another receiver's nor the thread that calls ``tick``. A group waits for its messages
before it flushes again, as in Alertmanager.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from autoscaler.alerts.matchers import Matcher, matches_all
from autoscaler.alerts.model import Alert, Notification, common
from autoscaler.alerts.notify_log import Entry, NotifyLog
from autoscaler.alerts.routing import Route
from autoscaler.alerts.silences import Silences
from autoscaler.alerts.timeintervals import TimeInterval

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """A notification was not delivered; the message never contains a secret."""


class Integration(Protocol):
    kind: str
    send_resolved: bool

    def send(self, notification: Notification) -> None:
        """Deliver or raise DeliveryError."""
        ...


@dataclass(frozen=True)
class InhibitRule:
    source: list[Matcher]
    target: list[Matcher]
    equal: tuple[str, ...]


@dataclass
class CompiledConfig:
    route: Route
    receivers: dict[str, list[Integration]]
    inhibit_rules: list[InhibitRule] = field(default_factory=list)
    time_intervals: dict[str, TimeInterval] = field(default_factory=dict)


@dataclass
class Group:
    route: Route
    labels: dict[str, str]
    key: str
    next_flush: datetime
    alerts: dict[str, Alert] = field(default_factory=dict)
    failures: int = 0
    """Failed flushes in a row: the retry comes sooner than group_interval."""
    flushing: threading.Event | None = None
    """Set while this group's messages are on their way (set when they are done)."""
    gid: str = ""
    """The dispatcher's key of the group: ``key`` with the route's place in the tree."""
    flushed: bool = False
    """Whether its first flush has begun (Alertmanager's ``hasFlushed``)."""


RETRY_FIRST = timedelta(seconds=10)


def retry_delay(failures: int, group_interval: timedelta) -> timedelta:
    """10s, 20s, 40s ... after failed deliveries, never later than group_interval."""
    delay: timedelta = RETRY_FIRST * (2 ** min(failures - 1, 20))
    return min(delay, group_interval)


ResultHook = Callable[[str, str, bool], None]
"""(receiver, integration kind, ok) after every delivery attempt."""

WORKER_IDLE = 5.0
"""Seconds a sending thread with nothing to send waits before it ends."""


class _Lane:
    """One integration's sending thread: its messages go one at a time, in order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            self._jobs.put(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def stop(self) -> threading.Thread | None:
        """End the thread once it sent what it holds; the thread to join, if any."""
        with self._lock:
            if self._thread is not None:
                self._jobs.put(None)
            return self._thread

    def _run(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=WORKER_IDLE)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():
                        self._thread = None
                        return
                continue
            if job is None:
                with self._lock:
                    self._thread = None
                return
            try:
                job()
            except Exception:  # a bug in one job must not end the lane
                log.exception("sending a notification failed")


def needs_update(
    entry: Entry | None,
    firing: set[str],
    resolved: set[str],
    send_resolved: bool,
    repeat: timedelta,
    now: datetime,
) -> bool:
    """Alertmanager's DedupStage.needsUpdate."""
    if entry is None:
        return len(firing) > 0
    if not firing <= entry.firing:
        return True
    if not firing:
        # Everything resolved: tell a receiver that knew of firing alerts, once.
        return len(entry.firing) > 0
    if send_resolved and not resolved <= entry.resolved:
        return True
    return entry.timestamp < now - repeat


class Dispatcher:
    def __init__(
        self,
        config: CompiledConfig | None,
        nflog: NotifyLog,
        silences: Silences,
        *,
        external_url: str = "",
        on_result: ResultHook | None = None,
    ) -> None:
        self.config = config
        self.nflog = nflog
        self.silences = silences
        self.external_url = external_url
        self.on_result = on_result
        self._store: dict[str, Alert] = {}
        self._groups: dict[str, Group] = {}
        """By route node and group labels: two sibling routes with the same matchers (to
        two receivers, say) are two groups, as in Alertmanager."""
        self._lanes: dict[int, tuple[Integration, _Lane]] = {}
        self._lock = threading.RLock()
        self._flushing = threading.Lock()
        self._told_before: set[str] = set().union(*(e.firing for e in nflog.entries().values()))
        """Alerts a receiver was told fire before this start (the notification log): one
        that is resolved when first heard of here still gets its resolved message."""

    # ------------------------------------------------------------ input

    def set_config(self, config: CompiledConfig | None, now: datetime) -> None:
        """New routing: regroup every known alert (group timers start again)."""
        with self._lock:
            self.config = config
            self._groups = {}
            self._lanes = {}  # the old lanes finish what they hold, then end by themselves
            alerts = list(self._store.values())
            self._store = {}
        self.put(alerts, now)

    def put(self, alerts: list[Alert], now: datetime) -> None:
        with self._lock:
            for alert in alerts:
                fp = alert.fingerprint
                told = fp in self._told_before
                self._told_before.discard(fp)  # heard of now: the store knows it from here on
                if alert.resolved(now) and fp not in self._store and not told:
                    continue  # never seen firing: nobody needs to hear it resolved
                self._store[fp] = alert
                if self.config is None:
                    continue
                for route in self.config.route.match(alert.labels):
                    self._file(route, alert, now)

    def _file(self, route: Route, alert: Alert, now: datetime) -> None:
        labels = route.group_labels(alert.labels)
        text = "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
        gid = f"{route.id()}:{text}"
        group = self._groups.get(gid)
        if group is None:
            wait = route.opts.group_wait
            started = alert.starts_at or now
            first = now if started + wait < now else now + wait
            group = Group(route, labels, f"{route.key()}:{text}", first, gid=gid)
            self._groups[gid] = group
        elif not group.flushed and (alert.starts_at or now) + route.opts.group_wait < now:
            # as Alertmanager's aggrGroup.insert: an alert whose own group_wait is over
            # (an old one joining a group still in its first wait) does not wait again
            group.next_flush = min(group.next_flush, now)
        group.alerts[alert.fingerprint] = alert

    # ------------------------------------------------------------ state for the API

    def muted_by(self, labels: Mapping[str, str], now: datetime) -> tuple[list[str], bool]:
        """(silence ids, inhibited) for an alert with these labels."""
        return self.muted_by_each([labels], now)[0]

    def muted_by_each(
        self, labels: Sequence[Mapping[str, str]], now: datetime
    ) -> list[tuple[list[str], bool]]:
        """``muted_by`` of many alerts at once (the inhibiting alerts are looked at once)."""
        with self._lock:
            inhibited = self._inhibition(now)
            return [(self.silences.muting(ls, now), inhibited(ls)) for ls in labels]

    def groups(self) -> list[Group]:
        with self._lock:
            return list(self._groups.values())

    def next_due(self) -> datetime | None:
        with self._lock:
            return min((g.next_flush for g in self._groups.values()), default=None)

    def _inhibition(self, now: datetime) -> Callable[[Mapping[str, str]], bool]:
        """Whether an alert is inhibited at ``now``: the firing sources of every rule are
        indexed once by their ``equal`` labels, so a check does not scan every alert."""
        if self.config is None or not self.config.inhibit_rules:
            return lambda labels: False
        index: list[tuple[InhibitRule, set[tuple[str, ...]], set[tuple[str, ...]]]] = []
        for rule in self.config.inhibit_rules:
            every: set[tuple[str, ...]] = set()
            not_target: set[tuple[str, ...]] = set()
            for source in self._store.values():
                if source.resolved(now) or not matches_all(rule.source, source.labels):
                    continue
                equal = tuple(source.labels.get(n, "") for n in rule.equal)
                every.add(equal)
                if not matches_all(rule.target, source.labels):
                    not_target.add(equal)
            if every:
                index.append((rule, every, not_target))

        def inhibited(labels: Mapping[str, str]) -> bool:
            for rule, every, not_target in index:
                if not matches_all(rule.target, labels):
                    continue
                equal = tuple(labels.get(n, "") for n in rule.equal)
                # an alert on both sides cannot be inhibited by one on both sides like itself
                sources = not_target if matches_all(rule.source, labels) else every
                if equal in sources:
                    return True
            return False

        return inhibited

    def _time_muted(self, route: Route, now: datetime) -> bool:
        assert self.config is not None
        ti = self.config.time_intervals
        mute = [ti[n] for n in route.opts.mute_time_intervals if n in ti]
        if any(i.contains(now) for i in mute):
            return True
        active = [ti[n] for n in route.opts.active_time_intervals if n in ti]
        return bool(route.opts.active_time_intervals) and not any(i.contains(now) for i in active)

    def delivered(self, alertname: str) -> list[tuple[dict[str, str], datetime]]:
        """The known alerts of that name a receiver accepted in a message while they fired,
        each with the last time one did. Read from the notification log, which a restart
        keeps."""
        with self._lock:
            alerts = [a for a in self._store.values() if a.labels.get("alertname") == alertname]
        if not alerts:
            return []
        entries = self.nflog.entries().values()
        out: list[tuple[dict[str, str], datetime]] = []
        for a in alerts:
            times = [e.timestamp for e in entries if a.fingerprint in e.sent]
            if times:
                out.append((dict(a.labels), max(times)))
        return out

    # ------------------------------------------------------------ flushing

    def tick(self, now: datetime, *, wait: bool = True) -> None:
        """Flush every group that is due at ``now`` (one tick at a time).

        The messages go out on each integration's own thread; ``wait`` returns once those
        of this tick are done (for a caller that needs the outcome, e.g. tests); the
        alerting thread does not wait for them.
        """
        started: list[threading.Event] = []
        self.nflog.flush()  # what the last tick's messages wrote
        with self._flushing:
            with self._lock:
                for g in self._groups.values():
                    # The wall clock went back: a timer set before never waits longer
                    # than its group would from now.
                    longest = max(g.route.opts.group_wait, g.route.opts.group_interval)
                    if g.flushing is None and g.next_flush > now + longest:
                        g.next_flush = now + longest
                due = [
                    g for g in self._groups.values() if g.next_flush <= now and g.flushing is None
                ]
                inhibited = self._inhibition(now)  # once for every group of this tick
            for group in sorted(due, key=lambda g: g.next_flush):
                try:
                    started.append(self._flush(group, now, inhibited))
                except Exception:  # one bad group must not stop the others
                    log.exception("flushing alert group %s failed", group.key)
                    with self._lock:
                        group.next_flush = now + group.route.opts.group_interval
                        if group.flushing is not None:
                            group.flushing.set()
                            group.flushing = None
        if wait:
            for done in started:
                done.wait()
            self.nflog.flush()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the sending threads once they sent what they hold, waiting at most
        ``timeout`` in all: what is not sent by then is not in the notification log, so a
        restart sends it."""
        with self._lock:
            lanes = [lane for _, lane in self._lanes.values()]
            self._lanes = {}
        threads = [t for t in (lane.stop() for lane in lanes) if t is not None]
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self.nflog.flush()

    def _lane(self, integration: Integration, receiver: str) -> _Lane:
        with self._lock:
            found = self._lanes.get(id(integration))
            if found is None or found[0] is not integration:
                found = (integration, _Lane(f"notify-{receiver}-{integration.kind}"))
                self._lanes[id(integration)] = found
            return found[1]

    def _flush(
        self, group: Group, now: datetime, inhibited: Callable[[Mapping[str, str]], bool]
    ) -> threading.Event:
        done = threading.Event()
        with self._lock:
            config = self.config
            if config is None:
                done.set()
                return done
            alerts = dict(group.alerts)
            muted_by_time = self._time_muted(group.route, now)
            visible = [
                a
                for a in alerts.values()
                if not self.silences.muting(a.labels, now) and not inhibited(a.labels)
            ]
            group.flushing = done
            group.flushed = True
            group.next_flush = now + group.route.opts.group_interval
        jobs = [] if muted_by_time else self._jobs(config, group, visible, now)
        if not jobs:
            self._finish(group, alerts, now, True)
            return done
        results: list[bool] = []

        def report(ok: bool) -> None:
            with self._lock:
                results.append(ok)
                last = len(results) == len(jobs)
            if last:
                self._finish(group, alerts, now, all(results))

        def run(send: Callable[[], bool]) -> Callable[[], None]:
            return lambda: report(send())

        for lane, send in jobs:
            lane.submit(run(send))
        return done

    def _finish(self, group: Group, alerts: dict[str, Alert], now: datetime, ok: bool) -> None:
        try:
            with self._lock:
                if ok:
                    for fp, a in alerts.items():
                        if a.resolved(now) and group.alerts.get(fp) == a:
                            del group.alerts[fp]
                            if not any(fp in g.alerts for g in self._groups.values()):
                                self._store.pop(fp, None)
                group.failures = 0 if ok else group.failures + 1
                interval = group.route.opts.group_interval
                group.next_flush = now + (
                    retry_delay(group.failures, interval) if not ok else interval
                )
                if not group.alerts and self._groups.get(group.gid) is group:
                    del self._groups[group.gid]
        finally:
            with self._lock:
                done, group.flushing = group.flushing, None
            if done is not None:
                done.set()

    def _jobs(
        self, config: CompiledConfig, group: Group, visible: list[Alert], now: datetime
    ) -> list[tuple[_Lane, Callable[[], bool]]]:
        """The messages this flush sends, each on its integration's lane; the notification
        log is written for each once it is delivered."""
        receiver = group.route.opts.receiver
        firing = {a.fingerprint for a in visible if not a.resolved(now)}
        resolved = {a.fingerprint for a in visible if a.resolved(now)}
        jobs: list[tuple[_Lane, Callable[[], bool]]] = []
        for i, integration in enumerate(config.receivers.get(receiver, [])):
            key = f"{group.key}|{receiver}|{integration.kind}[{i}]"
            entry = self.nflog.get(key)
            repeat = group.route.opts.repeat_interval
            if not needs_update(entry, firing, resolved, integration.send_resolved, repeat, now):
                continue
            to_send = [a for a in visible if integration.send_resolved or not a.resolved(now)]
            if not to_send:  # nothing this receiver wants to hear: remembered, not sent
                self.nflog.log(key, firing, resolved, now)
                continue
            n = self._notification(receiver, group, to_send, now)
            carried = getattr(integration, "carried", None)
            held = carried(n) if carried is not None else n.alerts
            sent = {a.fingerprint for a in held if not a.resolved(now)}
            send = self._sender(integration, receiver, n, key, firing, resolved, sent)
            jobs.append((self._lane(integration, receiver), send))
        return jobs

    def _sender(
        self,
        integration: Integration,
        receiver: str,
        n: Notification,
        key: str,
        firing: set[str],
        resolved: set[str],
        sent: set[str],
    ) -> Callable[[], bool]:
        def send() -> bool:
            try:
                integration.send(n)
            except DeliveryError as e:
                why = str(e)
            except Exception as e:
                why = type(e).__name__
            else:
                self._result(receiver, integration.kind, True)
                try:
                    self.nflog.log(key, firing, resolved, n.now, sent)
                except Exception:
                    log.exception("notification log not written for %s", receiver)
                    return False
                return True
            log.error(
                "notification to %s (%s) failed, will retry: %s", receiver, integration.kind, why
            )
            self._result(receiver, integration.kind, False)
            return False

        return send

    def _result(self, receiver: str, kind: str, ok: bool) -> None:
        if self.on_result is not None:
            self.on_result(receiver, kind, ok)

    def _notification(
        self, receiver: str, group: Group, alerts: list[Alert], now: datetime
    ) -> Notification:
        firing = any(not a.resolved(now) for a in alerts)
        return Notification(
            receiver=receiver,
            group_key=group.key,
            status="firing" if firing else "resolved",
            alerts=tuple(sorted(alerts, key=lambda a: sorted(a.labels.items()))),
            group_labels=dict(group.labels),
            common_labels=common([a.labels for a in alerts]),
            common_annotations=common([a.annotations for a in alerts]),
            external_url=self.external_url,
            now=now,
            repeat_interval=group.route.opts.repeat_interval,
            group_interval=group.route.opts.group_interval,
        )
