"""Telling humans: notification sinks (console, Slack, Jira) fed by the engine's events."""
