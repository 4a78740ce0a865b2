"""Settings -> the configured node providers and what a launch needs beforehand."""

from __future__ import annotations

import logging
from typing import Any

from autoscaler.decide.plan_types import LaunchNodes
from autoscaler.providers.base import NodeProvider, ProviderError
from autoscaler.rules.pools import PoolPolicy
from autoscaler.settings import Settings
from autoscaler.userdata import JoinSettings, render_user_data

log = logging.getLogger(__name__)


def aws_client(settings: Settings, service: str) -> Any:
    """A boto3 client; the SDK's DEBUG logging (request bodies: the join token) stays off."""
    from autoscaler.logsetup import quiet_aws_sdk
    from autoscaler.providers.ec2 import boto_config

    quiet_aws_sdk()

    timeout = max(5.0, settings.source_timeout.total_seconds())
    return aws_session(settings).client(
        service,
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        config=boto_config(settings.aws_retry_mode, settings.aws_max_attempts, timeout),
    )


def aws_session(settings: Settings) -> Any:
    """A boto3 session; with ``aws_credentials_file``, that file comes first in the chain."""
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    if settings.aws_credentials_file is not None:
        from autoscaler.providers.role_credentials import RoleFileProvider

        resolver = core.get_component("credential_provider")
        resolver.insert_before("env", RoleFileProvider(settings.aws_credentials_file))
    return boto3.session.Session(botocore_session=core)


def build_providers(settings: Settings) -> dict[str, NodeProvider]:
    """``ec2`` when a region is set, ``local`` when a lab folder is set."""
    providers: dict[str, NodeProvider] = {}
    if settings.aws_region:
        from autoscaler.providers.ec2 import Ec2Provider

        def user_data(pool: str, policy: PoolPolicy, warm: bool) -> str:
            return render_user_data(ec2_join_settings(settings, pool, policy, warm))

        providers["ec2"] = Ec2Provider(aws_client(settings, "ec2"), settings.cluster, user_data)
    if settings.lab_root:
        from autoscaler.providers.local import LocalProvider

        providers["local"] = LocalProvider(settings.lab_root, settings.cluster)
    return providers


def ec2_join_settings(
    settings: Settings, pool: str, policy: PoolPolicy, warm: bool
) -> JoinSettings:
    parameter = policy.ec2.join_parameter if policy.ec2 else "/autoscaler/swarm/worker-join"
    return JoinSettings(
        pool=pool,
        cluster=settings.cluster,
        region=settings.aws_region or "",
        join_parameter=parameter,
        images=policy.images,
        ssm_endpoint=settings.aws_endpoint_url or "",
        warm=warm,
    )


class JoinPublisher:
    """Before an ec2 launch: the join token and managers in SSM are made current."""

    def __init__(self, settings: Settings, docker_client: Any, policies: Any) -> None:
        self._settings = settings
        self._docker = docker_client
        self._policies = policies
        self._params: dict[str, Any] = {}

    def __call__(self, provider: str, action: LaunchNodes) -> None:
        if provider != "ec2":
            return
        from autoscaler.providers.ssm import JoinParameter, swarm_join_info

        policy = self._policies().pools.get(action.pool)
        if policy is None or policy.ec2 is None:
            raise ProviderError(f"pool {action.pool} has no ec2 section")
        name = policy.ec2.join_parameter
        if name not in self._params:
            ssm = aws_client(self._settings, "ssm")
            self._params[name] = JoinParameter(ssm, name, self._settings.ssm_kms_key_id)
        try:
            token, managers = swarm_join_info(self._docker.api)
        except Exception as exc:  # the engine's error text never holds the token
            raise ProviderError(f"cannot read the join token: {type(exc).__name__}") from exc
        self._params[name].ensure(token, managers)
