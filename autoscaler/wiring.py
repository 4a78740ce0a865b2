"""Settings -> the real clients, backends and actuator. The only place that builds them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from autoscaler.actuate.base import Actuator
from autoscaler.actuate.dryrun import DryRunActuator
from autoscaler.actuate.swarm import SwarmActuator
from autoscaler.providers.base import NodeProvider
from autoscaler.rules.reload import RulesStore
from autoscaler.rules.schema import Policies
from autoscaler.settings import Settings, env_name, read_secret
from autoscaler.sources.actuator import ActuatorClient
from autoscaler.sources.collect import Backends
from autoscaler.sources.ec2 import ProviderInstances
from autoscaler.sources.http_body import MAX_BODY_BYTES
from autoscaler.sources.http_errors import hide_userinfo, require_latin1, scrub_userinfo
from autoscaler.sources.influx import InfluxReader
from autoscaler.sources.prometheus import PrometheusClient
from autoscaler.sources.swarm import SwarmReader

DOCKER_API_VERSION = "1.41"
"""Engine 20.10 and later; pinned so that building the client never calls the engine
(a manager that is down at start-up is then a failed pass, reported and retried)."""


def docker_client(settings: Settings, host_setting: str = "AUTOSCALER_DOCKER_HOST") -> Any:
    """The Docker client; a host it refuses is a RuntimeError that shows no credentials.

    ``host_setting`` is what a refused ``settings.docker_host`` is called (its flag, say).
    """
    import docker
    from docker.errors import DockerException

    timeout = max(5, int(settings.source_timeout.total_seconds()))
    try:
        if settings.docker_host:
            return docker.DockerClient(
                base_url=settings.docker_host, timeout=timeout, version=DOCKER_API_VERSION
            )
        return docker.from_env(timeout=timeout, version=DOCKER_API_VERSION)
    except (DockerException, ValueError, OSError) as e:
        error = e
    # outside the except block: the error, which quotes the URL, is no context of this one
    if settings.docker_host:
        raise RuntimeError(_docker_host_error(host_setting, settings.docker_host, error))
    raise RuntimeError(_docker_host_error("DOCKER_HOST", os.environ.get("DOCKER_HOST", ""), error))


def _docker_host_error(setting: str, host: str, error: BaseException) -> str:
    """The error of a refused Docker host, its ``user:pass@`` shown as ``***@``."""
    shown = hide_userinfo(host)
    reason = scrub_userinfo(str(error).replace(host, shown)) if host else str(error)
    userinfo = host.split("://", 1)[-1].rpartition("@")[0] if "@" in host else ""
    password = userinfo.partition(":")[2]
    if any(part and part in reason for part in (userinfo, password)):
        reason = type(error).__name__  # the error quoted it in some other form
    hint = ""
    if password or (userinfo and not host.startswith("ssh://")):
        hint = (
            " (a Docker host URL takes no password: use TLS client certificates, "
            "DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, or ssh://user@host with a key)"
        )
    where = f"{setting} {shown!r}" if host else setting
    return f"{where}: {reason}{hint}"


def build_backends(
    settings: Settings, client: Any, providers: Mapping[str, NodeProvider] | None = None
) -> Backends:
    """The read side; ``providers`` (from ``build_providers``) supply the machines."""
    timeout = settings.source_timeout.total_seconds()
    influx_password = read_secret(
        settings.influxdb_password_file, env_name("influxdb_password_file")
    )
    require_latin1("AUTOSCALER_INFLUXDB_USERNAME", settings.influxdb_username)
    require_latin1(
        f"AUTOSCALER_INFLUXDB_PASSWORD_FILE {settings.influxdb_password_file}: the password",
        influx_password,
    )
    return Backends(
        swarm=SwarmReader(client),
        prometheus=(
            PrometheusClient(settings.prometheus_url, timeout) if settings.prometheus_url else None
        ),
        actuator=ActuatorClient(settings.actuator, timeout) if settings.actuator else None,
        instances=ProviderInstances(providers) if providers else None,
        providers=tuple(sorted(providers or {})),
        influx=(
            InfluxReader(
                settings.influxdb_url,
                settings.influxdb_database,
                settings.influxdb_username,
                influx_password,
                timeout,
                max_bytes=MAX_BODY_BYTES,
            )
            if settings.influxdb_url
            else None
        ),
    )


def build_actuator(
    settings: Settings,
    client: Any,
    rules: RulesStore | None = None,
    providers: Mapping[str, NodeProvider] | None = None,
) -> Actuator:
    """Every action kind to its actuator; a dry run gets the twins that only say "would".

    ``rules`` is the store the loop refreshes each pass: launches read their pool's
    settings from it, so the actuator never reads the files a second time.
    """
    from autoscaler.actuate.dispatch import Dispatcher
    from autoscaler.actuate.machines import MachineActuator
    from autoscaler.actuate.nodes import NodeActuator
    from autoscaler.providers.build import JoinPublisher

    if settings.dry_run:
        twin = DryRunActuator()
        return Dispatcher(services=twin, nodes=twin, machines=twin, notify=twin)
    store = rules if rules is not None else RulesStore(settings.rules)
    if rules is None:
        store.refresh()

    def policies() -> Policies:
        return store.policies

    machines = MachineActuator(
        dict(providers or {}), policies, JoinPublisher(settings, client, policies)
    )
    nodes = NodeActuator(client, policies)
    return Dispatcher(services=SwarmActuator(client), nodes=nodes, machines=machines)
