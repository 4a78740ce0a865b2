"""The one small interface every node provider implements."""

from __future__ import annotations

from typing import Protocol

from autoscaler.rules.pools import PoolPolicy
from autoscaler.snapshot import Instance


class ProviderError(Exception):
    """A launch or termination that did not happen; the message says why (no secrets)."""


class NodeProvider(Protocol):
    name: str

    def list_instances(self) -> tuple[Instance, ...]:
        """Every machine of this cluster's pools; raises SourceError when unreadable."""
        ...

    def launch(self, pool: str, policy: PoolPolicy, count: int, token: str) -> list[str]:
        """Start ``count`` machines for ``pool``; the ids started. Idempotent per ``token``."""
        ...

    def terminate(self, instance_id: str, pool: str) -> str:
        """Terminate one machine of ``pool``; refuses machines that are not the pool's."""
        ...
