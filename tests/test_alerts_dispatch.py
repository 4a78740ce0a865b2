"""Group timers, dedup, inhibition, silences and time intervals, on an injected clock."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.alerts.config import RoutingConfig
from autoscaler.alerts.dispatch import CompiledConfig, DeliveryError, Dispatcher, InhibitRule
from autoscaler.alerts.model import Alert, Notification
from autoscaler.alerts.notify_log import NotifyLog
from autoscaler.alerts.routing import Route
from autoscaler.alerts.silences import Silences

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday
S = timedelta(seconds=1)
M = timedelta(minutes=1)


class Recorder:
    """A receiver integration that records what it was sent (or fails on demand)."""

    kind = "recorder"

    def __init__(self, send_resolved: bool = False) -> None:
        self.send_resolved = send_resolved
        self.sent: list[Notification] = []
        self.fail = False

    def send(self, notification: Notification) -> None:
        if self.fail:
            raise DeliveryError("recorder: HTTP 503")
        self.sent.append(notification)

    def names(self) -> list[list[tuple[str, str]]]:
        return [
            sorted(
                (a.labels.get("alertname", ""), "resolved" if a.resolved(n.now) else "firing")
                for a in n.alerts
            )
            for n in self.sent
        ]


_made: list[Dispatcher] = []


@pytest.fixture(autouse=True)
def _close_dispatchers() -> Iterator[None]:
    """Every dispatcher a test made stops its sending threads, even when the test fails."""
    try:
        yield
    finally:
        while _made:
            _made.pop().close()


def make(
    route: dict[str, Any],
    receivers: dict[str, Recorder],
    *,
    inhibit: list[dict[str, Any]] | None = None,
    intervals: list[dict[str, Any]] | None = None,
    nflog: NotifyLog | None = None,
    silences: Silences | None = None,
) -> tuple[Dispatcher, list[tuple[str, str, bool]]]:
    cfg = RoutingConfig.model_validate(
        {
            "route": route,
            "receivers": [{"name": n} for n in receivers],
            "inhibit_rules": inhibit or [],
            "time_intervals": intervals or [],
        }
    )
    compiled = CompiledConfig(
        route=Route.build(cfg.route),
        receivers={n: [r] for n, r in receivers.items()},
        inhibit_rules=[InhibitRule(r.source(), r.target(), r.equal) for r in cfg.inhibit_rules],
        time_intervals={t.name: t for t in cfg.time_intervals},
    )
    results: list[tuple[str, str, bool]] = []
    d = Dispatcher(
        compiled,
        nflog or NotifyLog(),
        silences or Silences(),
        on_result=lambda r, k, ok: results.append((r, k, ok)),
    )
    _made.append(d)
    return d, results


def firing(name: str, at: datetime = T0, **labels: str) -> Alert:
    return Alert({"alertname": name, **labels}, {"summary": name}, starts_at=at)


def resolved(a: Alert, at: datetime) -> Alert:
    return Alert(a.labels, a.annotations, a.starts_at, ends_at=at)


ROOT_DIR = Path(__file__).resolve().parents[1]
ROOT = {
    "receiver": "r",
    "group_by": ["alertname"],
    "group_wait": "30s",
    "group_interval": "5m",
    "repeat_interval": "1h",
}


def test_group_wait_then_group_interval_batches_changes() -> None:
    r = Recorder()
    d, _ = make(ROOT, {"r": r})
    d.put([firing("A", instance="1")], T0)
    d.tick(T0 + 29 * S)
    assert r.sent == []
    d.tick(T0 + 30 * S)
    assert r.names() == [[("A", "firing")]]
    d.put([firing("A", T0 + 40 * S, instance="2")], T0 + 40 * S)
    d.tick(T0 + 5 * M)
    assert len(r.sent) == 1  # a change waits for group_interval, not group_wait
    d.tick(T0 + 30 * S + 5 * M)
    assert r.names()[-1] == [("A", "firing"), ("A", "firing")]
    assert r.sent[-1].group_labels == {"alertname": "A"}


def test_an_old_alert_in_a_new_group_is_sent_at_once() -> None:
    r = Recorder()
    d, _ = make(ROOT, {"r": r})
    d.put([firing("A", T0 - 10 * M)], T0)
    d.tick(T0)
    assert len(r.sent) == 1


def test_an_old_alert_joining_a_group_in_its_first_wait_is_sent_at_once() -> None:
    """Alertmanager's aggrGroup.insert: the group's first flush no longer waits once an
    alert of it has waited group_wait already; after that flush, changes wait for
    group_interval as before."""
    r = Recorder()
    d, _ = make(ROOT, {"r": r})
    d.put([firing("A", instance="new")], T0)
    d.put([firing("A", T0 - 10 * M, instance="old")], T0 + 10 * S)
    d.tick(T0 + 10 * S)
    assert r.names() == [[("A", "firing"), ("A", "firing")]]
    d.put([firing("A", T0 - 10 * M, instance="older")], T0 + 20 * S)
    d.tick(T0 + 20 * S)
    assert len(r.sent) == 1


def test_repeat_interval_resends_an_unchanged_group_only_when_due() -> None:
    r = Recorder()
    d, _ = make(ROOT, {"r": r})
    a = firing("A")
    d.put([a], T0)
    t = T0 + 30 * S
    d.tick(t)
    for _ in range(11):  # every group_interval for 55 minutes: nothing new
        t += 5 * M
        d.put([a], t)
        d.tick(t)
    assert len(r.sent) == 1
    t += 5 * M  # exactly repeat_interval (1h) later: not yet (Alertmanager compares strictly)
    d.put([a], t)
    d.tick(t)
    assert len(r.sent) == 1
    t += 5 * M
    d.put([a], t)
    d.tick(t)
    assert len(r.sent) == 2


@pytest.mark.parametrize(("repeat", "group"), [("1m", "5m"), ("5m", "5m"), ("4h", "5m")])
def test_a_forwarded_alert_stays_active_between_its_sends(repeat: str, group: str) -> None:
    # the external Alertmanager resolves a firing alert at its endsAt: every send must
    # reach past the next one, which waits for the group's flush after repeat_interval
    from autoscaler.alerts.receivers.alertmanager import forward_payload

    r = Recorder()
    d, _ = make({**ROOT, "repeat_interval": repeat, "group_interval": group}, {"r": r})
    a = firing("A")
    t = T0
    while t < T0 + 10 * 3600 * S:
        d.put([a], t)
        d.tick(t)
        t += 15 * S
    assert len(r.sent) >= 2
    ends = [datetime.fromisoformat(forward_payload(n)[0]["endsAt"]) for n in r.sent]
    for sent_until, next_send in zip(ends, [n.now for n in r.sent[1:]], strict=False):
        assert sent_until > next_send


@pytest.mark.parametrize("send_resolved", [True, False])
def test_send_resolved(send_resolved: bool) -> None:
    r = Recorder(send_resolved=send_resolved)
    d, _ = make(ROOT, {"r": r})
    a, b = firing("A", instance="1"), firing("A", instance="2")
    d.put([a, b], T0)
    d.tick(T0 + 30 * S)
    d.put([resolved(a, T0 + M)], T0 + M)
    d.tick(T0 + 30 * S + 5 * M)
    if send_resolved:
        assert r.names()[-1] == [("A", "firing"), ("A", "resolved")]
    else:
        assert len(r.sent) == 1  # only a resolved change: nothing to tell
    d.put([resolved(b, T0 + 6 * M)], T0 + 6 * M)
    d.tick(T0 + 30 * S + 10 * M)
    if send_resolved:
        assert r.names()[-1] == [("A", "resolved")]
        assert r.sent[-1].status == "resolved"
    assert not d.groups()  # resolved and notified: the group is gone
    d.tick(T0 + 2 * 60 * M)
    assert len(r.sent) == (3 if send_resolved else 1)


def test_inhibition_needs_a_firing_source_with_equal_labels() -> None:
    r = Recorder()
    inhibit = [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["cluster"],
        }
    ]
    d, _ = make({**ROOT, "group_by": ["..."]}, {"r": r}, inhibit=inhibit)
    down = firing("Down", severity="critical", cluster="a")
    d.put(
        [
            down,
            firing("Slow", severity="warning", cluster="a"),
            firing("Slow", severity="warning", cluster="b"),
        ],
        T0,
    )
    d.tick(T0 + 30 * S)
    sent = sorted(tuple(sorted(a.labels.items())) for n in r.sent for a in n.alerts)
    assert (("alertname", "Slow"), ("cluster", "a"), ("severity", "warning")) not in sent
    assert (("alertname", "Slow"), ("cluster", "b"), ("severity", "warning")) in sent
    assert len(sent) == 2
    assert d.muted_by({"alertname": "Slow", "severity": "warning", "cluster": "a"}, T0) == (
        [],
        True,
    )
    # Once the source resolves, the target is no longer inhibited.
    d.put([resolved(down, T0 + M)], T0 + M)
    d.tick(T0 + 30 * S + 5 * M)
    names = [a.labels for n in r.sent[2:] for a in n.alerts]
    assert {"alertname": "Slow", "severity": "warning", "cluster": "a"} in names


def test_the_shipped_inhibition_mutes_only_the_stale_signals_of_the_backend_down() -> None:
    """rules/alerts.yml: InfluxDB down explains its own stale signals, not a Prometheus
    signal that went stale at the same time for a reason of its own."""
    shipped = yaml.safe_load((ROOT_DIR / "rules" / "alerts.yml").read_text())["inhibit_rules"]
    d, _ = make({**ROOT, "group_by": ["..."]}, {"r": Recorder()}, inhibit=shipped)
    d.put([firing("AutoscalerSourceDown", backend="influx")], T0)
    assert d.muted_by({"alertname": "AutoscalerSignalStale", "signal": "users",
                       "backend": "influx"}, T0) == ([], True)  # fmt: skip
    assert d.muted_by({"alertname": "AutoscalerSignalStale", "signal": "rps",
                       "backend": "prometheus"}, T0) == ([], False)  # fmt: skip


def test_an_alert_on_both_sides_does_not_inhibit_itself() -> None:
    r = Recorder()
    inhibit = [
        {
            "source_matchers": ['alertname=~"A|B"'],
            "target_matchers": ['alertname=~"A|B"'],
            "equal": [],
        }
    ]
    d, _ = make(ROOT, {"r": r}, inhibit=inhibit)
    d.put([firing("A")], T0)
    d.tick(T0 + 30 * S)
    assert r.names() == [[("A", "firing")]]


def test_silence_mutes_until_expired(tmp_path: Path) -> None:
    r = Recorder()
    silences = Silences(tmp_path / "silences.json")
    d, _ = make(ROOT, {"r": r}, silences=silences)
    s = silences.add(['alertname="A"'], T0, T0 + 60 * M, "jo", "maintenance")
    d.put([firing("A"), firing("B")], T0)
    d.tick(T0 + 30 * S)
    assert r.names() == [[("B", "firing")]]
    assert silences.expire(s.id, T0 + M)
    assert Silences(tmp_path / "silences.json").all()[0].ends_at == T0 + M  # persisted
    d.tick(T0 + 30 * S + 5 * M)
    assert r.names()[-1] == [("A", "firing")]


def test_a_silence_change_that_cannot_be_saved_is_not_in_force(tmp_path: Path) -> None:
    """The caller is told the change failed: it must not take effect all the same until
    the next restart (a silence the user believes was never made, or never ended)."""
    path = tmp_path / "state" / "silences.json"
    path.parent.mkdir()
    silences = Silences(path)
    kept = silences.add(['alertname="A"'], T0, T0 + 60 * M, "jo", "maintenance")
    shutil.rmtree(path.parent)
    path.parent.write_text("")  # a file where the folder was: nothing can be saved there
    with pytest.raises(OSError):
        silences.add(['alertname="B"'], T0, T0 + 60 * M, "jo", "more")
    with pytest.raises(OSError):
        silences.expire(kept.id, T0 + M)
    assert [(s.id, s.ends_at) for s in silences.all()] == [(kept.id, T0 + 60 * M)]
    assert silences.muting({"alertname": "A"}, T0 + 2 * M) == [kept.id]


def test_a_saved_silence_a_newer_check_refuses_is_skipped_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A silence saved by an older version with a Perl-only regex that RE2 refuses must not
    stop every notification: it alone is left out, with an error in the log."""
    path = tmp_path / "silences.json"
    silences = Silences(path)
    kept = silences.add(['alertname="A"'], T0, T0 + 60 * M, "jo", "maintenance")
    saved = json.loads(path.read_text())
    saved.append({**saved[0], "id": "old", "matchers": ['alertname=~"(?!B).*"']})
    path.write_text(json.dumps(saved))
    loaded = Silences(path)
    assert [s.id for s in loaded.all()] == [kept.id]
    assert "silence old not loaded: bad regular expression" in caplog.text
    r = Recorder()
    d, _ = make(ROOT, {"r": r}, silences=loaded)
    d.put([firing("A"), firing("B")], T0)
    d.tick(T0 + 30 * S)
    assert r.names() == [[("B", "firing")]]


