"""remediator's own metrics (prometheus-client), on one registry per process.

The names here are a contract: deploy/ alerts and dashboards use them.
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: how often the event loop's lag is sampled (real seconds)
LOOP_LAG_INTERVAL = 0.25
_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_DURATION_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800)


class Metrics:
    """Every metric remediator exports. One instance per daemon (tests make their own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.webhook_requests = Counter(
            "remediator_webhook_requests", "Webhook requests by HTTP status code.",
            ["code"], registry=r)
        self.alerts_received = Counter(
            "remediator_alerts_received", "Alerts received, by outcome "
            "(new, duplicate, resolved, unmatched, stale).", ["outcome"], registry=r)
        self.incidents = Counter(
            "remediator_incidents", "Incidents closed, by playbook and final state.",
            ["playbook", "outcome"], registry=r)
        self.incidents_opened = Counter(
            "remediator_incidents_opened", "Incidents opened, by playbook.", ["playbook"],
            registry=r)
        self.incidents_open = Gauge(
            "remediator_incidents_open", "Incidents not closed (escalated ones that still "
            "fire included), as the store counts them at the last scrape.", registry=r)
        self.incidents_running = Gauge(
            "remediator_incidents_running", "Incident runs in progress in this process.",
            registry=r)
        self.actions = Counter(
            "remediator_actions", "Actions by name and result "
            "(success, noop, dry_run, temporary_error, permanent_error).",
            ["action", "result"], registry=r)
        self.step_duration = Histogram(
            "remediator_step_duration_seconds", "Duration of a step's action, retries included.",
            ["action"], buckets=_DURATION_BUCKETS, registry=r)
        self.verify_duration = Histogram(
            "remediator_verify_duration_seconds", "Duration of a step's verification.",
            ["outcome"], buckets=_DURATION_BUCKETS, registry=r)
        self.time_to_recover = Histogram(
            "remediator_time_to_recover_seconds", "From the alert's start to recovery.",
            ["playbook"], buckets=_DURATION_BUCKETS, registry=r)
        self.time_to_acknowledge = Histogram(
            "remediator_time_to_acknowledge_seconds",
            "From the alert's start to a human's acknowledgement (MTTA).",
            ["playbook"], buckets=_DURATION_BUCKETS, registry=r)
        self.queue_depth = Gauge(
            "remediator_queue_depth", "Incidents waiting for a worker.", registry=r)
        self.guard_refusals = Counter(
            "remediator_guard_refusals", "Steps or incidents refused by a guard.", ["guard"],
            registry=r)
        self.escalations = Counter(
            "remediator_escalations", "Escalations to humans, by playbook and reason.",
            ["playbook", "reason"], registry=r)
        self.automation_paused = Gauge(
            "remediator_automation_paused", "1 while automation is paused (kill switch or "
            "action budget spent).", registry=r)
        self.notifications_failed = Counter(
            "remediator_notifications_failed", "Notification deliveries that failed, by sink.",
            ["sink"], registry=r)
        self.dependency_up = Gauge(
            "remediator_dependency_up", "1 when a dependency answered its last call or "
            "probe, 0 when it could not be reached (connection refused, timeout); "
            "absent until it is first seen.", ["dependency"], registry=r)
        self.store_pruned_rows = Counter(
            "remediator_store_pruned_rows", "Rows deleted by the store's retention passes, "
            "by table.", ["table"], registry=r)
        self.event_loop_lag = Histogram(
            "remediator_event_loop_lag_seconds", "How late a timer of the event loop ran "
            f"(sampled every {LOOP_LAG_INTERVAL} s): time the loop was busy with other work "
            "(a webhook's parse, a slow callback) before it could serve the next one.",
            buckets=_LAG_BUCKETS, registry=r)
        # the labelled children counted on every webhook, looked up once (``labels()``
        # checks and joins its arguments under a lock on every call)
        self._webhook_codes: dict[int, Counter] = {}
        self._alert_outcomes: dict[str, Counter] = {}

    def count_webhook(self, status: int) -> None:
        """One webhook request answered with ``status``."""
        child = self._webhook_codes.get(status)
        if child is None:
            child = self._webhook_codes[status] = self.webhook_requests.labels(str(status))
        child.inc()

    def count_alerts(self, outcome: str, n: int = 1) -> None:
        """``n`` alerts received with ``outcome``."""
        child = self._alert_outcomes.get(outcome)
        if child is None:
            child = self._alert_outcomes[outcome] = self.alerts_received.labels(outcome)
        child.inc(n)


async def watch_loop_lag(histogram: Histogram, interval: float = LOOP_LAG_INTERVAL) -> None:
    """Forever: sleep ``interval`` and observe how much later than asked the loop woke us
    (real time, ``perf_counter``; about a millisecond of it is timer granularity)."""
    while True:
        due = time.perf_counter() + interval
        await asyncio.sleep(interval)
        histogram.observe(max(0.0, time.perf_counter() - due))
