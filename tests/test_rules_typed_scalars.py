"""A value YAML types by its look but cannot convert (a date that does not exist, an
explicit ``!!bool`` of something else) is a YAML problem at its own line and column."""

from __future__ import annotations

import pytest

from autoscaler.rules.loader import RuleSource, load_sources

SIGNAL = """\
signals:
  users:
    actuator:
      metric: absolute_users_logged_in
      labels: {{release: {value}}}
"""


def _problems(text: str) -> list[str]:
    result = load_sources([RuleSource("r.yml", text.encode())])
    assert result.policies is None
    return [str(p) for p in result.problems]


def test_a_date_that_does_not_exist_names_its_line_and_says_to_quote_it() -> None:
    assert _problems(SIGNAL.format(value="2024-02-30")) == [
        "r.yml:5: YAML error at column 25: '2024-02-30' is not a valid !!timestamp: "
        "day is out of range for month (quote it if text is meant)"
    ]


@pytest.mark.parametrize(
    ("value", "tag"),
    [("!!bool maybe", "!!bool"), ("!!timestamp soon", "!!timestamp"), ("!!int ten", "!!int")],
)
def test_an_explicit_tag_that_does_not_convert_names_its_line(value: str, tag: str) -> None:
    (problem,) = _problems(SIGNAL.format(value=value))
    assert problem.startswith(f"r.yml:5: YAML error at column 25: '{value.split()[1]}' is not a")
    assert tag in problem and "could not be checked" not in problem


def test_a_quoted_date_is_text() -> None:
    result = load_sources([RuleSource("r.yml", SIGNAL.format(value="'2024-02-30'").encode())])
    assert result.policies is not None, [str(p) for p in result.problems]
    assert result.policies.signals["users"].actuator is not None
    assert result.policies.signals["users"].actuator.labels == {"release": "2024-02-30"}
