"""The small part of Go's template language that alert texts use.

``{{ $value }}``, ``{{ $labels.instance }}`` in alert annotations; ``{{ .Status }}``,
``{{ .CommonLabels.alertname }}``, ``{{ len .Alerts.Firing }}`` in notification texts;
pipes ``| humanize``, ``| printf "%.2f"``, ``| toUpper``, ``| toLower``, ``| title``, ``| len``.
Anything else is refused when the rules are loaded, never rendered half-way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from autoscaler.floattext import shortest_digits, special

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.DOTALL)
# Go's trim markers: "{{- " drops the white space before the action, " -}}" that after it
_TRIM_LEFT = re.compile(r"\s*\{\{-(?=\s)")
_TRIM_RIGHT = re.compile(r"(?<=\s)-\}\}\s*")
_PRINTF = re.compile(r'^printf\s+"([^"]*)"$')
_PIPES = ("humanize", "toUpper", "toLower", "title", "len")

ALERT_FIELDS = ("$value", ".Value", "$labels.*", ".Labels.*")
NOTIFICATION_FIELDS = (
    ".Status",
    ".Receiver",
    ".ExternalURL",
    ".GroupKey",
    ".CommonLabels.*",
    ".GroupLabels.*",
    ".CommonAnnotations.*",
    ".Alerts",
    ".Alerts.Firing",
    ".Alerts.Resolved",
)

Resolver = Callable[[str], Any]


def check_template(text: str, fields: Iterable[str]) -> str:
    """Return ``text`` when every action in it is supported; else ValueError naming it."""
    allowed = tuple(fields)
    if text.count("{{") != len(_ACTION.findall(text)):
        raise ValueError(f"unclosed '{{{{' in template {text!r}")
    for action in _ACTION.findall(text):
        path, pipes = _parse(action)
        if not any(_fits(path, f) for f in allowed):
            raise ValueError(
                f"template field {path!r} is not supported here (use {', '.join(allowed)})"
            )
        for p in pipes:
            if p not in _PIPES and not _PRINTF.match(p):
                raise ValueError(f"template function {p!r} is not supported")
    return text


def render(text: str, resolve: Resolver, escape: Callable[[str], str] | None = None) -> str:
    """Fill in a template checked by ``check_template``; missing values render empty.

    ``escape`` is applied to what each action writes, never to the template's own text
    (e.g. ``html.escape`` for an HTML body, as Go's html/template does)."""

    def one(m: re.Match[str]) -> str:
        path, pipes = _parse(m.group(1))
        value = resolve(path)
        for p in pipes:
            value = _apply(p, value)
        out = _text(value)
        return escape(out) if escape is not None else out

    return _ACTION.sub(one, _TRIM_RIGHT.sub("}}", _TRIM_LEFT.sub("{{", text)))


def _parse(action: str) -> tuple[str, list[str]]:
    parts = [p.strip() for p in action.split("|")]
    head, pipes = parts[0], parts[1:]
    if head.startswith("len "):
        head, pipes = head[4:].strip(), ["len", *pipes]
    return head, pipes


def _fits(path: str, allowed: str) -> bool:
    if allowed.endswith(".*"):
        prefix = allowed[:-1]
        return path.startswith(prefix) and len(path) > len(prefix)
    return path == allowed


def _apply(pipe: str, value: Any) -> Any:
    if pipe == "len":
        return len(value) if isinstance(value, list | tuple | dict | str) else 0
    if pipe == "humanize":
        return humanize(value)
    if pipe == "toUpper":
        return _text(value).upper()
    if pipe == "toLower":
        return _text(value).lower()
    if pipe == "title":
        return go_title(_text(value))
    m = _PRINTF.match(pipe)
    if m:
        try:
            return m.group(1) % value
        except (TypeError, ValueError, OverflowError):  # "%d" of +Inf: the value as it is
            return _text(value)
    return value


def go_title(text: str) -> str:
    """Go's ``strings.Title`` (the ``title`` of Prometheus and Alertmanager): the first
    letter of each word upper case, the others as they are (``str.title`` lowers them:
    ``AutoscalerLoopStalled`` would read ``Autoscalerloopstalled``). Letters, digits and
    ``_`` continue a word."""

    def separator(ch: str) -> bool:
        if ch.isascii():
            return not (ch.isalnum() or ch == "_")
        return not (ch.isalpha() or ch.isdigit()) and ch.isspace()

    out, prev = [], " "
    for ch in text:
        out.append(ch.upper() if separator(prev) else ch)
        prev = ch
    return "".join(out)


def humanize(value: Any) -> str:
    """Prometheus' ``humanize``: 1234567 -> 1.235M."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return _text(value)
    v = float(value)
    if v == 0 or math.isnan(v) or math.isinf(v):
        return go_float(v)  # Go's %.4g of these: 0, NaN, +Inf, -Inf
    # As Prometheus: the prefixes end at Y and y; a number beyond them keeps the last one
    prefix = ""
    if abs(v) >= 1:
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix, v = p, v / 1000
    else:
        for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
            if abs(v) >= 1:
                break
            prefix, v = p, v * 1000
    return f"{v:.4g}{prefix}"


def go_float(v: float) -> str:
    """A float as Go's templates print it (``strconv.FormatFloat(v, 'g', -1, 64)``): the
    shortest digits that read back the same, an exponent from 1e+06 and below 1e-04, and
    +Inf, -Inf, NaN, as Prometheus and Alertmanager show ``{{ $value }}``."""
    named = special(v, zero="0")
    if named is not None:
        return named
    minus, shown, exp = shortest_digits(v)
    if exp < -4 or exp >= 6:
        mantissa = shown[0] + ("." + shown[1:] if len(shown) > 1 else "")
        return f"{minus}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{minus}0.{'0' * (-exp - 1)}{shown}"
    whole = shown[: exp + 1].ljust(exp + 1, "0")
    rest = shown[exp + 1 :]
    return f"{minus}{whole}{'.' + rest if rest else ''}"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, list | tuple):
        return str(len(value))
    return str(value)
