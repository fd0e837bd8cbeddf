"""The little that must change for PostgreSQL to run the SQL the store writes once.

Placeholders: the store writes ``?`` and ``:name`` (sqlite3's styles); psycopg wants ``%s`` and
``%(name)s``, with a literal ``%`` doubled; quoted text is left as it is. Schema statements are
not rewritten: each migration writes out its PostgreSQL DDL (``store/migrations/``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator


def _pieces(sql: str) -> Iterator[tuple[bool, str]]:
    """``sql`` cut into (quoted, text) runs; quotes are '…' and "…" with doubled escapes."""
    start = 0
    index = 0
    while index < len(sql):
        char = sql[index]
        if char in "'\"":
            end = index + 1
            while True:
                end = sql.find(char, end)
                if end == -1:
                    end = len(sql)
                    break
                if end + 1 < len(sql) and sql[end + 1] == char:
                    end += 2
                    continue
                end += 1
                break
            if start < index:
                yield False, sql[start:index]
            yield True, sql[index:end]
            start = index = end
            continue
        index += 1
    if start < len(sql):
        yield False, sql[start:]


_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def to_psycopg(sql: str) -> str:
    """``sql`` with sqlite3 placeholders turned into psycopg's, and every ``%`` escaped."""
    out = []
    for quoted, text in _pieces(sql):
        text = text.replace("%", "%%")
        if not quoted:
            text = text.replace("?", "%s")
            text = _NAMED.sub(r"%(\1)s", text)
        out.append(text)
    return "".join(out)
