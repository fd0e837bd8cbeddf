"""The ``[ops]`` section: the operator console at /ops, off unless a credential is set.

The credential is stored only as a hash (``broker ops-hash`` makes one: scrypt from the standard
library, salted), so the settings file never holds the password itself. The console signs its
own cookie with its own secret, so a customer's session can never be read as an operator's.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from broker.config.base import Section

HASH_SCHEME = "scrypt"


class OpsSettings(Section):
    # "scrypt$n$r$p$salt$hash" (base64), from `broker ops-hash`. Unset: /ops answers 404.
    password_hash: SecretStr | None = None
    # Signs the console's cookie; unset, a random key per process (operators sign in again
    # after a restart). Kept apart from landing.session_secret on purpose.
    session_secret: SecretStr | None = None
    session_max_age_seconds: float = Field(8 * 3600.0, gt=0)
    # The name written to the audit log for the operator's actions.
    operator_name: str = Field("operator", min_length=1, max_length=64)
    # Rows per page in the console's lists.
    page_size: int = Field(50, ge=1, le=500)
    # Sign-in attempts (core.login_throttle), per process: each client address may try
    # ``login_burst_per_address`` times at once, then ``login_per_minute_per_address`` a minute;
    # everyone together ``login_burst_global``, then ``login_per_minute_global``. Over either:
    # 429 with Retry-After, before the password is hashed. The client address is the peer's,
    # or X-Forwarded-For's last entry when ``server.behind_tls_proxy`` (the proxy sets it).
    login_burst_per_address: int = Field(5, ge=1, le=1000)
    login_per_minute_per_address: float = Field(5.0, gt=0, le=6000)
    login_burst_global: int = Field(30, ge=1, le=100_000)
    login_per_minute_global: float = Field(30.0, gt=0, le=600_000)
    # Addresses remembered at once (least recently seen forgotten first): bounds the memory.
    login_addresses_tracked: int = Field(10_000, ge=1, le=1_000_000)
    # Password hashing runs on its own threads, never the default executor that /readyz and the
    # store use; at most this many more wait, and a sign-in beyond that is answered 429 at once.
    password_hash_threads: int = Field(1, ge=1, le=8)
    password_hash_queue: int = Field(4, ge=0, le=1000)

    @field_validator("password_hash")
    @classmethod
    def _is_a_hash(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        parts = value.get_secret_value().split("$")
        if len(parts) != 6 or parts[0] != HASH_SCHEME or not all(p.isdigit() for p in parts[1:4]):
            raise ValueError(
                "must be a hash made by `broker ops-hash` (scrypt$n$r$p$salt$hash), "
                "never the password itself"
            )
        return value

    @property
    def enabled(self) -> bool:
        return self.password_hash is not None
