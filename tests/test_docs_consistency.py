"""The reference pages say what the code does: users follow them literally.

Every environment variable the code reads is documented, and every one the pages name
exists, with the default the settings give it; every metric the sidecar exports is in the
metrics tables with its type and labels; every built-in alert has its section in
docs/alerting.md with its severity, `for` and hold; every `autoscaler` command line shown
takes the flags it shows; every key of a rules reference table exists in the schema with
the default it states; every relative link lands on a file and heading that exist.
"""

from __future__ import annotations

import argparse
import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from autoscaler.alerts.builtin import BUILTINS, RUNBOOK
from autoscaler.alerts.config import AlertRule
from autoscaler.cli import build_parser
from autoscaler.decide.plan_types import Decision
from autoscaler.decide.pools.inventory import STATES
from autoscaler.durations import format_duration
from autoscaler.metrics import SidecarMetrics
from autoscaler.pool_metrics import SEAT_KINDS
from autoscaler.rules.pools import PoolPolicy
from autoscaler.rules.schema import ActuatorSource, RulesFile, Schedule, ServicePolicy, Signal
from autoscaler.settings import Settings, env_name

ROOT = Path(__file__).resolve().parents[1]
DOCS_DIR = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS_DIR.glob("*.md"))]
# Where the sidecar's own settings and metrics are documented (deploy.md documents the
# stack's variables, whose defaults are the stack's: tests/test_stack_config.py).
SETTINGS_PAGES = [DOCS_DIR / "operations.md", DOCS_DIR / "pools.md", DOCS_DIR / "alerting.md"]
METRICS_PAGES = SETTINGS_PAGES


def text_of(pages: list[Path]) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in pages)


def outside_fences(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of the lines outside fenced code blocks."""
    fence = ""
    for number, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^ {0,3}(`{3,}|~{3,})", line)
        if m:
            if not fence:
                fence = m.group(1)[0]
            elif m.group(1)[0] == fence:
                fence = ""
            continue
        if not fence:
            yield number, line


def cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


@dataclass(frozen=True)
class Row:
    where: str
    heading: str  # the nearest heading above the table
    header: list[str]
    cells: list[str]

    def get(self, column: str) -> str:
        return self.cells[self.header.index(column)]


def table_rows(page: Path) -> list[Row]:
    rows: list[Row] = []
    heading, header = "", None
    for number, line in outside_fences(page.read_text(encoding="utf-8")):
        m = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if m:
            heading = m.group(1)
        if not line.startswith("|"):
            header = None
            continue
        row = cells(line)
        if header is None:
            header = row
        elif not all(re.fullmatch(r":?-+:?", c) for c in row):
            rows.append(Row(f"{page.relative_to(ROOT)}:{number}", heading, header, row))
    return rows


def backticked(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def without_parentheses(text: str) -> str:
    while True:
        shorter = re.sub(r"\([^()]*\)", "", text)
        if shorter == text:
            return text
        text = shorter


# ---------------------------------------------------------------- environment variables


def code_env_reads() -> set[str]:
    """``AUTOSCALER_*`` variables the code reads beside its Settings."""
    names: set[str] = set()
    for path in (ROOT / "autoscaler").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r"(?:environ\.get|getenv)\(\s*\"(AUTOSCALER_\w+)\"", text))
    return names


def stack_variables() -> set[str]:
    names: set[str] = set()
    for path in ROOT.glob("stack*.yml"):
        names |= set(re.findall(r"\$\{(AUTOSCALER_\w+?)(?::|\})", path.read_text()))
    return names


SETTING_VARS = {env_name(f): f for f in Settings.model_fields}


def test_the_code_reads_variables_beside_its_settings() -> None:
    # the finder still finds them: --log-level's variable and the alerts commands' URL
    assert {"AUTOSCALER_LOG_LEVEL", "AUTOSCALER_URL"} <= code_env_reads()


@pytest.mark.parametrize("name", sorted(set(SETTING_VARS) | code_env_reads()))
def test_every_variable_the_code_reads_is_documented(name: str) -> None:
    assert re.search(rf"`{name}`", text_of(PAGES)), f"{name} is in no page of docs/"


def test_every_variable_the_pages_name_exists() -> None:
    known = set(SETTING_VARS) | code_env_reads() | stack_variables()
    unknown = set()
    for page in PAGES:
        for name in re.findall(r"\bAUTOSCALER_[A-Z0-9_]*", page.read_text(encoding="utf-8")):
            if name.endswith("_"):  # a family: AUTOSCALER_AWS_*
                if not any(k.startswith(name) for k in known):
                    unknown.add(f"{page.name}: {name}*")
            elif name not in known:
                unknown.add(f"{page.name}: {name}")
    assert unknown == set()


def settings_rows() -> list[tuple[str, str, str]]:
    """(where, variable, default cell) of each settings table row, one per variable."""
    out = []
    for page in SETTINGS_PAGES:
        for row in table_rows(page):
            if row.header[:2] != ["variable", "default"]:
                continue
            names = backticked(row.cells[0])
            defaults = row.cells[1].split(" / ")
            if len(defaults) == 1:  # the same for every variable of the row
                defaults *= len(names)
            assert len(defaults) == len(names), f"{row.where}: one default per variable"
            out += [(row.where, n, d) for n, d in zip(names, defaults, strict=True)]
    return out


def shown(value: Any) -> str:
    """A default as the pages write it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, tuple | list):
        return "[]" if not value else repr(value)
    if isinstance(value, dict):
        return "{}" if not value else repr(value)
    if value == "":
        return '""'
    return str(value)


