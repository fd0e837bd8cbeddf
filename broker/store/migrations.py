"""The schema's migrations, applied in order at start-up by sqlite-utils' ``Migrations``.

Each runs in its own transaction with the record of it (``_sqlite_migrations``). Append new
migrations to ``SCHEMA``; never edit or rename one that has shipped. Times in the schema are Unix
epoch seconds (REAL). Databases made before this used the broker's own runner, which recorded
numbers in ``_migrations``: ``bridge_old_runner`` carries those over once, before applying.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

import sqlite_utils
from sqlite_utils.migrations import Migrations

from broker.store.engine.tx import SqliteTx, Tx
from broker.store.products import m008_billing_products
from broker.store.schema_identity import m007_zgid_evidence
from broker.store.schema_money import m009_money_events
from broker.store.schema_ops import m006_webhook_refusals
from broker.store.schema_reconcile import m005_reconciliation, m010_missing_in_billing
from broker.store.schema_retention import m011_retention

MIGRATION_SET = "broker"
Migration = Callable[[Tx], None]


def _m001_initial(db: Tx) -> None:
    for statement in _INITIAL_SCHEMA:
        db.execute(statement)


# executescript() would COMMIT behind our back, so the schema is run statement by statement.
_INITIAL_SCHEMA = [
    """
    CREATE TABLE webhook_events (
        event_id TEXT PRIMARY KEY,
        event_type TEXT NOT NULL,
        subscription_id TEXT,
        received_at REAL NOT NULL,
        outcome TEXT NOT NULL,
        reason TEXT,
        content_type TEXT,
        request_id TEXT,
        raw_body BLOB NOT NULL
    )
    """,
    "CREATE INDEX webhook_events_subscription ON webhook_events (subscription_id)",
    """
    CREATE TABLE customers (
        customer_id TEXT PRIMARY KEY,
        zgid TEXT,
        zuid TEXT,
        email TEXT,
        display_name TEXT,
        updated_at REAL NOT NULL
    )
    """,
    """
    CREATE TABLE users (
        zuid TEXT PRIMARY KEY,
        zgid TEXT NOT NULL,
        email TEXT,
        display_name TEXT,
        first_name TEXT,
        last_name TEXT,
        company_name TEXT,
        first_seen_at REAL NOT NULL,
        last_seen_at REAL NOT NULL
    )
    """,
    "CREATE INDEX users_zgid ON users (zgid)",
    """
    CREATE TABLE subscriptions (
        subscription_id TEXT PRIMARY KEY,
        customer_id TEXT,
        zgid TEXT,
        zuid TEXT,
        bound_email TEXT,
        status TEXT,
        plan_code TEXT,
        billing_json TEXT,
        billing_updated_at REAL,
        billing_source TEXT,
        decision TEXT,
        queued_json TEXT,
        acked_json TEXT,
        parked_reason TEXT,
        updated_at REAL NOT NULL
    )
    """,
    "CREATE INDEX subscriptions_zgid ON subscriptions (zgid)",
    # What landing visits said about subscriptions; believed only once billing vouches for it.
    """
    CREATE TABLE landing_claims (
        subscription_id TEXT NOT NULL,
        zgid TEXT NOT NULL,
        zuid TEXT NOT NULL,
        email TEXT,
        claimed_at REAL NOT NULL,
        PRIMARY KEY (subscription_id, zgid)
    )
    """,
    "CREATE INDEX subscriptions_customer ON subscriptions (customer_id)",
    """
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        subscription_id TEXT NOT NULL REFERENCES subscriptions (subscription_id),
        target_json TEXT NOT NULL,
        cause TEXT NOT NULL,
        state TEXT NOT NULL CHECK (
            state IN ('pending', 'in_flight', 'done', 'dead', 'superseded')
        ),
        action TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        uncertain INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        first_attempt_at REAL,
        next_attempt_at REAL NOT NULL,
        lease_owner TEXT,
        lease_expires_at REAL,
        finished_at REAL,
        last_status INTEGER,
        last_error TEXT
    )
    """,
    "CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at)",
    "CREATE INDEX deliveries_subscription ON deliveries (subscription_id, state)",
    """
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id INTEGER NOT NULL REFERENCES deliveries (id),
        started_at REAL NOT NULL,
        latency_ms REAL NOT NULL,
        method TEXT NOT NULL,
        url TEXT NOT NULL,
        request_body TEXT NOT NULL,
        status INTEGER,
        outcome TEXT NOT NULL,
        error TEXT,
        response_excerpt TEXT
    )
    """,
    "CREATE INDEX attempts_delivery ON attempts (delivery_id)",
]


def _m002_page(db: Tx) -> None:
    for statement in _PAGE_SCHEMA:
        db.execute(statement)


_PAGE_SCHEMA = [
    # Every action taken on the Manage Subscription page: who, what, when, and how it ended.
    """
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        zuid TEXT NOT NULL,
        zgid TEXT NOT NULL,
        action TEXT NOT NULL,
        subscription_id TEXT,
        detail TEXT,
        result TEXT NOT NULL,
        request_id TEXT
    )
    """,
    "CREATE INDEX audit_log_zgid ON audit_log (zgid, at)",
    # Hosted pages we opened, so a return can be checked against the org that started it.
    """
    CREATE TABLE checkouts (
        hostedpage_id TEXT PRIMARY KEY,
        zgid TEXT NOT NULL,
        zuid TEXT NOT NULL,
        action TEXT NOT NULL,
        subscription_id TEXT,
        form_json TEXT NOT NULL,
        created_at REAL NOT NULL,
        status TEXT NOT NULL DEFAULT 'created',
        finished_at REAL
    )
    """,
]


def _m003_oidc_flows(db: Tx) -> None:
    # Sign in with Zoho: each started sign-in, keyed by its random state, taken once. In the
    # database so that any process or replica can finish a sign-in another one started.
    db.execute(
        """
        CREATE TABLE oidc_flows (
            state TEXT PRIMARY KEY,
            browser_hash TEXT NOT NULL,
            nonce TEXT NOT NULL,
            code_verifier TEXT,
            redirect_uri TEXT NOT NULL,
            hints_json TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX oidc_flows_expires ON oidc_flows (expires_at)")


def _m004_verified_visits(db: Tx) -> None:
    for statement in _VERIFIED_VISITS_SCHEMA:
        db.execute(statement)


_VERIFIED_VISITS_SCHEMA = [
    # Nonces of signed landing links already used, kept until their link could not verify
    # anyway (ts + tolerance), so a replay is refused across restarts and replicas.
    """
    CREATE TABLE landing_nonces (
        nonce TEXT PRIMARY KEY,
        used_at REAL NOT NULL,
        expires_at REAL NOT NULL
    )
    """,
    "CREATE INDEX landing_nonces_expiry ON landing_nonces (expires_at)",
    # How the visit that bound a user (and made a claim) was verified: signed, zoho, or NULL
    # for an unverified one (verify = "none", or recorded before verification existed). Only
    # verified bindings supply a zgid and only verified claims release parked subscriptions.
    "ALTER TABLE users ADD COLUMN verified_by TEXT",
    "ALTER TABLE landing_claims ADD COLUMN verified_by TEXT",
]


# In order. The number is what the old runner recorded in ``_migrations`` (see the bridge).
SCHEMA: tuple[tuple[int, str, Migration], ...] = (
    (1, "m001_initial", _m001_initial),
    (2, "m002_audit_log_and_checkouts", _m002_page),
    (3, "m003_sign_in_with_zoho_flows", _m003_oidc_flows),
    (4, "m004_landing_nonces_and_verified_visits", _m004_verified_visits),
    (5, "m005_reconciliation", m005_reconciliation),
    (6, "m006_webhook_refusals", m006_webhook_refusals),
    (7, "m007_zgid_evidence_and_binding_requests", m007_zgid_evidence),
    (8, "m008_billing_products", m008_billing_products),
    (9, "m009_money_events", m009_money_events),
    (10, "m010_missing_in_billing", m010_missing_in_billing),
    (11, "m011_retention_pruning", m011_retention),
)


def broker_migrations() -> Migrations:
    """The broker's migration set, built on each call so that no registry lives at import."""
    migrations = Migrations(MIGRATION_SET)
    for _, name, migrate in SCHEMA:
        migrations(name=name)(_on_sqlite(migrate))
    return migrations


def _on_sqlite(migrate: Migration) -> Callable[[sqlite_utils.Database], None]:
    def run(db: sqlite_utils.Database) -> None:
        migrate(SqliteTx(db.conn))

    return run


def apply_migrations(tx: SqliteTx) -> list[str]:
    """Apply every migration not yet recorded; return the names applied."""
    db = sqlite_utils.Database(tx.conn)
    migrations = broker_migrations()
    with db.atomic():
        bridge_old_runner(db, migrations)
    pending = [migration.name for migration in migrations.pending(db)]
    migrations.apply(db)
    return pending


def bridge_old_runner(db: sqlite_utils.Database, migrations: Migrations) -> None:
    """Record as applied what the broker's former runner applied (numbers in ``_migrations``).

    Its table stays, so an older broker started on this database still sees its own record and
    applies nothing twice.
    """
    if not db["_migrations"].exists():
        return
    migrations.ensure_migrations_table(db)
    recorded = {migration.name for migration in migrations.applied(db)}
    names = {number: name for number, name, _ in SCHEMA}
    for row in db.query("SELECT id, applied_at FROM _migrations ORDER BY id"):
        name = names.get(row["id"])
        if name is None or name in recorded:
            continue
        applied_at = datetime.datetime.fromtimestamp(row["applied_at"], datetime.UTC)
        db.table(Migrations.migrations_table).insert(
            {"migration_set": MIGRATION_SET, "name": name, "applied_at": str(applied_at)}
        )