def test_silence_needs_author_comment_and_a_specific_matcher() -> None:
    s = Silences()
    with pytest.raises(ValueError, match="author"):
        s.add(['alertname="A"'], T0, T0 + M, "", "x")
    with pytest.raises(ValueError, match="match every alert"):
        s.add(['alertname=~".*"'], T0, T0 + M, "jo", "x")
    with pytest.raises(ValueError, match="end after"):
        s.add(['alertname="A"'], T0, T0, "jo", "x")


OFFICE = [
    {
        "name": "office",
        "time_intervals": [
            {"weekdays": ["monday:friday"], "times": [{"start_time": "09:00", "end_time": "17:00"}]}
        ],
    }
]


def test_mute_time_intervals_mute_a_route_inside_the_window() -> None:
    r = Recorder()
    route = {**ROOT, "routes": [{"matchers": ['alertname="A"'], "mute_time_intervals": ["office"]}]}
    d, _ = make(route, {"r": r}, intervals=OFFICE)
    d.put([firing("A"), firing("B")], T0)  # Monday 12:00: inside office hours
    d.tick(T0 + 30 * S)
    assert r.names() == [[("B", "firing")]]
    evening = T0.replace(hour=18)
    d.tick(evening)
    assert [("A", "firing")] in r.names()[1:]


