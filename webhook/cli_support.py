"""What every `unsub` command shares: one-line failures, the files it reads and writes, and
the database it works on.

A command never ends in a traceback for something the person running it can fix: a file
that is missing, unreadable or unwritable, or a database that is not where it looks. Each
says so in one line, ``unsub: error: ...``, naming the path and the reason, and
exits with status 1.
"""

from __future__ import annotations

import errno
import os
import sys
import tempfile
from pathlib import Path
from typing import IO, NoReturn
from urllib.parse import urlsplit, urlunsplit

import click

from webhook.settings import Settings, SettingsError, check_database_url, sqlite_path

DEFAULT_DATABASE_URL = Settings.database_url  # sqlite:///unsub.db, in the working directory


def fail(message: str) -> NoReturn:
    """Print ``unsub: error: message`` on stderr and exit with status 1."""
    click.echo(f"unsub: error: {message}", err=True)
    sys.exit(1)


def reason(error: OSError) -> str:
    """Why a file could not be used, in words ("No such file or directory")."""
    return error.strerror or str(error)


def cannot(doing: str, path: str | os.PathLike[str], error: OSError) -> NoReturn:
    """Fail with ``cannot DOING PATH: REASON``."""
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


def replace_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it and ``os.replace``.

    A symlink at ``path`` is replaced by a regular file, never written through: the
    repository's ``keywords.yaml`` links to the packaged copy, which an export must not change.
    Readers never see a half-written file. Failures are one line.
    """
    if path.is_dir():  # os.replace would say "Device or resource busy" for "."
        cannot("write", path, IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)))
    folder = path.parent
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as error:
        cannot("write", path, error)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, path.stat().st_mode & 0o777 if path.is_file() and not path.is_symlink() else _new_file_mode())
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        cannot("write", path, error)


def _new_file_mode() -> int:
    """What open() would give a new file (mkstemp's are 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def database_location(url: str) -> str:
    """Where a DATABASE_URL points, for people: a SQLite file's absolute path, or the
    PostgreSQL URL without its password."""
    if url.startswith("sqlite:"):
        return os.path.abspath(sqlite_path(url))
    parts = urlsplit(url)
    if parts.password is not None:
        netloc = parts.netloc.rpartition("@")
        user = netloc[0].partition(":")[0]
        parts = parts._replace(netloc=f"{user}:***@{netloc[2]}")
    return urlunsplit(parts)


def database_url_from_env() -> str:
    """DATABASE_URL (default ``sqlite:///unsub.db``), checked, or a one-line failure."""
    try:
        return check_database_url(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    except SettingsError as error:
        fail(error.message)


def existing_database_url(url: str, name: str = "DATABASE_URL") -> str:
    """The URL when its database can exist already: PostgreSQL, or a SQLite file that is there.

    For commands that only read: opening a SQLite URL creates the file, so a command run
    from another folder would make an empty database there and report nothing. Fails with
    one line naming the absolute path it looked at and how to point elsewhere (``name`` is
    what the URL came from: the setting, or a command's argument).
    """
    try:
        url = check_database_url(url)
    except SettingsError as error:
        fail(error.message)
    if url.startswith("sqlite:"):
        path = os.path.abspath(sqlite_path(url))
        if not os.path.isfile(path):
            fix = (f"set {name}=sqlite:////absolute/path/unsub.db, or run the command in the folder the service runs in"
                   if name == "DATABASE_URL" else f"give {name} as sqlite:////absolute/path/unsub.db")
            fail(f"no database at {path} ({name} {url}); {fix}")
    return url
