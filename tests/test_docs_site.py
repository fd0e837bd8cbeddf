"""The configuration reference, generated from the settings models, names every setting.

These run with the plain test suite, without the docs extra installed: the generator needs only
the settings models.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from pydantic import BaseModel

from broker.config import BillingSettings, LandingSettings, OidcSettings, Settings

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"


def load_generator() -> ModuleType:
    """The generator the docs build uses (docs/_ext is not a package of the broker)."""
    path = DOCS / "_ext" / "settings_reference.py"
    spec = importlib.util.spec_from_file_location("settings_reference", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up by name while the class is made.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def every_setting(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Dotted keys of every leaf setting, found by walking the models' fields directly."""
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        nested = [
            a
            for a in (field.annotation, *getattr(field.annotation, "__args__", ()))
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if nested:
            keys |= every_setting(nested[0], f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def test_configuration_reference_names_every_setting_with_its_variable():
    text = load_generator().markdown(Settings)
    keys = every_setting(Settings)
    # The walk itself must reach nested and optional sections.
    assert {"server.port", "billing.daily_call_limit", "landing.oidc.client_id"} <= keys
    missing = [
        key
        for key in sorted(keys)
        if f"`{key}`" not in text or f"`BROKER_{key.upper().replace('.', '__')}`" not in text
    ]
    assert missing == []


def test_configuration_reference_states_documented_defaults():
    rows = {row.key: row for s in load_generator().sections(Settings) for row in s.rows}
    # Defaults the pages state in prose (docs/customer-page.md, docs/configuration.md).
    assert rows["server.port"].default == "8080"
    assert rows["landing.link_tolerance_seconds"].default == "300.0"
    assert rows["billing.daily_call_limit"].default == "1000"
    assert rows["billing.read_cache_seconds"].default == "30.0"
    assert rows["platform.zapikey"].default == "required"
    assert rows["platform.zapikey"].env == "BROKER_PLATFORM__ZAPIKEY"


def test_configuration_reference_never_prints_a_secret_default():
    rows = [row for s in load_generator().sections(Settings) for row in s.rows]
    secret_rows = [r for r in rows if "SecretStr" in r.type]
    assert {r.key for r in secret_rows} >= {"landing.link_secret", "ops.password_hash"}
    assert all(r.default in {"required", "unset (secret)"} for r in secret_rows)


def test_configuration_reference_marks_sections_that_may_be_left_out():
    sections = {s.key: s for s in load_generator().sections(Settings)}
    assert sections["billing"].optional
    assert sections["landing.oidc"].optional
    assert not sections["server"].optional
    # Sanity of the models named: the docs walk the very classes the broker loads.
    assert Settings.model_fields["billing"].annotation == BillingSettings | None
    assert LandingSettings.model_fields["oidc"].annotation == OidcSettings | None