def test_active_time_intervals_send_only_inside_the_window() -> None:
    r = Recorder()
    route = {
        **ROOT,
        "routes": [{"matchers": ['alertname="A"'], "active_time_intervals": ["office"]}],
    }
    d, _ = make(route, {"r": r}, intervals=OFFICE)
    saturday = T0 + timedelta(days=5)
    d.put([firing("A", saturday)], saturday)
    d.tick(saturday + 30 * S)
    assert r.sent == []
    monday = T0 + timedelta(days=7)
    d.tick(monday)
    assert r.names() == [[("A", "firing")]]


def test_time_interval_fields() -> None:
    from autoscaler.alerts.timeintervals import TimeSpec

    spec = TimeSpec.model_validate(
        {
            "days_of_month": ["-1"],
            "months": ["january:march"],
            "years": ["2026"],
            "location": "Europe/Brussels",
        }
    )
    assert spec.contains(datetime(2026, 1, 31, 12, tzinfo=UTC))
    assert not spec.contains(datetime(2026, 1, 30, 12, tzinfo=UTC))
    assert not spec.contains(datetime(2026, 4, 30, 12, tzinfo=UTC))
    # 23:30 UTC on the 30th is already the 31st in Brussels.
    assert spec.contains(datetime(2026, 1, 30, 23, 30, tzinfo=UTC))


