"""The signed-link format of docs/contracts.md §6.1, checked against its worked example and against
forgeries: what the Vertical Solution signs is exactly what the broker believes, nothing else."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from broker.core.link_signing import LinkRefusal, SignedLinkRefused, canonical_string, verify_link
from broker.errors import Forbidden

SECRET = "unit-tests-link-secret-0123456789"
NOW = 1_764_400_000.0

# docs/contracts.md §6.1, verbatim.
WORKED_EXAMPLE = {
    "zuid": "1083827331",
    "zgid": "60012345",
    "display_name": "Ana & Co",
    "ts": "1764400000",
    "nonce": "a1b2c3",
}
WORKED_CANONICAL = (
    "display_name=Ana%20%26%20Co&nonce=a1b2c3&ts=1764400000&zgid=60012345&zuid=1083827331"
)


def hmac_hex(text: str, secret: str = SECRET) -> str:
    """What a vendor's Deluge computes: zoho.encryption.hmacsha256(secret, text, "hex")."""
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def signed_pairs(values: dict[str, str]) -> list[tuple[str, str]]:
    return [*values.items(), ("sig", hmac_hex(canonical_string(values.items())))]


def test_canonical_string_matches_the_contracts_worked_example():
    assert canonical_string(WORKED_EXAMPLE.items()) == WORKED_CANONICAL


def test_canonical_string_leaves_out_sig_and_escapes_everything_but_unreserved():
    pairs = [("sig", "x"), ("b", "é/~-._ +?=&"), ("a", "A-Z_0.9~")]
    assert canonical_string(pairs) == "a=A-Z_0.9~&b=%C3%A9%2F~-._%20%2B%3F%3D%26"


def test_worked_example_signed_by_a_vendor_verifies():
    link = verify_link(signed_pairs(WORKED_EXAMPLE), secret=SECRET, now=NOW, tolerance_seconds=300)
    assert link.params == WORKED_EXAMPLE
    assert (link.nonce, link.ts) == ("a1b2c3", 1764400000)


def test_a_signed_display_name_cannot_be_resplit_into_other_ids():
    """The vendor signs a display name that looks like more parameters; the
    attacker re-splits the signed string into the victim's ids and keeps the signature."""
    attack = "Mallory&nonce=a1b2c3&ts=1764400000&zgid=70000000666&zuid=60000000666&zzz="
    honest = {**WORKED_EXAMPLE, "display_name": attack}
    sig = hmac_hex(canonical_string(honest.items()))
    resplit = [
        ("display_name", "Mallory"),
        ("nonce", "a1b2c3"),
        ("ts", "1764400000"),
        ("zgid", "70000000666"),
        ("zuid", "60000000666"),
        ("zzz", "&nonce=a1b2c3&ts=1764400000&zgid=60012345&zuid=1083827331"),
        ("sig", sig),
    ]
    with pytest.raises(SignedLinkRefused) as refused:
        verify_link(resplit, secret=SECRET, now=NOW, tolerance_seconds=300)
    assert refused.value.reason is LinkRefusal.BAD_SIGNATURE


def refusal(pairs: list[tuple[str, str]], now: float = NOW) -> LinkRefusal:
    with pytest.raises(SignedLinkRefused) as refused:
        verify_link(pairs, secret=SECRET, now=now, tolerance_seconds=300)
    assert isinstance(refused.value, Forbidden)
    assert refused.value.status == 403
    return refused.value.reason


def without(pairs: list[tuple[str, str]], name: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in pairs if k != name]


def test_each_bad_link_is_refused_for_its_own_reason():
    good = signed_pairs(WORKED_EXAMPLE)
    assert refusal(without(good, "sig")) is LinkRefusal.MISSING_SIGNATURE
    no_ts = {k: v for k, v in WORKED_EXAMPLE.items() if k != "ts"}
    assert refusal(signed_pairs(no_ts)) is LinkRefusal.MISSING_TIMESTAMP
    no_nonce = {k: v for k, v in WORKED_EXAMPLE.items() if k != "nonce"}
    assert refusal(signed_pairs(no_nonce)) is LinkRefusal.MISSING_NONCE
    assert refusal([*good, ("zuid", "1083827331")]) is LinkRefusal.REPEATED_PARAMETER
    assert refusal([*good, ("sig", good[-1][1])]) is LinkRefusal.REPEATED_PARAMETER
    assert refusal(good, now=NOW + 301) is LinkRefusal.STALE_TIMESTAMP
    assert refusal(good, now=NOW - 301) is LinkRefusal.STALE_TIMESTAMP
    odd_ts = signed_pairs({**WORKED_EXAMPLE, "ts": "\uff11764400000"})  # a fullwidth 1
    assert refusal(odd_ts) is LinkRefusal.BAD_TIMESTAMP
    assert refusal([*without(good, "sig"), ("sig", "0" * 64)]) is LinkRefusal.BAD_SIGNATURE
    other_secret = hmac_hex(WORKED_CANONICAL, "another-secret-0123456789")
    assert refusal([*without(good, "sig"), ("sig", other_secret)]) is LinkRefusal.BAD_SIGNATURE
    added = [*without(good, "sig"), ("subscription_id", "2077"), good[-1]]
    assert refusal(added) is LinkRefusal.BAD_SIGNATURE
    bad_nonce = signed_pairs({**WORKED_EXAMPLE, "nonce": "a b"})
    assert refusal(bad_nonce) is LinkRefusal.BAD_NONCE


def test_uppercase_hex_signature_is_accepted():
    good = signed_pairs(WORKED_EXAMPLE)
    upper = [*without(good, "sig"), ("sig", good[-1][1].upper())]
    assert verify_link(upper, secret=SECRET, now=NOW, tolerance_seconds=300).nonce == "a1b2c3"


def test_refusal_never_carries_the_signature_or_the_secret():
    good = signed_pairs(WORKED_EXAMPLE)
    with pytest.raises(SignedLinkRefused) as refused:
        verify_link(good, secret=SECRET, now=NOW + 999, tolerance_seconds=300)
    text = repr(refused.value.as_dict()) + str(refused.value)
    assert good[-1][1] not in text
    assert SECRET not in text


def test_trailing_newline_in_ts_is_not_a_timestamp():
    newline_ts = signed_pairs({**WORKED_EXAMPLE, "ts": "1764400000\n"})
    assert refusal(newline_ts) is LinkRefusal.BAD_TIMESTAMP


def test_customer_page_and_setup_guide_show_the_worked_example_as_the_broker_computes_it():
    root = Path(__file__).resolve().parents[2]
    page = (root / "docs" / "customer-page.md").read_text()
    guide = (root / "docs" / "zoho-setup.md").read_text()
    assert f"\n{WORKED_CANONICAL}\n" in page
    assert f"\n   {WORKED_CANONICAL}\n" in guide
    assert canonical_string(WORKED_EXAMPLE.items()) == WORKED_CANONICAL
    # The Deluge script lives in the guide the vendor follows; the customer page links to it.
    assert 'zoho.encryption.hmacsha256(secret, canonical.toString("&"), "hex")' in guide
    assert "hmacsha256" not in page
    assert "[docs/zoho-setup.md](zoho-setup.md), step 5" in page
