"""The `unsub` command, including the newcomer's path: serve, then simulate a signed STOP."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from tests.e2e.servers import BIN, Server, free_port
from webhook.cli import main
from webhook.settings import PACKAGED_KEYWORDS, load_local_secrets


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_version_and_help(runner):
    assert runner.invoke(main, ["--version"]).output.startswith("unsub, version ")
    result = runner.invoke(main, ["-h"])
    assert result.exit_code == 0
    for command in ("serve", "check", "match", "simulate", "migrate", "copy-db", "email", "settings"):
        assert command in result.output


def test_every_command_has_an_example(runner):
    for name, command in main.commands.items():
        assert "Example:" in (command.help or ""), name


def test_check_accepts_the_shipped_file(runner):
    result = runner.invoke(main, ["check", str(PACKAGED_KEYWORDS)])
    assert result.exit_code == 0
    assert "OK, version" in result.output


def test_check_lists_every_problem(runner, tmp_path):
    bad = tmp_path / "keywords.yaml"
    text = PACKAGED_KEYWORDS.read_text(encoding="utf-8").replace('brand: "Example Co"', 'brand: ""').replace("type: email", "type: fax")
    bad.write_text(text, encoding="utf-8")
    result = runner.invoke(main, ["check", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}: brand: brand is empty" in result.output
    assert "channels.email.type: unknown channel type 'fax'" in result.output
    assert "problem(s); the file was not accepted" in result.output


@pytest.mark.parametrize("name,why", [("missing.yaml", "No such file or directory"), (".", "Is a directory")])
def test_check_of_a_file_that_cannot_be_read_is_one_line(runner, tmp_path, monkeypatch, name, why):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["check", name])
    assert result.exit_code == 1
    assert result.stderr == f"unsub: error: cannot read {name}: {why}\n"


def test_check_of_a_file_that_is_not_utf8_is_one_line(runner, tmp_path):
    (tmp_path / "keywords.yaml").write_bytes(b"brand: \xff\n")
    result = runner.invoke(main, ["check", str(tmp_path / "keywords.yaml")])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"unsub: error: cannot read {tmp_path / 'keywords.yaml'}: it is not UTF-8 text")
    assert result.stderr.count("\n") == 1


def test_a_file_problem_no_command_expected_is_still_one_line(runner, tmp_path, monkeypatch):
    """The group's safety net: here `serve` cannot make its instance folder (a file is in the way)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "instance").write_text("not a folder", encoding="utf-8")
    for name in ("TWILIO_AUTH_TOKEN", "SECRET_KEY", "ADMIN_TOKEN", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    result = runner.invoke(main, ["serve"])
    assert result.exit_code == 1
    assert result.stderr == f"unsub: error: cannot open {tmp_path / 'instance'}: File exists\n"


def test_match_shows_intent_and_reply(runner):
    result = runner.invoke(main, ["match", "Stop texting me", "--channel", "sms", "--keywords", str(PACKAGED_KEYWORDS), "--json"])
    assert result.exit_code == 0
    found = json.loads(result.output)
    assert (found["intent"], found["keyword"], found["kind"]) == ("opt_out", "STOP", "first_word")
    assert "unsubscribed" in found["reply"]
    plain = runner.invoke(main, ["match", "see you at the bus", "--keywords", str(PACKAGED_KEYWORDS)])
    assert "no intent" in plain.output


def test_match_gives_the_services_decision_under_the_running_version(runner, tmp_path, monkeypatch):
    """Issue 11 item 14: review included, the version running in the database, and which."""
    from tests.conftest import make_settings
    from webhook import create_app

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    missing = runner.invoke(main, ["match", "STOP"])
    assert missing.exit_code == 1 and f"no database at {tmp_path / 'unsub.db'}" in missing.stderr
    assert not (tmp_path / "unsub.db").exists()
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'unsub.db'}"))
    svc = app.extensions["unsub"]
    document = json.loads(svc.keywords.version.document)
    document["channels"]["sms"]["opt_out"]["keywords"]["en"].append("PLONK")
    svc.keywords.save(document, source="api", author="test")
    svc.store.close()
    (tmp_path / "keywords.yaml").write_text(PACKAGED_KEYWORDS.read_text(encoding="utf-8"), encoding="utf-8")

    review = json.loads(runner.invoke(main, ["match", "Cancel my order, it's late", "--json"]).output)
    assert (review["intent"], review["version"], review["changes_subscription"]) == ("review", "2", False)
    assert "CANCEL" in review["review_reason"]
    running = runner.invoke(main, ["match", "plonk"])  # the admin's edit, not ./keywords.yaml
    assert running.exit_code == 0 and "sms: opt_out" in running.output and "keyword version 2" in running.output
    from_file = runner.invoke(main, ["match", "plonk", "--keywords", "keywords.yaml"])
    assert "no intent" in from_file.output and "the file keywords.yaml" in from_file.output


