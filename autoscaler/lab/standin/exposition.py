"""Render meters as Spring Boot's /actuator/prometheus does, byte for byte where it can.

Two styles: ``micrometer`` is Micrometer 1.13+ on Prometheus client_java 1.x (Spring Boot 3.4,
ShinyProxy 3.2); ``simpleclient`` is the older Micrometer on simpleclient (ShinyProxy up to
3.0), whose label lists end with a comma and whose counts are printed as doubles. Both name
meters with Micrometer's Prometheus convention: dots become underscores, camelCase is kept,
counters get ``_total``, timers become ``_seconds`` summaries plus a ``_seconds_max`` gauge.
"""

from __future__ import annotations

from typing import Literal

from autoscaler.floattext import shortest_digits, special
from autoscaler.lab.standin.meters import MeterSample, TagItems

Style = Literal["micrometer", "simpleclient"]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HELP = " "
"""Micrometer's help text for a meter without a description: one space."""


def java_double(value: float) -> str:
    """Java's ``Double.toString`` (JDK 19+ shortest digits), with Prometheus' infinities."""
    named = special(value, zero="0.0")
    if named is not None:
        return named
    sign, digits, point = shortest_digits(value)
    if 1e-3 <= abs(value) < 1e7:
        if point >= 0:
            whole = (digits + "0" * max(0, point + 1 - len(digits)))[: point + 1]
            frac = digits[point + 1 :] or "0"
        else:
            whole, frac = "0", "0" * (-point - 1) + digits
        return f"{sign}{whole}.{frac}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{point}"


def prometheus_name(name: str) -> str:
    return name.replace(".", "_").replace("-", "_")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(tags: TagItems, style: Style) -> str:
    if not tags:
        return ""
    items = sorted((prometheus_name(k), v) for k, v in tags)
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in items)
    return "{" + body + ("," if style == "simpleclient" else "") + "}"


def _family(name: str, kind: str) -> list[str]:
    return [f"# HELP {name} {HELP}", f"# TYPE {name} {kind}"]


def render(samples: list[MeterSample], style: Style = "micrometer") -> str:
    """The exposition text; families sorted by name, series by their labels."""
    families: dict[str, tuple[str, list[str]]] = {}

    def add(sort_name: str, head: list[str], line: str) -> None:
        families.setdefault(sort_name, (sort_name, head))[1].append(line)

    for s in sorted(samples, key=lambda s: (s.name, _labels(s.tags, "micrometer"))):
        base = prometheus_name(s.name)
        labels = _labels(s.tags, style)
        if s.type == "counter":
            add(
                base,
                _family(f"{base}_total", "counter"),
                f"{base}_total{labels} {java_double(s.value)}",
            )
        elif s.type == "gauge":
            add(base, _family(base, "gauge"), f"{base}{labels} {java_double(s.value)}")
        else:
            summary = f"{base}_seconds"
            count = str(s.count) if style == "micrometer" else java_double(float(s.count))
            add(summary, _family(summary, "summary"), f"{summary}_count{labels} {count}")
            families[summary][1].append(f"{summary}_sum{labels} {java_double(s.total_seconds)}")
            add(
                f"{summary}_max",
                _family(f"{summary}_max", "gauge"),
                f"{summary}_max{labels} {java_double(s.max_seconds)}",
            )
    out: list[str] = []
    for key in sorted(families):
        _, lines = families[key]
        out.extend(lines)
    return "\n".join(out) + "\n" if out else ""
