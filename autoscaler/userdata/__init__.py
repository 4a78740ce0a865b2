"""The script a new worker runs at boot to join the Swarm by itself."""

from autoscaler.userdata.render import JoinSettings, render_user_data

__all__ = ["JoinSettings", "render_user_data"]
