"""The broker's schema: one module per migration, applied in ``SCHEMA``'s order by ``runner``.

To add a migration:

1. Copy the newest module to ``mNNN_<what_it_adds>.py`` (the next number) and give it a
   docstring saying what the schema gains and why.
2. Write its statements in ``MIGRATION = Migration("mNNN_<what_it_adds>", ...)``: a plain string
   when SQLite and PostgreSQL agree, a ``Ddl(sqlite=..., postgresql=...)`` where they differ
   (``REAL``/``DOUBLE PRECISION``, ``BLOB``/``BYTEA``, ``INTEGER``/``BIGINT``,
   ``AUTOINCREMENT``/identity). Times are Unix epoch seconds.
3. Append it to ``SCHEMA`` below. Never edit, rename or reorder a migration that has shipped:
   stores record each by name in ``broker_migrations`` and apply it once.

Each migration runs in its own transaction with its record, so a failed one leaves the schema
as it was.
"""

from __future__ import annotations

from broker.store.migrations import (
    m001_initial,
    m002_audit_log_and_checkouts,
    m003_sign_in_with_zoho_flows,
    m004_landing_nonces_and_verified_visits,
    m005_reconciliation,
    m006_webhook_refusals,
    m007_zgid_evidence_and_binding_requests,
    m008_billing_products,
    m009_money_events,
    m010_missing_in_billing,
    m011_store_generation,
    m012_subscription_state_and_reason,
    m013_ops_sessions,
    m014_billing_call_budget,
    m015_retention_pruning,
)
from broker.store.migrations.migration import Migration

# In order. A store made by the broker's first runner recorded positions (1, 2, ...) in
# ``_migrations``: the runner reads them as indexes into this tuple, once.
SCHEMA: tuple[Migration, ...] = (
    m001_initial.MIGRATION,
    m002_audit_log_and_checkouts.MIGRATION,
    m003_sign_in_with_zoho_flows.MIGRATION,
    m004_landing_nonces_and_verified_visits.MIGRATION,
    m005_reconciliation.MIGRATION,
    m006_webhook_refusals.MIGRATION,
    m007_zgid_evidence_and_binding_requests.MIGRATION,
    m008_billing_products.MIGRATION,
    m009_money_events.MIGRATION,
    m010_missing_in_billing.MIGRATION,
    m011_store_generation.MIGRATION,
    m012_subscription_state_and_reason.MIGRATION,
    m013_ops_sessions.MIGRATION,
    m014_billing_call_budget.MIGRATION,
    m015_retention_pruning.MIGRATION,
)
