"""The routing tree with Alertmanager's semantics (dispatch/route.go).

A node's options start as its parent's (the root's as Alertmanager's defaults) and are
overridden by what the node sets; time intervals belong to the node alone. Matching is
depth first: children in order, the first match ends the search unless it says
``continue``; a node none of whose children match is itself the match.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from autoscaler.alerts.config import (
    DEFAULT_GROUP_INTERVAL,
    DEFAULT_GROUP_WAIT,
    DEFAULT_REPEAT_INTERVAL,
    RouteConfig,
)
from autoscaler.alerts.matchers import Matcher, matches_all


@dataclass(frozen=True)
class RouteOpts:
    receiver: str
    group_by: frozenset[str]
    group_by_all: bool
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()


DEFAULT_OPTS = RouteOpts(
    receiver="",
    group_by=frozenset(),
    group_by_all=False,
    group_wait=DEFAULT_GROUP_WAIT,
    group_interval=DEFAULT_GROUP_INTERVAL,
    repeat_interval=DEFAULT_REPEAT_INTERVAL,
)


@dataclass
class Route:
    opts: RouteOpts
    matchers: list[Matcher]
    continue_: bool
    parent: Route | None
    routes: list[Route] = field(default_factory=list)

    @classmethod
    def build(cls, cfg: RouteConfig, parent: Route | None = None) -> Route:
        base = parent.opts if parent is not None else DEFAULT_OPTS
        group_by, group_by_all = base.group_by, base.group_by_all
        # `group_by: []` inherits as if left out: Alertmanager's config keeps no list for it
        if cfg.group_by:
            group_by_all = cfg.group_by == ("...",)
            group_by = frozenset() if group_by_all else frozenset(cfg.group_by)
        opts = RouteOpts(
            receiver=cfg.receiver or base.receiver,
            group_by=group_by,
            group_by_all=group_by_all,
            group_wait=cfg.group_wait if cfg.group_wait is not None else base.group_wait,
            group_interval=(
                cfg.group_interval if cfg.group_interval is not None else base.group_interval
            ),
            repeat_interval=(
                cfg.repeat_interval if cfg.repeat_interval is not None else base.repeat_interval
            ),
            mute_time_intervals=cfg.mute_time_intervals,
            active_time_intervals=cfg.active_time_intervals,
        )
        matchers = sorted(cfg.all_matchers(), key=lambda m: (m.name, m.op, m.value))
        route = cls(opts, matchers, cfg.continue_, parent)
        route.routes = [cls.build(child, route) for child in cfg.routes]
        return route

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        if not matches_all(self.matchers, labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            matches = child.match(labels)
            found += matches
            if matches and not child.continue_:
                break
        return found or [self]

    def key(self) -> str:
        """A stable identity of the node: its matchers and its ancestors' (as Alertmanager)."""
        own = "{" + ",".join(str(m) for m in self.matchers) + "}"
        return own if self.parent is None else f"{self.parent.key()}/{own}"

    def id(self) -> str:
        """Unique in the tree, unlike ``key``: siblings with the same matchers differ by
        their place (Alertmanager's Route.ID)."""
        own = "{" + ",".join(str(m) for m in self.matchers) + "}"
        if self.parent is None:
            return own
        place = next(i for i, r in enumerate(self.parent.routes) if r is self)
        return f"{self.parent.id()}/{own}/{place}"

    def longest_repeat(self) -> timedelta:
        """The longest ``repeat_interval`` in the tree (how long a send must be remembered)."""
        return max([self.opts.repeat_interval, *(r.longest_repeat() for r in self.routes)])

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        if self.opts.group_by_all:
            return dict(labels)
        return {k: v for k, v in labels.items() if k in self.opts.group_by}


def receivers_for(route: Route, labels: Mapping[str, str]) -> list[str]:
    """The receivers an alert with ``labels`` goes to, in order (``amtool config routes test``)."""
    return [r.opts.receiver for r in route.match(labels)]
