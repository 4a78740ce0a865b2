"""Duplicate keys, which YAML resolves by silently keeping the last, are problems; merge keys
(``<<``) included: of two in one mapping only the last one's values would apply."""

from __future__ import annotations

from autoscaler.rules.loader import RuleSource, load_sources

ANCHORS = """\
signals:
  rps:
    prometheus: {query: up}
x-small: &small
  max: 4
x-large: &large
  max: 8
  target_tracking: [{signal: rps, average_value: 20}]
services:
  api:
"""


def _problems(text: str) -> list[str]:
    return [str(p) for p in load_sources([RuleSource("r.yml", text.encode())]).problems]


def test_two_merge_keys_in_one_mapping_are_a_duplicate() -> None:
    text = ANCHORS + "    <<: *small\n    <<: *large\n"
    assert _problems(text) == ["r.yml:12: services.api.<<: duplicate key '<<' (first at line 11)"]


def test_one_merge_key_of_several_anchors_is_fine() -> None:
    result = load_sources([RuleSource("r.yml", (ANCHORS + "    <<: [*small, *large]\n").encode())])
    assert result.policies is not None, [str(p) for p in result.problems]
    assert result.policies.services["api"].max == 4  # the first anchor listed wins


def test_an_explicit_key_next_to_a_merge_key_is_not_a_duplicate() -> None:
    result = load_sources(
        [RuleSource("r.yml", (ANCHORS + "    <<: *large\n    max: 6\n").encode())]
    )
    assert result.policies is not None, [str(p) for p in result.problems]
    assert result.policies.services["api"].max == 6


def test_a_key_repeated_in_a_flow_mapping_is_a_duplicate() -> None:
    text = "signals:\n  rps: {prometheus: {query: up}, prometheus: {query: down}}\n"
    assert _problems(text) == [
        "r.yml:2: signals.rps.prometheus: duplicate key 'prometheus' (first at line 2)"
    ]