# None defaults whose table says what takes their place rather than "unset"
NONE_IN_WORDS = {"AUTOSCALER_DOCKER_HOST": "`DOCKER_HOST` or the local socket"}


def test_settings_tables_are_found() -> None:
    documented = {name for _, name, _ in settings_rows()}
    assert {"AUTOSCALER_INTERVAL", "AUTOSCALER_CLUSTER", "AUTOSCALER_ALERTS_STATE_DIR"} <= (
        documented
    )


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_has_a_table_row_with_its_default(field: str) -> None:
    name = env_name(field)
    rows = [(where, d) for where, n, d in settings_rows() if n == name]
    assert rows, f"{name} has no row in a settings table of {[p.name for p in SETTINGS_PAGES]}"
    default = Settings.model_fields[field].default
    for where, cell in rows:
        if default is None:
            assert cell == NONE_IN_WORDS.get(name, "unset"), f"{where}: {name}"
        elif default == "":
            assert cell == "empty", f"{where}: {name}"
        else:
            assert backticked(cell)[:1] == [shown(default)], f"{where}: {name}"


# ---------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Exported:
    name: str  # as a scrape shows it
    kind: str
    labels: tuple[str, ...]


def exported_metrics() -> dict[str, Exported]:
    registry = CollectorRegistry()
    metrics = SidecarMetrics(registry)
    labels: dict[str, tuple[str, ...]] = {}
    for holder in (metrics, metrics.pools):
        for wrapper in vars(holder).values():
            if isinstance(wrapper, MetricWrapperBase):
                labels[wrapper._name] = tuple(wrapper._labelnames)
    out = {}
    for family in registry.collect():
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        # an Info is set once, at start: its labels are its sample's
        info = family.type == "info"
        names = tuple(family.samples[0].labels) if info else labels[family.name]
        out[family.name + suffix] = Exported(family.name + suffix, family.type, names)
    return out


EXPORTED = exported_metrics()


def metric_rows() -> list[tuple[Row, list[str]]]:
    out = []
    for page in METRICS_PAGES:
        for row in table_rows(page):
            if row.header[0] == "metric":
                names = [n for n in backticked(row.cells[0]) if n.startswith("autoscaler_")]
                out.append((row, names))
    return out


def test_metrics_tables_are_found() -> None:
    documented = {n for _, names in metric_rows() for n in names}
    assert {"autoscaler_passes_total", "autoscaler_pool_nodes"} <= documented


@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_every_exported_metric_is_documented(name: str) -> None:
    assert re.search(rf"`{name}(?![\w])", text_of(METRICS_PAGES)), f"{name} is undocumented"


def test_every_documented_metric_is_exported() -> None:
    named = set()
    for page in PAGES:
        for code in backticked(page.read_text(encoding="utf-8")):
            named |= set(re.findall(r"\bautoscaler_[a-z_]*[a-z]\b(?![*])", code))
    secrets = set(yaml.safe_load((ROOT / "stack.yml").read_text())["secrets"])
    assert named - secrets - set(EXPORTED) == set()


@pytest.mark.parametrize(
    ("row", "name"),
    [pytest.param(r, n, id=f"{r.where}:{n}") for r, ns in metric_rows() for n in ns],
)
def test_metric_rows_give_the_type_and_labels_exported(row: Row, name: str) -> None:
    exported = EXPORTED[name]
    kind = {"info": "gauge"}.get(exported.kind, exported.kind)
    if "type" in row.header:
        assert row.get("type").split()[0] == kind, f"{row.where}: {name}"
    labels = backticked(without_parentheses(row.get("labels")))
    assert tuple(labels) == exported.labels, f"{row.where}: {name}"


