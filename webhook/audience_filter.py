"""The loop of ``unsub audience filter``, in one process or split across several.

One process reads rows, normalises the address cell, asks the store which addresses of each
chunk are suppressed and writes each row to its file. With ``--jobs N`` a file on disk is cut
into N byte ranges that each start at a row; each range is filtered by its own process into
files of its own, and the parent appends those files in input order, so the outputs are the
same bytes as one process writes.

Where a row starts is known only by reading from the top (a quoted cell may hold line
breaks), so a cut is chosen where the count of quote characters before it is even, and then
checked: the process of the range before a cut reads one sentinel line after its range, and
only a cut that csv.reader reaches between two rows turns the sentinel into a row of its own.
A file where that fails (a stray quote inside an unquoted cell, before a multi-line cell) is
filtered again in one process: slower, never wrong.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
import queue
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import IO, Any

from webhook.addresses import strict_normaliser
from webhook.consent import address_hasher, suppressed_among
from webhook.csv_safe import SafeWriter
from webhook.store import Store, open_store

CHUNK = 5000  # rows looked up in the database at once
KINDS = ("sendable", "suppressed", "invalid")
MIN_BYTES_PER_JOB = 4 * 1024 * 1024  # below this a process costs more to start than it saves
SENTINEL = "\ufdd0unsub: end of range\ufdd1"  # two Unicode non-characters: never in a contact list
_DIALECT_FIELDS = ("delimiter", "quotechar", "escapechar", "doublequote", "skipinitialspace", "quoting", "strict")


class FilterError(Exception):
    """The filter stopped; ``rows`` were done (and written) before it."""

    def __init__(self, message: str, rows: int = 0) -> None:
        super().__init__(message)
        self.rows = rows


@dataclass(frozen=True)
class Spec:
    """Everything a process needs to filter rows: plain values, so it can be sent to one."""

    database_url: str
    channel: str
    channel_type: str
    gated: bool
    index: int
    region: str | None
    dialect: dict[str, Any]
    secret: str | None = field(default=None, repr=False)  # ERASURE_KEY/SECRET_KEY, when erasures exist


def dialect_of(dialect: type[csv.Dialect] | csv.Dialect) -> dict[str, Any]:
    """A csv dialect as keyword arguments for csv.reader (classes do not cross processes)."""
    return {name: getattr(dialect, name) for name in _DIALECT_FIELDS if hasattr(dialect, name)}


def filter_chunks(chunks: Iterable[list[list[str]]], spec: Spec, store: Store,
                  hash_for: Callable[[str, str], str], writers: Mapping[str, Callable | None],
                  counts: dict[str, int], after_chunk: Callable[[], None]) -> None:
    """The loop itself: each row to the writer of its kind, the address cell normalised."""
    index = spec.index
    normalise = strict_normaliser(spec.channel_type, spec.region)
    for chunk in chunks:
        normal = [normalise(row[index]) if len(row) > index else None for row in chunk]
        blocked: set[str] = set()
        if spec.gated:
            blocked = suppressed_among(store, spec.channel, list({a for a in normal if a}), hash_for)
        for row, address in zip(chunk, normal, strict=True):
            if address is None:
                kind = "invalid"
            else:
                row[index] = address
                kind = "suppressed" if address in blocked else "sendable"
            counts[kind] += 1
            write = writers[kind]
            if write is not None:
                write(row)
        after_chunk()


def chunked(rows: Iterator[list[str]], size: int = CHUNK, done: int = 0) -> Iterator[list[list[str]]]:
    """Rows in lists of ``size``; a file that turns unreadable stops with FilterError."""
    while True:
        try:
            chunk = list(islice(rows, size))
        except (UnicodeDecodeError, csv.Error) as error:
            raise FilterError(f"stopped after about {done} rows: the file cannot be read further ({error}); "
                              "save it as CSV UTF-8 and run the command again", done) from error
        if not chunk:
            return
        done += len(chunk)
        yield chunk


def hasher(secret: str | None) -> Callable[[str, str], str]:
    if secret:
        return address_hasher(secret)

    def missing(channel: str, address: str) -> str:
        raise FilterError("erased contacts are kept as a keyed hash: set ERASURE_KEY or SECRET_KEY to the value "
                          "the service runs with")

    return missing


# --- splitting a file ------------------------------------------------------------------


def jobs_for(size: int, wanted: int) -> int:
    """How many processes a file of ``size`` bytes gets: at most ``wanted``, each a fair share."""
    return max(1, min(wanted, size // MIN_BYTES_PER_JOB))


def cut_points(path: str, jobs: int, quotechar: str | None) -> list[int]:
    """Byte offsets where ranges start (0 first), each just after a line break with an even
    count of quote characters before it: where a row starts in a well-formed CSV file."""
    size = os.path.getsize(path)
    quote = quotechar.encode("utf-8") if quotechar else None
    points = [0]
    with open(path, "rb") as source:
        quotes = 0
        position = 0
        for number in range(1, jobs):
            target = size * number // jobs
            if target <= points[-1]:
                continue
            while position < target:  # count the quotes up to the target, a block at a time
                block = source.read(min(1 << 20, target - position))
                if not block:
                    break
                if quote:
                    quotes += block.count(quote)
                position += len(block)
            while True:  # then line by line to the first break with an even count before it
                line = source.readline()
                if not line:
                    return points
                position += len(line)
                if quote:
                    quotes += line.count(quote)
                if quotes % 2 == 0 and line.endswith(b"\n"):
                    break
            if position < size:
                points.append(position)
    return points


class _Range(io.RawIOBase):
    """Bytes ``start`` to ``end`` of a file, counting what was read (for the progress bar)."""

    def __init__(self, source: io.BufferedReader, start: int, end: int) -> None:
        source.seek(start)
        self.source, self.left, self.read_bytes = source, end - start, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.left <= 0:
            return 0
        view = memoryview(buffer)[: min(len(buffer), self.left)]
        count = self.source.readinto(view) or 0
        self.left -= count
        self.read_bytes += count
        return count


@dataclass(frozen=True)
class Part:
    number: int
    start: int
    end: int
    has_header: bool  # the first range skips the header row, as open_rows does
    last: bool


@dataclass
class PartResult:
    number: int
    counts: dict[str, int]
    clean: bool  # the range ended between two rows
    error: str | None = None


def filter_part(spec: Spec, path: str, part: Part, out_dir: str, progress: Any) -> PartResult:
    """Filter one range into ``out_dir/<number>.<kind>.csv`` (run in a child process)."""
    counts = dict.fromkeys(KINDS, 0)
    clean = part.last
    store = None
    try:
        store = open_store(spec.database_url)
        with open(path, "rb") as source, ExitFiles() as files:
            raw = _Range(source, part.start, part.end)
            text = io.TextIOWrapper(io.BufferedReader(raw, 1 << 16), encoding="utf-8-sig" if part.start == 0
                                    else "utf-8", newline="")
            lines: Iterable[str] = text if part.last else chain(text, [SENTINEL + "\r\n"])
            rows: Iterator[list[str]] = filter(any, csv.reader(lines, **spec.dialect))
            if part.has_header:
                next(rows, None)
            writers = {kind: SafeWriter(files.open(Path(out_dir) / f"{part.number}.{kind}.csv")).writerow
                       for kind in KINDS}

            def sentinel_dropped(chunks: Iterator[list[list[str]]]) -> Iterator[list[list[str]]]:
                nonlocal clean
                for chunk in chunks:
                    if not part.last and chunk[-1] == [SENTINEL]:
                        chunk.pop()  # only the last row can be it: nothing follows the sentinel line
                        clean = True
                    if chunk:
                        yield chunk

            def report() -> None:
                progress[part.number] = raw.read_bytes

            filter_chunks(sentinel_dropped(chunked(rows)), spec, store, hasher(spec.secret), writers, counts, report)
            report()
    except Exception as error:  # noqa: BLE001 - a child reports every failure to the parent, in words
        return PartResult(part.number, counts, clean, f"{type(error).__name__}: {error}")
    finally:
        if store is not None:
            store.close()
    return PartResult(part.number, counts, clean)


class ExitFiles:
    """Output files of a range, closed together."""

    def __init__(self) -> None:
        self.files: list[IO[str]] = []

    def open(self, path: Path) -> IO[str]:
        handle = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in __exit__
        self.files.append(handle)
        return handle

    def __enter__(self) -> ExitFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.files:
            handle.close()


def _child(spec: Spec, path: str, part: Part, out_dir: str, progress: Any, results: Any) -> None:
    results.put(filter_part(spec, path, part, out_dir, progress))


def filter_in_parts(spec: Spec, path: str, jobs: int, has_header: bool, outputs: dict[str, IO[str] | None],
                    on_progress: Callable[[int], None]) -> tuple[dict[str, int], bool]:
    """Filter ``path`` in ``jobs`` processes and append their files to ``outputs`` in order.

    Returns the counts and whether it worked. When a cut fell inside a row (see the module's
    docstring) or a range failed, nothing has been written to ``outputs`` and the caller
    filters in one process.
    """
    points = cut_points(path, jobs, spec.dialect.get("quotechar"))
    size = os.path.getsize(path)
    parts = [Part(number, start, points[number + 1] if number + 1 < len(points) else size,
                  has_header and number == 0, number == len(points) - 1)
             for number, start in enumerate(points)]
    context = multiprocessing.get_context("spawn")  # never fork a process that holds a database connection
    progress = context.Array("q", len(parts), lock=False)
    results = context.Queue()
    with tempfile.TemporaryDirectory(prefix="unsub-filter-") as out_dir:
        children = [context.Process(target=_child, args=(spec, path, part, out_dir, progress, results), daemon=True)
                    for part in parts]
        for child in children:
            child.start()
        try:
            found = _collect(children, results, len(parts), progress, on_progress)
        finally:
            for child in children:
                if child.is_alive():
                    child.terminate()
                child.join()
        ordered = [found[number] for number in range(len(parts))]
        if not all(result.clean and result.error is None for result in ordered):
            # A cut inside a row, or a range that failed (unreadable text, database gone):
            # one process does it again and stops where and how one process would.
            return dict.fromkeys(KINDS, 0), False
        counts = dict.fromkeys(KINDS, 0)
        for result in ordered:
            for kind in KINDS:
                output = outputs[kind]
                if output is not None:
                    with open(Path(out_dir) / f"{result.number}.{kind}.csv", encoding="utf-8", newline="") as part_file:
                        shutil.copyfileobj(part_file, output, 1 << 20)
                counts[kind] += result.counts[kind]
        return counts, True


def _collect(children: list, results: Any, expected: int, progress: Any,
             on_progress: Callable[[int], None]) -> dict[int, PartResult]:
    found: dict[int, PartResult] = {}
    while len(found) < expected:
        try:
            result = results.get(timeout=0.2)
        except queue.Empty:
            on_progress(sum(progress))
            dead = [child for child in children if not child.is_alive() and child.exitcode not in (0, None)]
            if dead and results.empty():
                time.sleep(0.2)  # a result put just before exiting may still be in the pipe
                if results.empty():
                    raise FilterError(f"a filter process stopped unexpectedly (exit code {dead[0].exitcode})") from None
            continue
        found[result.number] = result
        on_progress(sum(progress))
    return found
