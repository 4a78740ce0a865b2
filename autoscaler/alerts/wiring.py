"""Settings -> the sidecar's Alerting."""

from __future__ import annotations

from autoscaler.alerts.manager import Alerting
from autoscaler.metrics import SidecarMetrics
from autoscaler.settings import Settings
from autoscaler.sources.prometheus import PrometheusClient


def build_alerting(settings: Settings, metrics: SidecarMetrics) -> Alerting:
    state = (
        settings.alerts_state_dir
        if settings.alerts_state_dir and str(settings.alerts_state_dir)
        else None
    )
    return Alerting(
        metrics=metrics,
        state_dir=state,
        prometheus=(
            PrometheusClient(settings.prometheus_url, settings.source_timeout.total_seconds())
            if settings.prometheus_url
            else None
        ),
        external_url=settings.external_url,
        stall_after=settings.alerts_stall_after,
    )
