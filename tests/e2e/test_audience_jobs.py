"""`unsub audience filter --jobs N` writes the same bytes as one process (issue 17).

The files are small, so the per-process minimum is lowered to a few hundred bytes: the
cuts then fall between many rows, next to quoted cells with commas and line breaks.
"""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from tests.conftest import SECRET_KEY
from webhook import audience_filter
from webhook.cli import main
from webhook.domain import ConsentEvent
from webhook.store import open_store

OUTPUTS = ("out.csv", "suppressed.csv", "invalid.csv")


@pytest.fixture
def run(database_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(audience_filter, "MIN_BYTES_PER_JOB", 256)
    env = {"DATABASE_URL": database_url, "SECRET_KEY": SECRET_KEY, "DEFAULT_REGION": "", "KEYWORDS_FILE": ""}

    def invoke(*args: str, ok: bool = True):
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
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


def contact_list(rows: int, seed: int = 7) -> tuple[str, list[str]]:
    """A list with a BOM, a header, blank lines, quoted cells (commas, quotes, line breaks),
    national and E.164 numbers, repeats and invalid cells; and some of its numbers."""
    rng = random.Random(seed)
    lines = ["\ufeffid,name,phone,notes"]
    numbers = []
    for i in range(rows):
        number = f"+1415555{rng.randrange(10000):04d}"
        numbers.append(number)
        written = rng.choice([number, f"({number[2:5]}) {number[5:8]}-{number[8:]}", f"1 {number[2:5]} {number[5:8]} {number[8:]}",
                              "n/a", "", "+1 015 555 0100"])
        name = rng.choice(["Ann", '"Lee, Jo"', '"Bo ""the"" Best"', "=cmd()"])
        notes = rng.choice(["", "ok", '"line one\nline two"', '"a\r\n""quoted"" b"'])
        lines.append(f"{i},{name},{written},{notes}")
        if rng.random() < 0.05:
            lines.append("")
    return "\r\n".join(lines) + "\r\n", numbers


def suppress(store, numbers: list[str]) -> None:
    at = datetime(2026, 11, 1, tzinfo=timezone.utc)
    for number in numbers:
        store.record(ConsentEvent("sms", number, "opt_out", "keyword", at, message_id=f"SM{abs(hash(number)):032x}"[:34]))


def outputs(tmp_path) -> dict[str, bytes]:
    return {name: (tmp_path / name).read_bytes() for name in OUTPUTS}


def filter_with(run, jobs: int, source: str = "list.csv"):
    return run("audience", "filter", "--channel", "sms", "--region", "US", source, "-o", "out.csv",
               "--suppressed", "suppressed.csv", "--invalid", "invalid.csv", "--jobs", str(jobs), "-q")


def test_two_and_three_processes_write_the_bytes_one_writes(run, store, tmp_path):
    text, numbers = contact_list(600)
    suppress(store, numbers[::7])
    (tmp_path / "list.csv").write_bytes(text.encode("utf-8"))
    one = filter_with(run, 1)
    alone = outputs(tmp_path)
    assert alone["suppressed.csv"].count(b"\n") > 20 and alone["invalid.csv"].count(b"\n") > 20
    for jobs in (2, 3):
        several = filter_with(run, jobs)
        assert outputs(tmp_path) == alone, f"--jobs {jobs} wrote other bytes"
        assert several.stderr.split(" (")[0] == one.stderr.split(" (")[0]  # the same counts


def test_a_cut_inside_a_row_is_noticed_and_one_process_does_it(run, store, tmp_path):
    # A stray quote inside an unquoted cell makes the quote count odd: every cut after it is
    # placed inside a multi-line cell, and the range before it notices.
    text, numbers = contact_list(400, seed=3)
    head, rest = text.split("\r\n", 1)
    text = head + '\r\n9999,Ann 5" tall,+14155550000,\r\n' + rest
    suppress(store, numbers[::5])
    (tmp_path / "list.csv").write_bytes(text.encode("utf-8"))
    filter_with(run, 1)
    alone = outputs(tmp_path)
    several = filter_with(run, 3)
    assert "filtering it in one process" in several.stderr
    assert outputs(tmp_path) == alone


def test_a_file_that_turns_unreadable_stops_as_one_process_does(run, store, tmp_path):
    text, _ = contact_list(3000, seed=5)  # the bad byte past the 64 KiB the layout is read from
    data = text.encode("utf-8")
    middle = data.index(b"\r\n", len(data) * 2 // 3) + 2
    (tmp_path / "list.csv").write_bytes(data[:middle] + b"7,Bad \xff name,+14155550101,\r\n" + data[middle:])
    one = run(
        "audience", "filter", "--channel", "sms", "--region", "US", "list.csv", "-o", "out.csv", "--jobs", "1", "-q", ok=False)
    alone = (tmp_path / "out.csv").read_bytes()
    several = run("audience", "filter", "--channel", "sms", "--region", "US", "list.csv", "-o", "out.csv", "--jobs", "2",
                  "-q", ok=False)
    assert one.exit_code == several.exit_code == 1
    assert "cannot be read further" in several.stderr and several.stderr.strip().endswith(one.stderr.strip()[-60:])
    assert (tmp_path / "out.csv").read_bytes() == alone


def test_standard_input_is_read_by_one_process(run, store, tmp_path, database_url):
    text, numbers = contact_list(200, seed=11)
    suppress(store, numbers[:10])
    (tmp_path / "list.csv").write_bytes(text.encode("utf-8"))
    filter_with(run, 1)
    alone = (tmp_path / "out.csv").read_bytes()
    env = {"DATABASE_URL": database_url, "SECRET_KEY": SECRET_KEY, "DEFAULT_REGION": "", "KEYWORDS_FILE": ""}
    piped = CliRunner().invoke(main, ["audience", "filter", "--channel", "sms", "--region", "US", "-", "--jobs", "4", "-q"],
                               env=env, input=text.encode("utf-8"), catch_exceptions=False)
    assert piped.exit_code == 0, piped.stderr
    assert piped.stdout_bytes == alone
    assert "one process" not in piped.stderr


def test_the_cuts_start_rows_and_split_the_file_evenly(tmp_path):
    text, _ = contact_list(2000, seed=13)
    path = tmp_path / "list.csv"
    path.write_bytes(text.encode("utf-8"))
    data = path.read_bytes()
    points = audience_filter.cut_points(str(path), 4, '"')
    assert points[0] == 0 and len(points) == 4 and points == sorted(set(points))
    for point in points[1:]:
        assert data[point - 1:point] == b"\n" and data[:point].count(b'"') % 2 == 0
        assert abs(point - len(data) * points.index(point) / 4) < 400  # near the even share: rows are short


def test_jobs_for_gives_each_process_a_fair_share():
    assert audience_filter.jobs_for(0, 8) == 1
    assert audience_filter.jobs_for(audience_filter.MIN_BYTES_PER_JOB * 3, 8) == 3
    assert audience_filter.jobs_for(audience_filter.MIN_BYTES_PER_JOB * 30, 2) == 2
