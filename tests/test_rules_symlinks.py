"""Rules files that are symbolic links: a link that leads nowhere is a problem naming the
link, never a file whose policies silently drop out of the running set."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autoscaler.rules.loader import load_rules
from autoscaler.rules.reload import ReloadOutcome, RulesStore

SPLIT = Path(__file__).parent / "data" / "rules" / "good_sets" / "split"


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    """The split set with its services file kept outside and linked in."""
    folder = tmp_path / "rules"
    shutil.copytree(SPLIT, folder)
    shared = tmp_path / "shared"
    shared.mkdir()
    (folder / "20-services.yml").rename(shared / "services.yml")
    (folder / "20-services.yml").symlink_to(shared / "services.yml")
    return folder


def test_a_link_to_a_file_elsewhere_is_read(rules: Path) -> None:
    result = load_rules(rules)
    assert result.policies is not None and "api" in result.policies.services


def test_a_dangling_link_keeps_the_running_policies_until_it_leads_somewhere(
    rules: Path, tmp_path: Path
) -> None:
    store = RulesStore(rules)
    assert store.refresh() == ReloadOutcome.LOADED
    good = store.policies
    target = tmp_path / "shared" / "services.yml"
    moved = target.rename(tmp_path / "services.yml")

    assert store.refresh() == ReloadOutcome.INVALID
    assert store.policies is good and "api" in store.policies.services
    assert [str(p) for p in store.problems] == [
        f"{rules / '20-services.yml'}: cannot read the file: No such file or directory"
        f" (a symbolic link to {target})"
    ]

    moved.rename(target)
    assert store.refresh() == ReloadOutcome.LOADED
    assert store.problems == [] and store.generation == 2


def test_a_link_loop_is_reported(rules: Path) -> None:
    loop = rules / "30-loop.yml"
    loop.symlink_to(loop.name)
    result = load_rules(rules)
    assert result.policies is None
    assert [p.file for p in result.problems] == [str(loop)]
    assert result.problems[0].message.startswith("cannot read the file: Too many levels")


def test_a_dangling_link_given_by_name_says_what_it_links_to(tmp_path: Path) -> None:
    link = tmp_path / "rules.yml"
    link.symlink_to(tmp_path / "gone.yml")
    assert [str(p) for p in load_rules(link).problems] == [
        f"{link}: cannot read the file: No such file or directory"
        f" (a symbolic link to {tmp_path / 'gone.yml'})"
    ]


def test_a_link_to_a_folder_is_a_subfolder_and_ignored(rules: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (rules / "30-more.yml").symlink_to(tmp_path / "elsewhere")
    result = load_rules(rules)
    assert result.policies is not None, [str(p) for p in result.problems]
    assert result.files == [str(rules / "10-signals.yml"), str(rules / "20-services.yml")]
