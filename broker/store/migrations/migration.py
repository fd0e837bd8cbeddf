"""What a migration is: a name recorded once applied, and its statements in order.

A statement is one string when SQLite and PostgreSQL agree on it, or a ``Ddl`` holding each
dialect's text where they differ (PostgreSQL's ``REAL`` is a 4-byte float, so a Unix time there
is ``DOUBLE PRECISION``; ``BLOB`` is ``BYTEA``; ``INTEGER`` is ``BIGINT``; an ``AUTOINCREMENT``
key is an identity column). Both texts are written out: nothing rewrites SQL on the way.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.store.engine.tx import Dialect


@dataclass(frozen=True)
class Ddl:
    """One statement written for each dialect."""

    sqlite: str
    postgresql: str

    def text(self, dialect: Dialect) -> str:
        return self.postgresql if dialect is Dialect.POSTGRESQL else self.sqlite


class Migration:
    """A named, ordered list of statements; the name is what ``broker_migrations`` records."""

    def __init__(self, name: str, *statements: str | Ddl) -> None:
        self.name = name
        self.statements = statements

    def sql(self, dialect: Dialect) -> list[str]:
        """The statements as ``dialect`` runs them, in order."""
        return [s if isinstance(s, str) else s.text(dialect) for s in self.statements]

    def __repr__(self) -> str:
        return f"Migration({self.name!r})"
