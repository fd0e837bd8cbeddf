"""Whether a billing subscription is this app's: the one rule the pipeline, the page and
reconciliation share, so a plan code cannot be "ours" in one place and "not ours" in another.

A plan code maps when it starts with ``{app_domain}_`` in any letter case (``parse_plan_code``).
One that does not map is still ours when it belongs to the app's billing product (the
``platform.product_id`` setting, or the products of the mapped plans learned from billing): a
paying customer of a mistyped plan code, whom the vendor must be told about. Where the product
cannot be known (no setting, nothing learned, or no ``product_id`` on the subscription), a
vendor would rather be told than lose a paying customer, so the answer is "unmapped" too.
Pure: no I/O.
"""

from __future__ import annotations

from enum import StrEnum


class Ownership(StrEnum):
    """How a subscription's plan code and product relate to this app."""

    MAPPED = "mapped"  # the plan code maps to a Developer Console plan
    UNMAPPED = "unmapped_plan"  # ours (or possibly ours) but the plan code does not map
    OTHER_PRODUCT = "other_product"  # another billing product's: not ours, quietly


def has_app_prefix(plan_code: str, app_domain: str) -> bool:
    """The one case rule: the app domain prefix is compared without regard to ASCII letter case.

    Only ASCII folds (app domains are ASCII), so a look-alike such as the Kelvin sign, which
    ``str.lower`` turns into ``k``, never passes for a letter of the prefix."""
    prefix = f"{app_domain}_"
    head = plan_code[: len(prefix)]
    return head.isascii() and head.lower() == prefix.lower()


def ownership(
    *,
    plan_maps: bool,
    product_id: str | None,
    our_products: frozenset[str],
) -> Ownership:
    """Classify a subscription by whether its plan code maps and which product it belongs to."""
    if plan_maps:
        return Ownership.MAPPED
    if our_products and product_id:
        return Ownership.UNMAPPED if product_id in our_products else Ownership.OTHER_PRODUCT
    return Ownership.UNMAPPED


def our_products(setting: str | None, learned: frozenset[str]) -> frozenset[str]:
    """The app's billing products: the setting when given, else what was learned."""
    return frozenset({setting}) if setting else learned
