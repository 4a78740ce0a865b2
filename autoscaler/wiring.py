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


def docker_client(settings: Settings) -> Any:
    import docker

    timeout = max(5, int(settings.source_timeout.total_seconds()))
    if settings.docker_host:
        return docker.DockerClient(base_url=settings.docker_host, timeout=timeout)
    return docker.from_env(timeout=timeout)


def build_backends(settings: Settings, client: Any) -> Backends:
    timeout = settings.source_timeout.total_seconds()
    return Backends(
        swarm=SwarmReader(client),
        prometheus=(
            PrometheusClient(settings.prometheus_url, timeout) if settings.prometheus_url else None
        ),
        actuator=ActuatorClient(settings.actuator, timeout) if settings.actuator else None,
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
    return DryRunActuator() if settings.dry_run else SwarmActuator(client)
