"""`unsub audience`, `unsub suppressions`, `unsub campaign`, `unsub contact` and `unsub stats`:
contact lists in and out of the database, streamed, so a million rows need no more memory than ten."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import IO, Iterator

import click

from webhook import audience_filter as audience_filter_loop
from webhook import consent
from webhook.addresses import normalise_address
from webhook.analytics import build_report
from webhook.cli import CONTEXT, _fail, _keywords_path, main
from webhook.cli_support import database_url_from_env, existing_database_url, open_input, open_output
from webhook.configuration import config_of
from webhook.contact_files import ContactFileError, Layout, open_rows, parse_when
from webhook.csv_safe import SafeWriter
from webhook.database_check import check_reachable
from webhook.domain import ConsentEvent, iso, utcnow
from webhook.keywords import Channel, KeywordConfig, KeywordConfigError, load_file
from webhook.settings import SettingsError, check_window, load_local_secrets
from webhook.store import Store, StoreUnavailable, erasure_key_matches, open_store

IMPORT_BATCH = 1000  # events per transaction
CLOCK_SKEW = timedelta(minutes=5)  # dates this far ahead of our clock are still taken as now-ish


@contextmanager
def _database(*, existing: bool) -> Iterator[tuple[Store, KeywordConfig]]:
    """The store DATABASE_URL names (migrated) and the keyword configuration in force there.

    ``existing``: the command only reads, so a SQLite database that is not there is an
    error (opening it would create an empty one and report nothing); commands that record
    create it.
    """
    url = database_url_from_env()
    if existing:
        url = existing_database_url(url)
    try:
        check_reachable(url, "DATABASE_URL")  # PostgreSQL down: one line, not the pool's retries
        store = open_store(url)
        store.migrate()
        latest = store.latest_keyword_version()
        config = config_of(latest) if latest is not None else load_file(_keywords_path(os.environ.get("KEYWORDS_FILE")))
    except (SettingsError, StoreUnavailable, KeywordConfigError) as error:
        _fail(str(error))
    try:
        yield store, config
    except StoreUnavailable as error:
        _fail(str(error))
    finally:
        store.close()


def _channel(config: KeywordConfig, name: str) -> Channel:
    try:
        return consent.named_channel(config, name)
    except consent.UnknownChannel as error:
        _fail(str(error))


class LazyHasher:
    """The erased-address hash, with its key (ERASURE_KEY, else SECRET_KEY) read only when an
    erased contact must be checked, and checked against the one the database's erasures used."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._hash: consent.AddressHash | None = None
        self._secret = ""

    def __call__(self, channel: str, address: str) -> str:
        return self.resolve()(channel, address)

    def resolve(self) -> consent.AddressHash:
        """The hash function; fails with a clear message when SECRET_KEY cannot be found."""
        self.secret()
        assert self._hash is not None
        return self._hash

    def secret(self) -> str:
        """The key itself (for the audience filter's processes), checked as ``resolve`` does."""
        if self._hash is None:
            secret = os.environ.get("ERASURE_KEY") or os.environ.get("SECRET_KEY")
            if not secret and (Path("instance") / "secrets.env").is_file():
                secret = load_local_secrets(Path("instance"))["SECRET_KEY"]
            if not secret:
                _fail("erased contacts are kept as a keyed hash: set ERASURE_KEY or SECRET_KEY to the value "
                      "the service runs with")
            hash_for = consent.address_hasher(secret)
            if not erasure_key_matches(self.store, hash_for):
                _fail("ERASURE_KEY (or SECRET_KEY) is not the key this database's erased contacts were hashed "
                      "with; set it to the value the service runs with")
            self._hash, self._secret = hash_for, secret
        return self._secret


class Progress:
    """A progress bar on stderr by bytes read, when stderr is a terminal; silent otherwise."""

    def __init__(self, raw: IO[bytes], label: str, quiet: bool) -> None:
        self.raw = raw
        self.done = 0
        size = _size(raw)
        self.bar = None
        if not quiet and size and sys.stderr.isatty():
            self.bar = click.progressbar(length=size, label=label, file=sys.stderr, show_eta=True, show_percent=True)
            self.bar.__enter__()

    def update(self) -> None:
        if self.bar is not None:
            self.to(self.raw.tell())

    def to(self, position: int) -> None:
        """The bar at ``position`` bytes (the audience filter's processes report their sum)."""
        if self.bar is not None and position > self.done:
            self.bar.update(position - self.done)
            self.done = position

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _size(raw: IO[bytes]) -> int:
    try:
        return os.fstat(raw.fileno()).st_size if raw.seekable() else 0
    except (OSError, ValueError):
        return 0


