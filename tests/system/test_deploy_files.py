"""The deployment files stay true to the settings: every secret setting is wired as a file in the
systemd unit and in compose.yaml, each ``_FILE`` variable there points at a credential or secret
the same file declares, and the example environment file names only real settings. compose.yaml's
``ha`` profile is PostgreSQL, a one-shot migration and two replicas the proxies both know.

No YAML library is a dependency, so compose.yaml is read by its indentation (it keeps to one
plain layout, two spaces a level) and its ``*alias`` values are looked up by hand."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel, SecretStr

import broker
from broker.cli.check import setting_variables
from broker.config import Settings, StoreSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
HA_SERVICES = {"postgres", "migrate", "broker-1", "broker-2"}
REPLICAS = ("broker-1", "broker-2")
STORE_URL_FILE = "BROKER_STORE__URL_FILE"


def keyed(text: str, indent: int) -> dict[str, str]:
    """The text under each ``key:`` at exactly this indent, by key (the rest of the key's own
    line, an ``&anchor`` or a value, comes first)."""
    pieces = re.split(rf"^ {{{indent}}}([\w-]+):", text, flags=re.MULTILINE)
    return dict(zip(pieces[1::2], pieces[2::2], strict=True))


def compose_top() -> dict[str, str]:
    return keyed(COMPOSE.read_text(), 0)


def service(name: str) -> dict[str, str]:
    """One service's keys, each value with a ``*alias`` replaced by the anchored text."""
    top = compose_top()
    anchors = {
        m.group(1): block for block in top.values() if (m := re.match(r" &([\w-]+)\n", block))
    }
    found = keyed(keyed(top["services"], 2)[name], 4)
    for key, value in found.items():
        alias = re.fullmatch(r" \*([\w-]+)\n+", value)
        if alias is not None:
            found[key] = anchors[alias.group(1)]
    return found


def depends_on(keys: dict[str, str]) -> dict[str, str]:
    return dict(re.findall(r"^ {6}([\w-]+):\n {8}condition: (\w+)$", keys["depends_on"], re.M))


def published(keys: dict[str, str]) -> str:
    """The host address of a service's one published port."""
    (address,) = re.findall(r'^ +- "(127\.0\.0\.1:\d+):8080"$', keys["ports"], re.MULTILINE)
    return address


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
        "BROKER_STORE__URL_FILE",
    }


def test_the_systemd_unit_loads_every_secret_as_a_credential():
    unit = (DEPLOY / "broker.service").read_text()
    wired = dict(re.findall(r"^#?Environment=(BROKER_\w+_FILE)=%d/(\w+)$", unit, re.MULTILINE))
    credentials = set(re.findall(r"^#?LoadCredential=(\w+):/etc/broker/secrets/\1$", unit, re.M))
    assert set(wired) == secret_variables()
    assert set(wired.values()) <= credentials


def test_compose_mounts_every_secret_as_a_file():
    compose = COMPOSE.read_text()
    declared = set(re.findall(r"^  #? ?(\w+):\n  #? +file: \./secrets/\1$", compose, re.M))
    for name in ("broker", "migrate", *REPLICAS):
        keys = service(name)
        wired = dict(
            re.findall(r"(BROKER_\w+_FILE): /run/secrets/(\w+)$", keys["environment"], re.M)
        )
        mounted = set(re.findall(r"^ *(?:# )?- (\w+)$", keys["secrets"], re.MULTILINE))
        assert set(wired) - {STORE_URL_FILE} == secret_variables() - {STORE_URL_FILE}, name
        assert set(wired.values()) <= mounted, name
        assert mounted <= declared, name


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


def test_a_plain_up_is_the_sqlite_broker_and_the_ha_profile_adds_postgres_and_replicas():
    services = keyed(compose_top()["services"], 2)
    profiles = {name: service(name).get("profiles") for name in services}
    assert {name for name, value in profiles.items() if value == " [ha]\n"} == HA_SERVICES
    assert profiles["broker"] is None
    assert set(services) == HA_SERVICES | {"broker"}


def test_postgres_keeps_its_data_in_a_volume_and_its_password_in_a_secret():
    postgres = service("postgres")
    assert postgres["image"] == " postgres:16\n"
    assert "POSTGRES_PASSWORD_FILE: /run/secrets/postgres_password\n" in postgres["environment"]
    assert "- postgres_password\n" in postgres["secrets"]
    (volume,) = re.findall(r"- ([\w-]+):/var/lib/postgresql/data$", postgres["volumes"], re.M)
    assert f"\n  {volume}: {{}}\n" in compose_top()["volumes"]
    assert '"pg_isready -U broker -d broker"' in postgres["healthcheck"]
    compose = COMPOSE.read_text()
    assert "POSTGRES_PASSWORD:" not in compose
    # The only URL with a password is the setup step's template, filled in from the secret file.
    passwords = re.findall(r"postgresql://[^:/\s]+:([^@\s]+)@", compose)
    assert passwords == ["%s"]


def test_the_migration_runs_once_postgres_is_healthy_and_the_replicas_after_it():
    migrate = service("migrate")
    assert migrate["command"] == ' ["broker", "migrate"]\n'
    assert migrate["restart"] == ' "no"\n'
    assert depends_on(migrate) == {"postgres": "service_healthy"}
    for name in REPLICAS:
        assert depends_on(service(name)) == {"migrate": "service_completed_successfully"}, name


