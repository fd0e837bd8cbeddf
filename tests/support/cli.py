"""Running the ``broker`` command in-process, as the CLI tests of every kind do."""

from __future__ import annotations

import pytest

from broker.cli import main as cli_main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``broker ...`` in-process; return (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        code = cli_main(list(argv))
    except SystemExit as exc:  # argparse errors and _open_existing exit this way
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err