@contextmanager
def _input(path: str) -> Iterator[tuple[IO[bytes], io.TextIOWrapper]]:
    """A CSV file (or - for stdin) as bytes (for progress) and as text."""
    raw = open_input(path)
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    try:
        yield raw, text
    finally:
        text.detach()
        if path != "-":
            raw.close()


def _open_list(stack: ExitStack, source: str) -> tuple[IO[bytes], io.TextIOWrapper]:
    """Open a contact list before the database: a file that is not there changes nothing."""
    return stack.enter_context(_input(source))


def _read_list(opened: tuple[IO[bytes], io.TextIOWrapper], channel: Channel,
               column: str | None) -> tuple[IO[bytes], Layout, Iterator[list[str]]]:
    """A contact list's bytes (for progress), layout and data rows, or a clear failure."""
    raw, text = opened
    try:
        layout, rows = open_rows(text, channel_type=channel.type, column=column)
    except ContactFileError as error:
        _fail(str(error))
    return raw, layout, rows


def _region(given: str | None) -> str | None:
    return (given or os.environ.get("DEFAULT_REGION") or "").upper() or None


def _moment(at_text: str | None) -> datetime:
    """--at as a time, now without it."""
    if not at_text:
        return utcnow()
    moment = parse_when(at_text)
    if moment is None:
        _fail(f"--at {at_text!r} is not a date or time (2026-11-26 or 2026-11-26T10:00:00Z)")
    if moment > utcnow() + CLOCK_SKEW:
        _fail(f"--at {at_text!r} is in the future")
    return moment


def _output(stack: ExitStack, path: str | None) -> IO[str] | None:
    """A CSV output stream (-: stdout), None without a path. Every CSV the product writes goes
    through SafeWriter, so it is formula-safe."""
    if path is None:
        return None
    stream = open_output(path)
    if path != "-":
        stack.enter_context(stream)
    return stream


def _chunks(rows: Iterator[list[str]], size: int) -> Iterator[list[list[str]]]:
    """Rows in lists of ``size``; a file that turns unreadable midway stops with a clear line.

    What was done with the rows before it stays done: imports are idempotent, so running
    the command again on the mended file is safe.
    """
    done = 0
    while True:
        try:
            chunk = list(islice(rows, size))
        except (UnicodeDecodeError, csv.Error) as error:
            _fail(f"stopped after about {done} rows: the file cannot be read further ({error}); "
                  "save it as CSV UTF-8 and run the command again")
        if not chunk:
            return
        done += len(chunk)
        yield chunk


@main.group(context_settings=CONTEXT)
def audience() -> None:
    """Split contact lists into who may get a campaign and who may not.

    Example: unsub audience filter --channel sms contacts.csv > sendable.csv
    """


@audience.command("filter", context_settings=CONTEXT)
@click.argument("source", type=click.Path(allow_dash=True))
@click.option("--channel", required=True, help="Channel name from the keyword configuration (sms, whatsapp, email...).")
@click.option("--category", type=click.Choice(consent.CATEGORIES), default="campaign", show_default=True,
              help="Message category; which are gated is the channel's revocation_scope (campaign only by default).")
