"""The alerting part of the sidecar: evaluates rules after each pass, routes and delivers.

``after_pass`` is the one call the control loop makes; ``tick`` runs the dispatcher's
timers (and the stall check, which must work when passes stop) on its own thread.
"""

from __future__ import annotations

import logging
import operator
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoscaler.alerts.alert_state import dump_states, load_states, save_states
from autoscaler.alerts.builtin import (
    BUILTINS,
    ENDING_SESSIONS_NAME,
    PassFacts,
    counter_increase,
    pool_conditions,
)
from autoscaler.alerts.config import AlertRule, ReceiverConfig
from autoscaler.alerts.dispatch import CompiledConfig, Dispatcher, InhibitRule, Integration
from autoscaler.alerts.evaluate import ActiveAlert, DuplicateLabelSet, RuleSpec, Sample, evaluate
from autoscaler.alerts.model import Alert
from autoscaler.alerts.notify_log import RETENTION, NotifyLog
from autoscaler.alerts.receivers.alertmanager import AlertmanagerIntegration
from autoscaler.alerts.receivers.email import EmailIntegration
from autoscaler.alerts.receivers.http import RateLimiter
from autoscaler.alerts.receivers.slack import SlackIntegration
from autoscaler.alerts.receivers.webhook import WebhookIntegration
from autoscaler.alerts.routing import Route
from autoscaler.alerts.silences import Silences
from autoscaler.decide.signals import reading_of
from autoscaler.pool_metrics import publish
from autoscaler.rules.schema import Policies
from autoscaler.snapshot import notice_key
from autoscaler.sources.errors import QueryRejected, SourceError

if TYPE_CHECKING:
    from autoscaler.loop import PassResult
    from autoscaler.metrics import SidecarMetrics
    from autoscaler.rules.reload import RulesStore

log = logging.getLogger(__name__)

START_FAILED_METRIC = "startFailed_total"
START_FAILED_WINDOW = timedelta(minutes=10)
MOST_SILENCE = timedelta(days=3650)
"""The longest silence the API creates: ten years is forever, and a time stays a time."""

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def rule_spec(name: str, rule: AlertRule) -> RuleSpec:
    return RuleSpec(
        name=name,
        for_=rule.for_,
        keep_firing_for=rule.keep_firing_for,
        severity=rule.severity,
        labels=rule.labels,
        annotations=rule.annotations,
        runbook=rule.runbook,
    )


def integrations_for(receiver: ReceiverConfig, limiter: RateLimiter) -> list[Integration]:
    out: list[Integration] = []
    out += [SlackIntegration(c, limiter) for c in receiver.slack_configs]
    out += [EmailIntegration(c) for c in receiver.email_configs]
    out += [WebhookIntegration(c) for c in receiver.webhook_configs]
    out += [AlertmanagerIntegration(c) for c in receiver.alertmanager_configs]
    return out


def compile_config(
    policies: Policies,
    build: Callable[[ReceiverConfig], list[Integration]],
) -> CompiledConfig | None:
    if policies.route is None:
        return None
    return CompiledConfig(
        route=Route.build(policies.route),
        receivers={r.name: build(r) for r in policies.receivers},
        inhibit_rules=[
            InhibitRule(r.source(), r.target(), r.equal) for r in policies.inhibit_rules
        ],
        time_intervals={t.name: t for t in policies.time_intervals},
    )


