"""Prometheus exposition text as ShinyProxy's actuator (Micrometer) writes it.

Samples are matched by their exported name (``appStarts_total``,
``startupTime_seconds_count``, ``absolute_users_active``), not by family name, so a
rule names exactly the line it means. NaN samples (a gauge before its first refresh)
are dropped: they are "no value", never zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families


class ExpositionError(ValueError):
    """The text is not valid exposition format."""


def parse(text: str) -> list[Metric]:
    """Parse exposition text into metric families; malformed text raises ExpositionError."""
    try:
        return list(text_string_to_metric_families(text))
    except (ValueError, IndexError, KeyError) as e:
        # the parser quotes the line it choked on: a whole login page, say
        raise ExpositionError(f"invalid exposition text: {_cut(str(e), 200)}") from None


def _cut(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 3] + "..."


def select(
    text_or_families: str | Iterable[Metric], metric: str, labels: Mapping[str, str]
) -> list[float]:
    """Values of samples named ``metric`` whose labels include ``labels``; NaN dropped.

    As in PromQL, a wanted empty value matches a sample without that label.
    """
    return [value for _, value in select_series(text_or_families, metric, labels)]


SeriesKey = frozenset[tuple[str, str]]
"""A sample's labels but ``REPLICA_LABELS``: what tells its series (one per app, say) from
the others of the same metric, on every replica alike."""

REPLICA_LABELS = frozenset({"shinyproxy_instance"})
"""Labels that name the ShinyProxy server, not what is counted: they differ between
replicas (and across a configuration change), so a series is known without them."""


def select_series(
    text_or_families: str | Iterable[Metric], metric: str, labels: Mapping[str, str]
) -> list[tuple[SeriesKey, float]]:
    """As ``select``, each value with the labels of its series."""
    families = parse(text_or_families) if isinstance(text_or_families, str) else text_or_families
    wanted = dict(labels)
    return [
        (
            frozenset((k, v) for k, v in sample.labels.items() if k not in REPLICA_LABELS),
            sample.value,
        )
        for family in families
        for sample in family.samples
        if sample.name == metric
        and not math.isnan(sample.value)
        and all(sample.labels.get(k, "") == v for k, v in wanted.items())
    ]
