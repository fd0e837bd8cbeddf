"""What Zoho Billing's OpenAPI documents say about each call the broker makes, transcribed by hand
(not read at test time) from the documents in github.com/Letstream/zoho-billing-python-sdk,
folder ``specs/`` (commit 2bf0952194ce95f8645f7ad6da35021cfbb92fe8). Each entry names its source.

``request``: the documented keys of the JSON body, nested objects as their own sets (``plan``,
``addons[]`` for each list item). ``query``: documented query parameters. ``wrapper``: the key the
answer puts the resource under; ``fields``: the fields the broker reads, with their documented JSON
types. Only what the broker sends or reads is transcribed: a complete copy would hide what matters.

``wrapper`` None: the answer is flat (``GET /hostedpages/{id}``), the fields at the top level.
``nested``: fields of an object inside the resource, by dotted path (``data.subscription``).
``values``: a field's documented words (a hosted page's ``status``). ``only_documented``: list items
carry no field the document does not list (``GET /events`` items: id, type and time only).
``unsure_query``: parameters the broker sends that the document does not list, each justified
in docs/contracts.md as [unsure] (paging on the events list).

Not here: pause / resume, which the documents do not have at all (docs/contracts.md §4 marks
them [seen]).
"""

from __future__ import annotations

from dataclasses import dataclass, field

JSON_TYPES = {"string": str, "integer": int, "number": (int, float), "array": list, "object": dict}


@dataclass(frozen=True)
class Documented:
    method: str
    path: str  # with {id} for a path parameter
    source: str
    request: dict[str, frozenset[str]] = field(default_factory=dict)
    query: frozenset[str] = frozenset()
    wrapper: str | None = None
    fields: dict[str, str] = field(default_factory=dict)  # field -> JSON type
    status: int = 200
    nested: dict[str, dict[str, str]] = field(default_factory=dict)  # dotted path -> fields
    values: dict[str, frozenset[str]] = field(default_factory=dict)  # field -> documented words
    only_documented: bool = False
    unsure_query: frozenset[str] = frozenset()


def words(text: str) -> frozenset[str]:
    """The names in a block of text, as transcribed from a document's list."""
    return frozenset(text.split())


CUSTOM_FIELD_REQUEST = frozenset({"label", "value"})
PLAN_REQUEST = words(
    """
plan_code plan_description price setup_fee setup_fee_tax_id quantity tags
item_custom_fields tax_id tax_exemption_id tax_exemption_code
setup_fee_tax_exemption_id setup_fee_tax_exemption_code exclude_trial
exclude_setup_fee billing_cycles trial_days
    """
)
ADDON_REQUEST = words(
    """
addon_code addon_description price quantity tags item_custom_fields tax_id
tax_exemption_id tax_exemption_code
    """
)
HOSTED_PAGE_ANSWER = {
    "hostedpage_id": "string",
    "status": "string",
    "url": "string",
    "action": "string",
    "expiring_time": "string",
    "created_time": "string",
}
# The subscription object as specs/hosted-pages.yml components.schemas.subscription documents it
# (the fields the broker reads).
SUBSCRIPTION_FIELDS = {
    "subscription_id": "string",
    "name": "string",
    "status": "string",
    "current_term_ends_at": "string",
    "next_billing_at": "string",
    "interval": "integer",
    "interval_unit": "string",
    "created_time": "string",
    "updated_time": "string",
    "plan": "object",
    "addons": "array",
    "customer": "object",
    "custom_fields": "array",
}
# specs/hosted-pages.yml components.schemas.status: "fresh, read, success, failed, cancelled or
# force_cancelled".
HOSTED_PAGE_STATUSES = words("fresh read success failed cancelled force_cancelled")
# specs/hosted-pages.yml components.schemas.action.
HOSTED_PAGE_ACTIONS = words("new_subscription update_subscription update_card one_time_addon")
# specs/events.yml components.schemas.event_id, event_type, event_time (all strings).
EVENT_ITEM_FIELDS = {"event_id": "string", "event_type": "string", "event_time": "string"}
# Paging on the events list is not documented (docs/contracts.md, Paging: [unsure]); the broker
# pages every list the same way.
UNSURE_PAGING = frozenset({"page", "per_page"})
CUSTOMER_FIELDS = {
    "customer_id": "string",
    "display_name": "string",
    "email": "string",
    "custom_fields": "array",
}

