"""The configuration reference, generated from ``broker.config.Settings`` so it cannot drift.

Walks every section model and its fields (nested sections too) and writes one table per section:
the key, its environment variable, its type, its default and its description. A description is
the field's own ``description`` or else the comment block written just above it in the model's
source, which is where the settings modules say why a setting exists.
"""

from __future__ import annotations

import enum
import inspect
import json
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

ENV_PREFIX = "BROKER_"


@dataclass(frozen=True)
class SettingRow:
    """One setting as the reference shows it."""

    key: str
    env: str
    type: str
    default: str
    description: str


@dataclass(frozen=True)
class SectionDoc:
    """One settings section (a model) and its rows."""

    key: str
    title: str
    description: str
    optional: bool
    rows: tuple[SettingRow, ...]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The section model an annotation names, looking through ``X | None``."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is not None:
        inner = ", ".join(_type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "None"
    if inspect.isclass(annotation) and issubclass(annotation, enum.Enum):
        return " | ".join(json.dumps(m.value) for m in annotation)
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_is_secret(a) for a in typing.get_args(annotation))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if _is_secret(field.annotation):
        return "unset (secret)"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, Path):
        value = str(value)
    try:
        return json.dumps(value)
    except TypeError:
        return str(value)


def _field_comments(model: type[BaseModel]) -> dict[str, str]:
    """The comment block just above each field in the model's own source."""
    comments: dict[str, str] = {}
    block: list[str] = []
    try:
        source = inspect.getsource(model)
    except (OSError, TypeError):
        return comments
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            block.append(stripped.lstrip("#").strip())
            continue
        match = re.match(r"^    (\w+)\s*:", line)
        if match and block:
            comments[match.group(1)] = " ".join(block)
        block = []
    return comments


def _doc_of(model: type[BaseModel]) -> str:
    doc = model.__doc__ or ""
    if doc.startswith(("Usage docs:", "!!! abstract")) or model.__doc__ is BaseModel.__doc__:
        return ""
    return " ".join(doc.split())


def sections(root: type[BaseModel]) -> list[SectionDoc]:
    """Every section under ``root``, depth first, nested sections after their parent."""
    found: list[SectionDoc] = []

    def walk(model: type[BaseModel], path: tuple[str, ...], optional: bool) -> None:
        comments = _field_comments(model)
        rows: list[SettingRow] = []
        nested: list[tuple[type[BaseModel], tuple[str, ...], bool]] = []
        for name, field in model.model_fields.items():
            sub = _model_of(field.annotation)
            if sub is not None:
                may_be_left_out = not field.is_required() and field.default is None
                nested.append((sub, (*path, name), may_be_left_out))
                continue
            key = ".".join((*path, name))
            rows.append(
                SettingRow(
                    key=key,
                    env=ENV_PREFIX + "__".join(p.upper() for p in (*path, name)),
                    type=_type_name(field.annotation),
                    default=_default(field),
                    description=field.description or comments.get(name, ""),
                )
            )
        if path:
            key = ".".join(path)
            found.append(SectionDoc(key, f"[{key}]", _doc_of(model), optional, tuple(rows)))
        for sub, sub_path, sub_optional in nested:
            walk(sub, sub_path, sub_optional)

    walk(root, (), False)
    return found


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(root: type[BaseModel]) -> str:
    """The reference as MyST Markdown: a heading and a table per section."""
    out: list[str] = []
    for section in sections(root):
        out += [f"### `{section.title}`", ""]
        if section.description:
            out += [section.description, ""]
        if section.optional:
            out += [
                "The whole section may be left out; once given, its required keys must be set.",
                "",
            ]
        out += ["| Key | Variable | Type | Default | Why |", "|---|---|---|---|---|"]
        for row in section.rows:
            out.append(
                f"| `{row.key}` | `{row.env}` | {_cell('`' + row.type + '`')} "
                f"| {_cell('`' + row.default + '`')} | {_cell(row.description)} |"
            )
        out.append("")
    return "\n".join(out)


def setup(app: Any) -> dict[str, Any]:
    """Registers the ``settings-reference`` directive (Sphinx calls this)."""
    from docutils.statemachine import StringList
    from sphinx.util.docutils import SphinxDirective

    from broker.config import Settings

    class SettingsReference(SphinxDirective):
        """Writes the reference of ``broker.config.Settings`` where it is placed."""

        def run(self) -> list[Any]:
            from docutils import nodes

            container = nodes.section()
            container.document = self.state.document
            text = StringList(markdown(Settings).splitlines(), source="broker.config.Settings")
            self.state.nested_parse(text, self.content_offset, container)
            return list(container.children)

    app.add_directive("settings-reference", SettingsReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