def documented_values(name: str, label: str) -> set[str]:
    """The values a metric row lists for a label: `label` = a, b, c."""
    for row, names in metric_rows():
        if name in names:
            text = without_parentheses(row.get("labels"))
            m = re.search(rf"`{label}` = ([^`]*)", text)
            assert m, f"{row.where}: no values of {label}"
            return {v.strip().rstrip(",") for v in m.group(1).split(",") if v.strip()}
    raise AssertionError(f"{name} has no row")


def test_decision_outcomes_are_the_documented_ones() -> None:
    outcomes = set(typing.get_args(Decision.model_fields["outcome"].annotation))
    assert documented_values("autoscaler_decisions_total", "outcome") == outcomes


def test_pool_node_states_are_all_documented() -> None:
    assert set(STATES) <= documented_values("autoscaler_pool_nodes", "state")


def test_pool_seat_kinds_are_the_documented_ones() -> None:
    assert documented_values("autoscaler_pool_seats", "kind") == set(SEAT_KINDS)


# ---------------------------------------------------------------- built-in alerts


ALERTING = DOCS_DIR / "alerting.md"


def builtin_sections() -> dict[str, str]:
    """Each `### Name` section under "Built-in alerts": name -> its italic first line."""
    text = ALERTING.read_text(encoding="utf-8").split("\n## Built-in alerts\n", 1)[1]
    text = text.split("\n## ", 1)[0]
    out = {}
    for m in re.finditer(r"^### (\S+)\n+\*([^*]+)\*", text, re.M):
        out[m.group(1)] = " ".join(m.group(2).split())
    return out


def test_every_builtin_alert_section_names_a_builtin() -> None:
    assert set(builtin_sections()) == {b.name for b in BUILTINS}


@pytest.mark.parametrize("alert", BUILTINS, ids=lambda b: b.name)
def test_builtin_alert_sections_give_severity_for_and_hold(alert: Any) -> None:
    parts = [p.strip() for p in builtin_sections()[alert.name].split(";")]
    assert parts[0].rstrip(".") == alert.severity
    fors = [p.removeprefix("for ").rstrip(".") for p in parts if p.startswith("for ")]
    assert fors == ([format_duration(alert.for_)] if alert.for_ else [])
    held = [int(m.group(1)) for p in parts if (m := re.match(r"held (\d+) minutes", p))]
    keep = alert.keep_firing_for
    assert held == ([int(keep / timedelta(minutes=1))] if keep else [])


@pytest.mark.parametrize("alert", BUILTINS, ids=lambda b: b.name)
def test_builtin_runbook_links_land_on_a_heading(alert: Any) -> None:
    page, _, anchor = RUNBOOK.format(anchor=alert.name.lower()).partition("#")
    assert anchor in anchors(ROOT / page)


