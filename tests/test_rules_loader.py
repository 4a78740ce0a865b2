"""Loading rules files: good samples load, each bad sample names its file, line and field."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from autoscaler.rules.loader import Problem, load_paths, load_rules
from autoscaler.rules.schema import Policies

DATA = Path(__file__).parent / "data" / "rules"
GOOD = DATA / "good"
BAD = DATA / "bad"
BAD_SETS = DATA / "bad_sets"

# file -> (line, field, a piece of the message). An empty field means a whole-file problem.
BAD_FILES: dict[str, tuple[int, str, str]] = {
    "yaml_syntax.yml": (8, "", "YAML syntax error at column 22: a flow sequence"),
    "empty.yml": (1, "", "the file is empty: write {} to keep an empty rules file on purpose"),
    "comments_only.yml": (1, "", "the file is empty"),  # every line commented out
    "tabs.yml": (3, "", "indent with spaces"),
    # noticed on the next line; the message says where the unclosed mapping began
    "unclosed_flow_mapping.yml": (4, "", "(a flow mapping that starts at line 3)"),
    "multi_document.yml": (4, "", "one document per file"),
    "python_tag.yml": (4, "", "'!!python/object/apply:os.system'"),
    "alias_bomb.yml": (1, "", "expands to more than"),
    "alias_loop.yml": (1, "", "alias refers to the node that contains it"),
    "top_level_list.yml": (2, "", "top level must be a mapping of sections"),
    "top_level_text.yml": (2, "", "got 'just some text'"),
    "duplicate_key.yml": (8, "services.api.max", "duplicate key 'max' (first at line 6)"),
    "duplicate_name_one_file.yml": (6, "signals.rps", "duplicate key 'rps' (first at line 2)"),
    "unknown_section.yml": (5, "service", "unknown section 'service': did you mean 'services'?"),
    "unknown_key.yml": (
        9,
        "services.api.target_tracking[0].averge_value",
        "unknown key 'averge_value': did you mean 'average_value'? "
        "(expected one of: signal, value, average_value)",
    ),
    "missing_key.yml": (5, "services.api.max", "missing required key 'max'"),
    "wrong_type.yml": (7, "services.api.max", "expected a whole number, got 'three'"),
    "mapping_not_list.yml": (7, "services.api.target_tracking", "expected a list"),
    "out_of_range.yml": (
        9,
        "services.api.target_tracking[0].average_value",
        "must be greater than 0, got -5",
    ),
    "bad_choice.yml": (5, "signals.users.actuator.aggregate", "got 'mean'"),
    "text_field_number.yml": (
        6,
        "signals.users.actuator.labels.shinyproxy_realm",
        "expected text, got 2024 (quote it)",
    ),
    "numeric_name.yml": (4, "signals.404", "a name must be text"),
    "min_above_max.yml": (5, "services.api", "min (5) is above max (2)"),
    "fallback_without_replicas.yml": (5, "services.api", "needs fallback_replicas"),
    "two_sources.yml": (4, "signals.users", "exactly one source"),
    "bad_cron.yml": (10, "services.api.schedules[0].cron", "bad cron expression '0 8 * *'"),
    "bad_duration.yml": (
        11,
        "services.api.behavior.scale_down.stabilization_window",
        "bad duration '5 min': use",
    ),
    "bad_timezone.yml": (
        12,
        "services.api.schedules[0].timezone",
        "unknown time zone 'Europe/Brusels'",
    ),
    "bad_promql.yml": (5, "signals.rps.prometheus.query", "PromQL does not parse"),
    "undefined_signal.yml": (
        12,
        "services.api.steps[0].signal",
        "unknown signal 'latncy': did you mean 'latency'?",
    ),
    # a filter the metric does not read would be ignored without a word
    "service_filter_wrong_metric.yml": (
        3,
        "signals.sessions.swarm",
        "service filters metric 'service_replicas' only",
    ),
    "same_swarm_service.yml": (
        9,
        "services.api.service",
        "Swarm service 'shiny_api' already has a policy: 'shiny_api' at ",
    ),
    "schedule_min_above_max.yml": (
        11,
        "services.api.schedules[0].min",
        "schedule min (5) is above the policy's max (3)",
    ),
    "schedule_max_below_min.yml": (
        12,
        "services.api.schedules[0].max",
        "schedule max (1) is below the policy's min (2)",
    ),
}


def _prefix(path: Path, line: int, field: str) -> str:
    return f"{path}:{line}: {field}: " if field else f"{path}:{line}: "


@pytest.mark.parametrize(
    "path", [*sorted(GOOD.iterdir()), DATA / "good_sets" / "split"], ids=lambda p: p.name
)
def test_good_sample_loads(path: Path) -> None:
    result = load_rules(path)
    assert result.problems == []
    assert result.policies is not None


def test_every_bad_sample_has_an_expectation() -> None:
    assert sorted(p.name for p in BAD.iterdir()) == sorted(BAD_FILES)


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_sample_names_file_line_and_field(name: str) -> None:
    line, field, fragment = BAD_FILES[name]
    path = BAD / name
    result = load_rules(path)
    assert result.policies is None
    shown = [str(p) for p in result.problems]
    assert len(shown) == 1, shown
    assert shown[0].startswith(_prefix(path, line, field)), shown
    assert fragment in shown[0]


# folder -> [(file, line, field, fragment)]: exactly these problems, in this order
BAD_SET_CASES: dict[str, list[tuple[str, int, str, str]]] = {
    "signal_twice": [
        (
            "signals.yml",
            2,
            "signals.rps",
            "signal 'rps' is defined twice: also at {}/more-signals.yml:4",
        )
    ],
    "service_twice": [
        ("b.yml", 3, "services.api", "service policy 'api' is defined twice: also at {}/a.yml:5")
    ],
    "swarm_service_twice": [
        (
            "b.yml",
            4,
            "services.api_steps.service",
            "'shiny_api' already has a policy: 'api' at {}/a.yml:6",
        )
    ],
    "undefined_across": [
        (
            "services.yml",
            5,
            "services.api.target_tracking[0].signal",
            "did you mean 'api_request_rate'?",
        )
    ],
    # A file that does not parse could define any name: no "unknown signal" noise about it.
    "broken_signals_file": [
        ("signals.yml", 3, "", "a flow mapping that starts here is not closed")
    ],
    # A defined but invalid signal is reported as invalid, not as unknown where it is used.
    "invalid_signal_used": [("signals.yml", 3, "signals.rps.prometheus.query", "does not parse")],
}


@pytest.mark.parametrize("case", sorted(BAD_SET_CASES))
def test_cross_file_problem_names_both_places(case: str) -> None:
    folder = BAD_SETS / case
    result = load_rules(folder)
    assert result.policies is None
    shown = [str(p) for p in result.problems]
    expected = BAD_SET_CASES[case]
    assert len(shown) == len(expected), shown
    for text, (file, line, field, fragment) in zip(shown, expected, strict=True):
        assert text.startswith(_prefix(folder / file, line, field)), text
        assert fragment.format(folder) in text


def test_folder_with_several_broken_files_reports_each(tmp_path: Path) -> None:
    broken = ["bad_duration.yml", "duplicate_key.yml", "tabs.yml", "unknown_section.yml"]
    for name in broken:
        shutil.copy(BAD / name, tmp_path / name)
    (tmp_path / "fine.yml").write_text("signals:\n  up:\n    prometheus: {query: up}\n")
    (tmp_path / "garbage.yml").write_bytes(b"\x00\xff\xfe binary \x80\x81")
    result = load_rules(tmp_path)
    assert result.policies is None
    shown = [str(p) for p in result.problems]
    for name in broken:
        line, field, _ = BAD_FILES[name]
        assert any(s.startswith(_prefix(tmp_path / name, line, field)) for s in shown), shown
    assert any(s.startswith(f"{tmp_path / 'garbage.yml'}:1: not UTF-8 text") for s in shown)
    # every broken file and only those (they also repeat each other's names), in name order
    files = [Path(p.file).name for p in result.problems]
    assert set(files) == {*broken, "garbage.yml"}
    assert files == sorted(files)


def test_folder_reads_sorted_yml_and_yaml_only_not_dot_files_or_subfolders(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("signals:\n  b:\n    prometheus: {query: up}\n")
    (tmp_path / "a.yml").write_text("signals:\n  a:\n    prometheus: {query: up}\n")
    (tmp_path / "notes.txt").write_text("not: [yaml")
    (tmp_path / ".#a.yml").write_text("not: [yaml")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yml").write_text("not: [yaml")
    result = load_rules(tmp_path)
    assert result.problems == []
    assert result.files == [str(tmp_path / "a.yml"), str(tmp_path / "b.yaml")]
    assert result.policies is not None
    assert sorted(result.policies.signals) == ["a", "b"]


def test_split_folder_merges_signals_and_services() -> None:
    result = load_rules(DATA / "good_sets" / "split")
    assert result.policies is not None
    assert list(result.policies.signals) == ["rps"]
    api = result.policies.services["api"]
    assert (api.service, api.max, api.target_tracking[0].signal) == ("shiny_api", 4, "rps")


def test_paths_load_together_as_one_set() -> None:
    split = DATA / "good_sets" / "split"
    alone = load_paths([split / "20-services.yml"])
    assert [str(p) for p in alone.problems] == [
        f"{split / '20-services.yml'}:6: services.api.target_tracking[0].signal: "
        "unknown signal 'rps' (no signals are defined)"
    ]
    together = load_paths([split / "20-services.yml", split / "10-signals.yml", split])
    assert together.problems == []
    assert len(together.files) == 2  # the folder's files are not counted twice


def test_anchors_merge_keys_and_x_sections() -> None:
    result = load_rules(GOOD / "anchors.yml")
    assert result.policies is not None
    services = result.policies.services
    assert (services["api"].min, services["api"].max) == (1, 4)
    assert services["worker"].max == 8  # an explicit key overrides the merged one
    assert services["worker"].target_tracking[0].average_value == 20


def test_sections_left_empty_have_no_policies() -> None:
    result = load_rules(GOOD / "null_sections.yml")
    assert result.policies is not None
    assert (result.policies.signals, result.policies.services) == ({}, {})


def test_values_are_typed() -> None:
    result = load_rules(GOOD / "yaml_suffix.yaml")
    assert result.policies is not None
    starts = result.policies.signals["app_starts"]
    assert (starts.source, starts.on_empty, starts.max_age) == (
        "influx",
        "zero",
        timedelta(minutes=5),
    )


def test_disabled_policy_may_share_a_swarm_service() -> None:
    result = load_rules(GOOD / "disabled_duplicate.yml")
    assert result.policies is not None
    assert not result.policies.services["api_experiment"].enabled


def test_one_problem_per_error_in_one_file(tmp_path: Path) -> None:
    path = tmp_path / "many.yml"
    path.write_text(
        "signals:\n"
        "  rps:\n"
        "    prometheus: {query: up}\n"
        "    max_age: soon\n"  # 4
        "services:\n"
        "  api:\n"
        "    max: 2\n"
        "    tolerance: 5\n"  # 8
        "    target_tracking:\n"
        "      - {signal: rps, average_value: 20, extra: 1}\n"  # 10
        "    schedules:\n"
        "      - {cron: '0 8 * * 1-5', duration: 1h, min: 1, timezone: Nowhere/Town}\n"  # 12
    )
    shown = [str(p) for p in load_rules(path).problems]
    assert [s.split(": ")[0:2] for s in shown] == [
        [f"{path}:4", "signals.rps.max_age"],
        [f"{path}:8", "services.api.tolerance"],
        [f"{path}:10", "services.api.target_tracking[0].extra"],
        [f"{path}:12", "services.api.schedules[0].timezone"],
    ]


def test_problem_text_format() -> None:
    assert str(Problem("rules/a.yml", 12, "services.api.max", "boom")) == (
        "rules/a.yml:12: services.api.max: boom"
    )
    assert str(Problem("rules/a.yml", 3, "", "boom")) == "rules/a.yml:3: boom"
    assert str(Problem("rules", 0, "", "no such file or folder")) == "rules: no such file or folder"


def test_missing_path_is_a_problem(tmp_path: Path) -> None:
    result = load_rules(tmp_path / "nope")
    assert result.policies is None
    assert [str(p) for p in result.problems] == [f"{tmp_path / 'nope'}: no such file or folder"]


def test_an_empty_folder_is_a_problem(tmp_path: Path) -> None:
    """Emptied while the sidecar runs, it must not stop every policy and route."""
    result = load_rules(tmp_path)
    assert result.policies is None
    assert [str(p) for p in result.problems] == [
        f"{tmp_path}: no rules files (*.yaml, *.yml) in the folder"
    ]
    (tmp_path / "keep.yml").write_text("{}\n")
    assert load_rules(tmp_path).policies == Policies()


def test_a_name_yaml_reads_as_a_boolean_is_found_on_its_line(tmp_path: Path) -> None:
    rules = tmp_path / "r.yml"
    rules.write_text(
        "signals:\n  s:\n    prometheus: {query: up}\n  off:\n    prometheus: {query: up}\n"
    )
    (problem,) = load_rules(rules).problems
    assert (problem.line, problem.message) == (
        4,
        "a name must be text, got false (YAML reads on, off, yes, no so): quote it",
    )


def test_a_signal_defined_in_two_files_is_listed_once_among_the_defined(tmp_path: Path) -> None:
    sig = "signals:\n  rps:\n    prometheus: {query: up}\n"
    (tmp_path / "a.yml").write_text(sig)
    (tmp_path / "b.yml").write_text(sig)
    (tmp_path / "c.yml").write_text(
        "services:\n  api:\n    max: 2\n    target_tracking: [{signal: rsp, value: 1}]\n"
    )
    shown = [str(p) for p in load_rules(tmp_path).problems]
    unknown = [s for s in shown if "unknown signal 'rsp'" in s]
    assert len(unknown) == 1 and unknown[0].endswith("(defined: rps)"), shown


@pytest.mark.parametrize("select", ["max", "min"])
def test_an_empty_list_of_rate_policies_is_a_problem(tmp_path: Path, select: str) -> None:
    """Under max it would freeze the direction, under min lift every limit: HPA refuses it."""
    rules = tmp_path / "r.yml"
    rules.write_text(
        "signals:\n  rps:\n    prometheus: {query: up}\n"
        "services:\n  api:\n    max: 5\n    target_tracking: [{signal: rps, value: 1}]\n"
        f"    behavior:\n      scale_up:\n        select_policy: {select}\n"
        "        policies: []\n"  # 11
    )
    result = load_rules(rules)
    assert result.policies is None
    (problem,) = result.problems
    assert (problem.line, problem.field) == (11, "services.api.behavior.scale_up.policies")
    assert "list at least one rate policy" in problem.message
