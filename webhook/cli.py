"""The ``unsub`` command: each command a thin call into the core."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import click

from webhook import __version__
from webhook.cli_support import (
    cannot,
    database_location,
    database_url_from_env,
    existing_database_url,
    fail,
    read_text,
    replace_file,
)
from webhook.consent import dry_run
from webhook.database_check import check_reachable
from webhook.gating import SCOPE_SHORT
from webhook.keywords import KeywordConfig, KeywordConfigError, load_file, parse_yaml, scope_warnings
from webhook.settings import PACKAGED_KEYWORDS, SETTINGS, SettingsError, from_env, load_local_secrets

CONTEXT = {"help_option_names": ["-h", "--help"]}


def _keywords_path(path: str | None) -> Path:
    if path:
        return Path(path)
    local = Path("keywords.yaml")
    return local if local.is_file() else PACKAGED_KEYWORDS


_fail = fail  # the list commands (cli_lists) use it under this name


def _local_secret(name: str) -> str:
    """A secret that `unsub serve` generated in ./instance, or a clear failure."""
    if not (Path("instance") / "secrets.env").is_file():
        _fail(f"no {name}: set it in the environment, or run `unsub serve` in this folder first")
    return load_local_secrets(Path("instance"))[name]


class UnsubGroup(click.Group):
    """The command group: a file problem that no command caught still ends in one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OSError as error:
            if error.filename is None:
                raise
            cannot("open", error.filename, error)


@click.group(cls=UnsubGroup, context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="unsub")
def main() -> None:
    """Per-channel marketing unsubscribes for Twilio SMS, WhatsApp and e-mail.

    Example: unsub serve
    """


