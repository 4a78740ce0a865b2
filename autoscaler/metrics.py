"""The sidecar's own Prometheus metrics, on a registry it owns (never the global one)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from autoscaler import __version__
from autoscaler.actuate.base import ActionResult
from autoscaler.decide.plan_types import Plan
from autoscaler.decide.signals import reading_of
from autoscaler.pool_metrics import Labels, PoolMetrics, publish
from autoscaler.rules.schema import Signal
from autoscaler.snapshot import Snapshot

SOURCES = ("swarm", "prometheus", "actuator", "influx")


class SidecarMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.passes = Counter(
            "autoscaler_passes", "Reconcile passes by result.", ["result"], registry=r
        )
        self.pass_duration = Histogram(
            "autoscaler_pass_duration_seconds",
            "Wall time of one reconcile pass.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.last_success = Gauge(
            "autoscaler_last_success_timestamp_seconds",
            "Unix time of the last successful pass; 0 before the first.",
            registry=r,
        )
        self.started = Gauge(
            "autoscaler_start_time_seconds",
            "Unix time the sidecar started (what 'no pass yet' counts from).",
            registry=r,
        )
        self.started.set_to_current_time()
        Info("autoscaler_build", "The running version.", registry=r).info({"version": __version__})
        self.actions = Counter(
            "autoscaler_actions", "Actions by kind and result.", ["kind", "result"], registry=r
        )
        self.source_up = Gauge(
            "autoscaler_source_up",
            "1 when the backend answered in the last pass.",
            ["source"],
            registry=r,
        )
        self.source_errors = Counter(
            "autoscaler_source_errors", "Failed reads by backend.", ["source"], registry=r
        )
        self.signal_value = Gauge(
            "autoscaler_signal_value", "Last value of each signal.", ["signal"], registry=r
        )
        self.signal_age = Gauge(
            "autoscaler_signal_age_seconds",
            "Age of each signal's value at decision time.",
            ["signal"],
            registry=r,
        )
        self.signal_missing = Gauge(
            "autoscaler_signal_missing",
            "1 when the signal has no usable value: missing, errored, not finite or older "
            "than its max_age.",
            ["signal"],
            registry=r,
        )
        self.desired = Gauge(
            "autoscaler_service_desired_replicas",
            "Replicas the policy wants.",
            ["policy", "service"],
            registry=r,
        )
        self.current = Gauge(
            "autoscaler_service_current_replicas",
            "Replicas the service has.",
            ["policy", "service"],
            registry=r,
        )
        self.decisions = Counter(
            "autoscaler_decisions",
            "Decisions by policy and outcome.",
            ["policy", "outcome"],
            registry=r,
        )
        self.rules_valid = Gauge(
            "autoscaler_rules_valid",
            "1 when the rules on disk are valid and in force.",
            registry=r,
        )
        self.ledger_lines = Counter(
            "autoscaler_ledger_lines",
            "Decision ledger lines by result (failed: a full disk, an unwritable path).",
            ["result"],
            registry=r,
        )
        self.rules_reloads = Counter(
            "autoscaler_rules_reloads", "Rule reloads by result.", ["result"], registry=r
        )
        self.webhook_requests = Counter(
            "autoscaler_webhook_requests", "Webhook requests by result.", ["result"], registry=r
        )
        self.notifications = Counter(
            "autoscaler_notifications",
            "Notification deliveries by receiver and result (failed ones are retried).",
            ["receiver", "result"],
            registry=r,
        )
        self.alerts = Gauge(
            "autoscaler_alerts",
            "Alerts by name and state (pending, firing, inactive = recently resolved).",
            ["alertname", "state"],
            registry=r,
        )
        self.session_tasks = Gauge(
            "autoscaler_session_tasks",
            "Users' ShinyProxy session tasks in the Swarm by state (live: running; pending: "
            "not placed or not started yet); absent while the Swarm cannot be read.",
            ["state"],
            registry=r,
        )
        self.pools = PoolMetrics(r)
        self._published: dict[str, set[Labels]] = {}
        for s in SOURCES:
            self.source_errors.labels(s)
        for line in ("written", "failed"):
            self.ledger_lines.labels(line)
        for res in ("ok", "error"):
            self.passes.labels(res)
            self.rules_reloads.labels(res)

    def observe_snapshot(self, snap: Snapshot, signals: Mapping[str, Signal] | None = None) -> None:
        """``signals``: the definitions, to judge each value's age by its ``max_age``."""
        up: dict[Labels, float] = {}
        for name, status in snap.sources.items():
            if status.error == "not configured" or (
                status.error and status.error.startswith("not configured")
            ):
                continue
            up[(name,)] = 1 if status.ok else 0
            if not status.ok:
                self.source_errors.labels(name).inc()
        missing: dict[Labels, float] = {}
        values: dict[Labels, float] = {}
        ages: dict[Labels, float] = {}
        for name, sig in snap.signals.items():
            usable = reading_of(name, snap, signals or {}).usable
            missing[(name,)] = 0 if usable else 1
            if sig.value is not None:
                values[(name,)] = sig.value
            if sig.observed_at is not None:
                age = (snap.taken_at - sig.observed_at).total_seconds()
                ages[(name,)] = max(0.0, age)
        self._publish("source_up", self.source_up, up)
        self._publish("signal_missing", self.signal_missing, missing)
        self._publish("signal_value", self.signal_value, values)
        self._publish("signal_age", self.signal_age, ages)
        sessions: dict[Labels, float] = {}
        if snap.swarm is not None:  # unknown, not zero, while the Swarm cannot be read
            users = [t for t in snap.swarm.sessions if t.is_user_session]
            sessions[("live",)] = sum(1 for t in users if t.is_live)
            sessions[("pending",)] = sum(1 for t in users if t.is_pending)
        self._publish("session_tasks", self.session_tasks, sessions)

    def observe_plan(self, plan: Plan, services: dict[str, str]) -> None:
        """``services`` maps policy name -> Swarm service name."""
        current: dict[Labels, float] = {}
        desired: dict[Labels, float] = {}
        for d in plan.decisions:
            self.decisions.labels(d.policy, d.outcome).inc()
            if d.subject.startswith("pool "):
                continue  # pools have gauges of their own
            svc = services.get(d.policy, d.subject)
            # A policy that wants nothing now (disabled, paused, no Swarm state) has no
            # desired replicas: its last wish would read as a service that never converges.
            if d.current is not None:
                current[(d.policy, svc)] = d.current
            if d.desired is not None:
                desired[(d.policy, svc)] = d.desired
        self._publish("current", self.current, current)
        self._publish("desired", self.desired, desired)
        self.pools.observe(plan)

    def _publish(self, key: str, gauge: Gauge, values: Mapping[Labels, float]) -> None:
        self._published[key] = publish(gauge, values, self._published.get(key, set()))

    def observe_results(self, results: list[ActionResult]) -> None:
        for res in results:
            self.actions.labels(res.action.kind, _outcome(res)).inc()


def _outcome(res: ActionResult) -> str:
    if res.dry_run:
        return "dry_run"
    if res.ok:
        return "ok"
    return "skipped" if res.skipped else "error"
