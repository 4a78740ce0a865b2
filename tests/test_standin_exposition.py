"""The stand-in's actuator text: Micrometer's naming, Java's number format, parseable."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.lab.standin.exposition import java_double, render
from autoscaler.lab.standin.meters import MeterRegistry


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0.0"),
        (1.0, "1.0"),
        (7.0, "7.0"),
        (29.412, "29.412"),
        (0.0123, "0.0123"),
        (0.001, "0.001"),
        (0.0001, "1.0E-4"),
        (1234567.0, "1234567.0"),
        (1e7, "1.0E7"),
        (3.3554432e7, "3.3554432E7"),
        (1.716800412337e9, "1.716800412337E9"),
        (-2.5, "-2.5"),
        (float("nan"), "NaN"),
        (float("inf"), "+Inf"),
        (100.0, "100.0"),
        (120.5, "120.5"),
    ],
)
def test_java_double_matches_double_to_string(value: float, text: str) -> None:
    assert java_double(value) == text


def _registry() -> tuple[MeterRegistry, FakeClock]:
    clock = FakeClock()
    reg = MeterRegistry({"shinyproxy_instance": "abc", "shinyproxy_realm": ""}, clock)
    return reg, clock


def test_counter_renders_as_micrometer_13_does() -> None:
    reg, _ = _registry()
    reg.register_counter("appStarts", {"spec.id": "euler"})
    reg.increment("appStarts", {"spec.id": "euler"})
    assert render(reg.samples()) == (
        "# HELP appStarts_total  \n"
        "# TYPE appStarts_total counter\n"
        'appStarts_total{shinyproxy_instance="abc",shinyproxy_realm="",spec_id="euler"} 1.0\n'
    )


def test_legacy_style_has_trailing_comma_and_double_counts() -> None:
    reg, _ = _registry()
    reg.record("startupTime", {"spec.id": "euler"}, 2.5)
    text = render(reg.samples(), "simpleclient")
    assert (
        'startupTime_seconds_count{shinyproxy_instance="abc",shinyproxy_realm="",'
        'spec_id="euler",} 1.0\n' in text
    )
    modern = render(reg.samples())
    assert 'spec_id="euler"} 1\n' in modern


def test_timer_is_a_summary_plus_a_max_gauge_that_forgets_after_two_minutes() -> None:
    reg, clock = _registry()
    tags = {"spec.id": "euler", "container.idx": "0"}
    reg.record("containerScheduleTime", tags, 3.0)
    reg.record("containerScheduleTime", tags, 1.5)
    fams = {f.name: f for f in text_string_to_metric_families(render(reg.samples()))}
    summary = fams["containerScheduleTime_seconds"]
    assert summary.type == "summary"
    values = {s.name: s.value for s in summary.samples}
    assert values == {
        "containerScheduleTime_seconds_count": 2.0,
        "containerScheduleTime_seconds_sum": 4.5,
    }
    assert summary.samples[0].labels["container_idx"] == "0"
    assert fams["containerScheduleTime_seconds_max"].samples[0].value == 3.0
    clock.now += 121
    fams = {f.name: f for f in text_string_to_metric_families(render(reg.samples()))}
    assert fams["containerScheduleTime_seconds_max"].samples[0].value == 0.0
    assert fams["containerScheduleTime_seconds"].samples[0].value == 2.0


def test_gauges_may_be_nan_and_families_are_sorted() -> None:
    reg, _ = _registry()
    reg.gauge("absolute_apps_running", {"spec.id": "euler"}, lambda: math.nan)
    reg.gauge("absolute_users_active", None, 2.0)
    reg.register_counter("userLogins")

    def broken() -> float:
        raise RuntimeError("gone")

    reg.gauge("absolute_users_logged_in", None, broken)
    text = render(reg.samples())
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert names == [
        "absolute_apps_running",
        "absolute_users_active",
        "absolute_users_logged_in",
        "userLogins_total",
    ]
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert math.isnan(fams["absolute_apps_running"].samples[0].value)
    assert math.isnan(fams["absolute_users_logged_in"].samples[0].value)
    assert fams["userLogins"].type == "counter"


def test_label_values_are_escaped() -> None:
    reg, _ = _registry()
    reg.gauge("appInfo", {"user.id": 'a "quoted"\\ user\n'}, 10.0)
    fams = list(text_string_to_metric_families(render(reg.samples())))
    assert fams[0].samples[0].labels["user_id"] == 'a "quoted"\\ user\n'


def test_a_meter_name_keeps_one_type() -> None:
    reg, _ = _registry()
    reg.register_counter("appStarts")
    with pytest.raises(ValueError, match="counter"):
        reg.gauge("appStarts", None, 1.0)