@main.command(context_settings=CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port to listen on.")
def serve(host: str, port: int) -> None:
    """Run the service for local development.

    Secrets missing from the environment are generated once into ./instance/secrets.env
    (signature checks stay on: use `unsub simulate` to send signed messages). In
    production run the Procfile's gunicorn command instead.

    Example: unsub serve --port 5000
    """
    try:
        settings = from_env(local=True)
        from webhook import create_app

        app = create_app(settings)
    except SettingsError as error:
        _fail(error.message)
    # Absolute paths: run from another folder, serve makes a new database and new secrets there.
    click.echo(f"unsub {__version__}: database {database_location(settings.database_url)}, keywords {settings.keywords_file}")
    click.echo(f"instance folder {settings.instance_path}: local secrets (TWILIO_AUTH_TOKEN, ADMIN_TOKEN, SECRET_KEY) "
               f"in {settings.instance_path}/secrets.env")
    click.echo(f'try it:  unsub simulate "STOP" --url http://{host}:{port}/webhooks/twilio')
    import logging

    from webhook import logs

    logs.configure(settings.log_format, logging.INFO, ("unsub", "werkzeug"))  # request lines masked too
    app.run(host=host, port=port, threaded=True, use_reloader=False)


@main.command(context_settings=CONTEXT)
@click.argument("path", required=False, type=click.Path())
def check(path: str | None) -> None:
    """Validate a keywords file and list every problem.

    Example: unsub check keywords.yaml
    """
    target = _keywords_path(path)
    text = read_text(target)  # a file that cannot be read is one line, not a list of problems
    try:
        config = parse_yaml(text, str(target))
    except KeywordConfigError as error:
        for problem in error.problems:
            click.echo(f"{target}: {problem.path or '(document)'}: {problem.message}", err=True)
        click.echo(f"{len(error.problems)} problem(s); the file was not accepted", err=True)
        sys.exit(1)
    summary = ", ".join(
        f"{name} ({ch.type}, {'/'.join(ch.languages)}, opt-outs stop {SCOPE_SHORT[ch.revocation_scope]})"
        for name, ch in config.channels.items()
    )
    click.echo(f"{target}: OK, version {config.version}; channels: {summary}")
    for warning in scope_warnings(config):
        click.echo(f"{target}: warning: {warning.path}: {warning.message}", err=True)


@main.command(context_settings=CONTEXT)
@click.argument("text", required=False)
@click.option("--channel", default="sms", show_default=True, help="Channel name.")
@click.option("--keywords", "keywords_path", type=click.Path(dir_okay=False),
              help="Try this keywords file instead of the version running in the database.")
@click.option("--corpus", "corpus_path", type=click.Path(dir_okay=False),
              help="Score a labelled corpus (TSV: expect, channel, language, category, body, note) instead of TEXT.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def match(text: str | None, channel: str, keywords_path: str | None, corpus_path: str | None, as_json: bool) -> None:
    """Show what the service would do with a message on a channel, recording nothing.

    The decision is the service's own (opt-out, opt-in, help, the review queue, or
    nothing) for a contact with no history, under the keyword version running in the
    database (DATABASE_URL), or under --keywords FILE. With --corpus, prints opt-out
    precision and recall per category of a labelled corpus.

    Example: unsub match "Stop texting me" --channel sms
    """
    if (text is None) == (corpus_path is None):
        _fail("give a message to try, or --corpus FILE (one of them)")
    config, where = _config_to_try(keywords_path)
    if corpus_path is not None:
        from webhook import corpus

        try:
            rows = corpus.read_corpus(Path(corpus_path))
            report = corpus.score(rows, config)
        except OSError as error:
            cannot("read", corpus_path, error)
        except corpus.CorpusError as error:
            _fail(f"{corpus_path}: {error}")
        click.echo(f"{len(rows)} messages scored under {where}")
        click.echo(corpus.format_report(report))
        return
    assert text is not None
    found_channel = config.channel(channel)
    if found_channel is None:
        _fail(f"unknown channel {channel!r}; channels: {', '.join(config.channels)}")
    result = dry_run(found_channel, text, config.version)
    found = result.match
    if as_json:
        click.echo(json.dumps(result.as_dict(), ensure_ascii=False))
        return
    if found is not None:
        click.echo(f"{channel}: {found.intent} (keyword {found.keyword!r}, language {found.language}, {found.kind})")
        click.echo(f"reply: {result.reply}")
    elif result.decision.review_reason:
        click.echo(f"{channel}: review (no reply, no change; it waits in the review queue: {result.decision.review_reason})")
    else:
        click.echo(f"{channel}: no intent (ordinary message: no reply, no change)")
    click.echo(f"under {where}")


def _config_to_try(keywords_path: str | None) -> tuple[KeywordConfig, str]:
    """The keyword configuration a dry run uses, and words saying which: a file given, else
    the version running in the database (which must exist: a dry run creates nothing)."""
    if keywords_path:
        try:
            return load_file(Path(keywords_path)), f"the file {keywords_path}"
        except KeywordConfigError as error:
            _fail(str(error))
    from webhook.configuration import config_of
    from webhook.store import StoreUnavailable, open_store

    url = existing_database_url(database_url_from_env())
    try:
        check_reachable(url, "DATABASE_URL")
        store = open_store(url)
        store.migrate()
        latest = store.latest_keyword_version()
        store.close()
    except StoreUnavailable as error:
        _fail(str(error))
    if latest is None:
        _fail(f"no keyword version in {database_location(url)} yet: start the service once, or pass --keywords FILE")
    return config_of(latest), f"keyword version {latest.number} (running in {database_location(url)})"


PROVIDER_URLS = {"twilio": "http://127.0.0.1:5000/webhooks/twilio", "whatsapp-cloud": "http://127.0.0.1:5000/webhooks/whatsapp"}


@main.command(context_settings=CONTEXT)
@click.argument("text")
@click.option("--provider", type=click.Choice(sorted(PROVIDER_URLS)), default="twilio", show_default=True,
              help="Sign and shape the request as Twilio, or as Meta's WhatsApp Cloud API.")
@click.option("--url", help="The webhook URL as the provider would call it (default: the local /webhooks/twilio or "
                            "/webhooks/whatsapp).")
@click.option("--from", "sender", default="+14155550123", show_default=True, help="The contact's number.")
@click.option("--to", "to", default="+14155550100", show_default=True, help="Your number (Twilio: To; Cloud: the display number).")
@click.option("--whatsapp", is_flag=True, help="Twilio: send as a WhatsApp message (whatsapp: prefixes).")
@click.option("--phone-number-id", default="100000000000001", show_default=True, help="WhatsApp Cloud: the phone number id.")
@click.option("--message-sid", help="The message id (default: a new random one; reuse one to see idempotency).")
@click.option("--token", help="Secret to sign with (default: $TWILIO_AUTH_TOKEN or $WHATSAPP_APP_SECRET, else "
                              "./instance/secrets.env).")
def simulate(text: str, provider: str, url: str | None, sender: str, to: str, whatsapp: bool, phone_number_id: str,
             message_sid: str | None, token: str | None) -> None:
    """Send a correctly signed inbound message to a running server, as Twilio or WhatsApp Cloud would.

    Example: unsub simulate "STOP" --from +14155550123
    """
    url = url or PROVIDER_URLS[provider]
    if provider == "whatsapp-cloud":
        from webhook.providers import whatsapp_cloud

        secret = token or os.environ.get("WHATSAPP_APP_SECRET") or _local_secret("WHATSAPP_APP_SECRET")
        message_id = message_sid or "wamid." + uuid.uuid4().hex
        payload = {"object": "whatsapp_business_account", "entry": [{"id": "0", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": to.lstrip("+"), "phone_number_id": phone_number_id},
            "contacts": [{"profile": {"name": "Simulated"}, "wa_id": sender.lstrip("+")}],
            "messages": [{"from": sender.lstrip("+"), "id": message_id, "timestamp": str(int(time.time())),
                          "type": "text", "text": {"body": text}}],
        }}]}]}
        data = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", whatsapp_cloud.SIGNATURE_HEADER: whatsapp_cloud.sign(secret, data)}
    else:
        from webhook.providers.twilio import SIGNATURE_HEADER, signature_for

        secret = token or os.environ.get("TWILIO_AUTH_TOKEN") or _local_secret("TWILIO_AUTH_TOKEN")
        prefix = "whatsapp:" if whatsapp else ""
        message_id = message_sid or "SM" + uuid.uuid4().hex
        params = {"MessageSid": message_id, "AccountSid": "AC" + "0" * 32, "From": prefix + sender, "To": prefix + to,
                  "Body": text, "NumMedia": "0"}
        data = urllib.parse.urlencode(params).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", SIGNATURE_HEADER: signature_for(secret, url, params)}
    request = urllib.request.Request(url, data=data, method="POST", headers=headers)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            status, body = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read().decode(errors="replace")
    except urllib.error.URLError as error:
        _fail(f"cannot reach {url}: {error.reason}; is `unsub serve` running?")
    click.echo(f"{message_id} -> HTTP {status} in {(time.perf_counter() - started) * 1000:.0f} ms")
    click.echo(body)
    if status != 200:
        sys.exit(1)


