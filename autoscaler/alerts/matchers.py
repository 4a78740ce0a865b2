"""Alertmanager label matchers: ``name="v"``, ``!=``, ``=~``, ``!~``; regexes are anchored.

Parsing follows Alertmanager's classic matcher syntax: optional braces around a
comma-separated list, values quoted or bare, ``\\"``, ``\\\\`` and ``\\n`` escapes.
Regexes are RE2, as in Alertmanager: matching takes linear time, so no pattern (a silence
anyone with the API token may create) can stall the sidecar, and Perl-only syntax such as
look-ahead is refused as Alertmanager refuses it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import re2  # type: ignore[import-untyped]

Op = Literal["=", "!=", "=~", "!~"]

_MATCHER = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*(.*?)\s*$", re.DOTALL)
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad pattern is reported to the user, not to stderr


@dataclass(frozen=True)
class Matcher:
    name: str
    op: Op
    value: str
    _regex: Any = field(default=None, compare=False, repr=False)
    """The compiled RE2 pattern of =~ and !~."""

    @classmethod
    def make(cls, name: str, op: Op, value: str) -> Matcher:
        regex = None
        if op in ("=~", "!~"):
            try:
                regex = re2.compile(f"^(?:{value})$", _RE2_OPTIONS)
            except re2.error as e:
                why = e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else str(e)
                raise ValueError(f"bad regular expression {value!r} for {name}: {why}") from None
        return cls(name, op, value, regex)

    def matches(self, labels: Mapping[str, str]) -> bool:
        # A missing label is the empty string, as in Alertmanager.
        got = labels.get(self.name, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        assert self._regex is not None
        found = self._regex.match(got) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'


def matches_all(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def parse_matcher(text: str) -> Matcher:
    """One matcher such as ``severity=~"warn|crit"``; ValueError says what is wrong."""
    m = _MATCHER.match(text)
    if m is None:
        raise ValueError(f"bad matcher {text!r}: use name=value, name!=value, name=~re, name!~re")
    name, op, raw = m.group(1), m.group(2), m.group(3)
    return Matcher.make(name, op, _unquote(raw, text))  # type: ignore[arg-type]


def parse_matchers(text: str) -> list[Matcher]:
    """A matcher list: ``{a="b", c=~"d"}`` or ``a=b,c=~d``."""
    s = text.strip()
    if s.startswith("{") and s.endswith("}"):
        s = s[1:-1]
    return [parse_matcher(part) for part in _split(s) if part.strip()]


def _split(s: str) -> list[str]:
    parts, current, quoted, escaped = [], "", False, False
    for ch in s:
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\":
            current += ch
            escaped = True
        elif ch == '"':
            current += ch
            quoted = not quoted
        elif ch == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def _unquote(raw: str, text: str) -> str:
    expect_quote = raw.startswith('"')
    if expect_quote:
        raw = raw[1:]
    out, escaped = "", False
    for i, ch in enumerate(raw):
        if escaped:
            escaped = False
            out += {"n": "\n", '"': '"', "\\": "\\"}.get(ch, "\\" + ch)
            continue
        if ch == "\\":
            if i < len(raw) - 1:
                escaped = True
                continue
            out += ch
        elif ch == '"':
            if not expect_quote or i < len(raw) - 1:
                raise ValueError(f"bad matcher {text!r}: unescaped double quote in the value")
            expect_quote = False
        else:
            out += ch
    if expect_quote:
        raise ValueError(f"bad matcher {text!r}: the value's closing quote is missing")
    return out