@pytest.mark.parametrize(
    ("tz", "inside"),
    [
        ("Europe/Brussels", True),  # 08:30 UTC in January is 09:30 there
        (":Europe/Brussels", True),  # Go drops a leading ':'
        ("", False),  # TZ set but empty: UTC
        ("No/Such_Zone", False),  # a zone Go cannot load: UTC
    ],
)
def test_location_local_is_the_zone_alertmanager_would_use(
    monkeypatch: pytest.MonkeyPatch, tz: str, inside: bool
) -> None:
    from autoscaler.alerts.timeintervals import TimeSpec

    monkeypatch.setenv("TZ", tz)
    spec = TimeSpec.model_validate(
        {"times": [{"start_time": "09:00", "end_time": "17:00"}], "location": "Local"}
    )
    assert spec.contains(datetime(2026, 1, 5, 8, 30, tzinfo=UTC)) is inside


def test_location_local_without_tz_reads_etc_localtime(monkeypatch: pytest.MonkeyPatch) -> None:
    from autoscaler.alerts import timeintervals

    monkeypatch.delenv("TZ", raising=False)
    tokyo = resources.files("tzdata.zoneinfo").joinpath("Asia", "Tokyo")  # a dependency
    monkeypatch.setattr(timeintervals, "LOCALTIME", str(tokyo))
    timeintervals._zone_for_tz.cache_clear()
    try:
        spec = timeintervals.TimeSpec.model_validate(
            {"times": [{"start_time": "09:00", "end_time": "17:00"}], "location": "Local"}
        )
        assert spec.contains(datetime(2026, 1, 5, 1, 0, tzinfo=UTC))  # 10:00 in Tokyo
        assert not spec.contains(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))  # 18:00 there
    finally:
        timeintervals._zone_for_tz.cache_clear()