@main.command(context_settings=CONTEXT)
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit (cron-style deployments, tests).")
@click.option("--lease", default=45, show_default=True, type=click.IntRange(5, 3600),
              help="Seconds a claimed delivery stays this worker's; a dead worker's claims are taken over after "
                   "it. Keep it above twice the 15 s delivery timeout (shorter: tests).")
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None,
              help="Serve this worker's metrics (unsub_deliveries_total, unsub_build_info) at /metrics on this port, "
                   "behind the METRICS_TOKEN bearer token.")
@click.option("--metrics-host", default="0.0.0.0", show_default=True, help="Address the --metrics-port server listens on.")
def worker(once: bool, lease: int, metrics_port: int | None, metrics_host: str) -> None:
    """Deliver consent webhooks from the outbox (the Procfile's worker: process).

    Claims due deliveries, sends them signed (Standard Webhooks), records every attempt
    and retries on WEBHOOK_RETRY_SCHEDULE. Several workers may share a PostgreSQL
    database; with SQLite run one. Stops cleanly on SIGTERM. Reads the same settings as
    the web process (in a folder where `unsub serve` runs, its local secrets).

    Example: unsub worker
    """
    import logging
    from datetime import timedelta

    from webhook.store import StoreUnavailable, open_store
    from webhook.worker import Worker

    try:
        settings = from_env(local=Path("instance/secrets.env").is_file())
    except SettingsError as error:
        _fail(error.message)
    from webhook import __version__, logs, metrics

    logs.configure(settings.log_format, logging.INFO)
    metrics_server = None
    if metrics_port is not None:
        if not settings.metrics_token:
            _fail("--metrics-port needs METRICS_TOKEN (the bearer token Prometheus presents, 16+ characters)")
        # One process: its own figures, not a web process's multiprocess directory.
        os.environ.pop(metrics.MULTIPROC_ENV, None)
        metrics.enable()
        try:
            metrics_server = metrics.serve(metrics_host, metrics_port, settings.metrics_token or "", __version__)
        except OSError as error:
            _fail(f"--metrics-port {metrics_port}: cannot listen on {metrics_host}: {error.strerror or error}")
    try:
        check_reachable(settings.database_url, "DATABASE_URL")
        store = open_store(settings.database_url)
        store.migrate()
    except StoreUnavailable as error:
        _fail(str(error))
    runner = Worker(store, schedule=settings.retry_schedule, lease=timedelta(seconds=lease),
                    attribution_window=timedelta(hours=settings.attribution_window_hours),
                    whatsapp_token=settings.whatsapp_access_token, twilio_token=settings.twilio_auth_token)
    runner.install_signal_handlers()
    click.echo(f"unsub worker {runner.name}: database {database_location(settings.database_url)}", err=True)
    made = runner.run(once=once)
    store.close()
    if metrics_server is not None:
        metrics_server.shutdown()
    if once:
        click.echo(f"{made} delivery attempts", err=True)


