"""The alerts every sidecar has: its own failures and capacity trouble, on by default.

Each is a named definition with a condition over ``PassFacts`` that yields samples;
they are evaluated, routed and delivered like any rule from ``rules/``. Conditions of
node pools read ``PassFacts.conditions``, which pool code fills in; without pools they
never fire. Every name has a runbook section in docs/alerting.md.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from autoscaler.actuate.base import ActionResult
from autoscaler.alerts.evaluate import RuleSpec, Sample
from autoscaler.decide.plan_types import Notify, Plan
from autoscaler.decide.pools.strays import describe
from autoscaler.decide.signals import reading_of
from autoscaler.rules.schema import Signal
from autoscaler.snapshot import Snapshot

RUNBOOK = "docs/alerting.md#{anchor}"


@dataclass(frozen=True)
class PassFacts:
    now: datetime
    snapshot: Snapshot | None = None
    pass_ok: bool = True
    pass_error: str | None = None
    results: Sequence[ActionResult] = ()
    rules_problems: Sequence[str] = ()
    last_success_at: datetime | None = None
    stall_after: timedelta = timedelta(minutes=5)
    start_failures_increase: float | None = None
    """Increase of ShinyProxy's startFailed_total over the last window; None when unknown."""
    conditions: Mapping[str, Sequence[Sample]] = field(default_factory=dict)
    """Samples reported by other parts (node pools) under a condition name."""
    signals: Mapping[str, Signal] = field(default_factory=dict)
    """The signal definitions, to judge each value's age by its ``max_age``."""
    prometheus_error: str | None = None
    """Why Prometheus did not answer an alert rule's ``expr`` in this pass."""
    ledger_error: str | None = None
    """Why this pass's decision ledger line could not be written."""


Condition = Callable[[PassFacts], list[Sample] | None]
"""None: the condition could not be evaluated this pass; its alerts stay as they are."""


@dataclass(frozen=True)
class BuiltinAlert:
    name: str
    severity: str
    summary: str
    description: str
    condition: Condition
    for_: timedelta = timedelta(0)
    keep_firing_for: timedelta = timedelta(0)
    on_tick: bool = False
    """Evaluated by the dispatcher's clock, not after a pass (it must fire when passes stop)."""

    def spec(self) -> RuleSpec:
        return RuleSpec(
            name=self.name,
            for_=self.for_,
            keep_firing_for=self.keep_firing_for,
            severity=self.severity,
            labels={"source": "autoscaler"},
            annotations={"summary": self.summary, "description": self.description},
            runbook=RUNBOOK.format(anchor=self.name.lower()),
        )


def _failed_actions(f: PassFacts) -> list[Sample]:
    out: dict[tuple[str, str], Sample] = {}
    for r in f.results:
        if r.ok or r.dry_run or r.skipped:
            continue
        subject = str(getattr(r.action, "service", "") or getattr(r.action, "pool", ""))
        key = (r.action.kind, subject)
        out[key] = Sample({"action": r.action.kind, "subject": subject}, 1, {"error": r.message})
    return list(out.values())


def _sources_down(f: PassFacts) -> list[Sample]:
    sources = f.snapshot.sources if f.snapshot is not None else {}
    down = {
        name: s.error or ""
        for name, s in sources.items()
        if not s.ok and not (s.error or "").startswith("not configured")
    }
    # Prometheus did not answer an alert rule's PromQL: down, even when no signal reads it
    if f.prometheus_error is not None:
        down.setdefault("prometheus", f.prometheus_error)
    return [Sample({"backend": name}, 1, {"error": error}) for name, error in sorted(down.items())]


def _signals_stale(f: PassFacts) -> list[Sample]:
    if f.snapshot is None:
        return []
    out: list[Sample] = []
    for name, s in sorted(f.snapshot.signals.items()):
        # A backend left unconfigured is a choice, reported by `autoscaler plan`, not an alert.
        if "not configured" in (s.error or ""):
            continue
        reading = reading_of(name, f.snapshot, f.signals)
        if not reading.usable:
            error = s.error or reading.problem or "no value"
            # its backend too: an inhibition by AutoscalerSourceDown can then match on it
            out.append(Sample({"signal": name, "backend": s.source}, 1, {"error": error}))
    return out


def _rules_invalid(f: PassFacts) -> list[Sample]:
    if not f.rules_problems:
        return []
    first = f.rules_problems[0]
    more = f" (and {len(f.rules_problems) - 1} more)" if len(f.rules_problems) > 1 else ""
    return [Sample({}, len(f.rules_problems), {"error": first + more})]


