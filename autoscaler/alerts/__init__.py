"""Alerting: alert rules, Alertmanager-compatible routing, silences and delivery."""