@click.option("--column", help="Address column: a header name or a 1-based number (default: detected).")
@click.option("--region", help="Country for numbers written without + (e.g. US); default DEFAULT_REGION.")
@click.option("-o", "--output", default="-", show_default=True, help="Where sendable rows go.")
@click.option("--suppressed", "suppressed_path", help="Write suppressed rows (unsubscribed) to this file.")
@click.option("--invalid", "invalid_path", help="Write rows whose address is not valid to this file.")
@click.option("-j", "--jobs", type=click.IntRange(min=1),
              help="Processes to filter with (default: the number of cores). A file of at least 4 MB a process "
                   "is split; standard input is read by one.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def audience_filter(source: str, channel: str, category: str, column: str | None, region: str | None, output: str,
                    suppressed_path: str | None, invalid_path: str | None, jobs: int | None, quiet: bool) -> None:
    """Split a CSV contact list into sendable, suppressed and invalid rows.

    Rows keep every column; the address column is rewritten in its normalised form
    (E.164 or lower-case e-mail) in sendable and suppressed rows, and left as written
    in invalid ones. The input is streamed, so memory does not grow with the file;
    duplicate rows are kept as they are; the output is the same whatever --jobs. A summary
    goes to stderr. Erased contacts are
    recognised by their keyed hash: set ERASURE_KEY (else SECRET_KEY) as the service has it.

    Example: unsub audience filter --channel sms --category campaign contacts.csv > sendable.csv
    """
    region = _region(region)
    started = time.monotonic()
    with ExitStack() as stack:
        opened = _open_list(stack, source)
        store, config = stack.enter_context(_database(existing=True))
        target = _channel(config, channel)
        raw, layout, rows = _read_list(opened, target, column)
        streams = {"sendable": _output(stack, output), "suppressed": _output(stack, suppressed_path),
                   "invalid": _output(stack, invalid_path)}
        writers = {kind: SafeWriter(stream).writerow if stream is not None else None for kind, stream in streams.items()}
        if layout.has_header:
            for write in writers.values():
                if write is not None:
                    write(layout.header)
        hasher = LazyHasher(store)
        gated = target.gates(category)
        spec = audience_filter_loop.Spec(
            database_url=existing_database_url(database_url_from_env()), channel=target.name,
            channel_type=target.type, gated=gated, index=layout.address_index, region=region,
            dialect=audience_filter_loop.dialect_of(layout.dialect),
            secret=hasher.secret() if gated and store.has_erasures(target.name) else None)
        size = _size(raw) if source != "-" else 0
        processes = audience_filter_loop.jobs_for(size, jobs or os.cpu_count() or 1)
        counts = None
        if processes > 1:
            progress = Progress(raw, f"filtering {channel} ({processes} processes)", quiet)
            try:
                counts, done = audience_filter_loop.filter_in_parts(spec, source, processes, layout.has_header,
                                                                    streams, progress.to)
            except audience_filter_loop.FilterError as error:
                _fail(str(error))
            finally:
                progress.close()
            if not done:
                counts = None
                click.echo("the file could not be cut between rows (or a part failed): filtering it in one process",
                           err=True)
        if counts is None:
            counts = dict.fromkeys(audience_filter_loop.KINDS, 0)
            progress = Progress(raw, f"filtering {channel}", quiet)
            stack.callback(progress.close)
            try:
                audience_filter_loop.filter_chunks(audience_filter_loop.chunked(rows), spec, store, hasher, writers,
                                                   counts, progress.update)
            except audience_filter_loop.FilterError as error:
                _fail(str(error))
    total = sum(counts.values())
    click.echo(f"{total} rows: {counts['sendable']} sendable, {counts['suppressed']} suppressed, "
               f"{counts['invalid']} invalid ({time.monotonic() - started:.1f} s)", err=True)


@main.group(context_settings=CONTEXT)
def suppressions() -> None:
    """Import and export suppression lists (the unsubscribed addresses of a channel).

    Example: unsub suppressions export --channel sms -o sms-suppressions.csv
    """


