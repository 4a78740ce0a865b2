"""Read the pools' machines from every configured node provider (EC2, the lab's engines)."""

from __future__ import annotations

from collections.abc import Mapping

from autoscaler.providers.base import NodeProvider
from autoscaler.snapshot import Instance
from autoscaler.sources.errors import SourceError

SOURCE = "instances"


class ProviderInstances:
    """Every provider's machines as one list; one unreadable provider fails the read, so
    decisions never take a half list for the whole (that would launch twice)."""

    def __init__(self, providers: Mapping[str, NodeProvider]) -> None:
        self._providers = providers

    def list_instances(self) -> tuple[Instance, ...]:
        found: list[Instance] = []
        for name in sorted(self._providers):
            try:
                found += self._providers[name].list_instances()
            except SourceError as exc:
                raise SourceError(SOURCE, f"{name}: {exc.message}") from exc
        return tuple(found)
