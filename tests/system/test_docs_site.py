"""The docs site stays whole: the README is a door, every page is in the navigation, and the
configuration reference, generated from the settings models, names every setting.

The strict Sphinx build in ``.ci/run`` checks links and the navigation too; these run with the
plain test suite, without the docs extra installed.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

from pydantic import BaseModel

from broker.config import BillingSettings, LandingSettings, OidcSettings, Settings
from broker.config.billing import DATA_CENTRES

REPO = Path(__file__).resolve().parents[2]
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


def test_readme_is_a_door_under_two_hundred_lines():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) < 200


def test_readme_links_every_docs_page():
    readme = (REPO / "README.md").read_text()
    pages = {p.relative_to(REPO).as_posix() for p in DOCS.glob("*.md") if p.name != "index.md"}
    assert sorted(p for p in pages if f"]({p})" not in readme) == []


def test_readme_keeps_both_quick_start_commands():
    readme = (REPO / "README.md").read_text()
    assert (
        "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' && .venv/bin/broker demo"
        in readme
    )
    assert "\n.venv/bin/python -m pytest\n" in readme


def test_every_docs_page_is_in_the_navigation():
    index = (DOCS / "index.md").read_text()
    listed: set[str] = set()
    for block in re.findall(r"```\{toctree\}\n(.*?)```", index, re.DOTALL):
        listed |= {line.strip() for line in block.splitlines() if line and ":" not in line}
    pages = {p.relative_to(DOCS).with_suffix("").as_posix() for p in DOCS.rglob("*.md")}
    assert sorted(pages - listed - {"index"}) == []
    assert sorted(listed - pages) == []


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


# Variables the docs name that are not settings, each on purpose.
NOT_SETTINGS = {
    "BROKER_CONFIG",  # the config file's path
    "BROKER_BACKUP_KEEP",  # the backup timer's own (deploy/broker-backup.service)
    "BROKER_PLATFORM_APP_DOMAIN",  # the typo check-config catches, as the docs show it
    "BROKER_SECTION__KEY",  # the pattern, written out
    "BROKER_X__Y",
}


def test_every_variable_the_docs_name_is_a_setting():
    known = {f"BROKER_{k.upper().replace('.', '__')}" for k in every_setting(Settings)}
    stray = []
    for doc in [REPO / "README.md", *sorted(DOCS.rglob("*.md")), REPO / "deploy" / "README.md"]:
        for name in re.findall(r"\bBROKER_[A-Z_]*[A-Z]", doc.read_text()):
            base = name.removesuffix("_FILE")
            if base.startswith("BROKER_TEST_") or base in NOT_SETTINGS:
                continue
            if base not in known and not any(k.startswith(base + "__") for k in known):
                stray.append(f"{doc.relative_to(REPO)}: {name}")
    assert stray == []


def test_configuration_page_lists_exactly_the_data_centres_the_broker_knows():
    page = (DOCS / "configuration.md").read_text()
    row = next(line for line in page.splitlines() if "`BROKER_BILLING__DATA_CENTRE`" in line)
    listed = re.findall(r"`([a-z.]+)`", row.split("|")[2])
    assert sorted(listed) == sorted(DATA_CENTRES)
    assert "com.cn" in listed


def variables_in_the_table(markdown: str) -> list[str]:
    """The variables the hand-written table of docs/configuration.md names, shorthand spelt out:
    ``BROKER_A__B``, then ``__C`` (same section) or ``_D`` (last word replaced), ``*`` kept."""
    named: list[str] = []
    for line in markdown.splitlines():
        if not line.startswith("| `BROKER_"):
            continue
        first = line.split("|")[1]
        full = ""
        for token in re.findall(r"`([A-Z_*]+)`", first):
            if token.startswith("BROKER_"):
                full = token
            elif token.startswith("__"):
                full = full.rsplit("__", 1)[0] + token
            else:
                full = full.rsplit("_", 1)[0] + token
            named.append(full)
    return named


def test_the_variables_table_names_only_real_settings():
    # The page's short table sits beside the generated reference: a renamed setting must not
    # leave it naming a variable that no longer does anything.
    table = variables_in_the_table((DOCS / "configuration.md").read_text(encoding="utf-8"))
    real = {f"BROKER_{key.upper().replace('.', '__')}" for key in every_setting(Settings)}
    assert len(table) >= 30
    unknown = [
        name
        for name in table
        if not (name in real or (name.endswith("*") and any(r.startswith(name[:-1]) for r in real)))
    ]
    assert unknown == []


def test_the_table_reader_spells_out_shorthand():
    rows = (
        "| `BROKER_PLANS__STORAGE_ADDON_MONTHLY` / `_YEARLY` | x | y |\n"
        "| `BROKER_BILLING__CLIENT_ID`, `__CLIENT_SECRET` | x | y |\n"
        "| `BROKER_DELIVERY__*` | x | y |\n"
    )
    assert variables_in_the_table(rows) == [
        "BROKER_PLANS__STORAGE_ADDON_MONTHLY",
        "BROKER_PLANS__STORAGE_ADDON_YEARLY",
        "BROKER_BILLING__CLIENT_ID",
        "BROKER_BILLING__CLIENT_SECRET",
        "BROKER_DELIVERY__*",
    ]
