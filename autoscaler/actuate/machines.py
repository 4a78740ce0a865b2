"""Provider actions: launch a pool's machines and terminate them, through its provider."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from autoscaler.actuate.base import ActionResult
from autoscaler.decide.plan_types import (
    Action,
    FillWarmPool,
    LaunchNodes,
    RetireWarmMachine,
    TerminateInstance,
)
from autoscaler.providers.base import NodeProvider, ProviderError
from autoscaler.rules.pools import PoolPolicy
from autoscaler.rules.schema import Policies
from autoscaler.sources.errors import SourceError

log = logging.getLogger(__name__)

BeforeLaunch = Callable[[str, LaunchNodes], None]
"""Called before each launch with the pool's provider name (publish the join token ...)."""


class MachineActuator:
    def __init__(
        self,
        providers: Mapping[str, NodeProvider],
        policies: Callable[[], Policies],
        before_launch: BeforeLaunch | None = None,
    ) -> None:
        self._providers = providers
        self._policies = policies
        self._before_launch = before_launch

    def execute(self, action: Action) -> ActionResult:
        if not isinstance(
            action, LaunchNodes | FillWarmPool | RetireWarmMachine | TerminateInstance
        ):
            return _fail(action, f"{action.kind} is not a provider action")
        provider = self._providers.get(action.provider)
        if provider is None:
            configured = ", ".join(sorted(self._providers)) or "none"
            return _fail(
                action, f"provider {action.provider} not configured (configured: {configured})"
            )
        try:
            if isinstance(action, LaunchNodes):
                message = self._launch(provider, action)
            elif isinstance(action, FillWarmPool):
                message = self._fill_warm_pool(provider, action)
            elif isinstance(action, RetireWarmMachine):
                retire = getattr(provider, "retire_warm", None)
                if retire is None:
                    raise ProviderError(f"provider {action.provider} keeps no warm pool")
                message = retire(action.instance_id, action.pool)
            else:
                message = provider.terminate(action.instance_id, action.pool)
        except (ProviderError, SourceError) as exc:
            text = exc.message if isinstance(exc, SourceError) else str(exc)
            log.error("%s for pool %s failed: %s", action.kind, action.pool, text)
            return _fail(action, text)
        log.info("%s", message)
        return ActionResult(action=action, ok=True, message=message)

    def _launch(self, provider: NodeProvider, action: LaunchNodes) -> str:
        policy = self._policy(action.pool)
        if self._before_launch is not None:
            self._before_launch(action.provider, action)
        ids = provider.launch(action.pool, policy, action.count, action.token)
        return f"launched {len(ids)} of {action.count} for pool {action.pool}: {', '.join(ids)}"

    def _fill_warm_pool(self, provider: NodeProvider, action: FillWarmPool) -> str:
        policy = self._policy(action.pool)
        fill = getattr(provider, "fill_warm_pool", None)
        if fill is None:
            raise ProviderError(f"provider {action.provider} keeps no warm pool")
        # no join token yet: a warm machine joins only once a launch starts it
        ids = fill(action.pool, policy, action.token)
        if not ids:
            return f"warm pool of {action.pool} already full"
        return f"{len(ids)} warm machine(s) on their way for pool {action.pool}: {', '.join(ids)}"

    def _policy(self, pool: str) -> PoolPolicy:
        policy = self._policies().pools.get(pool)
        if policy is None:
            raise ProviderError(f"pool {pool} is not in the rules any more")
        return policy


def _fail(action: Action, message: str) -> ActionResult:
    return ActionResult(action=action, ok=False, message=message)