@main.command(context_settings=CONTEXT)
def migrate() -> None:
    """Apply pending database migrations (the server also does this at start-up).

    Example: DATABASE_URL=sqlite:///unsub.db unsub migrate
    """
    from webhook.store import StoreUnavailable, open_store

    url = database_url_from_env()  # no secrets needed: none are generated here
    try:
        check_reachable(url, "DATABASE_URL")  # PostgreSQL down: one line, not the pool's retries
        store = open_store(url)
        applied = store.migrate()
    except StoreUnavailable as error:
        _fail(str(error))
    store.close()
    click.echo(f"{database_location(url)}: " + (f"applied {', '.join(applied)}" if applied else "up to date"))


@main.command("copy-db", context_settings=CONTEXT)
@click.argument("source")
@click.argument("target")
@click.option("--batch", default=1000, show_default=True, type=click.IntRange(1, 50_000), help="Events per transaction.")
def copy_db(source: str, target: str, batch: int) -> None:
    """Copy every consent event from one database into another, with progress.

    For moving from SQLite to PostgreSQL: the target is migrated first and must be empty
    (no service started on it yet); event times, message ids and config versions are kept,
    and the current statuses are rebuilt from the events. Every other table that holds
    state is copied too: keyword versions (admins' edits and their history), erased
    contacts' hashes, campaign messages, reasons and the review queue. The source is only read.

    Example: unsub copy-db sqlite:///unsub.db postgresql://postgres@127.0.0.1:5432/unsub
    """
    from webhook.settings import check_database_url
    from webhook.store import COPY_TABLES, StoreUnavailable, open_store

    try:
        # Opening a SQLite URL creates the file: a mistyped source would copy nothing, "successfully".
        source_url, target_url = existing_database_url(source, "SOURCE"), check_database_url(target)
        check_reachable(source_url, "SOURCE")
        check_reachable(target_url, "TARGET")
        source_store = open_store(source_url)
        target_store = open_store(target_url)
        source_store.ping()
        target_store.migrate()
        existing = target_store.event_count()
        if existing:
            _fail(f"the target already holds {existing} consent events; copy into an empty database")
        held = [table for table in COPY_TABLES if next(target_store.iter_rows(table, 1), None)]
        if held:
            # Keyword versions too: copied events name them by number (a service started on
            # the target has recorded its keywords file as version 1 already).
            _fail(f"the target already holds {', '.join(t.replace('_', ' ') for t in held)}; copy into a database "
                  "no service has used yet (create an empty one)")
        total = source_store.event_count()
        copied = 0
        with click.progressbar(length=total, label="copying consent events", file=sys.stderr) as progress:
            for events in source_store.iter_events(batch):
                copied += target_store.copy_events(events)
                progress.update(len(events))
        # Keyword versions, erased contacts' hashes (without them they would become
        # sendable), campaign messages, reasons, the review queue, webhook endpoints and the
        # outbox (pending deliveries included: a move loses no announcement).
        others = {table: sum(target_store.import_rows(table, rows) for rows in source_store.iter_rows(table, batch))
                  for table in COPY_TABLES}
    except SettingsError as error:
        _fail(error.message)
    except StoreUnavailable as error:
        _fail(str(error))
    source_store.close()
    target_store.close()
    click.echo(f"copied {copied} of {total} consent events into {target_store.kind}; "
               + ", ".join(f"{count} {table.replace('_', ' ')}" for table, count in others.items()))


