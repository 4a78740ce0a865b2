"""Aggregation groups, their timers, inhibition, silences, time intervals and dedup.

Alertmanager's dispatcher and notification pipeline with an injected clock: ``put``
files alerts into the groups of every route they match; ``tick(now)`` flushes the
groups that are due. A group's first flush waits ``group_wait``, later ones
``group_interval``; an unchanged firing group is re-sent after ``repeat_interval``.
A failed delivery is logged and counted, and, since the notification log is not
updated, sent again: after 10s, 20s, 40s ... (at most ``group_interval``). Nothing is
dropped silently.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
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


RETRY_FIRST = timedelta(seconds=10)


def retry_delay(failures: int, group_interval: timedelta) -> timedelta:
    """10s, 20s, 40s ... after failed deliveries, never later than group_interval."""
    delay: timedelta = RETRY_FIRST * (2 ** min(failures - 1, 20))
    return min(delay, group_interval)


ResultHook = Callable[[str, str, bool], None]
"""(receiver, integration kind, ok) after every delivery attempt."""


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
        self._lock = threading.RLock()
        self._flushing = threading.Lock()

    # ------------------------------------------------------------ input

    def set_config(self, config: CompiledConfig | None, now: datetime) -> None:
        """New routing: regroup every known alert (group timers start again)."""
        with self._lock:
            self.config = config
            self._groups = {}
            alerts = list(self._store.values())
            self._store = {}
        self.put(alerts, now)

    def put(self, alerts: list[Alert], now: datetime) -> None:
        with self._lock:
            for alert in alerts:
                fp = alert.fingerprint
                if alert.resolved(now) and fp not in self._store:
                    continue  # never seen firing here: nobody needs to hear it resolved
                self._store[fp] = alert
                if self.config is None:
                    continue
                for route in self.config.route.match(alert.labels):
                    self._file(route, alert, now)

    def _file(self, route: Route, alert: Alert, now: datetime) -> None:
        labels = route.group_labels(alert.labels)
        key = route.key() + ":{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
        group = self._groups.get(key)
        if group is None:
            wait = route.opts.group_wait
            started = alert.starts_at or now
            first = now if started + wait < now else now + wait
            group = Group(route, labels, key, first)
            self._groups[key] = group
        group.alerts[alert.fingerprint] = alert

    # ------------------------------------------------------------ state for the API

    def muted_by(self, labels: Mapping[str, str], now: datetime) -> tuple[list[str], bool]:
        """(silence ids, inhibited) for an alert with these labels."""
        with self._lock:
            return self.silences.muting(labels, now), self._inhibited(labels, now)

    def groups(self) -> list[Group]:
        with self._lock:
            return list(self._groups.values())

    def next_due(self) -> datetime | None:
        with self._lock:
            return min((g.next_flush for g in self._groups.values()), default=None)

    def _inhibited(self, labels: Mapping[str, str], now: datetime) -> bool:
        if self.config is None:
            return False
        for rule in self.config.inhibit_rules:
            if not matches_all(rule.target, labels):
                continue
            two_sided = matches_all(rule.source, labels)
            for source in self._store.values():
                if source.resolved(now) or not matches_all(rule.source, source.labels):
                    continue
                if any(source.labels.get(n, "") != labels.get(n, "") for n in rule.equal):
                    continue
                if two_sided and matches_all(rule.target, source.labels):
                    continue  # an alert on both sides cannot inhibit one like itself
                return True
        return False

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

    def tick(self, now: datetime) -> None:
        """Flush every group that is due at ``now`` (one tick at a time)."""
        with self._flushing:
            with self._lock:
                due = [g for g in self._groups.values() if g.next_flush <= now]
            for group in sorted(due, key=lambda g: g.next_flush):
                try:
                    self._flush(group, now)
                except Exception:  # one bad group must not stop the others
                    log.exception("flushing alert group %s failed", group.key)
                    with self._lock:
                        group.next_flush = now + group.route.opts.group_interval

    def _flush(self, group: Group, now: datetime) -> None:
        with self._lock:
            config = self.config
            alerts = dict(group.alerts)
            if config is None:
                return
            muted_by_time = self._time_muted(group.route, now)
            visible = [
                a
                for a in alerts.values()
                if not self.silences.muting(a.labels, now) and not self._inhibited(a.labels, now)
            ]
        ok = True
        if not muted_by_time:
            ok = self._notify(config, group, visible, now)
        with self._lock:
            if ok:
                for fp, a in alerts.items():
                    if a.resolved(now) and group.alerts.get(fp) == a:
                        del group.alerts[fp]
                        if not any(fp in g.alerts for g in self._groups.values()):
                            self._store.pop(fp, None)
            group.failures = 0 if ok else group.failures + 1
            interval = group.route.opts.group_interval
            group.next_flush = now + (retry_delay(group.failures, interval) if not ok else interval)
            if not group.alerts:
                self._groups.pop(group.key, None)

    def _notify(
        self, config: CompiledConfig, group: Group, visible: list[Alert], now: datetime
    ) -> bool:
        receiver = group.route.opts.receiver
        firing = {a.fingerprint for a in visible if not a.resolved(now)}
        resolved = {a.fingerprint for a in visible if a.resolved(now)}
        all_ok = True
        for i, integration in enumerate(config.receivers.get(receiver, [])):
            key = f"{group.key}|{receiver}|{integration.kind}[{i}]"
            entry = self.nflog.get(key)
            repeat = group.route.opts.repeat_interval
            if not needs_update(entry, firing, resolved, integration.send_resolved, repeat, now):
                continue
            to_send = [a for a in visible if integration.send_resolved or not a.resolved(now)]
            sent: set[str] = set()
            if to_send:
                n = self._notification(receiver, group, to_send, now)
                carried = getattr(integration, "carried", None)
                held = carried(n) if carried is not None else n.alerts
                sent = {a.fingerprint for a in held if not a.resolved(now)}
                try:
                    integration.send(n)
                except DeliveryError as e:
                    all_ok = False
                    log.error(
                        "notification to %s (%s) failed, will retry: %s",
                        receiver,
                        integration.kind,
                        e,
                    )
                    self._result(receiver, integration.kind, False)
                    continue
                except Exception as e:
                    all_ok = False
                    log.error(
                        "notification to %s (%s) failed, will retry: %s",
                        receiver,
                        integration.kind,
                        type(e).__name__,
                    )
                    self._result(receiver, integration.kind, False)
                    continue
                self._result(receiver, integration.kind, True)
            self.nflog.log(key, firing, resolved, now, sent)
        return all_ok

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
        )