DOCUMENTED: list[Documented] = [
    Documented(
        "POST",
        "/hostedpages/newsubscription",
        "specs/hosted-pages.yml paths./hostedpages/newsubscription.post; "
        "components.schemas.create-a-subscription-request, create-a-subscription-response",
        request={
            "": words(
                """
customer_id pricebook_id customer contactpersons plan addons reference_id
starts_at custom_fields coupon_code redirect_url salesperson_name template_id
can_charge_setup_fee_immediately exchange_rate place_of_supply gst_treatment
gst_no cfdi_usage payment_gateways billing_address_id shipping_address_id
branch_id
    """
            ),
            # No custom_fields on the customer: zuid / zgid cannot go there.
            "customer": words(
                """
display_name salutation first_name last_name email company_name billing_address
shipping_address pricebook_id payment_terms payment_terms_label exchange_rate
currency_code vat_treatment vat_reg_no country_code is_taxable tax_id
tax_authority_id tax_authority_name tax_exemption_id tax_exemption_code
default_templates place_of_contact gst_no gst_treatment
    """
            ),
            "plan": PLAN_REQUEST,
            "addons[]": ADDON_REQUEST,
            "custom_fields[]": CUSTOM_FIELD_REQUEST,
        },
        wrapper="hostedpage",
        fields=HOSTED_PAGE_ANSWER,
        status=201,
    ),
    Documented(
        "POST",
        "/hostedpages/updatesubscription",
        "specs/hosted-pages.yml paths./hostedpages/updatesubscription.post; "
        "components.schemas.update-a-subscription-request, update-a-subscription-response",
        request={
            "": words(
                """
subscription_id plan addons reference_id starts_at custom_fields coupon_code
salesperson_name can_charge_setup_fee_immediately gst_treatment gst_no
cfdi_usage payment_gateways exchange_rate place_of_supply billing_address_id
shipping_address_id branch_id template_id redirect_url
    """
            ),
            "plan": PLAN_REQUEST,
            "addons[]": ADDON_REQUEST,
            "custom_fields[]": CUSTOM_FIELD_REQUEST,
        },
        wrapper="hostedpage",
        fields=HOSTED_PAGE_ANSWER,
        status=201,
    ),
    Documented(
        "GET",
        "/customers",
        "specs/customers.yml paths./customers.get (filter_by Status.All... in its description); "
        "components.schemas.list-all-customers-response (items: no custom_fields)",
        query=frozenset({"filter_by", "page", "per_page"}),
        wrapper="customers",
        fields={"customer_id": "string", "display_name": "string", "email": "string"},
    ),
    Documented(
        "GET",
        "/customers/{id}",
        "specs/customers.yml paths./customers/{customer_id}.get; "
        "components.schemas.retrieve-a-customer-response (customer-response)",
        wrapper="customer",
        fields=CUSTOMER_FIELDS,
    ),
    Documented(
        "PUT",
        "/customers/{id}",
        "specs/customers.yml paths./customers/{customer_id}.put; "
        "components.schemas.update-a-customer-request, update-a-customer-response",
        request={
            "": words(
                """
display_name salutation first_name last_name email tags company_name phone
mobile billing_address shipping_address fax currency_code twitter facebook skype
is_portal_enabled gst_no gst_treatment place_of_contact vat_treatment vat_reg_no
is_taxable tax_id tax_authority_id tax_authority_name tax_exemption_id
tax_exemption_code default_templates tax_reg_no tds_tax_id tax_treatment
tax_regime is_tds_registered custom_fields
    """
            ),
            "custom_fields[]": frozenset({"index", "value", "label", "data_type"}),
        },
        wrapper="customer",
        fields=CUSTOMER_FIELDS,
    ),
    Documented(
        "GET",
        "/plans",
        "specs/plans.yml paths./plans.get (filter_by PlanStatus.All|ACTIVE|INACTIVE, "
        "product_id); components.schemas.plan-response",
        query=frozenset({"filter_by", "product_id", "page", "per_page"}),
        wrapper="plans",
        fields={
            "plan_code": "string",
            "name": "string",
            "status": "string",
            "recurring_price": "number",
            "interval": "integer",
            "interval_unit": "string",
        },
    ),
    Documented(
        "GET",
        "/addons",
        "specs/addons.yml paths./addons.get (filter_by AddonStatus.All|ACTIVE|INACTIVE|ONETIME|"
        "RECURRING, product_id); components.schemas.addon-response",
        query=frozenset({"filter_by", "product_id", "page", "per_page"}),
        wrapper="addons",
        fields={
            "addon_code": "string",
            "name": "string",
            "status": "string",
            "price_brackets": "array",
            "interval_unit": "string",
            "type": "string",
        },
    ),
    Documented(
        "GET",
        "/subscriptions/{id}",
        "specs/subscription.yml paths./subscriptions/{subscription_id}.get; the object's fields "
        "as specs/hosted-pages.yml components.schemas.subscription lists them",
        wrapper="subscription",
        fields=SUBSCRIPTION_FIELDS,
    ),
    Documented(
        "GET",
        "/subscriptions",
        "specs/subscription.yml paths./subscriptions.get (filter_by, customer_id)",
        query=frozenset({"filter_by", "customer_id", "reference_contains", "page", "per_page"}),
        wrapper="subscriptions",
        fields={"subscription_id": "string", "status": "string"},
    ),
    Documented(
        "PUT",
        "/subscriptions/{id}",
        "specs/subscription.yml paths./subscriptions/{subscription_id}.put; "
        "components.schemas.update-a-subscription-request [plan, addons, end_of_term: "
        "transcribed for the keys the broker sends only]",
        request={
            "": frozenset({"plan", "addons", "end_of_term"}),
            "plan": PLAN_REQUEST,
            "addons[]": ADDON_REQUEST,
        },
        wrapper="subscription",
        fields=SUBSCRIPTION_FIELDS,
    ),
    Documented(
        "POST",
        "/subscriptions/{id}/cancel",
        "specs/subscription.yml paths./subscriptions/{subscription_id}/cancel.post "
        "(query cancel_at_end: true -> non_renewing, false -> cancelled)",
        query=frozenset({"cancel_at_end"}),
        wrapper="subscription",
        fields=SUBSCRIPTION_FIELDS,
    ),
    Documented(
        "POST",
        "/subscriptions/{id}/reactivate",
        "specs/subscription.yml paths./subscriptions/{subscription_id}/reactivate.post",
        wrapper="subscription",
        fields=SUBSCRIPTION_FIELDS,
    ),
    Documented(
        "GET",
        "/hostedpages/{id}",
        "specs/hosted-pages.yml paths./hostedpages/{hostedpage_id}.get (data empty until paid); "
        "components.schemas.retrieve-a-hosted-page-response: hostedpage_id, status, url, "
        "action, expiring_time, created_time, custom_fields, data.subscription -- flat, no "
        "wrapper; components.schemas.status and action for the words",
        wrapper=None,
        fields=HOSTED_PAGE_ANSWER,
        nested={"data.subscription": SUBSCRIPTION_FIELDS},
        values={"status": HOSTED_PAGE_STATUSES, "action": HOSTED_PAGE_ACTIONS},
    ),
    Documented(
        "GET",
        "/events",
        "specs/events.yml paths./events.get (no parameter but the organisation header); "
        "components.schemas.list-of-events-response (items: event_id, event_type, event_time; "
        "no page_context)",
        wrapper="events",
        fields=EVENT_ITEM_FIELDS,
        only_documented=True,
        unsure_query=UNSURE_PAGING,
    ),
    Documented(
        "GET",
        "/events/{id}",
        "specs/events.yml paths./events/{event_id}.get; components.schemas."
        "retrieve-an-event-response -> event-response (payload: a string)",
        wrapper="event",
        fields={**EVENT_ITEM_FIELDS, "payload": "string", "webhooks": "array"},
    ),
]

