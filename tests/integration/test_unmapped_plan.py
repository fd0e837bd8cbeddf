"""Never drop a paying customer in silence: a subscription of the app's billing product whose plan
code does not map is ``unmapped_plan`` (its own metric label, the /ops and CLI lists, a Manage
page that says the vendor was told); one of another product stays ``ignored``, quietly. The
product comes from ``platform.product_id`` or is learned from billing's plans (docs/contracts.md
§3, §4). And one rule decides "ours" for the pipeline, the page and reconciliation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from broker.core.mapping import parse_plan_code
from broker.core.ours import Ownership, has_app_prefix, ownership
from broker.core.reconcile import is_ours
from tests.conftest import post_event
from tests.support.basics import APP_DOMAIN, subscription_event
from tests.support.cli import run_cli
from tests.support.metrics import scrape, value
from tests.support.ops import OPS, sign_in
from tests.support.pages import Browser, PageWorld, WorldFactory

# The billing simulator's product (broker/simulators/billing_catalog.json): its plans are the
# app's, so it is what the broker learns when no setting names the product.
OUR_PRODUCT = "2077000000010001"
OTHER_PRODUCT = "2077000000099999"
TYPO_SUB = "100000000000000071"
OTHER_SUB = "100000000000000072"
TYPO_CODE = f"{APP_DOMAIN[:-1]}_1002"  # "testap_1002": the app domain mistyped


async def told(world: PageWorld, *, tmp_path: Path, capsys: Any) -> Browser:
    """Send a typo'd subscription of our product and another product's; return the owner."""
    owner = await world.signed_in()
    client = owner.client
    typo = subscription_event(
        subscription_id=TYPO_SUB, plan_code=TYPO_CODE, product_id=OUR_PRODUCT, event_id="8801"
    )
    answer = await post_event(client, typo)
    assert answer.status == 200
    body = await answer.json()
    assert body["outcome"] == "unmapped_plan"
    assert TYPO_CODE in body["reason"]
    assert "correct the plan code in billing" in body["reason"]

    other = subscription_event(
        subscription_id=OTHER_SUB,
        plan_code="otherapp_1001",
        product_id=OTHER_PRODUCT,
        event_id="8802",
    )
    answer = await post_event(client, other)
    assert (await answer.json())["outcome"] == "ignored"

    samples = await scrape(client)
    assert value(samples, "broker_webhooks_total", outcome="unmapped_plan") == 1.0
    assert value(samples, "broker_webhooks_total", outcome="ignored") == 1.0
    assert world.calls() == []  # nothing guessed onto the platform

    await sign_in(client)
    listed = await (await client.get("/ops/unmapped")).text()
    assert TYPO_SUB in listed
    assert TYPO_CODE in listed
    assert OTHER_SUB not in listed

    code, out, err = run_cli(capsys, "unmapped", "list", "--db", str(tmp_path / "broker.db"))
    assert code == 0, err
    assert TYPO_SUB in out
    assert TYPO_CODE in out
    assert OTHER_SUB not in out
    return owner


async def assert_page_says_vendor_told(owner: Browser) -> None:
    page = await owner.get("/manage")
    assert page.status == 200
    assert "The vendor has been told" in page.text
    assert "Not set up for the app" in page.text
    assert ">Live<" not in page.text
    # Another product's subscription is not this app's to show, even as an earlier one.
    assert "Earlier subscriptions" not in page.text


async def test_unmapped_plan_of_the_set_product_is_told_and_another_product_ignored(
    make_world: WorldFactory, tmp_path: Path, capsys: Any
) -> None:
    world = await make_world(broker_platform={"product_id": OUR_PRODUCT}, ops=OPS)
    owner = await told(world, tmp_path=tmp_path, capsys=capsys)
    await assert_page_says_vendor_told(owner)
    # The setting answered: nothing was learned from billing.
    assert await world.rows("SELECT product_id FROM billing_products") == []


async def test_unmapped_plan_of_the_learned_product_is_told_and_another_product_ignored(
    make_world: WorldFactory, tmp_path: Path, capsys: Any
) -> None:
    world = await make_world(ops=OPS)  # no product setting: learned from billing's plans
    owner = await told(world, tmp_path=tmp_path, capsys=capsys)
    await assert_page_says_vendor_told(owner)
    learned = await world.rows("SELECT product_id, plan_code FROM billing_products")
    assert [row["product_id"] for row in learned] == [OUR_PRODUCT]
    assert parse_plan_code(learned[0]["plan_code"], APP_DOMAIN) is not None


async def test_unknown_product_is_told_rather_than_dropped(make_broker: Any) -> None:
    """No setting and no billing to learn from: a plan code that does not map is told."""
    client = await make_broker()
    event = subscription_event(plan_code="otherapp_1001", event_id="8803")
    answer = await (await post_event(client, event)).json()
    assert answer["outcome"] == "unmapped_plan"
    assert "set platform.product_id" in answer["reason"]


# --- one rule for "ours" ------------------------------------------------------------------------


def test_the_prefix_is_compared_without_regard_to_ascii_case_only() -> None:
    assert has_app_prefix("TESTAPP_1001", "testapp")
    assert has_app_prefix("TestApp_1001_Y", "testapp")
    assert not has_app_prefix("testap_1002", "testapp")
    assert not has_app_prefix("testappx_1001", "testapp")
    # U+212A KELVIN SIGN lowers to "k": a look-alike must not pass for the letter.
    assert not has_app_prefix("\u212aapp_1001", "kapp")


def test_ownership_by_plan_then_product() -> None:
    ours = frozenset({OUR_PRODUCT})
    assert (
        ownership(plan_maps=True, product_id=OTHER_PRODUCT, our_products=ours) is Ownership.MAPPED
    )
    assert (
        ownership(plan_maps=False, product_id=OUR_PRODUCT, our_products=ours) is Ownership.UNMAPPED
    )
    assert (
        ownership(plan_maps=False, product_id=OTHER_PRODUCT, our_products=ours)
        is Ownership.OTHER_PRODUCT
    )
    assert ownership(plan_maps=False, product_id=None, our_products=ours) is Ownership.UNMAPPED
    assert (
        ownership(plan_maps=False, product_id=OTHER_PRODUCT, our_products=frozenset())
        is Ownership.UNMAPPED
    )


MIXED = "TestApp_1001"  # the app domain in another case


async def test_a_mixed_case_prefix_is_ours_for_pipeline_page_and_reconciliation(
    make_world: WorldFactory,
) -> None:
    world = await make_world(broker_platform={"product_id": OUR_PRODUCT})
    owner = await world.signed_in()
    event = subscription_event(
        subscription_id=TYPO_SUB, plan_code=MIXED, product_id=OUR_PRODUCT, event_id="8804"
    )
    # Pipeline: it maps, so it is queued for the platform.
    answer = await (await post_event(owner.client, event)).json()
    assert answer["outcome"] == "queued"
    # Page: shown as the live plan it is, never as "not set up".
    page = await owner.get("/manage")
    assert "Not set up for the app" not in page.text
    assert "Live" in page.text
    # Reconciliation: a list item with that code, even of another product, is swept.
    item = {"subscription_id": TYPO_SUB, "plan_code": MIXED, "product_id": OTHER_PRODUCT}
    assert is_ours(item, APP_DOMAIN, frozenset({OUR_PRODUCT}))