# ---------------------------------------------------------------- links


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings (a repeated one gets -1, -2 ...)."""
    out: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in outside_fences(page.read_text(encoding="utf-8")):
        m = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links() -> list[tuple[str, Path, str]]:
    out = []
    for page in PAGES:
        for number, line in outside_fences(page.read_text(encoding="utf-8")):
            for target in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"`[^`]*`", "", line)):
                if not re.match(r"[a-z]+:", target):
                    out.append((f"{page.relative_to(ROOT)}:{number}", page, target))
    return out


def test_links_are_found() -> None:
    assert sum("#" in target for _, _, target in links()) >= 20


@pytest.mark.parametrize(
    ("where", "page", "target"),
    [pytest.param(*link, id=f"{link[0]}:{link[2]}") for link in links()],
)
def test_every_relative_link_lands_on_a_file_and_heading(
    where: str, page: Path, target: str
) -> None:
    path, _, anchor = target.partition("#")
    dest = (page.parent / path).resolve() if path else page
    assert dest.exists(), f"{where}: {target}: no such file"
    if anchor:
        assert dest.suffix == ".md" and anchor in anchors(dest), f"{where}: {target}"


# ---------------------------------------------------------------- command lines


def command_lines() -> list[tuple[str, str]]:
    """(page, text) of every code span, and every line of a code block, that runs
    `autoscaler`, continuation lines joined."""
    out = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.S | re.M)
        blocks += re.findall(r"(?:^    .*\n)+", text, re.M)  # indented blocks
        lines = [ln for b in blocks for ln in b.replace("\\\n", " ").splitlines()]
        lines = [ln.split(" #")[0] for ln in lines]
        prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
        lines += re.findall(r"`([^`\n]+)`", prose)
        for line in lines:
            for m in re.finditer(r"(?:^|(?<=[\s(]))autoscaler(?=\s).*", line):
                out.append((page.name, re.split(r" \| |;|&&|\)", m.group(0))[0]))
    return out


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_command_lines_are_found() -> None:
    flags = [f for _, line in command_lines() for f in re.findall(r"\s--[a-z]", line)]
    assert len(flags) >= 50


@pytest.mark.parametrize(
    ("page", "line"), [pytest.param(*c, id=f"{c[0]}:{c[1]}") for c in command_lines()]
)
def test_every_command_line_takes_the_flags_it_shows(page: str, line: str) -> None:
    parser = build_parser()
    for word in line.split()[1:]:
        if word not in subcommands(parser):
            break
        parser = subcommands(parser)[word]
    known = {opt for action in parser._actions for opt in action.option_strings}
    shown_flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", line))
    assert shown_flags - known == set(), f"{page}: {line}"


# ---------------------------------------------------------------- rules reference tables

# The model each reference table describes, by the heading above it.
TABLES: dict[tuple[str, str], type[BaseModel]] = {
    ("policies.md", "Signals"): Signal,
    ("policies.md", "`actuator`: ShinyProxy's own metrics"): ActuatorSource,
    ("policies.md", "Service policies"): ServicePolicy,
    ("policies.md", "`schedules`"): Schedule,
    ("pools.md", "Every setting"): PoolPolicy,
    ("alerting.md", "Alert rules (`alerts:`)"): AlertRule,
}


def field_of(model: type[BaseModel], dotted: str) -> Any:
    """The schema field of a dotted key (``scale_in.unneeded_for``); KeyError if none."""
    head, _, rest = dotted.partition(".")
    by_key = {(f.alias or name): f for name, f in model.model_fields.items()}
    field = by_key[head]
    if not rest:
        return field
    nested = [
        t
        for t in (field.annotation, *typing.get_args(field.annotation))
        if isinstance(t, type) and issubclass(t, BaseModel)
    ]
    return field_of(nested[0], rest)


def reference_rows() -> list[tuple[Row, type[BaseModel]]]:
    out = []
    for page in PAGES:
        for row in table_rows(page):
            model = TABLES.get((page.name, row.heading))
            if model is not None and row.header[:2] == ["key", "default"]:
                out.append((row, model))
    return out


def test_reference_tables_are_found() -> None:
    assert {m for _, m in reference_rows()} == set(TABLES.values())


@pytest.mark.parametrize(
    ("row", "model"), [pytest.param(r, m, id=r.where) for r, m in reference_rows()]
)
def test_reference_rows_name_schema_keys_with_their_defaults(
    row: Row, model: type[BaseModel]
) -> None:
    keys = backticked(row.cells[0])
    if keys == ["ec2.*"]:  # its own section
        return
    defaults = row.cells[1].split(" / ") if " / " in row.cells[1] else [row.cells[1]] * len(keys)
    for key, cell in zip(keys, defaults, strict=True):
        try:
            field = field_of(model, key)
        except (KeyError, IndexError):
            pytest.fail(f"{row.where}: {key} is not a key of {model.__name__}")
        default = field.get_default(call_default_factory=True)
        if field.default is PydanticUndefined and field.default_factory is None:
            assert cell in ("required", "-"), f"{row.where}: {key} is required"
        elif default is None:
            assert not backticked(cell)[:1] or cell.startswith("`AUTOSCALER_"), (
                f"{row.where}: {key} has no default"
            )
        elif not isinstance(default, BaseModel):
            assert backticked(cell)[:1] == [shown(default)], f"{row.where}: {key}"


def schema_keys(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[str]:
    keys: set[str] = set()
    if model in seen:
        return keys
    seen.add(model)
    for name, field in model.model_fields.items():
        keys.add(field.alias or name)
        stack = [field.annotation]
        while stack:
            t = stack.pop()
            if isinstance(t, type) and issubclass(t, BaseModel):
                keys |= schema_keys(t, seen)
            stack += typing.get_args(t)
    return keys


@pytest.mark.parametrize("key", sorted(schema_keys(RulesFile, set())))
def test_every_rules_key_is_named_in_the_pages(key: str) -> None:
    text = text_of(PAGES)
    in_code = rf"`[^`\n]*(?<![\w-]){key}(?![\w-])[^`\n]*`"
    assert re.search(in_code, text) or re.search(rf"^\s*-?\s*{key}:", text, re.M), key
