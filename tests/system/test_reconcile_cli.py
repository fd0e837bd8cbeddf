"""``broker reconcile`` as an operator runs it: real processes, one database, the billing
simulator over HTTP. Two at once never both run; a dry run prints the differences."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from broker.simulators.billing import BillingSimulator
from tests.support.basics import APP_DOMAIN, ZAPIKEY
from tests.support.pages import (
    CLIENT_ID,
    CLIENT_SECRET,
    ORGANIZATION_ID,
    REFRESH_TOKEN,
    STANDARD_CODE,
    TODAY,
)


def sim(today: date = TODAY) -> BillingSimulator:
    return BillingSimulator(
        app_domain=APP_DOMAIN,
        organization_id=ORGANIZATION_ID,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_token=REFRESH_TOKEN,
        today=today,
    )


def environment(tmp_path: Path, billing: TestServer, **extra: str) -> dict[str, str]:
    origin = str(billing.make_url("")).rstrip("/")
    return {
        # The parent's environment without BROKER_ settings (PATH, and coverage's variables
        # so the subprocess is measured too).
        **{k: v for k, v in os.environ.items() if not k.upper().startswith("BROKER_")},
        "BROKER_PLATFORM__APP_DOMAIN": APP_DOMAIN,
        "BROKER_PLATFORM__ZAPIKEY": ZAPIKEY,
        "BROKER_STORE__PATH": str(tmp_path / "broker.db"),
        "BROKER_BILLING__BASE_URL": f"{origin}/billing/v1",
        "BROKER_BILLING__ACCOUNTS_URL": origin,
        "BROKER_BILLING__ORGANIZATION_ID": ORGANIZATION_ID,
        "BROKER_BILLING__CLIENT_ID": CLIENT_ID,
        "BROKER_BILLING__CLIENT_SECRET": CLIENT_SECRET,
        "BROKER_BILLING__REFRESH_TOKEN": REFRESH_TOKEN,
        "BROKER_RECONCILE__FIRST_RUN_DAYS": "366",
        **extra,
    }


async def broker(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "broker",
        "reconcile",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_two_processes_at_once_one_runs_the_other_is_told_busy(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    billing = sim()
    billing.subscribe(STANDARD_CODE, zuid="61000000001", zgid="71000000001")
    server = await aiohttp_server(billing.app())
    env = environment(tmp_path, server)
    # Bring the schema up first, so the two processes race only for the lock.
    assert (await broker(env, "--dry-run"))[0] == 0
    billing.set_delay(1.0)  # every billing call is slow: the first run holds the lock a while

    results = await asyncio.gather(broker(env), broker(env))

    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 3], results
    busy = next(out for code, out, _ in results if code == 3)
    assert "another process is reconciling" in busy


async def test_dry_run_prints_the_table_of_differences(tmp_path: Path, aiohttp_server: Any) -> None:
    # The command runs on the wall clock, which must be within billing's 180-day event window
    # of the simulated calendar.
    today = date.today()
    billing = sim(today)
    sub = billing.subscribe(STANDARD_CODE, zuid="61000000002", zgid="71000000002")
    server = await aiohttp_server(billing.app())
    since = (today - timedelta(days=9)).isoformat()

    code, out, err = await broker(environment(tmp_path, server), "--dry-run", "--since", since)

    assert code == 0, err
    assert "dry run: nothing was changed" in out
    assert f"events since {since}" in out
    row = next(line for line in out.splitlines() if line.startswith(sub.subscription_id))
    assert "missed_event" in row
    assert "would queue" in row


async def test_bad_since_and_missing_billing_get_clear_answers(tmp_path: Path) -> None:
    env = {
        # The parent's environment without BROKER_ settings (PATH, and coverage's variables
        # so the subprocess is measured too).
        **{k: v for k, v in os.environ.items() if not k.upper().startswith("BROKER_")},
        "BROKER_PLATFORM__APP_DOMAIN": APP_DOMAIN,
        "BROKER_PLATFORM__ZAPIKEY": ZAPIKEY,
        "BROKER_STORE__PATH": str(tmp_path / "broker.db"),
    }
    bad_code, _, bad_err = await broker(env, "--since", "June")
    off_code, _, off_err = await broker(env)

    assert bad_code == 2
    assert "'June' is not a date: use YYYY-MM-DD" in bad_err
    assert off_code != 0
    assert "[billing] is not configured" in off_err