def test_group_by_all_labels_makes_one_group_per_label_set() -> None:
    r = Recorder()
    d, _ = make({**ROOT, "group_by": ["..."]}, {"r": r})
    d.put([firing("A", instance="1"), firing("A", instance="2")], T0)
    d.tick(T0 + 30 * S)
    assert len(r.sent) == 2


def test_failed_delivery_is_counted_and_retried_not_dropped() -> None:
    r = Recorder()
    d, results = make(ROOT, {"r": r})
    r.fail = True
    d.put([firing("A")], T0)
    d.tick(T0 + 30 * S)
    assert results == [("r", "recorder", False)] and r.sent == []
    d.tick(T0 + 39 * S)
    assert len(results) == 1  # the retry comes after 10s
    d.tick(T0 + 40 * S)
    assert len(results) == 2 and r.sent == []  # failed again: next try 20s later
    r.fail = False
    d.tick(T0 + 59 * S)
    assert r.sent == []
    d.tick(T0 + 60 * S)
    assert r.names() == [[("A", "firing")]]
    assert results[-1] == ("r", "recorder", True)
    d.tick(T0 + 60 * S + 4 * M)  # delivered: back to group_interval, nothing new to send
    assert len(results) == 3


def test_notification_log_prevents_a_resend_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "nflog.json"
    first = Recorder()
    d, _ = make(ROOT, {"r": first}, nflog=NotifyLog(path))
    d.put([firing("A")], T0)
    d.tick(T0 + 30 * S)
    assert len(first.sent) == 1
    # A restart: new dispatcher, the same alert evaluated again with a new start time.
    again = Recorder()
    d2, _ = make(ROOT, {"r": again}, nflog=NotifyLog(path))
    later = T0 + 10 * M
    d2.put([firing("A", later)], later)
    d2.tick(later + 30 * S)
    assert again.sent == []  # already told within repeat_interval
    d2.put([firing("A", later), firing("B", later)], later + M)
    d2.tick(later + 30 * S + 5 * M)
    assert again.names() == [[("B", "firing")]]  # B is new: B's own group, sent
    d2.tick(T0 + 30 * S + 65 * M)
    assert again.names()[-1] == [("A", "firing")]  # repeat_interval since the first send


