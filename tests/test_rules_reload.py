"""RulesStore: reload on change only, keep the last good policies through a broken edit."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import autoscaler.rules.reload
from autoscaler.rules.loader import Problem, RuleSource, load_sources, read_sources
from autoscaler.rules.reload import ReloadOutcome, RulesStore

SPLIT = Path(__file__).parent / "data" / "rules" / "good_sets" / "split"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(SPLIT, folder)
    return folder


def test_loads_then_reports_unchanged(rules: Path) -> None:
    clock = Clock()
    store = RulesStore(rules, clock=clock)
    assert store.generation == 0
    assert store.policies.services == {}
    assert store.refresh() == ReloadOutcome.LOADED
    assert store.refresh() == "unchanged"
    assert (store.generation, store.loaded_at, store.problems) == (1, clock.now, [])
    assert store.policies.services["api"].max == 4


def test_same_bytes_rewritten_is_unchanged(rules: Path) -> None:
    store = RulesStore(rules)
    store.refresh()
    services = rules / "20-services.yml"
    services.write_bytes(services.read_bytes())
    assert store.refresh() == ReloadOutcome.UNCHANGED
    assert store.generation == 1


def test_broken_edit_keeps_last_good_then_fix_is_picked_up(
    rules: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    store = RulesStore(rules, clock=clock)
    store.refresh()
    good, loaded_at = store.policies, store.loaded_at
    services = rules / "20-services.yml"
    services.write_text(services.read_text().replace("max: 4", "max: four"))
    clock.now += timedelta(minutes=1)

    with caplog.at_level(logging.ERROR, logger="autoscaler.rules.reload"):
        assert store.refresh() == ReloadOutcome.INVALID
    assert store.policies is good
    assert (store.generation, store.loaded_at) == (1, loaded_at)
    assert [str(p) for p in store.problems] == [
        f"{services}:4: services.api.max: expected a whole number, got 'four'"
    ]
    assert [r.getMessage() for r in caplog.records] == [
        f"rules invalid (keeping generation 1): {store.problems[0]}"
    ]
    assert store.refresh() == ReloadOutcome.UNCHANGED  # still broken: not reported again
    assert store.problems != []

    services.write_text(services.read_text().replace("max: four", "max: 6"))
    clock.now += timedelta(minutes=1)
    assert store.refresh() == ReloadOutcome.LOADED
    assert (store.generation, store.loaded_at, store.problems) == (2, clock.now, [])
    assert store.policies.services["api"].max == 6


def test_new_and_removed_files_are_changes(rules: Path) -> None:
    store = RulesStore(rules)
    store.refresh()
    extra = rules / "30-more.yml"
    extra.write_text("signals:\n  users:\n    actuator: {metric: absolute_users_logged_in}\n")
    assert store.refresh() == ReloadOutcome.LOADED
    assert sorted(store.policies.signals) == ["rps", "users"]
    extra.unlink()
    assert store.refresh() == ReloadOutcome.LOADED
    assert sorted(store.policies.signals) == ["rps"]
    assert store.generation == 3


def test_first_load_invalid_leaves_empty_policies(rules: Path) -> None:
    (rules / "10-signals.yml").write_text("signals:\n  rps: [\n")
    store = RulesStore(rules)
    assert store.refresh() == ReloadOutcome.INVALID
    assert (store.policies.signals, store.policies.services) == ({}, {})
    assert (store.generation, store.loaded_at) == (0, None)
    assert len(store.problems) == 1
    assert store.problems[0].file == str(rules / "10-signals.yml")


def test_folder_removed_keeps_policies(rules: Path) -> None:
    store = RulesStore(rules)
    store.refresh()
    shutil.rmtree(rules)
    assert store.refresh() == ReloadOutcome.INVALID
    assert [str(p) for p in store.problems] == [f"{rules}: no such file or folder"]
    assert "api" in store.policies.services


def test_a_file_emptied_or_every_file_removed_keeps_the_running_policies(rules: Path) -> None:
    """A save caught halfway (an empty file) or a folder emptied by mistake must not stop
    every policy: both are problems, and the last good policies stay."""
    store = RulesStore(rules)
    assert store.refresh() == ReloadOutcome.LOADED
    good = store.policies
    services = rules / "20-services.yml"
    text = services.read_text()
    services.write_text("")
    assert store.refresh() == ReloadOutcome.INVALID
    assert store.policies == good and store.generation == 1
    assert [p.message for p in store.problems] == [
        "the file is empty: write {} to keep an empty rules file on purpose"
    ]
    services.write_text(text)
    for f in rules.iterdir():
        f.rename(f.with_suffix(".bak"))
    assert store.refresh() == ReloadOutcome.INVALID
    assert store.policies == good and "no rules files" in store.problems[0].message


def test_a_file_read_halfway_through_its_write_is_not_swapped_in(
    rules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file written in place in two steps, read between them: its first half still parses
    (max 1 of max 12), so only a second read that finds the same bytes may swap it in."""
    store = RulesStore(rules)
    assert store.refresh() == ReloadOutcome.LOADED
    services = rules / "20-services.yml"
    full = (
        "services:\n  api:\n    service: shiny_api\n    target_tracking:\n"
        "      - signal: rps\n        average_value: 20\n    max: 12\n"
    )
    services.write_text(full[: full.index("max: 12") + len("max: 1")])  # the first step
    reads: list[tuple[list[RuleSource], list[Problem]]] = []

    def read_then_write_the_rest(paths: list[Path]) -> tuple[list[RuleSource], list[Problem]]:
        found = read_sources(paths)
        if not reads:
            services.write_text(full)  # the second step, just after the first read
        reads.append(found)
        return found

    monkeypatch.setattr(autoscaler.rules.reload, "read_sources", read_then_write_the_rest)
    outcome = store.refresh()
    half = load_sources(*reads[0])
    assert half.policies is not None and half.policies.services["api"].max == 1, (
        "the half-written file parses: this is what must not be swapped in"
    )
    assert store.policies.services["api"].max == 4 and store.generation == 1
    assert outcome == ReloadOutcome.CHANGING and store.problems == []

    assert store.refresh() == ReloadOutcome.LOADED  # written completely: picked up now
    assert store.policies.services["api"].max == 12 and store.generation == 2
