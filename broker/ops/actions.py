"""The console's actions: sign in and out, retry dead letters (one, or all a filter matches),
send a pending delivery now, resolve a parked subscription by hand (after a confirmation page).
Every POST carries the operator's CSRF token; every change is audited with who and when, in the
same transaction as the change."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import NoReturn
from urllib.parse import urlencode

import structlog
from aiohttp import web

from broker.core.ids import IdKind, checked_id, is_user_id, is_whole_number
from broker.core.login_throttle import LoginRefusal, address_key
from broker.errors import ActionNotAllowed, InvalidPayload, NotFound, TooManyRequests
from broker.ops.access import (
    check_csrf,
    credential_of,
    password_matches,
    session_key,
)
from broker.ops.appkeys import ops_codec_key, ops_hashing_key, ops_throttle_key
from broker.ops.hashing_pool import HashingBusy
from broker.ops.support import operator, operator_session, read_filter, render
from broker.store import ops_actions, ops_reads, ops_sessions
from broker.store.outbox import DeliveryState
from broker.web.appkeys import clock_key, metrics_key, settings_key, store_key
from broker.web.client_address import client_address
from broker.web.signed_cookies import reached_over_tls

log = structlog.get_logger(__name__)
MAX_PASSWORD_CHARS = 1024


async def login_form(request: web.Request) -> web.Response:
    return render(request, "ops_login.html", None, {"failed": False})


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    password = form.get("password")
    app = request.app
    settings = app[settings_key]
    if not isinstance(password, str) or not 0 < len(password) <= MAX_PASSWORD_CHARS:
        password = ""
    # Counted before the password is looked at: a refused guess costs no scrypt.
    address = client_address(request)
    throttle = app[ops_throttle_key]
    refused = throttle.take(address, app[clock_key]())
    if refused is not None:
        _refuse_login(request, refused.reason, address, refused.retry_after_seconds)
    try:
        matches = bool(password) and await password_matches(
            app[ops_hashing_key], settings, password
        )
    except HashingBusy:
        throttle.give_back(address)
        _refuse_login(request, LoginRefusal.BUSY, address, 1.0)
    if not matches:
        reason = "empty" if not password else "wrong_password"
        app[metrics_key].ops_login_refused.labels(reason=reason).inc()
        log.warning("ops.login_refused", reason=reason)
        return render(request, "ops_login.html", None, {"failed": True}, status=401)
    throttle.succeeded(address)
    codec = request.app[ops_codec_key]
    session = codec.new(settings.ops.operator_name)
    now = app[clock_key]()
    key, credential = session_key(session), credential_of(settings)
    await app[store_key].write(
        lambda db: ops_sessions.open_session(
            db,
            key,
            operator=session.operator,
            credential=credential,
            now=now,
            expires_at=now + settings.ops.session_max_age_seconds,
        )
    )
    log.info("ops.login", operator=session.operator)
    response = web.HTTPSeeOther("/ops")
    codec.save(response, session, secure=reached_over_tls(request))
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    session = operator_session(request)
    check_csrf(session, (await request.post()).get("csrf"))
    key = session_key(session)
    await request.app[store_key].write(lambda db: ops_sessions.end_session(db, key))
    log.info("ops.logout", operator=session.operator)
    response = web.HTTPSeeOther("/ops/login")
    request.app[ops_codec_key].forget(response)
    raise response


async def retry_dead(request: web.Request) -> web.StreamResponse:
    """One dead letter (``delivery``), or every dead letter the posted filters match."""
    session = operator_session(request)
    form = await request.post()
    check_csrf(session, form.get("csrf"))
    store = request.app[store_key]
    delivery = form.get("delivery")
    if isinstance(delivery, str) and delivery:
        if not is_whole_number(delivery):
            raise InvalidPayload("a delivery id is a whole number")
        ids = [int(delivery)]
        dead = await store.read(lambda db: ops_reads.delivery_ids(db, _only(ids[0])))
        if not dead:
            raise ActionNotAllowed(f"delivery {delivery} is not a dead letter", hint="reload")
    else:
        where = read_filter(request)  # the filters ride in the form's action URL
        where = _dead(where)
        ids = await store.read(lambda db: ops_reads.delivery_ids(db, where))
    who = operator(request, session)
    now = request.app[clock_key]()
    done = await store.write(lambda db: ops_actions.retry_dead(db, who, ids, now=now))
    log.info("ops.retry_dead", requeued=done.requeued, superseded=done.superseded)
    message = (
        f"requeued {len(done.requeued)}, superseded by newer deliveries {len(done.superseded)}"
    )
    raise web.HTTPSeeOther("/ops/deliveries?" + urlencode({"state": "dead", "notice": message}))


async def retry_now(request: web.Request) -> web.StreamResponse:
    session = operator_session(request)
    check_csrf(session, (await request.post()).get("csrf"))
    delivery_id = _delivery_id(request)
    who = operator(request, session)
    now = request.app[clock_key]()
    try:
        await request.app[store_key].write(
            lambda db: ops_actions.retry_now(db, who, delivery_id, now=now)
        )
    except LookupError as exc:
        raise NotFound(str(exc)) from exc
    except ops_actions.OpsRefused as exc:
        raise ActionNotAllowed(str(exc), hint="reload the deliveries list") from exc
    log.info("ops.retry_now", delivery_id=delivery_id)
    notice = f"delivery {delivery_id} is due now"
    raise web.HTTPSeeOther("/ops/deliveries?" + urlencode({"state": "pending", "notice": notice}))


async def resolve_form(request: web.Request) -> web.Response:
    session = operator_session(request)
    sid = checked_id("subscription_id", request.match_info["subscription_id"], IdKind.ZOHO)
    found = await request.app[store_key].read(
        lambda db: ops_reads.parked(db, ops_reads.OpsFilter(subscription_id=sid))
    )
    if not found.rows:
        raise NotFound(f"subscription {sid} is not parked", hint="see the parked list")
    _waits_for_org(found.rows[0])
    return render(request, "ops_resolve.html", session, {"row": found.rows[0], "confirm": False})


async def resolve(request: web.Request) -> web.StreamResponse:
    """First post: the confirmation page. Second post, with ``confirm=yes``: done and audited."""
    session = operator_session(request)
    form = await request.post()
    check_csrf(session, form.get("csrf"))
    sid = checked_id("subscription_id", request.match_info["subscription_id"], IdKind.ZOHO)
    zgid = str(form.get("zgid", "")).strip()
    zuid = str(form.get("zuid", "")).strip() or None
    problems = [
        f"{name}: digits only, 1-20"
        for name, value in (("zgid", zgid), ("zuid", zuid))
        if value is not None and not is_user_id(value)
    ]
    store = request.app[store_key]
    found = await store.read(
        lambda db: ops_reads.parked(db, ops_reads.OpsFilter(subscription_id=sid))
    )
    if not found.rows:
        raise NotFound(f"subscription {sid} is not parked", hint="see the parked list")
    row = found.rows[0]
    _waits_for_org(row)
    if problems:
        raise InvalidPayload(
            "the org could not be read", hint="go back and correct it", problems=problems
        )
    if form.get("confirm") != "yes":
        context = {"row": row, "confirm": True, "zgid": zgid, "zuid": zuid}
        return render(request, "ops_resolve.html", session, context)
    who = operator(request, session)
    now = request.app[clock_key]()
    settings = request.app[settings_key]
    try:
        result = await store.write(
            lambda db: ops_actions.resolve_parked(
                db, who, sid, zgid=zgid, zuid=zuid, settings=settings, now=now
            )
        )
    except ops_actions.OpsRefused as exc:  # resolved, or re-parked, meanwhile
        raise ActionNotAllowed(str(exc), hint="reload the parked list") from exc
    log.info("ops.resolve_parked", subscription_id=sid, zgid=zgid, outcome=str(result.outcome))
    raise web.HTTPSeeOther(f"/ops/subscriptions/{sid}")


def _waits_for_org(row: ops_reads.ParkedRow) -> None:
    """Refuse to resolve by hand what no org can release (a quantity below the floor)."""
    if not row.waits_for_org:
        raise ActionNotAllowed(
            ops_actions.quantity_park_refusal(row.subscription_id), hint="see the parked list"
        )


def _dead(where: ops_reads.OpsFilter) -> ops_reads.OpsFilter:
    if where.state not in (None, DeliveryState.DEAD):
        raise InvalidPayload("only dead letters are retried", hint="filter on state dead")
    return replace(where, state=DeliveryState.DEAD)


def _only(delivery_id: int) -> ops_reads.OpsFilter:
    return ops_reads.OpsFilter(state=DeliveryState.DEAD, delivery_id=delivery_id)


def _delivery_id(request: web.Request) -> int:
    text = request.match_info["delivery_id"]
    if not is_whole_number(text):
        raise NotFound(f"no delivery {text[:40]!r}: delivery ids are whole numbers")
    return int(text)


_TOO_MANY = {
    LoginRefusal.ADDRESS: "too many sign-in attempts from your address",
    LoginRefusal.GLOBAL: "too many sign-in attempts to the console right now",
    LoginRefusal.BUSY: "the console is checking too many sign-ins right now",
}


def _refuse_login(
    request: web.Request, reason: LoginRefusal, address: str, retry_after: float
) -> NoReturn:
    request.app[metrics_key].ops_login_refused.labels(reason=reason.value).inc()
    log.warning(
        "ops.login_refused",
        reason=reason.value,
        address=address_key(address),
        retry_after_seconds=round(retry_after, 1),
    )
    wait = max(1, math.ceil(retry_after))
    raise TooManyRequests(
        _TOO_MANY[reason],
        retry_after=retry_after,
        hint=f"wait {wait} seconds, then sign in again",
    )
