"""`unsub audience filter`, `suppressions import/export`, `campaign sends`, `contact export/erase`
and `stats` against a real database (SQLite, and PostgreSQL when enabled)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from tests.conftest import SECRET_KEY
from webhook.cli import main
from webhook.domain import ConsentEvent, iso, utcnow
from webhook.store import open_store

A, B, C, D = "+14155550501", "+14155550502", "+14155550503", "+14155550504"


@pytest.fixture
def run(database_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"DATABASE_URL": database_url, "SECRET_KEY": SECRET_KEY, "DEFAULT_REGION": "", "KEYWORDS_FILE": ""}

    def invoke(*args: str, input: str | None = None, ok: bool = True):
        result = CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output + result.stderr
        return result

    return invoke


@pytest.fixture
def store(database_url):
    opened = open_store(database_url)
    opened.migrate()
    yield opened
    opened.close()


def opt(store, action: str, address: str, when: str, channel: str = "sms", sid: str | None = None) -> None:
    at = datetime.fromisoformat(when).replace(tzinfo=timezone.utc)
    store.record(ConsentEvent(channel, address, action, "keyword", at, message_id=sid or f"{action}:{address}:{when}"))


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_audience_filter_splits_a_file_keeping_its_columns(run, store, tmp_path):
    opt(store, "opt_out", B, "2026-11-01T10:00:00")
    opt(store, "opt_out", C, "2026-11-01T10:00:00", channel="whatsapp")  # another channel: no effect on SMS
    (tmp_path / "in.csv").write_text(
        f"id;name;Mobile Number\n1;Ann;{A}\n2;Bo;+1 (415) 555-0502\n3;Cy;{C}\n4;Di;not a number\n5;Ed;415-555-0504\n",
        encoding="utf-8",
    )
    result = run("audience", "filter", "--channel", "sms", "in.csv", "--suppressed", "s.csv", "--invalid", "i.csv")
    assert rows(result.stdout) == [["id", "name", "Mobile Number"], ["1", "Ann", A], ["3", "Cy", C]]
    assert rows((tmp_path / "s.csv").read_text()) == [["id", "name", "Mobile Number"], ["2", "Bo", B]]
    assert rows((tmp_path / "i.csv").read_text()) == [
        ["id", "name", "Mobile Number"], ["4", "Di", "not a number"], ["5", "Ed", "415-555-0504"]]
    assert "5 rows: 2 sendable, 1 suppressed, 2 invalid" in result.stderr

    # National numbers with a region; inbox messages are not gated.
    national = run("audience", "filter", "--channel", "sms", "--region", "us", "--category", "inbox", "in.csv", "-q")
    assert [r[2] for r in rows(national.stdout)[1:]] == [A, B, C, D]


def test_audience_filter_reads_stdin_without_a_header_and_refuses_bad_input(run, store):
    opt(store, "opt_out", A, "2026-11-01T10:00:00")
    result = run("audience", "filter", "--channel", "sms", "-", input=f"{A}\n{B}\n")
    assert rows(result.stdout) == [[B]]
    unknown = run("audience", "filter", "--channel", "fax", "-", input=f"{A}\n", ok=False)
    assert unknown.exit_code == 1 and "unknown channel 'fax'" in unknown.stderr
    ambiguous = run("audience", "filter", "--channel", "sms", "-", input="name,notes\nAnn,hello\n", ok=False)
    assert ambiguous.exit_code == 1 and "--column" in ambiguous.stderr


def test_an_erased_contact_stays_suppressed_in_the_audience_filter(run, store, tmp_path):
    opt(store, "opt_out", A, "2026-11-01T10:00:00")
    opt(store, "opt_in", B, "2026-11-01T10:00:00")
    exported = json.loads(run("contact", "export", A).stdout)
    assert [e["action"] for e in exported["events"]] == ["opt_out"]
    erased = run("contact", "erase", A, "--yes")
    assert f"erased {A}: 2 rows deleted; still suppressed on: sms" in erased.stdout
    assert store.history("sms", A) == [] and store.subscription("sms", A) is None
    assert json.loads(run("contact", "export", A).stdout)["events"] == []

    (tmp_path / "in.csv").write_text(f"phone\n{A}\n{B}\n", encoding="utf-8")
    result = run("audience", "filter", "--channel", "sms", "in.csv", "--suppressed", "s.csv")
    assert rows(result.stdout) == [["phone"], [B]]
    assert rows((tmp_path / "s.csv").read_text()) == [["phone"], [A]]
    wrong = CliRunner().invoke(main, ["audience", "filter", "--channel", "sms", "in.csv"],
                               env={"DATABASE_URL": store_url(store), "SECRET_KEY": "another-key-0123456789"})
    assert wrong.exit_code == 1 and "not the key this database's erased contacts were hashed with" in wrong.stderr
    # Without the key the erased list cannot be checked: refuse rather than let them through.
    keyless = CliRunner().invoke(main, ["audience", "filter", "--channel", "sms", "in.csv"],
                                 env={"DATABASE_URL": store_url(store), "SECRET_KEY": "", "ERASURE_KEY": ""})
    assert keyless.exit_code == 1 and "SECRET_KEY" in keyless.stderr


def store_url(store) -> str:
    return store.conninfo if store.kind == "postgresql" else f"sqlite:///{store.path}"


def test_erase_asks_first(run, store):
    opt(store, "opt_out", A, "2026-11-01T10:00:00")
    result = run("contact", "erase", A, input="n\n", ok=False)
    assert result.exit_code == 1 and len(store.history("sms", A)) == 1
    assert run("contact", "erase", "nobody", ok=False).exit_code == 1


def test_suppression_import_is_idempotent_and_never_overrides_newer_consent(run, store, tmp_path):
    opt(store, "opt_in", B, "2026-06-01T00:00:00")  # re-subscribed after the list's opt-out
    mailchimp = tmp_path / "klaviyo.csv"
    mailchimp.write_text(
        "Phone Number,Suppression Reason,Suppression Date\n"
        f"{A},User Suppressed,2026-01-02 10:00:00\n{B},User Suppressed,2026-01-03\n{C},,\nbad,,\n"
        f"{D},,31/12/2024\n{D},,9999-12-31\n",  # unreadable and future dates: reported, not imported
        encoding="utf-8",
    )
    first = run("suppressions", "import", "--channel", "sms", str(mailchimp), "--at", "2026-02-01")
    assert "6 rows: 3 opt-outs recorded, 0 already there, 3 invalid" in first.stderr
    assert store.subscription("sms", D) is None
    again = run("suppressions", "import", "--channel", "sms", str(mailchimp), "--at", "2026-02-01")
    assert "0 opt-outs recorded, 3 already there" in again.stderr
    assert store.subscription("sms", A).status == "unsubscribed"
    assert store.subscription("sms", B).status == "subscribed"  # the newer opt-in stands
    assert store.subscription("sms", C).updated_at == datetime(2026, 2, 1, tzinfo=timezone.utc)  # --at
    event = store.history("sms", A)[-1]
    assert (event.source, event.reason) == ("import", "klaviyo.csv: User Suppressed")

    exported = run("suppressions", "export", "--channel", "sms")
    assert rows(exported.stdout) == [
        ["address", "channel", "unsubscribed_at", "source", "keyword"],
        [A, "sms", "2026-01-02T10:00:00Z", "import", ""],
        [C, "sms", "2026-02-01T00:00:00Z", "import", ""],
    ]
    assert "2 suppressed addresses on sms" in exported.stderr
    assert rows(run("suppressions", "export", "--channel", "whatsapp").stdout)[1:] == []


def test_email_suppressions_from_a_mailchimp_export(run, store, tmp_path):
    (tmp_path / "mc.csv").write_text(
        '"Email Address","First Name",UNSUB_TIME,UNSUB_REASON\n'
        '"Ann@Example.com",Ann,"2026-03-04 05:06:07","No longer interested"\n',
        encoding="utf-8",
    )
    run("suppressions", "import", "--channel", "email", "mc.csv")
    sub = store.subscription("email", "ann@example.com")
    assert sub.status == "unsubscribed" and sub.updated_at == datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)


def test_campaign_sends_and_stats(run, store, tmp_path):
    sent_at = (utcnow() - timedelta(days=1)).replace(microsecond=0)
    (tmp_path / "sent.csv").write_text(f"to,date_sent\n{A},{iso(sent_at)}\n{B},{iso(sent_at)}\nx,\n", encoding="utf-8")
    sent = run("campaign", "sends", "--campaign", "black-friday", "--channel", "sms", "sent.csv")
    assert "3 rows: 2 sends recorded, 0 already there, 1 invalid" in sent.stderr
    assert "0 sends recorded, 2 already there" in run("campaign", "sends", "--campaign", "black-friday", "--channel",
                                                        "sms", "sent.csv").stderr
    assert run("campaign", "sends", "--campaign", " padded ", "--channel", "sms", "sent.csv", ok=False).exit_code == 1
    assert "in the future" in run("suppressions", "import", "--channel", "sms", "sent.csv", "--at", "2999-01-01",
                                  ok=False).stderr
    opt(store, "opt_out", A, (sent_at + timedelta(hours=3)).replace(tzinfo=None).isoformat())
    report = json.loads(run("stats", "--days", "7").stdout)
    campaigns = [(c["campaign"], c["delivered"], c["opt_outs"], c["opt_out_rate"]) for c in report["campaigns"]]
    assert campaigns == [("black-friday", 2, 1, 0.5)]


def test_progress_bar_follows_the_bytes_read_on_a_terminal(tmp_path, monkeypatch):
    from webhook.cli_lists import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    path = tmp_path / "list.csv"
    path.write_bytes(b"x" * 10_000)
    screen = Terminal()
    monkeypatch.setattr("sys.stderr", screen)
    with path.open("rb") as raw:
        bar = Progress(raw, "filtering sms", quiet=False)
        raw.read(5_000)
        bar.update()
        assert bar.done == 5_000
        raw.read()
        bar.update()
        bar.close()
        assert "filtering sms" in screen.getvalue() and "100%" in screen.getvalue()
        quiet = Progress(raw, "filtering sms", quiet=True)
        assert quiet.bar is None
    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a terminal: no bar
    with path.open("rb") as raw:
        assert Progress(raw, "x", quiet=False).bar is None


def test_a_file_that_breaks_midway_stops_with_a_clear_message(run, store, tmp_path):
    good = "".join(f"+1415555{n:04d}\n" for n in range(8000)).encode()  # beyond the 64 KB sample
    (tmp_path / "broken.csv").write_bytes(b"phone\n" + good + b"+14155\xff0000\n")
    result = run("audience", "filter", "--channel", "sms", "broken.csv", "-q", ok=False)
    assert result.exit_code == 1 and "stopped after about" in result.stderr and "CSV UTF-8" in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_reimporting_our_own_export_records_nothing_new(run, store, tmp_path):
    """Issue 11 item 10: an opt-out for an address already unsubscribed records nothing,
    and our export's own columns are recognised without --column."""
    now = utcnow().replace(microsecond=0)
    opt(store, "opt_out", A, (now - timedelta(hours=2)).replace(tzinfo=None).isoformat())
    (tmp_path / "list.csv").write_text(f"phone\n{B}\n", encoding="utf-8")
    run("suppressions", "import", "--channel", "sms", "list.csv")
    before = json.loads(run("stats", "--days", "2").stdout)["totals"]
    assert before["opt_outs"] == 2

    (tmp_path / "ours.csv").write_text(run("suppressions", "export", "--channel", "sms").stdout, encoding="utf-8")
    again = run("suppressions", "import", "--channel", "sms", "ours.csv")
    assert "2 rows: 0 opt-outs recorded, 2 already there, 0 invalid" in again.stderr
    assert json.loads(run("stats", "--days", "2").stdout)["totals"] == before
    assert [e.source for e in store.history("sms", A)] == ["keyword"]

    (tmp_path / "list.csv").write_text(f"address\n{A}\n{C}\n", encoding="utf-8")
    split = run("audience", "filter", "--channel", "sms", "ours.csv", "--suppressed", "out.csv")
    assert rows(split.stdout) == [["address", "channel", "unsubscribed_at", "source", "keyword"]]
    assert [r[0] for r in rows((tmp_path / "out.csv").read_text(encoding="utf-8"))[1:]] == [A, B]