def test_the_replicas_share_only_the_database():
    for name in ("migrate", *REPLICAS):
        keys = service(name)
        assert f"{STORE_URL_FILE}: /run/secrets/store_url\n" in keys["environment"], name
        assert "- store_url\n" in keys["secrets"], name
        assert "BROKER_STORE__PATH" not in keys["environment"], name
        assert "volumes" not in keys, name  # never the SQLite broker's volume
    services = keyed(compose_top()["services"], 2)
    for name in ("broker", "migrate", *REPLICAS):
        assert services[name].startswith("\n    <<: *broker\n"), name
    hardening = compose_top()["x-broker"]
    assert "\n  read_only: true\n" in hardening
    assert "\n  stop_grace_period: 90s\n" in hardening


def test_each_replica_is_healthy_only_when_ready_and_the_proxies_know_both():
    nginx = (DEPLOY / "nginx.conf").read_text()
    caddy = (DEPLOY / "Caddyfile").read_text()
    upstream = nginx.split("upstream broker_backend {")[1].split("}")[0]
    addresses = [published(service(name)) for name in REPLICAS]
    assert len(set(addresses)) == len(REPLICAS)
    for name, address in zip(REPLICAS, addresses, strict=True):
        assert "127.0.0.1:8080/readyz" in service(name)["healthcheck"], name
        assert re.search(rf"^ +#?server {re.escape(address)} ", upstream, re.MULTILINE), address
        assert address in caddy, address
    assert "health_uri /readyz" in caddy


def test_only_webhooks_may_be_passed_to_another_replica_after_being_sent():
    """A webhook repeats harmlessly (one row per event_id); a page action must not run twice."""
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert nginx.count("non_idempotent") == 1
    webhook = nginx.split("location = /webhooks/billing {")[1].split("}\n")[1]
    assert "proxy_next_upstream error timeout non_idempotent;" in webhook


def high_availability_section() -> str:
    readme = (DEPLOY / "README.md").read_text()
    return readme.split("\n## High availability")[1].split("\n## ")[0]


def test_the_high_availability_section_names_only_settings():
    section = high_availability_section()
    known = setting_variables()
    # The PostgreSQL backend's settings are being added; once store.url exists, the
    # names here must be exactly the ones it brings.
    pending = set()
    if "url" not in StoreSettings.model_fields:
        pending = {"BROKER_STORE__URL", "BROKER_STORE__POOL_SIZE"}
    known |= pending | {name + "_FILE" for name in known | pending}
    variables = set(re.findall(r"\bBROKER_[A-Z0-9_]*[A-Z0-9]", section))
    dotted = {
        f"BROKER_{s.upper()}__{k.upper()}"
        for s, k in re.findall(r"`(\w+)\.(\w+)`", section)
        if s in Settings.model_fields  # not a file name such as `compose.yaml`
    }
    assert {"BROKER_STORE__URL", "BROKER_STORE__POOL_SIZE", "BROKER_STORE__URL_FILE"} <= variables
    assert "BROKER_DELIVERY__LEASE_SECONDS" in dotted
    assert (variables | dotted) - known == set()


def test_the_ha_commands_in_the_docs_name_real_services():
    services = set(keyed(compose_top()["services"], 2))
    commands = high_availability_section() + COMPOSE.read_text()
    verbs = r"(?:build|--profile ha run --rm|--profile ha up -d(?: --[\w-]+)*)"
    found = re.findall(rf"compose\.yaml {verbs} ([\w -]+?)$", commands, re.MULTILINE)
    targets = {name for names in found for name in names.split()}
    assert targets == {"broker", "migrate", *REPLICAS}
    assert targets <= services


def test_the_image_ships_the_wheel_ci_builds_and_starts():
    """One build command: the image installs what .ci/wheel-smoke built, checked and started."""
    root = DEPLOY.parent
    containerfile = (DEPLOY / "Containerfile").read_text()
    smoke = (root / ".ci" / "wheel-smoke").read_text()
    assert re.search(r"^RUN .*\.ci/build-wheel /wheels", containerfile, flags=re.MULTILINE)
    assert "pip wheel" not in containerfile
    assert ".ci/build-wheel" in smoke
    assert "pip wheel" not in smoke
    assert "!.ci/build-wheel" in (DEPLOY / "Containerfile.dockerignore").read_text()
    ci_run = (root / ".ci" / "run").read_text()
    assert re.search(r"^PYTHON=\S+ \.ci/build-wheel ", ci_run, re.M)
    assert re.search(r"^PYTHON=\S+ \.ci/wheel-smoke \"\$wheel\"$", ci_run, re.M)
    assert re.search(r"^export PYTHONSAFEPATH=1 BROKER_TEST_WHEEL=1$", ci_run, re.M)


def test_ci_tests_the_installed_wheel_not_the_source_tree():
    """Under .ci/run (BROKER_TEST_WHEEL=1) the suite imports the broker the wheel installed, so
    a file the wheel leaves out fails the tests as it would fail in production."""
    if os.environ.get("BROKER_TEST_WHEEL") != "1":
        pytest.skip("only .ci/run tests the installed wheel; developers use an editable install")
    tree = DEPLOY.parent / "broker"
    installed = Path(broker.__file__).resolve().parent
    assert installed != tree
    assert "site-packages" in installed.parts
    assert (installed / "ops" / "templates" / "ops_login.html").is_file()
