"""Adapters: the only modules that import third-party client libraries.

Each implements a port of ``remediator.ports`` (kubernetes → ClusterApi, prometheus →
MetricsApi, alertmanager → AlertsApi, slack → ChatApi, jira → TrackerApi, http →
HttpApi); ``remediator.app`` wires them in and makes mypy check that they conform.
"""