def _ledger_not_written(f: PassFacts) -> list[Sample]:
    return [Sample({}, 1, {"error": f.ledger_error})] if f.ledger_error else []


def _stalled(f: PassFacts) -> list[Sample]:
    if f.last_success_at is None:
        return []
    age = (f.now - f.last_success_at).total_seconds()
    return [Sample({}, age)] if age > f.stall_after.total_seconds() else []


def _start_failures(f: PassFacts) -> list[Sample]:
    inc = f.start_failures_increase
    return [Sample({}, inc)] if inc is not None and inc > 0 else []


def _pending_sessions(f: PassFacts) -> list[Sample]:
    if f.snapshot is None or f.snapshot.swarm is None:
        return []
    pending = [s for s in f.snapshot.swarm.sessions if s.is_pending and s.is_user_session]
    return [Sample({}, len(pending))] if pending else []


JOIN_TIMEOUT_ALERT = "PoolNodeJoinTimeout"
ENDING_SESSIONS_ALERT = "PoolEndingSessions"
SPOT_INTERRUPTION_ALERT = "PoolSpotInterruption"
ENDING_SESSIONS_NAME = "AutoscalerSessionsEndedByScaleIn"
"""The built-in alert of ENDING_SESSIONS_ALERT: sessions end only once a receiver took it."""


def pool_conditions(plan: Plan | None) -> dict[str, list[Sample]]:
    """The pool alerts' conditions, read off a pass's plan (pure).

    A pool is short when its seats call for more nodes than max or the cost cap allow;
    the planner raises Notify actions for machines that never joined and, before ending
    any session, for nodes whose sessions a policy allows to end; machines and nodes of a
    pool the rules lack are the plan's strays.
    """
    out: dict[str, list[Sample]] = {
        "pool_at_max": [],
        "node_did_not_join": [],
        "sessions_ended_by_scale_in": [],
        "pool_provider_missing": [],
        "spot_interruption": [],
        "pool_not_in_rules": [],
    }
    if plan is None or plan.strays_unread is not None:
        # not read is not none: the alert neither resolves nor starts over (held)
        del out["pool_not_in_rules"]
    if plan is None:
        return out
    for stray in plan.strays if plan.strays_unread is None else ():
        value = stray.running + stray.stopped or stray.nodes
        info = {"summary_detail": describe(stray)}
        out["pool_not_in_rules"].append(Sample({"pool": stray.pool}, value, info))
    for status in plan.pools:
        if status.short_nodes > 0:
            out["pool_at_max"].append(Sample({"pool": status.pool}, status.short_nodes))
        if status.provider_missing is not None:
            labels = {"pool": status.pool, "provider": status.provider_missing}
            out["pool_provider_missing"].append(Sample(labels, 1))
    for action in plan.actions:
        if not isinstance(action, Notify):
            continue
        labels = {k: v for k, v in action.labels.items() if v}
        info = {"summary_detail": action.summary}
        if action.alert == JOIN_TIMEOUT_ALERT:
            out["node_did_not_join"].append(Sample(labels, 1, info))
        elif action.alert == ENDING_SESSIONS_ALERT:
            out["sessions_ended_by_scale_in"].append(Sample(labels, 1, info))
        elif action.alert == SPOT_INTERRUPTION_ALERT:
            out["spot_interruption"].append(Sample(labels, 1, info))
    return out


def _reported(name: str) -> Condition:
    def condition(f: PassFacts) -> list[Sample]:
        return list(f.conditions.get(name, ()))

    return condition


def _reported_when_read(name: str) -> Condition:
    """As _reported, but None (held) when the plan could not tell: the key is left out."""

    def condition(f: PassFacts) -> list[Sample] | None:
        found = f.conditions.get(name)
        return None if found is None else list(found)

    return condition


