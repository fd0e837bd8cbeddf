"""Does a plan code's frequency agree with how billing actually bills? Pure, no I/O.

docs/contracts.md §1: the plan code decides the frequency (``_Y`` yearly, else monthly). A plan
whose code says one thing while billing's ``interval``/``interval_unit`` say another is a vendor
mistake in Zoho Billing: the broker still follows the code (the contract's rule), but says so,
so the operator can fix the plan instead of finding out from a customer.
"""

from __future__ import annotations

# interval_unit -> months per unit; Zoho sends the plural, the singular costs nothing to accept.
MONTHS_PER_UNIT = {"months": 1, "month": 1, "years": 12, "year": 12}


def interval_warning(
    plan_code: str, *, yearly: bool, interval: int | None, interval_unit: str | None
) -> str | None:
    """Why the billing interval contradicts the plan code's frequency, or None when it agrees
    or billing did not say (no ``interval_unit``)."""
    if not interval_unit:
        return None
    unit = interval_unit.strip().lower()
    count = interval if interval is not None and interval > 0 else 1
    per_unit = MONTHS_PER_UNIT.get(unit)
    expected = 12 if yearly else 1
    if per_unit is not None and per_unit * count == expected:
        return None
    said = "yearly (ends in _Y)" if yearly else "monthly (no _Y suffix)"
    return (
        f"plan code {plan_code!r} says {said} but billing bills every {count} {unit}: "
        f"sent as {'yearly' if yearly else 'monthly'}, following the plan code; fix the plan's "
        "code or its billing interval in Zoho Billing"
    )
