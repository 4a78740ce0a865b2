"""Fixtures live in plugin modules, one per area, so they can grow independently."""

pytest_plugins = [
    "tests.fixtures_backends",
    "tests.fixtures_swarm",
]