def test_an_alert_that_resolves_across_a_restart_gets_its_resolved_message(
    tmp_path: Path,
) -> None:
    """After a restart the first pass may find a firing alert already cleared: the
    notification log says receivers were told it fires, so they hear it resolved (once),
    as Alertmanager would; an alert nobody was told of stays unsent."""
    path = tmp_path / "nflog.json"
    told, quiet = Recorder(send_resolved=True), Recorder()
    route = {
        **ROOT,
        "receiver": "told",
        "routes": [{"receiver": "told", "continue": True}, {"receiver": "quiet"}],
    }
    d, _ = make(route, {"told": told, "quiet": quiet}, nflog=NotifyLog(path))
    a = firing("A")
    d.put([a], T0)
    d.tick(T0 + 30 * S)
    assert told.names() == quiet.names() == [[("A", "firing")]]
    d.close()
    # Restart: A and B (never sent) are first heard of here as resolved.
    told, quiet = Recorder(send_resolved=True), Recorder()
    d2, _ = make(route, {"told": told, "quiet": quiet}, nflog=NotifyLog(path))
    later = T0 + 10 * M
    gone = [resolved(a, later), resolved(firing("B", T0 + 5 * M), later)]
    for step in range(0, 20):  # every second, as the alerting thread does
        d2.put(gone, later + step * S)
        d2.tick(later + step * S)
    d2.put(gone, later + 10 * M)
    d2.tick(later + 10 * M)
    assert told.names() == [[("A", "resolved")]]
    assert quiet.sent == []  # send_resolved is false


def test_an_unreadable_log_starts_empty(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "nflog.json"
    path.write_text("{not json", encoding="utf-8")
    assert NotifyLog(path).get("x") is None
    assert "unreadable" in caplog.text


def test_sibling_routes_with_the_same_matchers_reach_both_receivers() -> None:
    """Two routes that match alike (one ``continue``s) are two groups, as in Alertmanager:
    the second must not be folded into the first route's group and lose its receiver."""
    chat, mail = Recorder(), Recorder()
    route = {
        **ROOT,
        "receiver": "chat",
        "routes": [
            {"matchers": ['team="web"'], "receiver": "chat", "continue": True},
            {"matchers": ['team="web"'], "receiver": "mail"},
        ],
    }
    d, _ = make(route, {"chat": chat, "mail": mail})
    d.put([firing("A", team="web")], T0)
    d.tick(T0 + 30 * S)
    assert chat.names() == [[("A", "firing")]]
    assert mail.names() == [[("A", "firing")]]
    assert chat.sent[0].group_key == mail.sent[0].group_key  # Alertmanager's groupKey
    assert len(d.groups()) == 2


def test_thousands_of_alerts_in_one_group_with_inhibition_and_silences() -> None:
    """Muting is decided under the dispatcher's lock, which the control loop's ``put``
    also takes: it must not take time in the square of the number of alerts."""
    import time

    r = Recorder()
    inhibit = [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["cluster"],
        }
    ]
    silences = Silences()
    for i in range(5):
        silences.add([f'instance=~"{i}"'], T0, T0 + 60 * M, "jo", "noisy")
    d, _ = make(ROOT, {"r": r}, inhibit=inhibit, silences=silences)
    alerts = [
        firing("A", severity="warning", cluster=str(i % 10), instance=str(i)) for i in range(5000)
    ]
    alerts.append(firing("A", severity="critical", cluster="0", instance="source"))
    d.put(alerts, T0)
    started = time.monotonic()
    d.tick(T0 + 30 * S)
    took = time.monotonic() - started
    (n,) = r.sent
    shown = {a.labels["instance"] for a in n.alerts}
    # cluster 0 is inhibited (but for its source), instances 0 to 4 are silenced
    expected = {str(i) for i in range(5, 5000) if i % 10 != 0} | {"source"}
    assert shown == expected
    assert took < 2.0, f"one flush of 5000 alerts took {took:.1f}s"
    started = time.monotonic()
    muted = d.muted_by_each([a.labels for a in alerts], T0 + M)
    assert time.monotonic() - started < 2.0
    assert sum(inhibited for _, inhibited in muted) == 500
    assert sum(bool(silenced) for silenced, _ in muted) == 5


