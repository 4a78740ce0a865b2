"""plan(): literal Snapshots and policies in, Plans out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from autoscaler.decide import plan
from autoscaler.decide.plan_types import (
    Decision,
    Memory,
    Plan,
    Recommendation,
    ScaleEvent,
    ScaleService,
    ServiceMemory,
)
from autoscaler.rules.schema import Policies
from autoscaler.snapshot import Service, SignalValue, Snapshot, SourceStatus, SwarmState

T0 = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)  # a Monday


# ---------------------------------------------------------------- builders


def svc(
    name: str = "api",
    replicas: int | None = 4,
    *,
    mode: str = "replicated",
    labels: Mapping[str, str] | None = None,
) -> Service:
    return Service.model_validate(
        {
            "id": f"id-{name}",
            "name": name,
            "mode": mode,
            "replicas": replicas,
            "running": replicas or 0,
            "version": 1,
            "labels": dict(labels or {}),
        }
    )


def val(value: float | None, *, age: float = 0, error: str | None = None) -> SignalValue:
    """A signal value observed ``age`` seconds before T0 (filled in by snap)."""
    observed = T0 - timedelta(seconds=age)
    return SignalValue(name="", source="prometheus", value=value, error=error, observed_at=observed)


def snap(
    *services: Service,
    at: datetime = T0,
    swarm_error: str | None = None,
    signals: Mapping[str, float | SignalValue | None] | None = None,
    **named: float | SignalValue | None,
) -> Snapshot:
    values = {}
    for name, v in {**(signals or {}), **named}.items():
        sv = v if isinstance(v, SignalValue) else val(v)
        shift = at - T0  # ages stay relative to the snapshot's time
        observed = sv.observed_at + shift if sv.observed_at else None
        values[name] = sv.model_copy(update={"name": name, "observed_at": observed})
    sources = {}
    if swarm_error is not None:
        sources["swarm"] = SourceStatus(name="swarm", ok=False, error=swarm_error)
    return Snapshot(
        taken_at=at,
        swarm=None if swarm_error is not None else SwarmState(services=services),
        signals=values,
        sources=sources,
    )


def policy(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "min": 1,
        "max": 10,
        "target_tracking": [{"signal": "rps", "average_value": 20}],
    }
    base.update(overrides)
    return base


def rules(signals: Sequence[str] = ("rps", "queue", "cpu"), **services: dict[str, Any]) -> Policies:
    return Policies.model_validate(
        {
            "signals": {n: {"prometheus": {"query": f"{n}_total"}} for n in signals},
            "services": services,
        }
    )


def aged(current: int, minutes: float = 10) -> Memory:
    """Memory whose only recommendation has left every default window."""
    rec = Recommendation(at=T0 - timedelta(minutes=minutes), replicas=current)
    return Memory(services={"api": ServiceMemory(recommendations=(rec,))})


def one(p: Plan) -> Decision:
    assert len(p.decisions) == 1
    return p.decisions[0]


def has(decision: Decision, *fragments: str) -> None:
    text = " | ".join(decision.reasons)
    for f in fragments:
        assert f in text, f"{f!r} not in reasons: {text}"


# ---------------------------------------------------------------- plan shape


def test_plan_carries_time_sorted_decisions_and_actions() -> None:
    s = snap(svc("api", 4), svc("web", 2), rps=120)
    pols = rules(
        web={**policy(), "target_tracking": [{"signal": "rps", "average_value": 60}]},
        api=policy(),
    )
    p = plan(s, pols, Memory())
    assert p.at == T0
    assert p.snapshot_digest == "", "the caller stamps the digest"
    assert [d.policy for d in p.decisions] == ["api", "web"]
    assert p.actions == (
        ScaleService(service="api", current=4, desired=6, reason=p.actions[0].reason),
    )
    assert "\n" not in p.actions[0].reason
    assert "rps=120 (target 20/replica) -> 6" in p.actions[0].reason
    web = p.decisions[1]
    assert (web.outcome, web.current, web.desired) == ("hold", 2, 2)
    has(web, "within tolerance (ratio 1.00)")


def test_plan_is_pure_and_round_trips_json() -> None:
    s = snap(svc("api", 4), rps=120)
    pols = rules(api=policy())
    first, second = plan(s, pols, Memory()), plan(s, pols, Memory())
    assert first == second
    assert Plan.model_validate_json(first.model_dump_json()) == first


def test_service_name_defaults_to_policy_name_or_is_set() -> None:
    p = plan(snap(svc("stack_api", 4), rps=120), rules(front=policy(service="stack_api")), Memory())
    d = one(p)
    assert (d.policy, d.subject, d.outcome, d.desired) == ("front", "stack_api", "scale", 6)
    assert "stack_api" in p.memory.services


def test_two_policies_for_one_service_is_an_error_for_the_second() -> None:
    pols = rules(a=policy(service="api"), b=policy(service="api"))
    p = plan(snap(svc("api", 4), rps=120), pols, Memory())
    assert [d.outcome for d in p.decisions] == ["scale", "error"]
    has(p.decisions[1], "already scaled by policy a")
    assert len(p.actions) == 1


# ---------------------------------------------------------------- target tracking and steps

# (name, policy overrides, current, signals, memory current or None, outcome, desired, reason)
TRACKING = [
    ("average value scales up", {}, 4, {"rps": 120}, None, "scale", 6,
     "rps=120 (target 20/replica) -> 6"),
    ("within tolerance holds", {}, 4, {"rps": 84}, None, "hold", 4,
     "within tolerance (ratio 1.05)"),
    ("value target scales with the ratio",
     {"target_tracking": [{"signal": "cpu", "value": 50}]}, 4, {"cpu": 75}, None, "scale", 6,
     "cpu=75 (target 50) -> 6 (ratio 1.50)"),
    ("tolerance upper bound is inside", {"tolerance": 0.25}, 4, {"rps": 100}, None, "hold", 4,
     "within tolerance (ratio 1.25)"),
    ("just above the tolerance scales", {"tolerance": 0.25}, 4, {"rps": 100.5}, None, "scale",
     6, "rps=100.5 (target 20/replica) -> 6"),
    ("tolerance lower bound is inside", {"tolerance": 0.25}, 4, {"rps": 60}, 4, "hold", 4,
     "within tolerance (ratio 0.75)"),
    ("just below the tolerance scales down", {"tolerance": 0.25}, 4, {"rps": 59}, 4, "scale",
     3, "rps=59 (target 20/replica) -> 3"),
    ("from zero replicas", {"min": 0}, 0, {"rps": 50}, None, "scale", 3, "-> 3 (from 0)"),
    ("zero usage at zero stays", {"min": 0}, 0, {"rps": 0}, None, "hold", 0, "holding at 0"),
    ("matching step above adds",
     {"target_tracking": [], "steps": [{"signal": "queue", "above": 10, "change": 2}]}, 4,
     {"queue": 12}, None, "scale", 6, "queue=12 above 10 -> 4+2 = 6"),
    ("step bound itself does not match",
     {"target_tracking": [], "steps": [{"signal": "queue", "above": 10, "change": 2}]}, 4,
     {"queue": 10}, None, "hold", 4, "step 'above 10' not matched"),
    ("matching step below removes",
     {"target_tracking": [], "steps": [{"signal": "queue", "below": 1, "change": -1}]}, 4,
     {"queue": 0}, 4, "scale", 3, "queue=0 below 1 -> 4-1 = 3"),
    ("step can set a count",
     {"target_tracking": [], "steps": [{"signal": "queue", "above": 100, "set": 8}]}, 4,
     {"queue": 150}, None, "scale", 8, "queue=150 above 100 -> set 8"),
    ("several rules: the largest wins",
     {"steps": [{"signal": "queue", "above": 10, "change": 1}]}, 4,
     {"rps": 120, "queue": 50}, None, "scale", 6, "queue=50 above 10 -> 4+1 = 5"),
    ("a step cannot undercut target tracking",
     {"steps": [{"signal": "queue", "below": 5, "set": 1}]}, 4, {"rps": 80, "queue": 0}, 4,
     "hold", 4, "queue=0 below 5 -> set 1"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "current", "signals", "mem", "outcome", "desired", "reason"),
    [case[1:] for case in TRACKING],
    ids=[case[0] for case in TRACKING],
)
def test_recommendation(
    overrides: dict[str, Any],
    current: int,
    signals: dict[str, float],
    mem: int | None,
    outcome: str,
    desired: int,
    reason: str,
) -> None:
    memory = aged(mem) if mem is not None else Memory()
    d = one(
        plan(snap(svc("api", current), signals=signals), rules(api=policy(**overrides)), memory)
    )
    assert (d.outcome, d.current, d.desired) == (outcome, current, desired)
    has(d, reason)


# ---------------------------------------------------------------- stabilisation


def run(
    pol: dict[str, Any], current: int, passes: Sequence[tuple[float, float]], memory: Memory
) -> list[Decision]:
    """Passes at (seconds after T0, rps); each scale is assumed to happen."""
    decisions = []
    for t, rps in passes:
        s = snap(svc("api", current), at=T0 + timedelta(seconds=t), rps=rps)
        p = plan(s, rules(api=pol), memory)
        memory = p.memory
        d = one(p)
        decisions.append(d)
        current = d.desired if d.desired is not None else current
    return decisions


def test_fresh_memory_blocks_scale_down_for_one_window() -> None:
    d = run(policy(), 4, [(0, 20), (299, 20), (301, 20)], Memory())
    assert [x.desired for x in d] == [4, 4, 1]
    has(d[0], "scale-down stabilising until 12:05:00Z (highest recommendation 4 in last 5m)")
    assert d[2].outcome == "scale"


def test_fresh_memory_does_not_block_scale_up() -> None:
    d = one(plan(snap(svc("api", 4), rps=160), rules(api=policy()), Memory()))
    assert (d.outcome, d.desired) == ("scale", 8)


def test_scale_down_uses_the_highest_recommendation_of_the_window() -> None:
    pol = policy(behavior={"scale_down": {"stabilization_window": "2m"}})
    passes = [(0, 200), (30, 100), (60, 40), (90, 40), (130, 40), (160, 40)]
    d = run(pol, 10, passes, aged(10))
    # recommendations 10, 5, 2: the 10 at t=0 holds until 2m, the 5 at 30s until 2m30s
    assert [x.desired for x in d] == [10, 10, 10, 10, 5, 2]
    has(d[2], "scale-down stabilising until 12:02:30Z (highest recommendation 10 in last 2m)")


def test_scale_up_stabilisation_takes_the_lowest_recommendation() -> None:
    pol = policy(behavior={"scale_up": {"stabilization_window": "1m"}})
    d = run(pol, 2, [(0, 40), (30, 200), (45, 200), (61, 200), (91, 200)], aged(2))
    # the spike from 30s on counts once the 2 recommended at 0s has left the minute
    assert [x.desired for x in d] == [2, 2, 2, 6, 10]
    has(d[1], "scale-up stabilising until 12:01:00Z (lowest recommendation 2 in last 1m)")
    has(d[3], "scale-up limited to 6 by rate policy (4 replicas per 15s)")


# ---------------------------------------------------------------- rate limits


def test_default_scale_up_rate_allows_the_larger_of_double_and_plus_four() -> None:
    d = one(plan(snap(svc("api", 2), rps=400), rules(api=policy(max=20)), Memory()))
    assert d.desired == 6
    has(d, "scale-up limited to 6 by rate policy (4 replicas per 15s)")
    d = one(plan(snap(svc("api", 6), rps=400), rules(api=policy(max=20)), Memory()))
    assert d.desired == 12
    has(d, "scale-up limited to 12 by rate policy (100% per 15s)")


def test_previous_scale_events_count_against_the_period() -> None:
    pol = policy(
        max=20,
        behavior={"scale_up": {"policies": [{"type": "replicas", "value": 4, "period": "1m"}]}},
    )
    recent = ScaleEvent(at=T0 - timedelta(seconds=50), change=3)
    mem = Memory(services={"api": ServiceMemory(events=(recent,))})
    d = one(plan(snap(svc("api", 5), rps=400), rules(api=pol), mem))
    assert (d.outcome, d.desired) == ("scale", 6)  # started the minute at 2: 2 + 4
    has(d, "scale-up limited to 6 by rate policy (4 replicas per 1m), +3 already in the last 1m")
    later = snap(svc("api", 5), at=T0 + timedelta(seconds=11), rps=400)
    assert one(plan(later, rules(api=pol), mem)).desired == 9


def test_select_policy_min_and_percent_scale_down() -> None:
    pol = policy(
        min=1,
        max=100,
        behavior={
            "scale_down": {
                "select_policy": "min",
                "policies": [
                    {"type": "percent", "value": 50, "period": "1m"},
                    {"type": "replicas", "value": 2, "period": "1m"},
                ],
            }
        },
    )
    d = one(plan(snap(svc("api", 9), rps=20), rules(api=pol), aged(9)))
    # min change: 9 - 2 = 7 beats int(9 * 0.5) = 4
    assert d.desired == 7
    has(d, "scale-down limited to 7 by rate policy (2 replicas per 1m)")


def test_scale_down_disabled_never_scales_down() -> None:
    pol = policy(behavior={"scale_down": {"select_policy": "disabled"}})
    d = one(plan(snap(svc("api", 8), rps=20), rules(api=pol), aged(8)))
    assert (d.outcome, d.desired) == ("hold", 8)
    has(d, "scale-down disabled (select_policy: disabled)")
    up = one(plan(snap(svc("api", 8), rps=200), rules(api=pol), aged(8)))
    assert up.desired == 10


def test_at_max_and_at_min() -> None:
    d = one(plan(snap(svc("api", 10), rps=1000), rules(api=policy()), Memory()))
    assert (d.outcome, d.desired) == ("hold", 10)
    has(d, "at max 10")
    d = one(plan(snap(svc("api", 3), rps=1), rules(api=policy(min=3)), aged(3)))
    assert (d.outcome, d.desired) == ("hold", 3)
    has(d, "at min 3")


# ---------------------------------------------------------------- bounds


@pytest.mark.parametrize(
    ("current", "signals", "desired", "reason"),
    [
        (12, {"rps": 1000}, 10, "above max 10"),
        (12, {}, 10, "above max 10"),  # with every signal missing too
        (0, {}, 1, "below min 1"),
        (0, {"rps": 0}, 1, "below min 1"),
    ],
)
def test_count_outside_bounds_is_corrected_at_once(
    current: int, signals: dict[str, float], desired: int, reason: str
) -> None:
    p = plan(snap(svc("api", current), signals=signals), rules(api=policy()), Memory())
    d = one(p)
    assert (d.outcome, d.desired) == ("scale", desired)
    has(d, reason)
    assert p.memory.services["api"].events == (ScaleEvent(at=T0, change=desired - current),)


# ---------------------------------------------------------------- missing and stale signals


def test_missing_signal_holds_and_names_why() -> None:
    s = snap(svc("api", 4), rps=val(None, error="prometheus unavailable: connection refused"))
    d = one(plan(s, rules(api=policy()), aged(4)))
    assert (d.outcome, d.desired) == ("hold", 4)
    has(d, "signal rps missing: prometheus unavailable: connection refused")
    has(d, "no usable signal (on_missing: hold)")


@pytest.mark.parametrize(
    ("signals", "reason"),
    [
        ({}, "signal rps missing: not read in this pass"),
        ({"rps": val(None)}, "signal rps missing: no value"),
        ({"rps": val(500, age=190)}, "signal rps stale (age 190s > 120s)"),
        ({"rps": val(500, age=120.4)}, "signal rps stale (age 121s > 120s)"),
        ({"rps": float("nan")}, "signal rps unusable: value is nan"),
        ({"rps": float("inf")}, "signal rps unusable: value is inf"),
    ],
)
def test_unusable_signal_is_never_read_as_zero(
    signals: dict[str, float | SignalValue], reason: str
) -> None:
    d = one(plan(snap(svc("api", 4), signals=signals), rules(api=policy()), aged(4)))
    assert (d.outcome, d.desired) == ("hold", 4)
    has(d, reason)


def test_value_younger_than_max_age_is_used() -> None:
    d = one(plan(snap(svc("api", 4), rps=val(120, age=119)), rules(api=policy()), Memory()))
    assert d.desired == 6


@pytest.mark.parametrize(
    "age",
    [
        120,  # exactly max_age: stale means older than it
        -30,  # stamped ahead of the snapshot: Prometheus' clock runs ahead, its answer is new
    ],
)
def test_value_at_max_age_or_from_a_clock_ahead_is_used(age: float) -> None:
    d = one(plan(snap(svc("api", 4), rps=val(120, age=age)), rules(api=policy()), Memory()))
    assert d.desired == 6


def test_undefined_signal_is_missing() -> None:
    pols = rules(("cpu",), api=policy())
    d = one(plan(snap(svc("api", 4), rps=120), pols, Memory()))
    assert d.outcome == "hold"
    has(d, "signal rps missing: not defined in signals")


TWO = {
    "target_tracking": [
        {"signal": "rps", "average_value": 20},
        {"signal": "cpu", "value": 50},
    ]
}


@pytest.mark.parametrize(
    ("signals", "outcome", "desired", "reason"),
    [
        # the usable signal may scale up
        ({"rps": 200}, "scale", 8, "signal cpu missing: not read in this pass"),
        ({"cpu": val(100, age=600), "rps": 200}, "scale", 8, "signal cpu stale"),
        # but never down: the missing one might be what keeps the count up
        ({"rps": 20}, "hold", 4, "not scaling down to 1 while a signal is missing"),
        ({"rps": 80}, "hold", 4, "within tolerance"),
        ({}, "hold", 4, "no usable signal (on_missing: hold)"),
    ],
)
def test_some_signals_missing(
    signals: dict[str, float | SignalValue], outcome: str, desired: int, reason: str
) -> None:
    d = one(plan(snap(svc("api", 4), signals=signals), rules(api=policy(**TWO)), aged(4)))
    assert (d.outcome, d.desired) == (outcome, desired)
    has(d, reason)


def test_every_signal_missing_names_each() -> None:
    d = one(plan(snap(svc("api", 4), cpu=val(1, age=300)), rules(api=policy(**TWO)), aged(4)))
    has(d, "signal rps missing: not read in this pass", "signal cpu stale (age 300s > 120s)")


@pytest.mark.parametrize(
    ("current", "fallback", "mem", "desired", "reason"),
    [
        (4, 7, None, 7, "no usable signal: fallback to 7 replicas"),
        (4, 50, None, 8, "scale-up limited to 8"),  # clamped to max 10, then rate-limited
        (4, 7, 2, 7, "fallback to 7 replicas"),
        # nothing is scaled down on missing data, stabilised or not
        (8, 3, 8, 8, "hold (fallback 3 never scales down)"),
        (8, 3, None, 8, "hold (fallback 3 never scales down)"),
        (4, 0, 4, 4, "hold (fallback 1 never scales down)"),  # clamped to min
    ],
)
def test_fallback(current: int, fallback: int, mem: int | None, desired: int, reason: str) -> None:
    pol = policy(on_missing="fallback", fallback_replicas=fallback)
    memory = aged(mem) if mem is not None else Memory()
    d = one(plan(snap(svc("api", current)), rules(api=pol), memory))
    assert d.desired == desired
    has(d, "signal rps missing", reason)


# ---------------------------------------------------------------- schedules


WORKDAY = {"cron": "0 8 * * 1-5", "duration": "10h", "timezone": "Europe/Berlin", "min": 6}


@pytest.mark.parametrize(
    ("at", "desired", "reason"),
    [
        # 12:00Z = 14:00 in Berlin (CEST): inside the window, min 6
        (T0, 6, "schedule '0 8 * * 1-5' (Europe/Berlin, 10h) active until 16:00:00Z: min 6"),
        # 05:59Z = 07:59 CEST: before the window, the policy's min 1 applies
        (T0.replace(hour=5, minute=59), 4, "within tolerance"),
        # Saturday: no window
        (T0 + timedelta(days=5), 4, "within tolerance"),
    ],
)
def test_schedule_sets_min(at: datetime, desired: int, reason: str) -> None:
    pol = policy(schedules=[WORKDAY])
    d = one(plan(snap(svc("api", 4), at=at, rps=80), rules(api=pol), Memory()))
    assert d.desired == desired
    has(d, reason)


def test_schedule_max_caps_scale_up() -> None:
    night = {"cron": "0 22 * * *", "duration": "8h", "max": 3}
    pol = policy(schedules=[night])
    at = T0.replace(hour=23)
    d = one(plan(snap(svc("api", 3), at=at, rps=400), rules(api=pol), Memory()))
    assert (d.outcome, d.desired) == ("hold", 3)
    has(d, "at max 3")
    d = one(plan(snap(svc("api", 5), at=at, rps=400), rules(api=pol), Memory()))
    assert (d.outcome, d.desired) == ("scale", 3)
    has(d, "above max 3")


# ---------------------------------------------------------------- pause, disabled, errors


@pytest.mark.parametrize("value", ["true", "TRUE", "yes", "Yes", "1", "on", " On "])
def test_pause_label_pauses(value: str) -> None:
    s = snap(svc("api", 4, labels={"autoscaler.pause": value}), rps=400)
    p = plan(s, rules(api=policy()), Memory())
    d = one(p)
    assert (d.outcome, d.current, d.desired) == ("paused", 4, None)
    assert d.reasons == (f"paused by label autoscaler.pause={value}",)
    assert p.actions == ()


@pytest.mark.parametrize("value", ["false", "0", "no", "", "paused"])
def test_other_label_values_do_not_pause(value: str) -> None:
    s = snap(svc("api", 4, labels={"autoscaler.pause": value}), rps=400)
    assert one(plan(s, rules(api=policy()), Memory())).outcome == "scale"


def test_custom_pause_label() -> None:
    s = snap(svc("api", 4, labels={"ops/hold": "yes", "autoscaler.pause": "false"}), rps=400)
    d = one(plan(s, rules(api=policy(pause_label="ops/hold")), Memory()))
    assert d.outcome == "paused"
    has(d, "paused by label ops/hold=yes")


@pytest.mark.parametrize(
    ("services", "overrides", "outcome", "reason"),
    [
        ((svc("api", 4),), {"enabled": False}, "disabled", "policy disabled (enabled: false)"),
        ((svc("web", 4),), {}, "error", "service api not found in the Swarm"),
        ((svc("api", None, mode="global"),), {}, "error",
         "service api is not replicated (mode global)"),
    ],
)  # fmt: skip
def test_no_action(
    services: tuple[Service, ...], overrides: dict[str, Any], outcome: str, reason: str
) -> None:
    p = plan(snap(*services, rps=400), rules(api=policy(**overrides)), Memory())
    d = one(p)
    assert d.outcome == outcome
    assert d.reasons == (reason,)
    assert p.actions == ()


def test_session_services_are_never_scaled() -> None:
    session = svc("sp-service-abc", 1).model_copy(update={"is_session": True})
    p = plan(snap(session, rps=400), rules(api=policy(service="sp-service-abc")), Memory())
    assert one(p).outcome == "error"
    has(one(p), "ShinyProxy session")


def test_swarm_unreadable_holds_every_policy() -> None:
    s = snap(swarm_error="cannot connect to the Docker daemon", rps=400)
    mem = Memory(
        services={"api": ServiceMemory(recommendations=(Recommendation(at=T0, replicas=4),))}
    )
    p = plan(s, rules(api=policy(), web=policy()), mem)
    assert [(d.outcome, d.current) for d in p.decisions] == [("hold", None), ("hold", None)]
    for d in p.decisions:
        assert d.reasons == ("swarm unreadable: cannot connect to the Docker daemon",)
    assert p.actions == ()
    assert p.memory == mem  # nothing learnt, nothing lost


# ---------------------------------------------------------------- memory


def test_scale_is_recorded_and_recommendations_kept() -> None:
    p = plan(snap(svc("api", 4), rps=120), rules(api=policy()), Memory())
    mem = p.memory.services["api"]
    assert mem.events == (ScaleEvent(at=T0, change=2),)
    # the seed (current at first sight) and this pass's recommendation
    assert mem.recommendations == (
        Recommendation(at=T0, replicas=4),
        Recommendation(at=T0, replicas=6),
    )


def test_memory_is_pruned_to_what_windows_and_periods_need() -> None:
    pol = policy(
        behavior={
            "scale_down": {"stabilization_window": "2m"},
            "scale_up": {"policies": [{"type": "replicas", "value": 4, "period": "3m"}]},
        }
    )
    old = ServiceMemory(
        recommendations=(
            Recommendation(at=T0 - timedelta(minutes=3), replicas=9),
            Recommendation(at=T0 - timedelta(seconds=100), replicas=5),
        ),
        events=(
            ScaleEvent(at=T0 - timedelta(minutes=4), change=2),
            ScaleEvent(at=T0 - timedelta(seconds=170), change=-1),
            ScaleEvent(at=T0 - timedelta(seconds=10), change=1),
        ),
    )
    mem = Memory(services={"api": old, "gone": old})
    p = plan(snap(svc("api", 5), rps=100), rules(api=pol), mem)
    assert set(p.memory.services) == {"api"}  # no policy for "gone" any more
    kept = p.memory.services["api"]
    assert [r.replicas for r in kept.recommendations] == [5, 5]
    assert [e.change for e in kept.events] == [-1, 1]


def test_paused_service_keeps_pruned_memory() -> None:
    old = ServiceMemory(
        recommendations=(
            Recommendation(at=T0 - timedelta(minutes=20), replicas=9),
            Recommendation(at=T0 - timedelta(minutes=1), replicas=5),
        )
    )
    s = snap(svc("api", 4, labels={"autoscaler.pause": "true"}), rps=400)
    p = plan(s, rules(api=policy()), Memory(services={"api": old}))
    assert p.memory.services["api"].recommendations == old.recommendations[1:]


def test_memory_that_windows_no_longer_need_is_dropped() -> None:
    old = ServiceMemory(recommendations=(Recommendation(at=T0 - timedelta(hours=1), replicas=9),))
    s = snap(svc("api", 4, labels={"autoscaler.pause": "1"}))
    p = plan(s, rules(api=policy()), Memory(services={"api": old}))
    assert p.memory.services == {}


def test_a_defect_in_one_policy_does_not_stop_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    import autoscaler.decide as decide_pkg

    real = decide_pkg.decide_service

    def flaky(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "api":
            raise ZeroDivisionError("boom")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(decide_pkg, "decide_service", flaky)
    s = snap(svc("api", 4), svc("web", 2), rps=120)
    pols = rules(
        web={**policy(), "target_tracking": [{"signal": "rps", "average_value": 60}]},
        api=policy(),
    )
    p = plan(s, pols, Memory())
    by = {d.policy: d for d in p.decisions}
    assert by["api"].outcome == "error" and "ZeroDivisionError" in by["api"].reasons[0]
    assert by["web"].outcome == "hold"
    assert [a.service for a in p.actions] == []
