"""Settings from an environment mapping, and secrets from files.

``BROKER_X__Y_FILE=/run/secrets/y`` supplies ``BROKER_X__Y`` from a file (systemd credentials,
container secrets). The file is read while settings are built, from the mapping ``cli`` hands
over, and never written back into ``os.environ``: whatever the broker starts would inherit it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic_settings import BaseSettings, EnvSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

ENV_PREFIX = "BROKER_"
FILE_SUFFIX = "_FILE"


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
