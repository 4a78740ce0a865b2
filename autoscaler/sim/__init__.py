"""Backtests: replay demand through the production planner on a simulated Swarm pool."""
