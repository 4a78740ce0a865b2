"""Settings -> the real clients, backends and actuator. The only place that builds them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autoscaler.actuate.base import Actuator
from autoscaler.actuate.dryrun import DryRunActuator
from autoscaler.actuate.swarm import SwarmActuator
from autoscaler.providers.base import NodeProvider
from autoscaler.rules.reload import RulesStore
from autoscaler.rules.schema import Policies
from autoscaler.settings import Settings, read_secret
from autoscaler.sources.actuator import ActuatorClient
from autoscaler.sources.collect import Backends
from autoscaler.sources.ec2 import ProviderInstances
from autoscaler.sources.influx import InfluxReader
from autoscaler.sources.prometheus import PrometheusClient
from autoscaler.sources.swarm import SwarmReader

DOCKER_API_VERSION = "1.41"
"""Engine 20.10 and later; pinned so that building the client never calls the engine
(a manager that is down at start-up is then a failed pass, reported and retried)."""


def docker_client(settings: Settings) -> Any:
    import docker

    timeout = max(5, int(settings.source_timeout.total_seconds()))
    if settings.docker_host:
        return docker.DockerClient(
            base_url=settings.docker_host, timeout=timeout, version=DOCKER_API_VERSION
        )
    return docker.from_env(timeout=timeout, version=DOCKER_API_VERSION)


def build_backends(
    settings: Settings, client: Any, providers: Mapping[str, NodeProvider] | None = None
) -> Backends:
    """The read side; ``providers`` (from ``build_providers``) supply the machines."""
    timeout = settings.source_timeout.total_seconds()
    return Backends(
        swarm=SwarmReader(client),
        prometheus=(
            PrometheusClient(settings.prometheus_url, timeout) if settings.prometheus_url else None
        ),
        actuator=ActuatorClient(settings.actuator, timeout) if settings.actuator else None,
        instances=ProviderInstances(providers) if providers else None,
        influx=(
            InfluxReader(
                settings.influxdb_url,
                settings.influxdb_database,
                settings.influxdb_username,
                read_secret(settings.influxdb_password_file),
                timeout,
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
