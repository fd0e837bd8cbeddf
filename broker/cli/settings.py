"""Settings for a command: loaded from the environment and the config file, or each problem
named with the key to set."""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from collections.abc import Mapping

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from broker.config import Settings, config_file, load_settings

ENV_PREFIX = "BROKER_"
EXIT_CONFIG = 2


def load_from_args(args: argparse.Namespace) -> Settings | None:
    """Load settings, or print what is wrong (naming the key) and return None.

    The environment is read into a copy: nothing is written back into ``os.environ``, so no
    secret read from a ``_FILE`` reaches a child process's environment.
    """
    environ = dict(os.environ)
    config = config_file(args.config, environ)
    unknown = _unknown_env_sections(environ)
    if unknown:
        print("configuration error:", file=sys.stderr)
        for name in unknown:
            print(
                f"  {name}: unknown settings section; the sections are "
                f"{', '.join(sorted(Settings.model_fields))}",
                file=sys.stderr,
            )
        return None
    try:
        return load_settings(config, environ)
    except OSError as exc:  # a missing config file, an unreadable _FILE secret
        print(f"configuration error: {exc}", file=sys.stderr)
    except tomllib.TOMLDecodeError as exc:  # a ValueError too, so it must come first
        print(f"configuration error: {config} is not valid TOML: {exc}", file=sys.stderr)
    except (ValidationError, ValueError) as exc:
        print("configuration error:", file=sys.stderr)
        for line in describe_settings_error(exc):
            print(f"  {line}", file=sys.stderr)
    return None


def _unknown_env_sections(environ: Mapping[str, str]) -> list[str]:
    """pydantic-settings ignores ``BROKER_SERVR__PORT``; a misspelt section must not pass."""
    unknown = []
    for name in environ:
        upper = name.upper()
        if upper.startswith(ENV_PREFIX) and "__" in upper:
            section = upper[len(ENV_PREFIX) :].split("__", 1)[0].lower()
            if section not in Settings.model_fields:
                unknown.append(name)
    return sorted(unknown)


def describe_settings_error(exc: Exception) -> list[str]:
    if not isinstance(exc, ValidationError):
        return [str(exc)]
    lines = []
    for error in _expand_missing_sections(exc.errors(include_url=False, include_input=False)):
        location = [str(part) for part in error["loc"]]
        key = ".".join(location) or "(settings)"
        env = ENV_PREFIX + "__".join(part.upper() for part in location)
        if error["type"] == "extra_forbidden":
            lines.append(
                f"{key}: unknown setting; check its spelling in config/broker.example.toml"
            )
            continue
        hint = (
            f" (set {env} or [{location[0]}] {'.'.join(location[1:])} in the config file)"
            if len(location) > 1
            else ""
        )
        lines.append(f"{key}: {error['msg']}{hint}")
    return lines


def _expand_missing_sections(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """A whole missing section is reported as each of its required keys, which is actionable."""
    expanded: list[ErrorDetails] = []
    for error in errors:
        section = Settings.model_fields.get(str(error["loc"][0])) if error["loc"] else None
        model = section.annotation if section else None
        if (
            error["type"] == "missing"
            and len(error["loc"]) == 1
            and isinstance(model, type)
            and issubclass(model, BaseModel)
        ):
            for name, field in model.model_fields.items():
                if field.is_required():
                    expanded.append({**error, "loc": (error["loc"][0], name)})
        else:
            expanded.append(error)
    return expanded
