"""Ids typed on the command line, checked like the console's (``core.ids``): an oversized or
odd id is refused by argparse with the field and the limit, before any database is opened."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from broker.core.ids import IdKind, id_problem


def id_arg(field: str, kind: IdKind) -> Callable[[str], str]:
    """An argparse ``type=`` that accepts an id of ``kind`` and names ``field`` when not."""

    def parse(text: str) -> str:
        problem = id_problem(kind, text)
        if problem is not None:
            raise argparse.ArgumentTypeError(f"{field} {problem}")
        return text

    parse.__name__ = field  # argparse names the type in some messages
    return parse
