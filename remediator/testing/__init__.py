"""In-process fake servers speaking real wire contracts (Slack, Jira), for tests and demos."""