BUILTINS: tuple[BuiltinAlert, ...] = (
    BuiltinAlert(
        "AutoscalerScaleActionFailed",
        "critical",
        "A scaling action failed: {{ $labels.action }} {{ $labels.subject }}",
        "The autoscaler decided to act but the action failed (Swarm or cloud error).",
        _failed_actions,
        keep_firing_for=timedelta(minutes=15),
    ),
    BuiltinAlert(
        "AutoscalerPoolAtMax",
        "warning",
        "Pool {{ $labels.pool }} is at its maximum or cost cap while seats are short",
        "Users wait for seats but the pool may not grow.",
        _reported("pool_at_max"),
        for_=timedelta(minutes=5),
    ),
    BuiltinAlert(
        "AutoscalerPoolProviderMissing",
        "warning",
        "Pool {{ $labels.pool }} uses provider {{ $labels.provider }}, not configured here",
        "The pool launches and terminates nothing: configure its provider "
        "(AUTOSCALER_AWS_REGION for ec2) or set the pool's enabled: false.",
        _reported("pool_provider_missing"),
        for_=timedelta(minutes=5),
    ),
    BuiltinAlert(
        "AutoscalerPoolNotInRules",
        "warning",
        "{{ $value }} machine(s) or node(s) of pool {{ $labels.pool }}, which the rules lack",
        "Machines or Swarm nodes carry the name of a pool the rules do not have (deleted or "
        "renamed): nothing scales, pauses or terminates them, and they are paid for. Put the "
        "pool back with min: 0 and max: 0 to retire them as their sessions end "
        "(summary_detail: how many, and the sessions on them).",
        _reported_when_read("pool_not_in_rules"),
        for_=timedelta(minutes=10),
    ),
    BuiltinAlert(
        "AutoscalerNodeDidNotJoin",
        "critical",
        "A new node of pool {{ $labels.pool }} did not join the Swarm",
        "An instance was launched but never became a ready Swarm node.",
        _reported("node_did_not_join"),
    ),
    BuiltinAlert(
        "AutoscalerSpotInterruption",
        "warning",
        "Spot machine {{ $labels.node }} of pool {{ $labels.pool }} is being taken back",
        "EC2 gave it an interruption notice: it goes within two minutes, with the sessions "
        "on it. The node is paused so no new session starts there, and a replacement is "
        "launched as for any missing node.",
        _reported("spot_interruption"),
    ),
    BuiltinAlert(
        "AutoscalerSessionStartFailures",
        "warning",
        "ShinyProxy failed to start {{ $value }} app sessions in the last 10 minutes",
        "startFailed_total of ShinyProxy's actuator is rising: users cannot start apps.",
        _start_failures,
    ),
    BuiltinAlert(
        "AutoscalerSessionTasksPending",
        "warning",
        "{{ $value }} app sessions are waiting to be placed",
        "Session tasks stay pending: no node can take them (capacity, constraints, images).",
        _pending_sessions,
        for_=timedelta(minutes=5),
    ),
    BuiltinAlert(
        "AutoscalerSourceDown",
        "warning",
        "Backend {{ $labels.backend }} does not answer",
        "The autoscaler cannot read this backend; its signals are missing.",
        _sources_down,
        for_=timedelta(minutes=2),
    ),
    BuiltinAlert(
        "AutoscalerSignalStale",
        "warning",
        "Signal {{ $labels.signal }} is missing or stale",
        "Policies that read this signal hold their replicas.",
        _signals_stale,
        for_=timedelta(minutes=5),
    ),
    BuiltinAlert(
        "AutoscalerRulesReloadFailed",
        "warning",
        "The rules on disk are invalid; the last valid set stays in force",
        "Fix the files; `autoscaler check rules/` lists every problem.",
        _rules_invalid,
    ),
    BuiltinAlert(
        "AutoscalerLedgerNotWritten",
        "warning",
        "The decision ledger cannot be written; passes go on unrecorded",
        "Scaling goes on, but its decisions and reasons are not kept (a full disk, a volume "
        "mounted wrong); writing resumes by itself once it can.",
        _ledger_not_written,
        keep_firing_for=timedelta(minutes=5),
    ),
    BuiltinAlert(
        ENDING_SESSIONS_NAME,
        "warning",
        "Sessions on {{ $labels.node }} of pool {{ $labels.pool }} are ended by scale-in",
        "The pool allows ending the sessions of a node paused longer than session_grace: "
        "they end ending_notice after this alert reaches a receiver, unless the pool sets "
        "allow_ending_sessions: false by then (summary_detail: how many, when).",
        _reported("sessions_ended_by_scale_in"),
        keep_firing_for=timedelta(minutes=15),
    ),
    BuiltinAlert(
        "AutoscalerLoopStalled",
        "critical",
        "No successful autoscaler pass for {{ $value | humanize }} seconds",
        "The control loop is stuck or every pass fails: nothing is being scaled.",
        _stalled,
        on_tick=True,
    ),
)

BUILTIN_NAMES = frozenset(b.name for b in BUILTINS)


def counter_increase(history: Sequence[tuple[datetime, float]]) -> float:
    """Increase of a counter over ``history`` (oldest first), across resets."""
    total = 0.0
    for (_, a), (_, b) in itertools.pairwise(history):
        total += b - a if b >= a else b
    return total
