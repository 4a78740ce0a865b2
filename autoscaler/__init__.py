"""Autoscaler and monitoring sidecar for ShinyProxy on Docker Swarm."""

__version__ = "0.1.0"