def test_match_scores_a_corpus(runner, tmp_path):
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("expect\tchannel\tlanguage\tcategory\tbody\tnote\n"
                      "opt_out\tsms\ten\tkeyword\tSTOP\t\nnone\tsms\ten\thard_negative\tStep\t\n"
                      "opt_out\tsms\ten\ttypo\tSotp\t\nreview\tsms\ten\thard_negative\tCancel my order, it's late\t\n",
                      encoding="utf-8")
    result = runner.invoke(main, ["match", "--corpus", str(corpus), "--keywords", str(PACKAGED_KEYWORDS)])
    assert result.exit_code == 0, result.output
    assert "4 messages scored" in result.output
    assert "| **overall** | 4 | 2 | 2 | 1.00 | 1.00 | 1 |" in result.output
    neither = runner.invoke(main, ["match", "--keywords", str(PACKAGED_KEYWORDS)])
    assert neither.exit_code == 1 and "one of them" in neither.stderr


def test_match_unknown_channel_fails_clearly(runner):
    result = runner.invoke(main, ["match", "STOP", "--channel", "fax", "--keywords", str(PACKAGED_KEYWORDS)])
    assert result.exit_code == 1 and "unknown channel 'fax'" in result.output


def test_settings_lists_every_variable(runner):
    output = runner.invoke(main, ["settings"]).output
    for name in ("DATABASE_URL", "KEYWORDS_FILE", "TWILIO_AUTH_TOKEN", "ADMIN_TOKEN", "SECRET_KEY", "PUBLIC_BASE_URL"):
        assert name in output