@suppressions.command("import", context_settings=CONTEXT)
@click.argument("source", type=click.Path(allow_dash=True))
@click.option("--channel", required=True, help="Channel the list belongs to.")
@click.option("--column", help="Address column: a header name or a 1-based number (default: detected).")
@click.option("--region", help="Country for numbers written without + (e.g. US); default DEFAULT_REGION.")
@click.option("--at", "at_text", help="When these opt-outs happened, for files without a date column (default: now).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def suppressions_import(source: str, channel: str, column: str | None, region: str | None, at_text: str | None,
                        quiet: bool) -> None:
    """Record a suppression list (Twilio, Klaviyo, Mailchimp export, or one column of addresses) as opt-outs.

    Each row becomes an opt-out with source `import`, at the row's date (UNSUB_TIME,
    Suppression Date, ...) or --at. An older imported opt-out never overrides a newer
    opt-in. Rows with an unreadable or future date are counted invalid, not imported.
    Importing the same file again adds nothing.

    Example: unsub suppressions import --channel email mailchimp-unsubscribed.csv
    """
    region = _region(region)
    default_at = _moment(at_text)
    counts = {"added": 0, "repeated": 0, "invalid": 0}
    started = time.monotonic()
    with ExitStack() as stack:
        opened = _open_list(stack, source)
        store, config = stack.enter_context(_database(existing=False))
        target = _channel(config, channel)
        raw, layout, rows = _read_list(opened, target, column)
        progress = Progress(raw, f"importing into {channel}", quiet)
        stack.callback(progress.close)
        name = "stdin" if source == "-" else Path(source).name
        for chunk in _chunks(rows, IMPORT_BATCH):
            events = [e for e in (_import_event(row, layout, target, region, default_at, name, config) for row in chunk) if e]
            counts["invalid"] += len(chunk) - len(events)
            added = consent.import_opt_outs(store, events)
            counts["added"] += added
            counts["repeated"] += len(events) - added
            progress.update()
    click.echo(f"{sum(counts.values())} rows: {counts['added']} opt-outs recorded, {counts['repeated']} already there, "
               f"{counts['invalid']} invalid ({time.monotonic() - started:.1f} s)", err=True)


def _cell(row: list[str], index: int | None) -> str:
    return row[index].strip() if index is not None and index < len(row) else ""


def _import_event(row: list[str], layout: Layout, channel: Channel, region: str | None, default_at: datetime, name: str,
                  config: KeywordConfig) -> ConsentEvent | None:
    address = normalise_address(channel.type, _cell(row, layout.address_index), region)
    if address is None:
        return None
    written = _cell(row, layout.date_index)
    when = parse_when(written)
    if written and (when is None or when > utcnow() + CLOCK_SKEW):
        # An unreadable date must not become "now" (it could override a newer opt-in), and a
        # future one would outrank every later opt-in: the row is reported, not imported.
        return None
    return consent.import_event(channel, address, when, default_at, name, _cell(row, layout.reason_index), config)


@suppressions.command("export", context_settings=CONTEXT)
@click.option("--channel", required=True, help="Channel to export.")
@click.option("-o", "--output", default="-", show_default=True, help="CSV file to write (- for stdout).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def suppressions_export(channel: str, output: str, quiet: bool) -> None:
    """Write the unsubscribed addresses of a channel as CSV (address, channel, unsubscribed_at, source, keyword).

    Erased contacts are suppressed by a keyed hash and cannot be listed: the summary
    says whether there are any.

    Example: unsub suppressions export --channel whatsapp -o whatsapp-suppressions.csv
    """
    with _database(existing=True) as (store, config), ExitStack() as stack:
        target = _channel(config, channel)
        stream = _output(stack, output)
        assert stream is not None
        write = SafeWriter(stream).writerow
        write(["address", "channel", "unsubscribed_at", "source", "keyword"])
        total = store.suppression_count(target.name)
        bar = None
        if not quiet and total and sys.stderr.isatty():
            bar = stack.enter_context(click.progressbar(length=total, label=f"exporting {channel}", file=sys.stderr))
        written = 0
        for page in store.iter_suppressions(target.name, 5000):
            for s in page:
                write([s.address, s.channel, iso(s.unsubscribed_at), s.source, s.keyword or ""])
            written += len(page)
            if bar is not None:
                bar.update(len(page))
        erased = store.has_erasures(target.name)
    click.echo(f"{written} suppressed addresses on {channel}"
               + (" (plus erased contacts, kept only as keyed hashes)" if erased else ""), err=True)


@main.group(context_settings=CONTEXT)
def campaign() -> None:
    """Campaign sends made by other tools, so their opt-outs count against the campaign.

    Example: unsub campaign sends --campaign spring-sale --channel sms sent.csv
    """


@campaign.command("sends", context_settings=CONTEXT)
@click.argument("source", type=click.Path(allow_dash=True))
@click.option("--campaign", "campaign_id", required=True, help="Campaign id, as on the StatusCallback URL (up to 100 characters, no /).")
@click.option("--channel", required=True, help="Channel the messages went out on.")
@click.option("--column", help="Address column: a header name or a 1-based number (default: detected).")
@click.option("--region", help="Country for numbers written without + (e.g. US); default DEFAULT_REGION.")
@click.option("--at", "at_text", help="Delivery time for rows without a date column (default: now).")
def campaign_sends(source: str, campaign_id: str, channel: str, column: str | None, region: str | None,
                   at_text: str | None) -> None:
    """Record delivered campaign messages from a CSV of recipients (with an optional date column).

    Reporting the same recipient of the same campaign twice records it once.

    Example: unsub campaign sends --campaign spring-sale --channel sms --at 2026-11-20T09:00:00Z sent.csv
    """
    region = _region(region)
    try:
        consent.check_campaign_id(campaign_id)
    except ValueError as error:
        _fail(str(error))
    default_at = _moment(at_text)
    added = invalid = rows_seen = 0
    with ExitStack() as stack:
        opened = _open_list(stack, source)
        store, config = stack.enter_context(_database(existing=False))
        target = _channel(config, channel)
        _, layout, rows = _read_list(opened, target, column)
        for chunk in _chunks(rows, IMPORT_BATCH):
            sends = [consent.Send(_cell(row, layout.address_index), at=parse_when(_cell(row, layout.date_index)) or default_at)
                     for row in chunk]
            result = consent.record_sends(config, store, campaign_id, target.name, sends, region)
            added, invalid, rows_seen = added + result.added, invalid + len(result.invalid), rows_seen + len(chunk)
    click.echo(f"{rows_seen} rows: {added} sends recorded, {rows_seen - added - invalid} already there, {invalid} invalid",
               err=True)


@main.group(context_settings=CONTEXT)
def contact() -> None:
    """One contact's records: audit export and erasure (GDPR Art. 7(1), 15 and 17).

    Example: unsub contact export +14155550123
    """


@contact.command("export", context_settings=CONTEXT)
@click.argument("address")
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True)
def contact_export(address: str, fmt: str) -> None:
    """Print every consent event (and reason) held for a phone number or e-mail address, on every channel.

    Example: unsub contact export alice@example.com --format csv > alice.csv
    """
    with _database(existing=True) as (store, _config):
        try:
            record = consent.contact_record(store, address, os.environ.get("DEFAULT_REGION"))
        except consent.InvalidAddress as error:
            _fail(str(error))
    if fmt == "json":
        click.echo(json.dumps(record, indent=2, ensure_ascii=False))
        return
    click.echo(consent.contact_csv(record), nl=False)


