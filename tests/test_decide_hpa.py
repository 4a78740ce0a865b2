"""Parity of autoscaler.decide.hpa with the Kubernetes HPA controller.

The tables are the cases of upstream's horizontal_test.go (TestScalingWithRules,
TestNormalizeDesiredReplicasWithBehavior, TestCalculateScale{Up,Down}Limit...,
TestStoreScaleEvents' period accounting) and replica_calculator_test.go, with the
same inputs and expected answers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autoscaler.decide import hpa
from autoscaler.decide.plan_types import Recommendation, ScaleEvent
from autoscaler.rules.schema import Behavior, RatePolicy, ScalingRules

NOW = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)


def rules(
    pods: int = 0,
    pods_period: int = 0,
    percent: int = 0,
    percent_period: int = 0,
    window: int = 0,
    select: str = "max",
) -> ScalingRules:
    """upstream generateScalingRules: a policy only for a non-zero value."""
    policies = []
    if pods:
        policies.append(
            RatePolicy(type="replicas", value=pods, period=timedelta(seconds=pods_period))
        )
    if percent:
        policies.append(
            RatePolicy(type="percent", value=percent, period=timedelta(seconds=percent_period))
        )
    return ScalingRules.model_validate(
        {
            "stabilization_window": timedelta(seconds=window),
            "select_policy": select,
            "policies": tuple(policies),
        }
    )


def uniform(changes: list[int], period: int, sign: int = 1) -> list[ScaleEvent]:
    """upstream generateEventsUniformDistribution: events centred in equal segments."""
    seg = period / len(changes)
    return [
        ScaleEvent(at=NOW - timedelta(seconds=period - seg * (i + 1) + seg / 2), change=sign * c)
        for i, c in enumerate(changes)
    ]


def ups(changes: list[int], period: int) -> list[ScaleEvent]:
    return uniform(changes, period)


def downs(changes: list[int], period: int) -> list[ScaleEvent]:
    return uniform(changes, period, sign=-1)


# (name, events, min, max, scale_up rules or None for defaults, scale_down rules or None,
#  current, prenormalized desired, expected replicas, expected condition)
SCALING_WITH_RULES = [
    ("prenormalized desired replicas within range", [], 3, 8, None, None, 5, 7, 7,
     "DesiredWithinRange"),
    ("prenormalized desired replicas < minReplicas", [], 2, 8, None, None, 3, 1, 2,
     "TooFewReplicas"),
    ("prenormalized desired replicas within range when minReplicas is 0", [], 0, 10, None,
     None, 1, 0, 0, "DesiredWithinRange"),
    ("maxReplicas is the limit because maxReplicas < scaleUpLimit", [], 1, 10, None, None,
     20, 1000, 10, "TooManyReplicas"),
    ("desired replica count is more than the maximum replica count", [], 100, 150, None,
     None, 100, 1000, 150, "TooManyReplicas"),
    ("scaleUpLimit is the limit because scaleUpLimit < maxReplicas with user policies", [],
     1, 2000, rules(0, 0, 1, 60), None, 3, 1000, 4, "ScaleUpLimit"),
    ("scaleDownLimit is the limit because scaleDownLimit > minReplicas with user policies",
     [], 3, 2000, None, rules(20, 60), 1000, 3, 980, "ScaleDownLimit"),
    ("scaleUp with default behavior", [], 1, 1000, None, None, 10, 50, 20, "ScaleUpLimit"),
    ("scaleUp with pods policy larger than percent policy", [], 1, 1000,
     rules(100, 60, 100, 60), None, 10, 500, 110, "ScaleUpLimit"),
    ("scaleUp with percent policy larger than pods policy", [], 1, 1000,
     rules(2, 60, 100, 60), None, 10, 500, 20, "ScaleUpLimit"),
    ("scaleUp with spec MaxReplicas limitation with large pod policy", [], 1, 1000,
     rules(100, 60), None, 10, 50, 50, "DesiredWithinRange"),
    ("scaleUp with spec MaxReplicas limitation with large percent policy", [], 1, 1000,
     rules(10000, 60), None, 10, 50, 50, "DesiredWithinRange"),
    ("scaleUp with pod policy limitation", [], 1, 1000, rules(30, 60), None, 10, 50, 40,
     "ScaleUpLimit"),
    ("scaleUp with percent policy limitation", [], 1, 1000, rules(0, 0, 200, 60), None, 10,
     50, 30, "ScaleUpLimit"),
    ("scaleDown with percent policy larger than pod policy", [], 1, 1000, None,
     rules(20, 60, 1, 60, 300), 100, 2, 80, "ScaleDownLimit"),
    ("scaleDown with pod policy larger than percent policy", [], 1, 1000, None,
     rules(2, 60, 1, 60, 300), 100, 2, 98, "ScaleDownLimit"),
    ("scaleDown with spec MinReplicas=nil limitation with large pod policy", [], 1, 1000,
     None, rules(100, 60, 0, 0, 300), 10, 0, 1, "TooFewReplicas"),
    ("scaleDown with spec MinReplicas limitation with large percent policy", [], 5, 1000,
     None, rules(0, 0, 100, 60, 300), 10, 2, 5, "TooFewReplicas"),
    ("scaleDown with pod policy limitation", [], 1, 1000, None, rules(5, 60, 0, 0, 300), 10,
     2, 5, "ScaleDownLimit"),
    ("scaleDown with percent policy limitation", [], 1, 1000, None,
     rules(0, 0, 50, 60, 300), 10, 5, 5, "DesiredWithinRange"),
    ("scaleUp with spec MaxReplicas limitation with large pod policy and events",
     ups([1, 5, 9], 120), 1, 200, rules(300, 60), None, 100, 500, 200, "TooManyReplicas"),
    ("scaleUp with spec MaxReplicas limitation with large percent policy and events",
     ups([1, 5, 9], 120), 1, 200, rules(0, 0, 10000, 60), None, 100, 500, 200,
     "TooManyReplicas"),
    ("scaleUp with currentReplicas limitation with rate.PeriodSeconds with a lot of recent "
     "scale up events", ups([1, 5, 9], 120), 1, 1000, rules(5, 120), None, 100, 500, 100,
     "ScaleUpLimit"),
    ("scaleUp with pod policy and previous scale up events", ups([1, 5, 9], 120), 1, 1000,
     rules(150, 120), None, 100, 500, 235, "ScaleUpLimit"),
    ("scaleUp with percent policy and previous scale up events", ups([1, 5, 9], 120), 1,
     1000, rules(0, 0, 200, 120), None, 100, 500, 255, "ScaleUpLimit"),
    ("scaleUp with percent policy and previous scale up and down events",
     ups([4], 120) + downs([2], 120), 1, 1000, rules(0, 0, 300, 300), None, 6, 24, 16,
     "ScaleUpLimit"),
    ("scaleDown with default policy and previous events", downs([1, 5, 9], 120), 1, 1000,
     None, None, 10, 5, 5, "DesiredWithinRange"),
    ("scaleDown with spec MinReplicas=nil limitation with large pod policy and previous "
     "events", downs([1, 5, 9], 120), 1, 1000, None, rules(115, 120, 0, 0, 300), 100, 0, 1,
     "TooFewReplicas"),
    ("scaleDown with spec MinReplicas limitation with large pod policy and previous events",
     downs([1, 5, 9], 120), 5, 1000, None, rules(130, 120, 0, 0, 300), 100, 0, 5,
     "TooFewReplicas"),
    ("scaleDown with spec MinReplicas limitation with large percent policy and previous "
     "events", downs([1, 5, 9], 120), 5, 1000, None, rules(0, 0, 100, 120, 300), 100, 2, 5,
     "TooFewReplicas"),
    ("scaleDown with pod policy limitation and previous events", downs([1, 5, 9], 120), 1,
     1000, None, rules(5, 120, 0, 0, 300), 100, 2, 100, "ScaleDownLimit"),
    ("scaleDown with percent policy limitation and previous events", downs([2, 4, 6], 120),
     1, 1000, None, rules(0, 0, 50, 120, 300), 100, 0, 56, "ScaleDownLimit"),
    ("scaleDown with percent policy and previous scale up and down events",
     ups([2], 120) + downs([4], 120), 1, 1000, None, rules(0, 0, 50, 180), 10, 1, 6,
     "ScaleDownLimit"),
    ("scaleDown with previous events preventing further scale down",
     downs([10, 10, 10], 120), 1, 1000, None, rules(0, 0, 10, 120, 300), 100, 0, 100,
     "ScaleDownLimit"),
    ("scaleDown with with previous events still allowing more scale down",
     downs([10, 10, 10], 120), 1, 1000, None, rules(0, 0, 1000, 120, 300), 10, 5, 5,
     "DesiredWithinRange"),
    ("check 'outdated' flag for events for one behavior for up", ups([8, 12, 9, 11], 120), 1,
     1000, rules(1000, 60), None, 100, 200, 200, "DesiredWithinRange"),
    ("check that events were not marked 'outdated' for two different policies in the "
     "behavior for up", ups([8, 12, 9, 11], 120), 1, 1000, rules(1000, 120, 100, 60), None,
     100, 200, 200, "DesiredWithinRange"),
    ("check that events were marked 'outdated' for two different policies in the behavior "
     "for up", ups([8, 12, 9, 11], 120), 1, 1000, rules(1000, 30, 100, 60), None, 100, 200,
     200, "DesiredWithinRange"),
    ("check 'outdated' flag for events for one behavior for down", downs([8, 12, 9, 11], 120),
     1, 1000, None, rules(1000, 60, 0, 0, 300), 100, 5, 5, "DesiredWithinRange"),
    ("check that events were not marked 'outdated' for two different policies in the "
     "behavior for down", downs([8, 12, 9, 11], 120), 1, 1000, None,
     rules(1000, 120, 100, 60, 300), 100, 5, 5, "DesiredWithinRange"),
    ("check that events were marked 'outdated' for two different policies in the behavior "
     "for down", downs([8, 12, 9, 11], 120), 1, 1000, None, rules(1000, 30, 100, 60, 300),
     100, 5, 5, "DesiredWithinRange"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("events", "lo", "hi", "up", "down", "current", "desired", "expected", "condition"),
    [case[1:] for case in SCALING_WITH_RULES],
    ids=[case[0] for case in SCALING_WITH_RULES],
)
def test_scaling_with_rules(
    events: list[ScaleEvent],
    lo: int,
    hi: int,
    up: ScalingRules | None,
    down: ScalingRules | None,
    current: int,
    desired: int,
    expected: int,
    condition: str,
) -> None:
    behavior = Behavior.model_validate(
        {k: v for k, v in (("scale_up", up), ("scale_down", down)) if v is not None}
    )
    got = hpa.convert_desired_replicas_with_behavior_rate(
        current, desired, lo, hi, events, behavior.up(), behavior.down(), NOW
    )
    assert (got.replicas, got.condition) == (expected, condition)


def test_calculate_scale_up_limit_with_select_min() -> None:
    r = rules(2, 60, 50, 60, 300, select="min")
    assert hpa.calculate_scale_up_limit_with_scaling_rules(1, [], [], r, NOW).replicas == 2


def test_calculate_scale_down_limit_with_select_min() -> None:
    r = rules(2, 60, 50, 60, 300, select="min")
    assert hpa.calculate_scale_down_limit_with_behaviors(5, [], [], r, NOW).replicas == 3


@pytest.mark.parametrize("direction", ["up", "down"])
def test_select_policy_disabled_allows_no_change(direction: str) -> None:
    r = rules(100, 60, 100, 60, select="disabled")
    behavior = Behavior.model_validate({f"scale_{direction}": r})
    desired = 50 if direction == "up" else 1
    got = hpa.convert_desired_replicas_with_behavior_rate(
        10, desired, 1, 100, [], behavior.up(), behavior.down(), NOW
    )
    assert got.replicas == 10
    assert got.limit is not None and got.limit.policy is None


def test_percent_rounding_follows_upstream() -> None:
    # up rounds up (1 replica + 10% still adds one), down truncates (3 - 50% keeps 1)
    up = rules(0, 0, 10, 60)
    assert hpa.calculate_scale_up_limit_with_scaling_rules(1, [], [], up, NOW).replicas == 2
    down = rules(0, 0, 50, 60)
    assert hpa.calculate_scale_down_limit_with_behaviors(3, [], [], down, NOW).replicas == 1


@pytest.mark.parametrize(
    ("start", "percent", "expected"),
    [
        (50, 10, 55),  # float64: ceil(50 * 1.1) = ceil(55.00000000000001) = 56
        (25, 12, 28),  # float64: ceil(28.000000000000004) = 29
        (10, 100, 20),
    ],
)
def test_percent_scale_up_is_exact(start: int, percent: int, expected: int) -> None:
    r = rules(0, 0, percent, 60)
    limit = hpa.calculate_scale_up_limit_with_scaling_rules(start, [], [], r, NOW)
    assert limit.replicas == expected


@pytest.mark.parametrize(
    ("start", "percent", "expected"),
    [
        (5, 80, 1),  # float64: int(5 * 0.19999999999999996) = 0, removing all five
        (10, 90, 1),  # float64: int(0.9999999999999998) = 0
        (10, 80, 2),
        (3, 50, 1),
    ],
)
def test_percent_scale_down_is_exact(start: int, percent: int, expected: int) -> None:
    r = rules(0, 0, percent, 60)
    limit = hpa.calculate_scale_down_limit_with_behaviors(start, [], [], r, NOW)
    assert limit.replicas == expected


def test_percent_scale_down_limit_holds_with_min_zero() -> None:
    down = rules(0, 0, 80, 60, 300)
    got = hpa.convert_desired_replicas_with_behavior_rate(
        5, 0, 0, 10, [], Behavior().up(), down, NOW
    )
    assert (got.replicas, got.condition) == (1, "ScaleDownLimit")


def test_limit_names_the_policy_that_set_it() -> None:
    r = rules(4, 15, 100, 15)
    limit = hpa.calculate_scale_up_limit_with_scaling_rules(2, [], [], r, NOW)
    assert limit.replicas == 6
    assert limit.policy is not None and limit.policy.type == "replicas"
    assert limit.period_start == 2


# upstream TestStoreScaleEvents: replica change counted over a 60s period
@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([], 0),
        ([(61, 7)], 0),
        ([(58, 7)], 7),
        ([(61, 7), (59, 6)], 6),
        ([(29, 8), (59, 6), (61, 7), (61, 9)], 14),
        ([(58, 7), (59, 6)], 13),
        ([(60, 5)], 0),  # exactly one period ago is outside: the cutoff is strict
    ],
)
def test_replicas_change_per_period(events: list[tuple[int, int]], expected: int) -> None:
    evs = [ScaleEvent(at=NOW - timedelta(seconds=s), change=c) for s, c in events]
    assert hpa.get_replicas_change_per_period(timedelta(seconds=60), evs, NOW) == expected


def _recs(*pairs: tuple[int, float]) -> list[Recommendation]:
    return [Recommendation(at=NOW - timedelta(minutes=m), replicas=r) for r, m in pairs]


# upstream TestNormalizeDesiredReplicasWithBehavior:
# (name, history (replicas, minutes ago), current, desired, up window s, down window s,
#  expected, expected stored replicas or None)
STABILIZE = [
    ("empty recommendations for scaling down", [], 100, 5, 0, 0, 5, [5]),
    ("simple scale down stabilization", [(4, 2), (5, 1)], 100, 3, 0, 180, 5, [4, 5, 3]),
    ("simple scale up stabilization", [(4, 2), (5, 1)], 1, 7, 300, 0, 4, [4, 5, 7]),
    ("no scale down stabilization", [(1, 2), (2, 1)], 100, 3, 300, 0, 3, [1, 2, 3]),
    ("no scale up stabilization", [(4, 2), (5, 1)], 1, 3, 0, 300, 3, [4, 5, 3]),
    ("no scale down stabilization, reuse recommendation element", [(10, 10), (9, 9)], 100, 3,
     0, 0, 3, [10, 3]),
    ("no scale up stabilization, reuse recommendation element", [(10, 10), (9, 9)], 1, 100, 0,
     0, 100, [10, 100]),
    ("scale down stabilization, reuse one of obsolete recommendation element",
     [(10, 10), (4, 1), (5, 2), (9, 9)], 100, 3, 0, 180, 5, [10, 4, 5, 3]),
    ("scale up stabilization, reuse one of obsolete recommendation element",
     [(10, 100), (6, 1), (5, 2), (9, 3)], 1, 100, 300, 0, 5, [100, 6, 5, 9]),
    ("scale up and down stabilization, do not scale up when prenormalized rec goes down",
     [(2, 100), (3, 3)], 2, 1, 300, 300, 2, None),
    ("scale up and down stabilization, do not scale down when prenormalized rec goes up",
     [(2, 100), (1, 3)], 2, 3, 300, 300, 2, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("history", "current", "desired", "up_s", "down_s", "expected", "stored"),
    [case[1:] for case in STABILIZE],
    ids=[case[0] for case in STABILIZE],
)
def test_stabilize_recommendation_with_behaviors(
    history: list[tuple[int, float]],
    current: int,
    desired: int,
    up_s: int,
    down_s: int,
    expected: int,
    stored: list[int] | None,
) -> None:
    got = hpa.stabilize_recommendation_with_behaviors(
        _recs(*history),
        NOW,
        current,
        desired,
        timedelta(seconds=up_s),
        timedelta(seconds=down_s),
    )
    assert got.replicas == expected
    if stored is not None:
        assert [r.replicas for r in got.recommendations] == stored
        assert got.recommendations[stored.index(desired)].at == NOW


# replica_calculator_test.go, external metrics with a per-pod target and tolerance
@pytest.mark.parametrize(
    ("current", "usage", "per_pod", "expected"),
    [
        (3, 8600, 2150, 4),  # TestReplicaCalcScaleUpPerPodCMExternal
        (3, 8600, 2900, 3),  # TestReplicaCalcToleranceCMExternalPerPod (ratio 0.989)
        (5, 8600, 2150, 4),  # scale down: ceil(8600 / 2150)
        (0, 8600, 2150, 4),  # from zero: no ratio, straight to ceil(usage / target)
        (0, 0, 2150, 0),  # zero usage at zero replicas stays at zero
    ],
)
def test_external_per_pod_replicas(
    current: int, usage: float, per_pod: float, expected: int
) -> None:
    got, _ = hpa.get_external_per_pod_metric_replicas(current, usage, per_pod, 0.1)
    assert got == expected


@pytest.mark.parametrize(
    ("current", "ratio", "tolerance", "expected"),
    [
        (4, 1.25, 0.25, 4),  # |1 - ratio| == tolerance: inside (<=)
        (4, 1.25 + 2**-20, 0.25, 6),  # just outside: ceil(5.0000038)
        (4, 0.75, 0.25, 4),
        (4, 0.75 - 2**-20, 0.25, 3),
        # 1.1 in binary is a hair above 1.1, so upstream scales here too
        (10, 110 / 100, 0.1, 11),
        (10, 1.0, 0.0, 10),
        (0, 2.5, 0.1, 3),  # from zero: tolerance does not apply
    ],
)
def test_usage_ratio_replica_count(
    current: int, ratio: float, tolerance: float, expected: int
) -> None:
    assert hpa.get_usage_ratio_replica_count(current, ratio, tolerance) == expected


def test_replica_count_is_capped_at_int32() -> None:
    assert hpa.get_usage_ratio_replica_count(10, 1e12, 0.1) == hpa.MAX_INT32
