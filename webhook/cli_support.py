"""What every `unsub` command shares: one-line failures and the files it reads and writes.

A command never ends in a traceback for something the person running it can fix: a file
that is missing, unreadable or unwritable. Each says so in one line, ``unsub: error: ...``, naming the path and the reason, and
exits with status 1.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, NoReturn

import click


def fail(message: str) -> NoReturn:
    """Print ``unsub: error: message`` on stderr and exit with status 1."""
    click.echo(f"unsub: error: {message}", err=True)
    sys.exit(1)


def reason(error: OSError) -> str:
    """Why a file could not be used, in words ("No such file or directory")."""
    return error.strerror or str(error)


def cannot(doing: str, path: str | os.PathLike[str], error: OSError) -> NoReturn:
    fail(f"cannot {doing} {os.fspath(path)}: {reason(error)}")


def open_input(path: str) -> IO[bytes]:
    """A file to read as bytes (``-``: standard input), or a one-line failure."""
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as error:
        cannot("read", path, error)


def open_output(path: str) -> IO[str]:
    """A text file to write, for csv (``-``: standard output), or a one-line failure."""
    if path == "-":
        return sys.stdout
    try:
        return open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - the caller closes it
    except OSError as error:
        cannot("write", path, error)


def read_text(path: Path) -> str:
    """A UTF-8 text file's content, or a one-line failure."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        cannot("read", path, error)
    except UnicodeDecodeError as error:
        fail(f"cannot read {path}: it is not UTF-8 text ({error.reason} at byte {error.start})")
