"""Shared by the operator console tests: the operator's password and hash, and a signed-in
console client."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from broker.core.operator_password import hash_password
from tests.conftest import db_rows
from tests.support.basics import eventually

Client = TestClient[web.Request, web.Application]
PASSWORD = "correct horse battery staple"
# A cheaper scrypt cost than production's, so each login in the tests is quick.
PASSWORD_HASH = hash_password(PASSWORD, n=2**10)
OPS_SECRET = "ops-session-secret-for-tests-0123456789"
OPS = {"password_hash": PASSWORD_HASH, "session_secret": OPS_SECRET}


async def sign_in(client: Client) -> str:
    """Sign the client in; returns the CSRF token the console's forms carry."""
    response = await client.post("/ops/login", data={"password": PASSWORD}, allow_redirects=False)
    assert response.status == 303, await response.text()
    page = await (await client.get("/ops")).text()
    marker = 'name="csrf" value="'
    assert marker in page
    return page.split(marker, 1)[1].split('"', 1)[0]


async def audit_rows(client: Client, action: str) -> list[dict[str, Any]]:
    return await db_rows(client, "SELECT * FROM audit_log WHERE action = ? ORDER BY id", [action])


async def delivery_state(client: Client, delivery_id: int) -> str:
    rows = await db_rows(client, "SELECT state FROM deliveries WHERE id = ?", [delivery_id])
    return str(rows[0]["state"]) if rows else "missing"


async def wait_for_state(client: Client, delivery_id: int, state: str) -> None:
    async def reached() -> bool:
        return await delivery_state(client, delivery_id) == state

    await eventually(reached, message=f"delivery {delivery_id} {state}")


async def delivery_ids(client: Client, subscription_id: str) -> list[int]:
    rows = await db_rows(
        client, "SELECT id FROM deliveries WHERE subscription_id = ? ORDER BY id", [subscription_id]
    )
    return [row["id"] for row in rows]