class Alerting:
    def __init__(
        self,
        *,
        metrics: SidecarMetrics | None = None,
        state_dir: Path | None = None,
        prometheus: Any = None,
        clock: Callable[[], datetime] = _utcnow,
        external_url: str = "",
        stall_after: timedelta = timedelta(minutes=5),
        build_integrations: Callable[[ReceiverConfig], list[Integration]] | None = None,
    ) -> None:
        self.metrics = metrics
        self.prometheus = prometheus
        self.clock = clock
        self.stall_after = stall_after
        self.limiter = RateLimiter()
        self._build = build_integrations or (lambda r: integrations_for(r, self.limiter))
        self.nflog = NotifyLog(state_dir / "notifications.json" if state_dir else None)
        self.silences = Silences(state_dir / "silences.json" if state_dir else None)
        self.dispatcher = Dispatcher(
            None, self.nflog, self.silences, external_url=external_url, on_result=self._count
        )
        self._rules: dict[str, AlertRule] = {}
        self._policies = Policies()
        self._states_path = state_dir / "alerts.json" if state_dir else None
        self._states: dict[str, dict[str, ActiveAlert]] = (
            load_states(self._states_path) if self._states_path else {}
        )
        self._states_changed = False
        """Since the last write of ``_states_path``: a tick that changed nothing writes
        nothing, and serialises nothing either."""
        self._generation: int | None = None
        self._published_alerts: set[tuple[str, ...]] = set()
        self._last_success_at: datetime = clock()
        self._start_failed: list[tuple[datetime, float]] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ configuration

    def configure(self, policies: Policies) -> None:
        """Use these rules and this routing (called on every new rules generation)."""
        now = self.clock()
        gone: list[Alert] = []
        with self._lock:
            self._policies = policies
            self._rules = {n: r for n, r in policies.alerts.items() if r.enabled}
            for name in list(self._states):
                if name not in self._rules and name not in {b.name for b in BUILTINS}:
                    # a rule removed or disabled: its firing alerts end now, or they would
                    # stay firing (and be repeated) with nothing left to resolve them
                    for state in self._states.pop(name).values():
                        alert = state.to_alert()
                        if alert is not None and alert.ends_at is None:
                            gone.append(replace(alert, ends_at=now))
                    self._states_changed = True
            config = compile_config(policies, self._build)
            # a send forgotten before its repeat_interval would be sent again early
            # (Alertmanager only warns about it)
            longest = config.route.longest_repeat() if config is not None else RETENTION
            self.nflog.retention = max(RETENTION, longest + longest / 10)
        self.dispatcher.set_config(config, now)
        if gone:
            self.dispatcher.put(gone, now)

    # ------------------------------------------------------------ the hook

    def after_pass(self, result: PassResult, rules: RulesStore | None = None) -> None:
        now = self.clock()
        if rules is not None and rules.generation != self._generation:
            self._generation = rules.generation
            self.configure(rules.policies)
        with self._lock:
            if result.ok:
                self._last_success_at = now
            errors: list[str] = []
            samples = {
                name: self._samples(name, rule, result, errors)
                for name, rule in self._rules.items()
            }
            facts = PassFacts(
                now=now,
                snapshot=result.snapshot,
                pass_ok=result.ok,
                pass_error=result.error,
                results=tuple(result.results),
                rules_problems=tuple(str(p) for p in (rules.problems if rules else [])),
                last_success_at=self._last_success_at,
                stall_after=self.stall_after,
                start_failures_increase=self._start_failures(result, now),
                conditions=pool_conditions(result.plan),
                signals=self._policies.signals,
                prometheus_error=errors[0] if errors else None,
                ledger_error=result.ledger_error,
            )
            for b in BUILTINS:
                if not b.on_tick and (found := b.condition(facts)) is not None:
                    self._eval(b.spec(), found, now)
            for name, rule in self._rules.items():
                found = samples[name]
                if found is not None:
                    self._eval(rule_spec(name, rule), found, now, unique=True)
        self._push(now)

    def _start_failures(self, result: PassResult, now: datetime) -> float | None:
        """Reads startFailed_total from a signal over that actuator metric, if one exists."""
        snap = result.snapshot
        if snap is None:
            return None
        names = [
            n
            for n, s in self._policies.signals.items()
            if s.actuator is not None and s.actuator.metric == START_FAILED_METRIC
        ]
        values = [snap.signals[n].value for n in names if n in snap.signals]
        value = next((v for v in values if v is not None), None)
        if value is None:
            return None
        self._start_failed.append((now, value))
        self._start_failed = [
            (t, v) for t, v in self._start_failed if now - t <= START_FAILED_WINDOW
        ]
        return counter_increase(self._start_failed)

    def _samples(
        self, name: str, rule: AlertRule, result: PassResult, errors: list[str]
    ) -> list[Sample] | None:
        """None when the condition could not be evaluated (the alerts stay as they are); why
        Prometheus could not be reached is added to ``errors``."""
        if rule.expr is not None:
            if self.prometheus is None:
                return None
            try:
                rows = self.prometheus.query_vector(rule.expr)
            except QueryRejected as e:  # Prometheus is up; this rule's expression is at fault
                log.warning("alert rule %s not evaluated: %s", name, e.message)
                return None
            except SourceError as e:
                log.warning("alert expression not evaluated: %s", e)
                errors.append(e.message)
                return None
            return [Sample(labels, value) for labels, value in rows]
        snap = result.snapshot
        if snap is None:
            return None  # the pass read nothing: as a query that failed
        if rule.signal is None or rule.op is None or rule.value is None:
            return []
        value = reading_of(rule.signal, snap, self._policies.signals).value
        if value is None:
            # unknown, not false: as Prometheus keeps a rule's alerts when its query fails,
            # a missing or stale signal neither fires nor resolves (AutoscalerSignalStale
            # reports it)
            return None
        return [Sample({}, value)] if _OPS[rule.op](value, rule.value) else []

    def _eval(
        self, spec: RuleSpec, samples: Sequence[Sample], now: datetime, *, unique: bool = False
    ) -> None:
        """``unique`` for rules from rules/: a built-in condition keys its samples itself,
        and one repeated must never hold back the alert that lets sessions end."""
        before = self._states.get(spec.name, {})
        try:
            after = evaluate(spec, samples, before, now, unique=unique)
        except DuplicateLabelSet as e:  # as Prometheus: the rule failed, its alerts stay
            log.warning("alert rule %s not evaluated: %s", spec.name, e)
            return
        self._states[spec.name] = after
        self._states_changed |= after != before

    def _push(self, now: datetime) -> None:
        with self._lock:
            states = [a for rule in self._states.values() for a in rule.values()]
            # for a restart: firing alerts resolve later
            path = self._states_path
            if path is not None and self._states_changed:
                self._states_changed = not save_states(path, dump_states(self._states))
        alerts = [x for a in states if (x := a.to_alert()) is not None]
        self.dispatcher.put(alerts, now)
        if self.metrics is not None:
            counts: dict[tuple[str, ...], float] = {}
            for a in states:
                key = (a.labels["alertname"], a.state)
                counts[key] = counts.get(key, 0) + 1
            # set, then remove what is gone: a scrape in between never sees no series
            self._published_alerts = publish(self.metrics.alerts, counts, self._published_alerts)

    def _count(self, receiver: str, kind: str, ok: bool) -> None:
        if self.metrics is not None:
            self.metrics.notifications.labels(receiver, "ok" if ok else "error").inc()

    def notices_delivered(self) -> dict[str, datetime]:
        """``pool/node`` -> the last time a receiver accepted the alert that the node's
        sessions will be ended (Snapshot.notices_delivered)."""
        delivered = self.dispatcher.delivered(ENDING_SESSIONS_NAME)
        return {notice_key(a.get("pool", ""), a.get("node", "")): t for a, t in delivered}

    # ------------------------------------------------------------ timers

    def tick(self, now: datetime | None = None, *, wait: bool = True) -> None:
        """Timers: the stall check and due notifications. ``wait``: return once the
        notifications of this tick are delivered or failed (the alerting thread does not
        wait, so a slow receiver never holds up the stall check)."""
        now = now or self.clock()
        with self._lock:
            facts = PassFacts(
                now=now, last_success_at=self._last_success_at, stall_after=self.stall_after
            )
            for b in BUILTINS:
                if b.on_tick and (found := b.condition(facts)) is not None:
                    self._eval(b.spec(), found, now)
        self._push(now)
        self.dispatcher.tick(now, wait=wait)

    def start(self, every: float = 1.0) -> None:
        def run() -> None:
            while not self._stop.wait(every):
                try:
                    self.tick(wait=False)
                except Exception:  # the timer thread must survive a bug in one tick
                    log.exception("alerting tick failed")

        self._last_success_at = self.clock()
        self._thread = threading.Thread(target=run, name="alerting", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.dispatcher.close()

    # ------------------------------------------------------------ HTTP API

    def list_alerts(self) -> list[dict[str, Any]]:
        now = self.clock()
        with self._lock:
            states = [a for rule in self._states.values() for a in rule.values()]
        out = []
        states.sort(key=lambda a: sorted(a.labels.items()))
        muted = self.dispatcher.muted_by_each([a.labels for a in states], now)
        for a, (silenced_by, inhibited) in zip(states, muted, strict=True):
            out.append(
                {
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "state": "resolved" if a.state == "inactive" else a.state,
                    "value": a.value,
                    "active_at": a.active_at.isoformat(),
                    "fired_at": a.fired_at.isoformat() if a.fired_at else None,
                    "resolved_at": a.resolved_at.isoformat() if a.resolved_at else None,
                    "silenced_by": silenced_by,
                    "silenced": bool(silenced_by),
                    "inhibited": inhibited,
                }
            )
        return out

    def list_silences(self) -> list[dict[str, Any]]:
        now = self.clock()
        return [s.to_json(now) for s in self.silences.all()]

    def add_silence(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """From the HTTP API: matchers, duration_seconds or ends_at, created_by, comment."""
        now = self.clock()
        matchers = body.get("matchers")
        if not isinstance(matchers, list) or not all(isinstance(m, str) for m in matchers):
            raise ValueError("'matchers' must be a list of strings such as 'alertname=X'")
        for key in ("created_by", "comment"):
            if not isinstance(body.get(key, ""), str):
                raise ValueError(f"'{key}' must be text")
        starts = _time(body.get("starts_at")) or now
        seconds = body.get("duration_seconds")
        if body.get("ends_at") is not None:
            ends = _time(body["ends_at"])
        elif isinstance(seconds, int | float) and not isinstance(seconds, bool):
            if not 0 < seconds <= MOST_SILENCE.total_seconds():  # NaN fails this too
                raise ValueError(
                    f"'duration_seconds' must be above 0 and at most {MOST_SILENCE.days} days"
                )
            try:
                ends = starts + timedelta(seconds=float(seconds))
            except OverflowError:  # starts_at close to year 9999
                raise ValueError("the silence would end after the year 9999") from None
        else:
            raise ValueError("give 'ends_at' (ISO time) or 'duration_seconds' (a number)")
        assert ends is not None
        if ends - starts > MOST_SILENCE:
            raise ValueError(f"a silence lasts at most {MOST_SILENCE.days} days")
        s = self.silences.add(
            matchers, starts, ends, body.get("created_by") or "", body.get("comment") or ""
        )
        # %r: the author and matchers come from the request; no line of theirs is forged
        log.info("silence %s created by %r: %r", s.id, s.created_by, " ".join(s.matchers))
        return s.to_json(now)

    def expire_silence(self, silence_id: str) -> bool:
        ok = self.silences.expire(silence_id, self.clock())
        if ok:
            log.info("silence %s expired", silence_id)
        return ok


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("times are ISO 8601 text, e.g. 2026-01-31T18:00:00Z")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"bad time {value!r}: use ISO 8601, e.g. 2026-01-31T18:00:00Z") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)
