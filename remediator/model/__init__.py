"""Pure data: Alertmanager webhooks, playbooks, incidents. No I/O here."""
