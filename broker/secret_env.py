"""Settings from an environment mapping, secrets from files, and none of them passed to children.

``BROKER_X__Y_FILE=/run/secrets/y`` supplies ``BROKER_X__Y`` from a file (systemd credentials,
container secrets). The file is read while settings are built, from the mapping ``cli`` hands
over, and never written back into ``os.environ``: whatever the broker starts would inherit it.

``broker serve`` starts its delivery worker as a child process. ``child_environment`` splits the
parent's environment into what the child may see (no secret value, ``_FILE`` paths left for the
child to read itself) and the variables that do hold a secret, which the parent writes into a
pipe the child reads once at start-up (``SECRETS_FD_VARIABLE`` names its descriptor): they never
show in ``/proc/<pid>/environ``, in ``ps e`` or in a crash dump's environment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic_settings import BaseSettings, EnvSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

ENV_PREFIX = "BROKER_"
FILE_SUFFIX = "_FILE"
SECRETS_FD_VARIABLE = "BROKER_SECRETS_FD"
MAX_SECRETS_BYTES = 60_000  # below a pipe's buffer, so the parent never blocks writing it


class SecretFileError(OSError):
    """A ``BROKER_..._FILE`` variable names a file that cannot be read."""


def resolve_secret_files(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``environ`` in which each ``BROKER_X_FILE`` became ``BROKER_X`` (its file's
    content, trailing newline removed); a value set directly wins over a file."""
    resolved: dict[str, str] = {}
    upper_names = {name.upper() for name in environ}
    for name, value in environ.items():
        upper = name.upper()
        if not (upper.startswith(ENV_PREFIX) and upper.endswith(FILE_SUFFIX)):
            resolved.setdefault(name, value)
            continue
        target = name[: -len(FILE_SUFFIX)]
        if target.upper() in upper_names:
            continue
        path = Path(value)
        try:
            resolved[target] = path.read_text().strip()
        except OSError as exc:
            raise SecretFileError(
                f"{name} points to {path}, which cannot be read ({exc.strerror or exc})"
            ) from None
    return resolved


class EnvironSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = dict(environ)  # set first: the base class loads variables on init
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


@dataclass(frozen=True)
class ChildEnvironment:
    """What a child process is started with: ``env`` carries no secret; ``secrets`` (variables
    that hold one) travel through a pipe."""

    env: dict[str, str]
    secrets: dict[str, str]


def child_environment(environ: Mapping[str, str], secret_values: Iterable[str]) -> ChildEnvironment:
    """Split ``environ``: every ``BROKER_`` variable whose value holds a secret moves to
    ``secrets``. Other variables are the operator's business and pass unchanged (a short secret
    must not strip PATH of the child)."""
    values = [value for value in secret_values if value]
    env: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for name, value in environ.items():
        if name == SECRETS_FD_VARIABLE:
            continue
        ours = name.upper().startswith(ENV_PREFIX)
        if ours and any(secret in value for secret in values):
            secrets[name] = value
        else:
            env[name] = value
    return ChildEnvironment(env, secrets)


def secrets_pipe(secrets: Mapping[str, str]) -> int:
    """A readable descriptor holding ``secrets`` as JSON, already complete (the writer closed)."""
    payload = json.dumps(dict(secrets)).encode()
    if len(payload) > MAX_SECRETS_BYTES:
        raise ValueError("the secret settings are too large to hand to the delivery process")
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, payload)
    finally:
        os.close(write_end)
    return read_end


def read_secrets_pipe(descriptor: int) -> dict[str, str]:
    """What the parent wrote into the pipe (read once; the descriptor is closed after)."""
    chunks = []
    try:
        while chunk := os.read(descriptor, 65536):
            chunks.append(chunk)
    finally:
        os.close(descriptor)
    document = json.loads(b"".join(chunks) or b"{}")
    if not isinstance(document, dict):
        raise ValueError("the secrets pipe did not hold a JSON object")
    return {str(name): str(value) for name, value in document.items()}
