"""What every command of the project shares: one-line errors and the interpreter to print.

The data layer is the lowest (it imports nothing of ``model`` or ``study``), so the builders and
the study's commands alike take these from here.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line naming the flag (not the usage block)."""

    def error(self, message):  # one line, not the whole usage block
        raise SystemExit(f"{self.prog}: {message} (see --help)")


def python_command() -> str:
    """This interpreter as a user types it in the project's directory: ``.venv/bin/python`` for
    the project's environment (what ``make`` creates), else its full path. A bare ``python``
    outside the environment would fail with ``ModuleNotFoundError``."""
    executable = Path(sys.executable)
    try:
        return str(executable.relative_to(Path(__file__).resolve().parents[1]))
    except ValueError:
        return str(executable)
