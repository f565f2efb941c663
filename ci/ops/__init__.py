"""Ops checks: Prometheus rules and alerts, Alertmanager routes, dashboards, runbooks."""