@main.group(context_settings=CONTEXT)
def keywords() -> None:
    """The keyword configuration versions stored in the database.

    Example: unsub keywords export -o keywords.yaml
    """


@keywords.command("export", context_settings=CONTEXT)
@click.option("-o", "--output", type=click.Path(), help="Write to this file (default: standard output).")
@click.option("--version", "number", type=int, help="A version number (default: the running one).")
def keywords_export(output: str | None, number: int | None) -> None:
    """Write the current (or a given) keyword version back to YAML, comments included.

    An output file that is a symlink is replaced by a regular file; the file it pointed to
    is left as it was (the repository's keywords.yaml links into the package).

    Example: DATABASE_URL=postgresql://... unsub keywords export -o keywords.yaml
    """
    from webhook.store import StoreUnavailable, open_store

    try:
        url = existing_database_url(database_url_from_env())
        check_reachable(url, "DATABASE_URL")
        store = open_store(url)
        store.migrate()
        version = store.keyword_version(number) if number else store.latest_keyword_version()
    except SettingsError as error:
        _fail(error.message)
    except StoreUnavailable as error:
        _fail(str(error))
    store.close()
    if version is None:
        _fail("no such keyword version" if number else "no keyword version yet: start the service once")
    if output:
        replace_file(Path(output), version.yaml)
        click.echo(f"version {version.number} ({version.source}, {version.created_at:%Y-%m-%d %H:%M} UTC) written to {output}", err=True)
    else:
        click.echo(version.yaml, nl=False)


@main.group(context_settings=CONTEXT)
def email() -> None:
    """E-mail unsubscribe links.

    Example: unsub email link bob@example.com
    """


@email.command("link", context_settings=CONTEXT)
@click.argument("address")
@click.option("--channel", default="email", show_default=True, help="E-mail channel name.")
@click.option("--base-url", envvar="PUBLIC_BASE_URL", default="http://127.0.0.1:5000", show_default=True,
              help="The service's public URL (default: $PUBLIC_BASE_URL, else the local server).")
@click.option("--mailto", help="Also offer a mailto: unsubscribe address in List-Unsubscribe.")
@click.option("--secret-key", envvar="SECRET_KEY", help="Signing key (default: $SECRET_KEY, else ./instance/secrets.env).")
def email_link(address: str, channel: str, base_url: str, mailto: str | None, secret_key: str | None) -> None:
    """Print the unsubscribe URL and the two List-Unsubscribe headers for one address.

    The link never expires. GET shows the page; a one-click POST unsubscribes:
    curl -X POST -d List-Unsubscribe=One-Click URL

    Example: unsub email link bob@example.com --base-url https://unsub.example.com
    """
    from webhook.addresses import normalise_email
    from webhook.email_tokens import list_unsubscribe_headers, make_token, unsubscribe_url

    normal = normalise_email(address)
    if normal is None:
        _fail(f"{address!r} is not an e-mail address")
    secret_key = secret_key or _local_secret("SECRET_KEY")
    url = unsubscribe_url(base_url, make_token(secret_key, channel, normal))
    click.echo(url)
    for name, value in list_unsubscribe_headers(url, mailto).items():
        click.echo(f"{name}: {value}")


@main.command("settings", context_settings=CONTEXT)
def list_settings() -> None:
    """List every environment variable the service reads.

    Example: unsub settings
    """
    for spec in SETTINGS:
        click.echo(f"{spec.name}\n    {spec.help}\n    default: {spec.default}")


if __name__ == "__main__":  # pragma: no cover
    main()


# The list commands (audience, suppressions, campaign, contact, stats) register themselves on `main`.
from webhook import cli_lists  # noqa: E402,F401
