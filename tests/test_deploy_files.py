"""The deployment files stay true to the settings: every secret setting is wired as a file in the
systemd unit and in compose.yaml, each ``_FILE`` variable there points at a credential or secret
the same file declares, and the example environment file names only real settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, SecretStr

from broker.cli.check import setting_variables
from broker.config import Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def secret_variables(model: type[BaseModel] = Settings, prefix: str = "BROKER_") -> set[str]:
    """``BROKER_..._FILE`` for every single-valued secret setting (extra_zapikeys, a list, is
    for rotation and stays optional)."""
    found: set[str] = set()
    for name, field in model.model_fields.items():
        variable = f"{prefix}{name.upper()}"
        if get_origin(field.annotation) is list:
            continue
        types: tuple[Any, ...] = get_args(field.annotation) or (field.annotation,)
        if SecretStr in types:
            found.add(f"{variable}_FILE")
        for section in types:
            if isinstance(section, type) and issubclass(section, BaseModel):
                found |= secret_variables(section, f"{variable}__")
    return found


def test_every_secret_setting_is_known():
    # The walk above must see them all, or the tests below prove nothing.
    assert secret_variables() == {
        "BROKER_PLATFORM__ZAPIKEY_FILE",
        "BROKER_WEBHOOKS__SIGNING_SECRET_FILE",
        "BROKER_BILLING__CLIENT_SECRET_FILE",
        "BROKER_BILLING__REFRESH_TOKEN_FILE",
        "BROKER_LANDING__LINK_SECRET_FILE",
        "BROKER_LANDING__SESSION_SECRET_FILE",
        "BROKER_LANDING__OIDC__CLIENT_SECRET_FILE",
        "BROKER_OPS__PASSWORD_HASH_FILE",
        "BROKER_OPS__SESSION_SECRET_FILE",
    }


def test_the_systemd_unit_loads_every_secret_as_a_credential():
    unit = (DEPLOY / "broker.service").read_text()
    wired = dict(re.findall(r"^#?Environment=(BROKER_\w+_FILE)=%d/(\w+)$", unit, re.MULTILINE))
    credentials = set(re.findall(r"^#?LoadCredential=(\w+):/etc/broker/secrets/\1$", unit, re.M))
    assert set(wired) == secret_variables()
    assert set(wired.values()) <= credentials


def test_compose_mounts_every_secret_as_a_file():
    compose = (DEPLOY / "compose.yaml").read_text()
    wired = dict(re.findall(r"(BROKER_\w+_FILE): /run/secrets/(\w+)$", compose, re.MULTILINE))
    declared = set(re.findall(r"^  #? ?(\w+):\n  #? +file: \./secrets/\1$", compose, re.M))
    assert set(wired) == secret_variables()
    assert set(wired.values()) <= declared


def test_the_page_secrets_are_on_by_default():
    """The Manage Subscription page needs billing OAuth, link and session secrets: not optional
    comments, so a deployment made from these files does not start half set up."""
    unit = (DEPLOY / "broker.service").read_text()
    compose = (DEPLOY / "compose.yaml").read_text()
    for name in ("ZAPIKEY", "CLIENT_SECRET", "REFRESH_TOKEN", "LINK_SECRET", "SESSION_SECRET"):
        assert re.search(rf"^Environment=BROKER_\w+__{name}_FILE=", unit, re.M), name
        assert re.search(rf"^      BROKER_\w+__{name}_FILE:", compose, re.M), name


def test_the_example_environment_names_only_settings():
    known = setting_variables()
    example = (DEPLOY / "broker.env.example").read_text()
    names = re.findall(r"^#?(BROKER_\w+)=", example, re.MULTILINE)
    assert names, "the example sets nothing"
    assert [name for name in names if name not in known] == []