@pytest.mark.slow
def test_newcomer_serves_and_simulates_a_stop(tmp_path):
    """README's first command, then `unsub simulate`: a TwiML confirmation for STOP."""
    env = {k: v for k, v in os.environ.items() if k not in ("TWILIO_AUTH_TOKEN", "SECRET_KEY", "ADMIN_TOKEN", "DATABASE_URL",
                                                            "KEYWORDS_FILE") and not k.startswith("WHATSAPP_")}
    port = free_port()
    unsub = shutil.which("unsub", path=str(BIN)) or str(BIN / "unsub")
    server = Server([unsub, "serve", "--port", str(port)], tmp_path, env, port)
    try:
        server.wait_ready()
        import subprocess

        url = f"http://127.0.0.1:{port}/webhooks/twilio"
        done = subprocess.run([unsub, "simulate", "STOP", "--url", url], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert "HTTP 200" in done.stdout
        assert "<Response><Message>Example Co: You are unsubscribed" in done.stdout
        assert (tmp_path / "unsub.db").is_file()
        assert (tmp_path / "instance" / "secrets.env").is_file()
        forged = subprocess.run([unsub, "simulate", "STOP", "--url", url, "--token", "x" * 20], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
        assert forged.returncode == 1 and "HTTP 403" in forged.stdout

        # README, e-mail: `unsub email link` then `curl -X POST -d List-Unsubscribe=One-Click URL`.
        base = f"http://127.0.0.1:{port}"
        link = subprocess.run([unsub, "email", "link", "Dana@Example.com", "--base-url", base], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
        assert link.returncode == 0, link.stderr
        unsubscribe_url = link.stdout.splitlines()[0]
        assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in link.stdout
        one_click = requests.post(unsubscribe_url, data={"List-Unsubscribe": "One-Click"}, allow_redirects=False, timeout=10)
        assert one_click.status_code == 200
        admin = load_local_secrets(tmp_path / "instance")["ADMIN_TOKEN"]
        status = requests.get(f"{base}/api/v1/subscriptions/email/dana@example.com", headers={"Authorization": f"Bearer {admin}"}, timeout=10)
        assert status.json()["status"] == "unsubscribed"

        # The WhatsApp Cloud API, signed with the generated WHATSAPP_APP_SECRET (issue 13).
        cloud = subprocess.run([unsub, "simulate", "STOP", "--provider", "whatsapp-cloud", "--from", "+14155550888",
                                "--url", f"{base}/webhooks/whatsapp"], cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=30)
        assert cloud.returncode == 0 and "HTTP 200" in cloud.stdout, cloud.stdout + cloud.stderr
        status = requests.get(f"{base}/api/v1/subscriptions/whatsapp/+14155550888", headers={"Authorization": f"Bearer {admin}"},
                              timeout=10)
        assert status.json()["status"] == "unsubscribed"
    finally:
        server.stop()


def test_simulate_without_a_server_says_so(tmp_path, monkeypatch, runner):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["simulate", "STOP", "--url", f"http://127.0.0.1:{free_port()}/webhooks/twilio", "--token", "t" * 20])
    assert result.exit_code == 1 and "is `unsub serve` running?" in result.output


def test_python_is_the_venv(tmp_path):
    assert Path(sys.executable).exists()


def test_copy_db_moves_every_event_and_refuses_a_full_target(runner, tmp_path, database_url):
    from datetime import timedelta

    from webhook.domain import CampaignMessage, ConsentEvent, Feedback, ReviewItem, utcnow
    from webhook.store import open_store

    source_url = f"sqlite:///{tmp_path / 'old.db'}"
    source = open_store(source_url)
    source.migrate()
    start = utcnow() - timedelta(days=30)
    for i in range(250):
        source.record(ConsentEvent(channel="sms", address=f"+1415555{i % 100:04d}", action="opt_out" if i < 200 else "opt_in",
                                   source="keyword", occurred_at=start + timedelta(minutes=i), message_id=f"SMcopy{i}", keyword="STOP"))
    source.record(ConsentEvent(channel="email", address="bob@example.com", action="opt_out", source="admin", occurred_at=start, reason="phone"))
    # An erased contact (kept as a hash), a campaign message, a reason and a review item.
    source.record(ConsentEvent(channel="sms", address="+14155550999", action="opt_out", source="keyword", occurred_at=start,
                               message_id="SMerased", dedupe_key="twilio:SMerased"))
    source.erase("+14155550999", lambda channel, address: f"hash:{channel}:{address}")
    source.record_campaign_messages([CampaignMessage("SMc1", "spring", "sms", "+14155550001", "delivered", start)])
    source.add_feedback(Feedback("email", "bob@example.com", "page", "too_many", start, None))
    source.add_review_item(ReviewItem("sms", "+14155550002", "cancel my order", start, "SMr1"))
    # Keyword versions: the file read at start-up, then an admin's edit that is running.
    from webhook.domain import NewKeywordVersion

    source.add_keyword_version(NewKeywordVersion("h1", "{}", "brand: A\n", "file", "deploy"))
    edited = source.add_keyword_version(NewKeywordVersion("h2", "{}", "brand: B\n", "admin", "ana", "B is better"))
    # A webhook endpoint (with its secret) and a delivery still pending: a move loses no announcement.
    hook = source.create_endpoint("https://crm.example.com/hooks", "CRM", "whsec_copied")
    pending = source.record(ConsentEvent(channel="sms", address="+14155550777", action="opt_out", source="keyword",
                                         occurred_at=start + timedelta(days=1)))
    source.close()

    result = runner.invoke(main, ["copy-db", source_url, database_url, "--batch", "60"])
    assert result.exit_code == 0, result.output
    assert "copied 252 of 252 consent events" in result.output
    assert "2 keyword versions, 1 erased addresses, 1 erased message keys, 1 campaign messages, 1 feedback, 1 review items" in result.output
    target = open_store(database_url)
    try:
        assert target.event_count() == 252
        assert target.subscription("sms", "+14155550000").status == "subscribed"  # its latest event was an opt-in
        assert target.subscription("sms", "+14155550099").status == "unsubscribed"
        assert target.history("email", "bob@example.com")[0].reason == "phone"
        assert target.history("sms", "+14155550000")[0].occurred_at == start
        assert target.erased_among("sms", ["hash:sms:+14155550999"]) != {}  # still suppressed after the move
        assert target.feedback_items()[0][0].text == "too_many"
        assert target.review_items("open")[0][0].text == "cancel my order"
        target.add_review_item(ReviewItem("sms", "+14155550003", "quit it", start, "SMr2"))  # ids go on after the copied
        assert [item.id for item in target.review_items("open")[0]] == [1, 2]
        # Issue 11 item 9: the admins' edits survive the move, under the same numbers.
        latest = target.latest_keyword_version()
        assert (latest.number, latest.yaml, latest.author, latest.note) == (edited.number, "brand: B\n", "ana", "B is better")
        assert [v.source for v in target.keyword_versions()] == ["admin", "file"]
        assert target.add_keyword_version(NewKeywordVersion("h3", "{}", "brand: C\n", "api", None)).number == 3
        moved = target.endpoint(hook.id)
        assert (moved.url, moved.secret, moved.enabled) == ("https://crm.example.com/hooks", "whsec_copied", True)
        claimed = target.claim_deliveries("w", per_lane=10, limit=10, lease=timedelta(seconds=30), busy_lanes=[])
        assert [(c.event_id, c.address, c.secret) for c in claimed] == [(pending.event_id, "+14155550777", "whsec_copied")]
        facts = target.event_facts(pending.event_id, timedelta(hours=72))
        assert facts is not None and facts.address == "+14155550777"  # the copied event keeps its id
    finally:
        target.close()
    again = runner.invoke(main, ["copy-db", source_url, database_url])
    assert again.exit_code == 1 and "already holds 252 consent events" in again.output


def test_copy_db_refuses_a_target_a_service_has_started_on(runner, tmp_path, database_url):
    from webhook.domain import NewKeywordVersion
    from webhook.store import open_store

    source_url = f"sqlite:///{tmp_path / 'old.db'}"
    open_store(source_url).migrate()
    target = open_store(database_url)
    target.migrate()
    target.add_keyword_version(NewKeywordVersion("h1", "{}", "brand: A\n", "file", "deploy"))
    target.close()
    result = runner.invoke(main, ["copy-db", source_url, database_url])
    assert result.exit_code == 1 and "already holds keyword versions" in result.output


def test_copy_db_refuses_unknown_schemes(runner):
    result = runner.invoke(main, ["copy-db", "mysql://x", "sqlite:///y.db"])
    assert result.exit_code == 1 and "unknown scheme 'mysql'" in result.output


def test_keywords_export_writes_the_running_version(runner, tmp_path, monkeypatch):
    from tests.conftest import make_settings
    from webhook import create_app

    database_url = f"sqlite:///{tmp_path / 'k.db'}"
    app = create_app(make_settings(database_url))
    headers = {"Authorization": f"Bearer {app.extensions['unsub'].settings.admin_token}"}
    document = app.test_client().get("/api/v1/keywords", headers=headers).json["document"]
    document["brand"] = "Exported Co"
    app.test_client().put("/api/v1/keywords", json=document, headers=headers)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    out = tmp_path / "out.yaml"
    result = runner.invoke(main, ["keywords", "export", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert 'brand: "Exported Co"' in text and "# How to edit this file" in text
    first = runner.invoke(main, ["keywords", "export", "--version", "1"])
    assert 'brand: "Example Co"' in first.output


@pytest.mark.parametrize("output,why", [("no/such/folder/k.yaml", "No such file or directory"), (".", "Is a directory")])
def test_keywords_export_to_a_path_that_cannot_be_written_is_one_line(runner, tmp_path, monkeypatch, output, why):
    from tests.conftest import make_settings
    from webhook import create_app

    database_url = f"sqlite:///{tmp_path / 'k.db'}"
    create_app(make_settings(database_url)).extensions["unsub"].store.close()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    result = runner.invoke(main, ["keywords", "export", "-o", output])
    assert result.exit_code == 1
    assert result.stderr == f"unsub: error: cannot write {output}: {why}\n"


# Which database: the working directory must not silently pick an empty one (#11 item 16).

NO_DATABASE = ("unsub: error: no database at {path} (DATABASE_URL {url}); set DATABASE_URL=sqlite:////absolute/path/unsub.db, "
               "or run the command in the folder the service runs in\n")


@pytest.fixture
def elsewhere(tmp_path, monkeypatch) -> Path:
    """A folder the service does not run in, with a contact list and no database."""
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "TWILIO_AUTH_TOKEN", "ADMIN_TOKEN", "ERASURE_KEY", "KEYWORDS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SECRET_KEY", "test-secret-key-0123456789")
    (tmp_path / "list.csv").write_text("+14155550123\n", encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("args", [
    ["stats"], ["audience", "filter", "--channel", "sms", "list.csv"], ["suppressions", "export", "--channel", "sms"],
    ["contact", "export", "+14155550123"], ["keywords", "export"],
])
def test_a_command_that_only_reads_refuses_a_database_that_is_not_there(runner, elsewhere, monkeypatch, args):
    result = runner.invoke(main, args)
    assert result.exit_code == 1
    assert result.stderr == NO_DATABASE.format(path=elsewhere / "unsub.db", url="sqlite:///unsub.db")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///data/unsub.db")
    relative = runner.invoke(main, args)
    assert relative.stderr == NO_DATABASE.format(path=elsewhere / "data" / "unsub.db", url="sqlite:///data/unsub.db")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["list.csv"]  # no empty database, no secrets


@pytest.mark.parametrize("args", [
    ["suppressions", "import", "--channel", "sms", "list.csv"], ["campaign", "sends", "--campaign", "spring", "--channel", "sms", "list.csv"],
    ["contact", "erase", "+14155550123", "--yes"], ["migrate"],
])
def test_a_command_that_records_creates_the_database(runner, elsewhere, args):
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert (elsewhere / "unsub.db").is_file()
    assert not (elsewhere / "instance").exists()  # migrate generated local secrets it never used


def test_migrate_names_the_database_by_its_absolute_path(runner, elsewhere):
    assert runner.invoke(main, ["migrate"]).stdout.startswith(f"{elsewhere / 'unsub.db'}: applied ")
    assert runner.invoke(main, ["migrate"]).stdout == f"{elsewhere / 'unsub.db'}: up to date\n"


def test_copy_db_refuses_a_source_that_is_not_there(runner, elsewhere):
    result = runner.invoke(main, ["copy-db", "sqlite:///old.db", "sqlite:///new.db"])
    assert result.exit_code == 1
    assert result.stderr == (f"unsub: error: no database at {elsewhere / 'old.db'} (SOURCE sqlite:///old.db); "
                             "give SOURCE as sqlite:////absolute/path/unsub.db\n")
    assert not (elsewhere / "old.db").exists() and not (elsewhere / "new.db").exists()


def test_serve_says_where_its_database_and_instance_folder_are(runner, elsewhere, monkeypatch):
    monkeypatch.setattr("flask.Flask.run", lambda self, **options: None)
    result = runner.invoke(main, ["serve"])
    assert result.exit_code == 0, result.output
    assert f"database {elsewhere / 'unsub.db'}," in result.stdout
    assert f"instance folder {elsewhere / 'instance'}:" in result.stdout


def test_keywords_export_replaces_a_symlink_instead_of_writing_through_it(runner, tmp_path, monkeypatch):
    """The repository's keywords.yaml links to webhook/keywords.yaml: an export there must not change the package."""
    from tests.conftest import make_settings
    from webhook import create_app

    database_url = f"sqlite:///{tmp_path / 'k.db'}"
    app = create_app(make_settings(database_url))
    headers = {"Authorization": f"Bearer {app.extensions['unsub'].settings.admin_token}"}
    document = app.test_client().get("/api/v1/keywords", headers=headers).json["document"]
    document["brand"] = "Exported Co"
    app.test_client().put("/api/v1/keywords", json=document, headers=headers)
    app.extensions["unsub"].store.close()
    package = tmp_path / "package"
    package.mkdir()
    packaged = package / "keywords.yaml"
    packaged.write_text(PACKAGED_KEYWORDS.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "keywords.yaml").symlink_to(packaged)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    result = runner.invoke(main, ["keywords", "export", "-o", "keywords.yaml"])
    assert result.exit_code == 0, result.output
    exported = tmp_path / "keywords.yaml"
    assert not exported.is_symlink() and 'brand: "Exported Co"' in exported.read_text(encoding="utf-8")
    assert packaged.read_text(encoding="utf-8") == PACKAGED_KEYWORDS.read_text(encoding="utf-8")  # untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    again = runner.invoke(main, ["keywords", "export", "-o", "keywords.yaml"])  # a regular file now: replaced in place
    assert again.exit_code == 0 and oct(exported.stat().st_mode & 0o777) == oct(0o666 & ~current_umask())


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