# Calls the broker makes that no document has: kept, and marked [seen] in docs/contracts.md §4.
UNDOCUMENTED_CALLS = frozenset(
    {("POST", "/subscriptions/{id}/pause"), ("POST", "/subscriptions/{id}/resume")}
)

PLAN_FILTERS = ("PlanStatus.All", "PlanStatus.ACTIVE", "PlanStatus.INACTIVE")
ADDON_FILTERS = (
    "AddonStatus.All",
    "AddonStatus.ACTIVE",
    "AddonStatus.INACTIVE",
    "AddonStatus.ONETIME",
    "AddonStatus.RECURRING",
)
SUBSCRIPTION_FILTERS = (
    *(
        f"SubscriptionStatus.{word}"
        for word in [
            "All",
            "ACTIVE",
            "LIVE",
            "FUTURE",
            "TRIAL",
            "PAST_DUE",
            "UNPAID",
            "NON_RENEWING",
            "CANCELLED_FROM_DUNNING",
            "CANCELLED",
            "EXPIRED",
            "TRIAL_EXPIRED",
            "CANCELLED_LAST_MONTH",
            "CANCELLED_THIS_MONTH",
        ]
    ),
    "SubscriptionMode.ONLINE",
    "SubscriptionMode.OFFLINE",
)


HOSTED_PAGE_CALLS = frozenset({"newsubscription", "updatesubscription"})


def endpoint_of(method: str, path: str) -> tuple[str, str]:
    """``/subscriptions/123/cancel`` -> ``/subscriptions/{id}/cancel``: ids are the digits, and
    a hosted page's id (not digits) is what follows ``/hostedpages/`` other than a call's name."""
    parts = path.split("/")
    for n, part in enumerate(parts):
        after_page = n > 0 and parts[n - 1] == "hostedpages" and part not in HOSTED_PAGE_CALLS
        if part.isdigit() or (after_page and part):
            parts[n] = "{id}"
    return method, "/".join(parts)


def documented(method: str, path: str) -> Documented | None:
    return next((d for d in DOCUMENTED if (d.method, d.path) == (method, path)), None)


def undocumented_keys(
    body: object, allowed: dict[str, frozenset[str]], where: str = ""
) -> list[str]:
    """Every key of ``body`` the document does not list, as a dotted path."""
    found: list[str] = []
    if isinstance(body, list):
        for item in body:
            found += undocumented_keys(item, allowed, f"{where}[]")
        return found
    if not isinstance(body, dict):
        return found
    known = allowed.get(where)
    for key, value in body.items():
        path = f"{where}.{key}" if where else key
        if known is not None and key not in known:
            found.append(path)
        elif isinstance(value, (dict, list)) and (path in allowed or f"{path}[]" in allowed):
            found += undocumented_keys(value, allowed, path)
    return found
