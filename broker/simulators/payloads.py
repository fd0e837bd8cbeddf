"""Webhook payloads in Zoho Billing's default shape (docs/contracts.md §3), built in one place.

The tests, the benchmark and anything else that posts a hand-made event use this builder, so the
shape the broker is tested with and measured with is one shape. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any


def custom_field(number: int, name: str, value: str) -> dict[str, str]:
    """A customer custom field as Zoho lists it (``cf_zuid``, ``cf_zgid``)."""
    return {
        "customfield_id": str(number),
        "label": name,
        "api_name": f"cf_{name}",
        "value": value,
        "data_type": "string",
    }


def subscription_webhook(
    *,
    event_id: str,
    event_type: str,
    subscription_id: str,
    status: str,
    plan_code: str,
    quantity: int,
    addons: list[dict[str, Any]],
    updated_time: str,
    customer_id: str,
    email: str,
    zuid: str | None,
    zgid: str | None,
    interval_unit: str = "months",
    org_name: str = "Example Org",
    plan_name: str = "Test plan",
    subscription_number: str = "SUB-00001",
    **subscription_extra: Any,
) -> dict[str, Any]:
    """A subscription event with its snapshot; a ``None`` zuid or zgid leaves that field out."""
    custom_fields = [
        custom_field(number, name, value)
        for number, name, value in ((1, "zuid", zuid), (2, "zgid", zgid))
        if value is not None
    ]
    subscription = {
        "subscription_id": subscription_id,
        "subscription_number": subscription_number,
        "status": status,
        "name": plan_name,
        "interval": 1,
        "interval_unit": interval_unit,
        "current_term_starts_at": "2026-11-01",
        "current_term_ends_at": "2026-11-30",
        "next_billing_at": "2026-12-01",
        "created_time": "2026-11-01T09:00:00+0530",
        "updated_time": updated_time,
        "amount": 100.0,
        "currency_code": "USD",
        "plan": {
            "plan_code": plan_code,
            "plan_id": "5000000001",
            "name": "Pro",
            "price": 20.0,
            "quantity": quantity,
        },
        "addons": addons,
        "customer_id": customer_id,
        "customer": {
            "customer_id": customer_id,
            "display_name": org_name,
            "first_name": "Ada",
            "last_name": "Owner",
            "email": email,
            "company_name": org_name,
            "custom_fields": custom_fields,
            "custom_field_hash": {},
        },
        "custom_fields": [],
        **subscription_extra,
    }
    return {
        "event_id": event_id,
        "event_type": event_type,
        "event_source": "api",
        "event_time": "2026-11-21",
        "event_time_formatted": "21/11/2026",
        "created_time": "2026-11-21T10:00:00+0530",
        "data": {"subscription": subscription},
    }
