"""The page's forms take text: a field posted as a file upload (or as bytes of another content
type) is refused with a clear 400 that names the field, before anything is asked of billing or
written, never a 500 and never read as if the field were missing. The landing post (signing in)
is held to the same rule.

Against the real broker and the billing simulator, with multipart bodies a hostile client sends.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.support.pages import STANDARD, Browser, PageWorld, visitor
from tests.support.zoho import Zoho


@pytest.fixture
def page_plans() -> dict[str, Any]:
    """A vendor who offers a pause, so the pause form is there to be attacked."""
    return {"pause_policy": "keep"}


FIELDS = {
    "subscribe": {"planid": STANDARD, "frequency": "monthly", "users": "9"},
    "change": {"planid": STANDARD, "frequency": "monthly", "users": "2"},
    "cancel": {"when": "now", "confirm": "yes"},
    "pause": {"resume_on": "2026-06-20"},
}
HOSTILE = {"subscribe": "planid", "change": "users", "cancel": "when", "pause": "resume_on"}


def hostile_form(fields: dict[str, str], hostile: str, *, as_file: bool) -> Any:
    body = aiohttp.MultipartWriter("form-data")
    for name, value in fields.items():
        if name != hostile:
            body.append(value).set_content_disposition("form-data", name=name)
    # With a filename aiohttp hands the handler a file; without one, and a content type that
    # is not text, it hands it bytes.
    part = body.append(b"not text", {"Content-Type": "application/octet-stream"})
    if as_file:
        part.set_content_disposition("form-data", name=hostile, filename="upload.bin")
    else:
        part.set_content_disposition("form-data", name=hostile)
    return body


@pytest.mark.parametrize("as_file", [True, False], ids=["file", "bytes"])
@pytest.mark.parametrize("action", list(FIELDS))
async def test_a_field_that_is_not_text_is_a_400_naming_it_and_changes_nothing(
    world: PageWorld, owner: Browser, live: str, action: str, as_file: bool
):
    await world.settle()
    subscriptions = {s.subscription_id: s.status for s in world.sim.subscriptions.values()}
    pages, audit_rows = len(world.sim.hosted_pages), len(await world.audit())
    hostile = HOSTILE[action]
    page = await owner.post(
        f"/manage/{action}",
        data=hostile_form(
            {"csrf_token": owner.session()["csrf"], **FIELDS[action]}, hostile, as_file=as_file
        ),
    )
    assert page.status == 400, page.text
    assert f"the form field &#39;{hostile}&#39; must be text" in page.text
    await world.settle()
    assert {s.subscription_id: s.status for s in world.sim.subscriptions.values()} == subscriptions
    assert len(world.sim.hosted_pages) == pages
    assert [r["result"] for r in (await world.audit())[audit_rows:]] == ["refused: form_not_text"]


async def test_a_file_as_the_csrf_token_is_the_csrf_refusal(world: PageWorld, owner: Browser):
    fields = {"csrf_token": owner.session()["csrf"], **FIELDS["pause"]}
    page = await owner.post("/manage/pause", data=hostile_form(fields, "csrf_token", as_file=True))
    assert page.status == 403
    assert (await world.audit())[-1]["result"] == "refused: csrf"


async def test_a_landing_post_with_a_file_field_is_a_400_and_signs_no_one_in(world: PageWorld):
    browser = await world.browser()
    page = await browser.post("/manage", data=hostile_form(visitor(), "zgid", as_file=True))
    assert page.status == 400, page.text
    assert "the form field &#39;zgid&#39; must be text" in page.text
    assert browser.session_cookie() is None


async def test_a_zoho_sign_in_post_with_a_file_field_is_a_400_not_a_sign_in(zoho: Zoho):
    browser = await zoho.world.browser()
    page = await browser.post("/manage", data=hostile_form(visitor(), "zgid", as_file=True))
    assert page.status == 400, page.text
    assert "the form field &#39;zgid&#39; must be text" in page.text
    assert browser.session_cookie() is None
