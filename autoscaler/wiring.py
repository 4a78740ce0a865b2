"""Settings -> the real clients, backends and actuator. The only place that builds them."""

from __future__ import annotations

from typing import Any

from autoscaler.actuate.base import Actuator
from autoscaler.actuate.dryrun import DryRunActuator
from autoscaler.actuate.swarm import SwarmActuator
from autoscaler.settings import Settings, read_secret
from autoscaler.sources.actuator import ActuatorClient
from autoscaler.sources.collect import Backends
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


def build_backends(settings: Settings, client: Any) -> Backends:
    timeout = settings.source_timeout.total_seconds()
    return Backends(
        swarm=SwarmReader(client),
        prometheus=(
            PrometheusClient(settings.prometheus_url, timeout) if settings.prometheus_url else None
        ),
        actuator=ActuatorClient(settings.actuator, timeout) if settings.actuator else None,
        instances=_instances(settings),
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


def build_actuator(settings: Settings, client: Any) -> Actuator:
    from autoscaler.actuate.dispatch import Dispatcher
    from autoscaler.actuate.machines import MachineActuator
    from autoscaler.actuate.nodes import NodeActuator
    from autoscaler.actuate.nodes_dryrun import NodeDryRun
    from autoscaler.providers.build import JoinPublisher, build_providers
    from autoscaler.rules.reload import RulesStore

    if settings.dry_run:
        twin = NodeDryRun()
        return Dispatcher(services=DryRunActuator(), nodes=twin, machines=twin, notify=twin)
    rules = RulesStore(settings.rules)

    def policies() -> Any:
        rules.refresh()
        return rules.policies

    machines = MachineActuator(
        build_providers(settings), policies, JoinPublisher(settings, client, policies)
    )
    return Dispatcher(services=SwarmActuator(client), nodes=NodeActuator(client), machines=machines)


def _instances(settings: Settings) -> Any:
    from autoscaler.providers.build import build_providers
    from autoscaler.sources.ec2 import ProviderInstances

    providers = build_providers(settings)
    return ProviderInstances(providers) if providers else None