# Files the commands read or write: one line naming the path and the reason, status 1 (#11 item 15).


@pytest.mark.parametrize("args", [
    ("audience", "filter", "--channel", "sms"),
    ("suppressions", "import", "--channel", "sms"),
    ("campaign", "sends", "--campaign", "spring-sale", "--channel", "sms"),
])
@pytest.mark.parametrize("source,why", [("missing.csv", "No such file or directory"), (".", "Is a directory")])
def test_an_input_file_that_cannot_be_read_is_one_line(run, database_url, tmp_path, args, source, why):
    if args[0] == "audience":  # a command that only reads needs the database to be there
        open_store(database_url).migrate()
    result = run(*args, source, ok=False)
    assert result.exit_code == 1
    assert result.stderr == f"unsub: error: cannot read {source}: {why}\n"
    if database_url.startswith("sqlite") and args[0] != "audience":
        assert not (tmp_path / "unsub.db").exists()  # read before the database is created


@pytest.mark.parametrize("option", ["-o", "--suppressed", "--invalid"])
def test_an_audience_output_that_cannot_be_written_is_one_line(run, store, tmp_path, option):
    (tmp_path / "in.csv").write_text(f"{A}\n", encoding="utf-8")
    result = run("audience", "filter", "--channel", "sms", "in.csv", option, "no/such/folder/out.csv", ok=False)
    assert result.exit_code == 1
    assert result.stderr == "unsub: error: cannot write no/such/folder/out.csv: No such file or directory\n"
    folder = run("audience", "filter", "--channel", "sms", "in.csv", option, ".", ok=False)
    assert folder.exit_code == 1 and folder.stderr == "unsub: error: cannot write .: Is a directory\n"


def test_a_suppressions_export_that_cannot_be_written_is_one_line(run, store):
    result = run("suppressions", "export", "--channel", "sms", "-o", "no/such/folder/sms.csv", ok=False)
    assert result.exit_code == 1
    assert result.stderr == "unsub: error: cannot write no/such/folder/sms.csv: No such file or directory\n"


def test_erase_and_filter_help_name_the_hash_key():
    for args in (["contact", "erase", "-h"], ["audience", "filter", "-h"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0 and "ERASURE_KEY" in result.output and "SECRET_KEY" in result.output, args
