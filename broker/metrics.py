"""Prometheus metrics, one registry per app (no process-global collectors, so tests stay apart)."""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from broker import __version__


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # Which build answers: the same version `broker --version` prints and /ops shows.
        self.build = Info("broker_build", "The running broker's version", registry=self.registry)
        self.build.info({"version": __version__, "python": platform.python_version()})
        self.webhooks = Counter(
            "broker_webhooks_total",
            "Billing webhooks answered, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.money_events = Counter(
            "broker_money_events_total",
            "Refunds, chargebacks, voided invoices and credit notes received, by kind and what"
            " the vendor's setting made of them (record or withhold)",
            ["kind", "verdict"],
            registry=self.registry,
        )
        self.platform_calls = Counter(
            "broker_platform_calls_total",
            "Developer Console calls, by action and outcome",
            ["action", "outcome"],
            registry=self.registry,
        )
        self.deliveries_finished = Counter(
            "broker_deliveries_finished_total",
            "Deliveries that reached a final state",
            ["state"],
            registry=self.registry,
        )
        self.platform_latency = Histogram(
            "broker_platform_call_seconds",
            "Latency of Developer Console calls",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.unrecorded_answers = Gauge(
            "broker_unrecorded_platform_answers",
            "Platform answers held in this process because the store could not record them yet",
            registry=self.registry,
        )
        self.record_retries = Counter(
            "broker_platform_answer_record_retries_total",
            "Failed attempts to record a platform answer (the store was unavailable); retried",
            registry=self.registry,
        )
        self.slow_calls = Counter(
            "broker_slow_platform_calls_total",
            "Platform calls that ran past delivery.slow_call_seconds: moved to the slow share, "
            "or cut short because it was full",
            ["outcome"],
            registry=self.registry,
        )
        # Read from the database at each scrape, so they hold whichever process delivers.
        self.deliveries = Gauge(
            "broker_deliveries",
            "Deliveries in the outbox, by state",
            ["state"],
            registry=self.registry,
        )
        self.oldest_pending = Gauge(
            "broker_oldest_pending_delivery_seconds",
            "Age of the oldest delivery still waiting to reach the platform (0 if none)",
            registry=self.registry,
        )
        self.landing_visits = Counter(
            "broker_landing_visits_total",
            "Manage Subscription page visits, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.reconcile_runs = Counter(
            "broker_reconcile_runs_total",
            "Reconciliation runs, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.reconcile_drift = Counter(
            "broker_reconcile_drift_total",
            "Differences reconciliation found between billing and the broker, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.webhooks_refused = Counter(
            "broker_webhooks_refused_total",
            "Billing webhooks answered with an error, by reason (web.webhook_refusals)",
            ["reason"],
            registry=self.registry,
        )
        # Read from the database at each scrape, like the outbox gauges.
        self.parked = Gauge(
            "broker_parked_subscriptions",
            "Subscriptions waiting for their org (no zgid or zuid yet) before the platform hears",
            registry=self.registry,
        )
        # Read from the database at each scrape: two subscriptions billing one org (the
        # platform keeps one; ``core.org_billing``), until the duplicate is cancelled.
        self.conflicts = Gauge(
            "broker_subscription_conflicts",
            "Subscriptions that bill in an org whose platform subscription is another one",
            registry=self.registry,
        )
        # Labelled by route template ("GET /subscriptions/{id}"), never by a raw id.
        self.billing_calls = Counter(
            "broker_billing_calls_total",
            "Zoho Billing API calls (each attempt), by endpoint and outcome",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        # Read from the database at each scrape: the day's budget is shared by every replica.
        self.billing_calls_today = Gauge(
            "broker_billing_calls_today",
            "Zoho Billing calls counted today against billing.daily_call_limit (all replicas)",
            registry=self.registry,
        )
        self.billing_calls_left = Gauge(
            "broker_billing_calls_left",
            "Zoho Billing calls left today (0 while billing's own quota answer is in force)",
            registry=self.registry,
        )
        self.billing_daily_limit = Gauge(
            "broker_billing_daily_call_limit",
            "billing.daily_call_limit: the calls a day the budget allows",
            registry=self.registry,
        )
        self.billing_latency = Histogram(
            "broker_billing_call_seconds",
            "Latency of Zoho Billing API calls, by endpoint",
            ["endpoint"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.ops_login_refused = Counter(
            "broker_ops_login_refused_total",
            "Console sign-ins refused, by reason (wrong_password, empty, address_limit,"
            " global_limit, hashing_busy)",
            ["reason"],
            registry=self.registry,
        )
