"""Every YAML example in the docs is what it says: a rules file `autoscaler check` accepts
(next to the shipped signals it names), an Alertmanager config `amtool` accepts, or at
least YAML. A user copies these first; an example that fails is a broken first step."""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from autoscaler.rules.loader import load_paths
from tests.realparts import missing_real_part

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RULE_KEYS = {"signals", "services", "pools", "alerts", "route", "receivers", "inhibit_rules"}
RULE_KEYS |= {"time_intervals", "templates", "global"}


@dataclass(frozen=True)
class Example:
    where: str  # file:line of the fence
    text: str
    before: str  # the paragraph that introduces it

    def __str__(self) -> str:
        return self.where


def examples() -> list[Example]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for m in re.finditer(r"^```yaml\n(.*?)^```", text, re.S | re.M):
            line = text.count("\n", 0, m.start()) + 1
            before = text[: m.start()].rstrip().rsplit("\n\n", 1)[-1]
            found.append(Example(f"{doc.relative_to(ROOT)}:{line}", m.group(1), before))
    return found


EXAMPLES = examples()


def for_alertmanager(ex: Example) -> bool:
    """Config for Alertmanager itself, which the docs introduce as such."""
    return "Alertmanager" in ex.before and "webhook" in ex.text


def test_the_docs_have_examples_to_check() -> None:
    assert len(EXAMPLES) >= 10  # the finder still finds them


@pytest.mark.parametrize("ex", EXAMPLES, ids=str)
def test_every_example_is_yaml(ex: Example) -> None:
    yaml.safe_load(textwrap.dedent(ex.text))


WHOLE = [
    ex
    for ex in EXAMPLES
    if not for_alertmanager(ex)
    and isinstance(data := yaml.safe_load(textwrap.dedent(ex.text)), dict)
    and not ex.text.startswith(" ")
    and all(str(k) in RULE_KEYS or str(k).startswith("x-") for k in data)
]


def test_whole_rules_files_are_found() -> None:
    assert len(WHOLE) >= 5


@pytest.mark.parametrize("ex", WHOLE, ids=str)
def test_every_whole_rules_example_passes_check(ex: Example, tmp_path: Path) -> None:
    (tmp_path / "example.yml").write_text(ex.text)
    if "signals" not in yaml.safe_load(ex.text):  # it names the shipped signals
        shutil.copy(ROOT / "rules" / "signals.yml", tmp_path / "signals.yml")
    result = load_paths([tmp_path])
    assert result.policies is not None, f"{ex}: " + "; ".join(map(str, result.problems))


# Fragments, indented as they sit in a file: a signal (2 spaces), or a section of a
# service policy or of a pool (4 spaces), each checked inside a minimal whole file.
SERVICE = (
    "services:\n  api:\n    min: 1\n    max: 4\n"
    "    target_tracking: [{signal: api_request_rate, average_value: 20}]\n"
)
POOL = (
    "pools:\n  workers:\n    provider: ec2\n    min: 1\n    max: 6\n    seats_per_node: 4\n"
    "    headroom: {seats: 2}\n"
    "    prices: {m6i.xlarge: 0.192, m5.xlarge: 0.192, m6a.xlarge: 0.173}\n"
)


def whole_file(fragment: str) -> str:
    if not fragment.startswith("    "):
        return "signals:\n" + fragment
    return (POOL if fragment.lstrip().startswith("ec2:") else SERVICE) + fragment


FRAGMENTS = [ex for ex in EXAMPLES if ex.text.startswith(" ")]


def test_fragments_are_found() -> None:
    assert len(FRAGMENTS) >= 6


@pytest.mark.parametrize("ex", FRAGMENTS, ids=str)
def test_every_fragment_passes_check_in_a_whole_file(ex: Example, tmp_path: Path) -> None:
    text = whole_file(ex.text)
    (tmp_path / "example.yml").write_text(text)
    shipped = yaml.safe_load((ROOT / "rules" / "signals.yml").read_text())["signals"]
    mine = yaml.safe_load(text).get("signals") or {}
    # the shipped signals it names, without those it defines itself
    kept = {k: v for k, v in shipped.items() if k not in mine}
    (tmp_path / "signals.yml").write_text(yaml.safe_dump({"signals": kept}))
    result = load_paths([tmp_path])
    assert result.policies is not None, f"{ex}: " + "; ".join(map(str, result.problems))


ALERTMANAGER = [ex for ex in EXAMPLES if for_alertmanager(ex)]


@pytest.mark.parametrize("ex", ALERTMANAGER, ids=str)
def test_alertmanager_examples_pass_amtool(ex: Example, tmp_path: Path) -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        missing_real_part("amtool (Debian package prometheus-alertmanager)")
    data = yaml.safe_load(ex.text)
    receiver = data["receivers"][0]["name"]
    data.setdefault("route", {"receiver": receiver})
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(data))
    run = subprocess.run(
        [amtool, "check-config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, f"{ex}: {run.stdout}{run.stderr}"


def test_an_alertmanager_example_is_recognised() -> None:
    # docs/operations.md shows how to point Alertmanager at the sidecar's webhook
    assert any(str(ex).startswith("docs/operations.md:") for ex in ALERTMANAGER)
