"""The app's billing products as learned from billing's plans (the ``billing_products`` table).

When ``platform.product_id`` is not set, the products of the plans whose codes map are what
tells "ours, with a mistyped plan code" from "another product's". Kept in the store so every
replica and the CLI's reconciliation see what one of them learned.
"""

from __future__ import annotations

from collections.abc import Mapping

from broker.store.engine.tx import Tx
from broker.store.sql import select_all


def learned_products(db: Tx) -> frozenset[str]:
    """Every product learned so far (empty: nothing learned)."""
    return frozenset(
        str(row["product_id"]) for row in select_all(db, "SELECT product_id FROM billing_products")
    )


def save_learned_products(db: Tx, products: Mapping[str, str], *, now: float) -> None:
    """Record products, each with one mapped plan code that showed it (for the operator)."""
    for product_id, plan_code in sorted(products.items()):
        db.execute(
            "INSERT INTO billing_products (product_id, plan_code, learned_at) VALUES (?, ?, ?)"
            " ON CONFLICT (product_id) DO UPDATE SET plan_code = excluded.plan_code,"
            " learned_at = excluded.learned_at",
            [product_id, plan_code, now],
        )