def test_a_clock_that_jumps_back_does_not_hold_a_group_for_the_jump() -> None:
    r = Recorder()
    d, _ = make(ROOT, {"r": r})
    d.put([firing("A")], T0)
    d.tick(T0 + 30 * S)
    assert len(r.sent) == 1
    back = T0 - 2 * 60 * M  # the wall clock is set two hours back
    d.put([firing("A"), firing("A", instance="2")], back)
    t = back
    while len(r.sent) == 1 and t < T0:  # the alerting thread ticks every second
        d.tick(t)
        t += S
    # a change: sent within group_interval, not two hours later
    assert t <= back + 5 * M + S
    assert r.names()[-1] == [("A", "firing"), ("A", "firing")]


def test_state_files_that_are_corrupt_or_from_an_older_version_never_stop_alerting(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each unreadable file or entry is left out with an error; the sidecar starts, and
    what could be read is used: the notification log still dedups, silences still mute."""
    nflog, silences = tmp_path / "notifications.json", tmp_path / "silences.json"
    for text in ('{"entries": []}', "[1]", "null", '"x"', "[" * 100_000):
        nflog.write_text(text)
        silences.write_text(text)
        assert NotifyLog(nflog).entries() == {}
        assert Silences(silences).all() == []
    key = '{}:{alertname="A"}|r|recorder[0]'
    nflog.write_text(
        json.dumps(
            {
                "entries": {
                    # an older version: no "sent", a time without a zone (written as UTC)
                    key: {
                        "firing": [firing("A").fingerprint],
                        "resolved": [],
                        "timestamp": "2026-01-05T12:00:30",
                    },
                    "bad": {"firing": "x", "resolved": [], "timestamp": "2026-01-05T12:00:30"},
                    "worse": [],
                }
            }
        )
    )
    good = {
        "id": "old",
        "matchers": ['alertname="B"'],
        "starts_at": "2026-01-05T11:00:00",
        "ends_at": "2026-01-05T14:00:00",
        "created_by": "jo",
        "comment": "older version, no zone",
    }
    silences.write_text(json.dumps([good, None, {**good, "id": 7}, {**good, "matchers": "x"}]))
    caplog.clear()
    loaded_log, loaded_silences = NotifyLog(nflog), Silences(silences)
    assert list(loaded_log.entries()) == [key]
    assert [s.id for s in loaded_silences.all()] == ["old"]
    assert "2 unreadable entries left out" in caplog.text
    assert caplog.text.count("not loaded") == 3
    r = Recorder()
    d, _ = make(ROOT, {"r": r}, nflog=loaded_log, silences=loaded_silences)
    d.put([firing("A"), firing("B"), firing("C")], T0 + 10 * M)
    d.tick(T0 + 10 * M + 30 * S)
    assert r.names() == [[("C", "firing")]]  # A: already told; B: silenced
    d.tick(T0 + 66 * M)
    assert r.names()[-1] == [("A", "firing")]  # repeat_interval after the logged send


def test_thousands_of_groups_are_logged_without_rewriting_the_log_for_each(
    tmp_path: Path,
) -> None:
    """``group_by: [...]`` makes one group per alert: writing the whole notification log
    after each of 1500 messages took time in the square of their number (half a minute
    here); once the tick is over, the file holds every message all the same."""
    import time

    path = tmp_path / "notifications.json"
    r = Recorder()
    d, _ = make({**ROOT, "group_by": ["..."]}, {"r": r}, nflog=NotifyLog(path))
    alerts = [firing("A", instance=str(i)) for i in range(1500)]
    d.put(alerts, T0)
    started = time.monotonic()
    d.tick(T0 + 30 * S)
    took = time.monotonic() - started
    assert len(r.sent) == 1500
    assert took < 5.0, f"1500 messages took {took:.1f}s"
    assert len(NotifyLog(path).entries()) == 1500  # all on disk
    again = Recorder()
    d2, _ = make({**ROOT, "group_by": ["..."]}, {"r": again}, nflog=NotifyLog(path))
    d2.put(alerts, T0 + M)
    d2.tick(T0 + M)
    assert again.sent == []  # a restart repeats none of them
