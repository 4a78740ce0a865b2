"""collect(): every backend read once; failures become missing signals, never zeros."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from autoscaler.rules.schema import Signal
from autoscaler.snapshot import Node, Session, SwarmState
from autoscaler.sources.collect import Backends, collect
from autoscaler.sources.errors import NoData, QueryRejected, SourceError
from autoscaler.sources.reading import Reading

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class FakeSwarm:
    def __init__(self, state: SwarmState | None = None, error: str | None = None) -> None:
        self.state, self.error = state, error

    def read(self) -> SwarmState:
        if self.error:
            raise SourceError("swarm", self.error)
        assert self.state is not None
        return self.state


class FakeProm:
    def __init__(self, answers: dict[str, float | Exception]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def query(self, promql: str) -> Reading:
        self.calls.append(promql)
        a = self.answers[promql]
        if isinstance(a, Exception):
            raise a
        return Reading(value=a, observed_at=NOW)


class FakeScrape:
    def value(self, metric: str, labels: Mapping[str, str], aggregate: str) -> Reading:
        if metric == "absent":
            raise NoData("no sample")
        return Reading(value=7.0, observed_at=NOW)


class FakeActuator:
    def __init__(self, down: bool = False) -> None:
        self.down, self.scrapes = down, 0

    def scrape_all(self) -> FakeScrape:
        self.scrapes += 1
        if self.down:
            raise SourceError("actuator", "connection refused (http://10.0.0.5:9090)")
        return FakeScrape()


def sig(**kw: object) -> Signal:
    return Signal.model_validate(kw)


STATE = SwarmState(
    nodes=(Node(id="n1", hostname="m", role="manager", availability="active", state="ready"),),
    sessions=(
        Session(
            service_id="s1",
            service_name="sp-service-a-0",
            proxy_id="a",
            spec_id="euler",
            user_id="alice",
            node_id="n1",
            state="running",
        ),
        Session(
            service_id="s2",
            service_name="sp-service-b-0",
            proxy_id="b",
            spec_id="euler",
            user_id="bob",
            node_id=None,
            state="pending",
        ),
        Session(
            service_id="s3",
            service_name="sp-service-c-0",
            proxy_id="c",
            spec_id="euler",
            user_id=None,
            node_id="n1",
            state="running",
        ),
    ),
)


def test_all_sources_and_builtins() -> None:
    prom = FakeProm({"sum(up)": 3.0})
    act = FakeActuator()
    snap = collect(
        Backends(swarm=FakeSwarm(STATE), prometheus=prom, actuator=act),
        {
            "up": sig(prometheus={"query": "sum(up)"}),
            "users": sig(actuator={"metric": "absolute_users_active"}),
            "users2": sig(actuator={"metric": "absolute_users_logged_in"}),
            "live": sig(swarm={"metric": "live_sessions"}),
            "pending": sig(swarm={"metric": "pending_sessions"}),
            "ready": sig(swarm={"metric": "nodes", "state": "ready"}),
        },
        now=lambda: NOW,
    )
    vals = {k: v.value for k, v in snap.signals.items()}
    assert vals == {"up": 3.0, "users": 7.0, "users2": 7.0, "live": 1, "pending": 1, "ready": 1}
    assert act.scrapes == 1, "one actuator scrape per pass, however many signals"
    assert all(s.ok for s in snap.sources.values())
    assert snap.swarm == STATE


def test_backend_down_is_missing_not_zero_and_others_still_read() -> None:
    prom = FakeProm({"sum(up)": SourceError("prometheus", "connection refused"), "x": 2.0})
    snap = collect(
        Backends(swarm=FakeSwarm(STATE), prometheus=prom, actuator=FakeActuator(down=True)),
        {
            "up": sig(prometheus={"query": "sum(up)"}, on_empty="zero"),
            "x": sig(prometheus={"query": "x"}),
            "users": sig(actuator={"metric": "absolute_users_active"}),
        },
        now=lambda: NOW,
    )
    assert snap.signals["up"].value is None
    assert "connection refused" in (snap.signals["up"].error or "")
    assert snap.signals["x"].value == 2.0
    assert snap.signals["users"].value is None
    assert snap.sources["prometheus"].ok is False
    assert snap.sources["actuator"].ok is False


def test_a_rejected_query_is_missing_but_its_backend_is_up() -> None:
    rejected = QueryRejected("prometheus", "query returned a range vector")
    prom = FakeProm({"up[1m]": rejected, "x": 2.0})
    snap = collect(
        Backends(swarm=FakeSwarm(STATE), prometheus=prom),
        {
            "typo": sig(prometheus={"query": "up[1m]"}, on_empty="zero"),
            "x": sig(prometheus={"query": "x"}),
        },
        now=lambda: NOW,
    )
    assert snap.signals["typo"].value is None  # not zero: a wrong query is not "nothing"
    assert snap.signals["typo"].error == "prometheus: query returned a range vector"
    assert snap.signals["x"].value == 2.0
    assert snap.sources["prometheus"].ok is True


def test_empty_answer_is_missing_unless_policy_says_zero() -> None:
    prom = FakeProm({"a": NoData(), "b": NoData(), "c": float("nan")})
    snap = collect(
        Backends(swarm=FakeSwarm(STATE), prometheus=prom),
        {
            "a": sig(prometheus={"query": "a"}),
            "b": sig(prometheus={"query": "b"}, on_empty="zero"),
            "c": sig(prometheus={"query": "c"}),
        },
        now=lambda: NOW,
    )
    assert snap.signals["a"].value is None and snap.signals["a"].error == "no data"
    assert snap.signals["b"].value == 0.0
    assert snap.signals["c"].value is None
    assert snap.sources["prometheus"].ok is True, "an empty answer is not a backend failure"


def test_swarm_down_makes_swarm_signals_missing() -> None:
    snap = collect(
        Backends(swarm=FakeSwarm(error="Cannot connect to the Docker daemon")),
        {"live": sig(swarm={"metric": "live_sessions"})},
        now=lambda: NOW,
    )
    assert snap.swarm is None
    assert snap.signals["live"].value is None
    assert snap.sources["swarm"].ok is False


@pytest.mark.parametrize("source", ["prometheus", "actuator", "influx"])
def test_unconfigured_backend_is_a_clear_missing_reason(source: str) -> None:
    spec = {
        "prometheus": {"query": "up"},
        "actuator": {"metric": "appStarts_total"},
        "influx": {"query": "SELECT count(data) FROM event"},
    }[source]
    snap = collect(Backends(swarm=FakeSwarm(STATE)), {"s": sig(**{source: spec})}, now=lambda: NOW)
    assert snap.signals["s"].value is None
    assert "not configured" in (snap.signals["s"].error or "")


def test_unknown_service_replicas_is_missing() -> None:
    snap = collect(
        Backends(swarm=FakeSwarm(STATE)),
        {"r": sig(swarm={"metric": "service_replicas", "service": "nope"})},
        now=lambda: NOW,
    )
    assert snap.signals["r"].value is None
    assert "not found" in (snap.signals["r"].error or "")


def test_snapshot_round_trips_json() -> None:
    snap = collect(
        Backends(swarm=FakeSwarm(STATE), prometheus=FakeProm({"x": 1.5})),
        {"x": sig(prometheus={"query": "x"})},
        now=lambda: NOW,
    )
    from autoscaler.snapshot import Snapshot

    back = Snapshot.from_json(snap.to_json())
    assert back == snap
    assert back.digest() == snap.digest()


def test_an_infinite_value_is_missing_even_where_empty_means_zero() -> None:
    """A latency quantile past the last bucket is +Inf: very high, never 0 to scale down on."""
    prom = FakeProm({"p95": float("inf"), "ratio": float("nan")})
    snap = collect(
        Backends(swarm=FakeSwarm(STATE), prometheus=prom),
        {
            "p95": sig(prometheus={"query": "p95"}, on_empty="zero"),
            "ratio": sig(prometheus={"query": "ratio"}, on_empty="zero"),
        },
        now=lambda: NOW,
    )
    assert snap.signals["p95"].value is None
    assert snap.signals["p95"].error == "prometheus: value is inf: not a number to scale on"
    assert snap.signals["ratio"].value == 0.0  # 0/0: nothing happened
    assert snap.sources["prometheus"].ok is True
