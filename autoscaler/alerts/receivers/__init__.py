"""Where notifications go: Slack, email, a generic webhook, an Alertmanager."""
