"""Whatever bytes sit in a rules file, loading answers with problems, never a traceback."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from autoscaler.rules import loader
from autoscaler.rules.loader import LoadResult, load_rules

SHIPPED = Path(__file__).resolve().parent.parent / "rules"

NASTY: dict[str, bytes] = {
    "binary": random.Random(7).randbytes(4096),
    "nul": b"signals:\n  a: \x00\n",
    "latin1": "signals:\n  caf\xe9: {}\n".encode("latin-1"),
    "list_top": b"- 1\n- 2\n",
    "number_top": b"42\n",
    "tabs": b"services:\n\tapi:\n\t\tmax: 2\n",
    "deep": b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n",
    "unclosed_quote": b'signals:\n  a:\n    prometheus: {query: "up}\n',
    "bom": b"\xef\xbb\xbfsignals: {}\n",
    "huge_int": b"services:\n  api:\n    max: 1" + b"0" * 5000 + b"\n",
    "complex_key": b"? [a, b]\n: 1\n",
    "sections_as_lists": b"signals: [1, 2]\nservices: [x]\n",
    "null_entry": b"signals:\n  rps:\nservices:\n  api:\n",
    "merge_of_scalar": b"signals:\n  <<: 5\n",
    "date_values": b"signals:\n  a:\n    prometheus: {query: 2024-01-01}\n",
}


def _assert_clean(result: LoadResult, path: Path) -> None:
    assert (result.policies is None) == bool(result.problems)
    lines = max(1, path.read_bytes().count(b"\n") + 1)
    for p in result.problems:
        assert p.file == str(path)
        assert 1 <= p.line <= lines, p
        assert "Traceback" not in str(p)
        assert "\n" not in str(p)


@pytest.mark.parametrize("name", sorted(NASTY))
def test_nasty_input_is_a_problem(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.yml"
    path.write_bytes(NASTY[name])
    result = load_rules(path)
    _assert_clean(result, path)
    if name != "bom":
        assert result.policies is None


def test_binary_garbage_names_the_byte_and_its_line(tmp_path: Path) -> None:
    path = tmp_path / "g.yml"
    path.write_bytes(b"signals:\n  a: 1\n\xff\xfe\n")
    assert [str(p) for p in load_rules(path).problems] == [f"{path}:3: not UTF-8 text (byte 0xff)"]


def test_nul_character_line(tmp_path: Path) -> None:
    path = tmp_path / "n.yml"
    path.write_bytes(b"# one\n# two\nsignals: \x00\n")
    assert [str(p) for p in load_rules(path).problems] == [
        f"{path}:3: character #x0000 is not allowed in YAML"
    ]


def test_unexpected_exception_becomes_a_problem_on_line_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_: object) -> list[loader.Problem]:
        raise RuntimeError("boom")

    monkeypatch.setattr(loader, "_duplicate_keys", explode)
    path = tmp_path / "a.yml"
    path.write_text("signals: {}\n")
    result = load_rules(path)
    assert result.policies is None
    assert [str(p) for p in result.problems] == [
        f"{path}:1: could not be checked: RuntimeError: boom"
    ]


def test_mutated_shipped_rules_never_raise(tmp_path: Path) -> None:
    """Deleting, duplicating and corrupting lines of real files yields problems, not errors."""
    rng = random.Random(20240601)
    originals = [p.read_text() for p in sorted(SHIPPED.glob("*.yml"))]
    junk = ["\t", ":", "- ", "{", "]", "'", "*x", "&a", "!!str", "max: -1", "  foo: 1", "#"]
    path = tmp_path / "m.yml"
    outcomes = {"valid": 0, "invalid": 0}
    for _ in range(150):
        lines = rng.choice(originals).splitlines(keepends=True)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(lines))
            op = rng.randrange(3)
            if op == 0:
                del lines[i]
            elif op == 1:
                lines.insert(i, lines[rng.randrange(len(lines))])
            else:
                cut = rng.randrange(len(lines[i]) + 1)
                lines[i] = lines[i][:cut] + rng.choice(junk) + lines[i][cut:]
        path.write_text("".join(lines))
        result = load_rules(path)
        _assert_clean(result, path)
        outcomes["valid" if result.policies is not None else "invalid"] += 1
    assert outcomes["invalid"] > 50  # the mutations did break things