@contact.command("erase", context_settings=CONTEXT)
@click.argument("address")
@click.option("--yes", is_flag=True, help="Do it without asking.")
def contact_erase(address: str, yes: bool) -> None:
    """Delete everything about a contact on every channel; where they had unsubscribed, keep only a
    keyed hash so they are never messaged again.

    The hash key is ERASURE_KEY, else SECRET_KEY (else ./instance/secrets.env): the one the
    service runs with, or the erased contact would not be recognised.

    Example: unsub contact erase +14155550123 --yes
    """
    with _database(existing=False) as (store, _config):
        try:
            normal = consent.contact_address(address, os.environ.get("DEFAULT_REGION"))
        except consent.InvalidAddress as error:
            _fail(str(error))
        if not yes:
            click.confirm(f"Erase every record of {normal}? This cannot be undone", abort=True, err=True)
        # The key first: failing inside the erasure's transaction would only roll it back.
        erasure = consent.erase_contact(store, normal, LazyHasher(store).resolve())
    deleted = sum(erasure.deleted.values())
    kept = ", ".join(erasure.suppressed_channels) or "none"
    click.echo(f"erased {normal}: {deleted} rows deleted; still suppressed on: {kept}")


@main.command("stats", context_settings=CONTEXT)
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 366), help="How many days back.")
@click.option("--channel", help="Only this channel.")
def stats(days: int, channel: str | None) -> None:
    """Print opt-out statistics as JSON (the same document as GET /api/v1/stats).

    Example: unsub stats --days 7 --channel sms
    """
    until = utcnow()
    since = until - timedelta(days=days)
    try:
        window = timedelta(hours=check_window(os.environ.get("ATTRIBUTION_WINDOW_HOURS") or "72"))
    except SettingsError as error:
        _fail(error.message)
    with _database(existing=True) as (store, config):
        if channel:
            _channel(config, channel)
        report = build_report(store.raw_stats(since, until, window, channel), since, until, window,
                              store.channel_scopes(since, until), channel)
    click.echo(json.dumps(report, indent=2, ensure_ascii=False))
