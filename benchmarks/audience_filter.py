"""Audience filter benchmark: `unsub audience filter` on a large contact list, beside two floors.

Run it from the repository root:

    .venv/bin/python benchmarks/audience_filter.py                 # 1,000,000 rows, SQLite, about 5 minutes
    .venv/bin/python benchmarks/audience_filter.py --rows 200000 --repeat 1 --profile
    .venv/bin/python benchmarks/audience_filter.py --database-url postgresql://postgres@127.0.0.1:5432/test

One run:

1. generates (seeded) a CSV contact list ``id,name,phone``: about 98% distinct valid US
   numbers written in five common ways, 1% repeats of them in another form, 1% invalid
   entries, and the exact outcome expected for every row;
2. records ``--suppressions`` of those numbers as opt-outs on channel ``sms`` in a fresh
   database (a SQLite file in the temp dir, or a scratch PostgreSQL database created on
   the server ``--database-url`` names and dropped afterwards);
3. measures, each as its own process, interleaved, ``--repeat`` times: the csv module
   copying the file (floor 1), csv plus ``phonenumbers`` parsing, validating and formatting
   every number with nothing else (floor 2, the unavoidable work), and
   ``unsub audience filter --channel sms --category campaign --region US IN -o OUT
   --suppressed SUP --invalid INV -q``, once with ``--jobs 1`` and once with the default
   (one process per core). Wall time includes interpreter start-up; peak memory is the
   largest process's maximum RSS (``/usr/bin/time``'s %M, or wait4 in a small launcher:
   the filter's own processes are its children, so they count);
4. checks that both unsub runs' summaries and their three output files match the
   generator's expectations row by row, and that both write the same bytes (exit status 1
   when not), and prints a Markdown table with the ratio of each step to the normalising
   floor and whether the target (<= 0.7x that floor with the default --jobs, peak RSS
   < 200 MB) is met.

The script also runs its own floors: ``--worker copy|normalise`` (not for direct use).
See README.md in this folder.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
TARGET_RATIO = 0.7  # issue 17 (issue 5's was 1.5 for one process)
TARGET_PEAK_MB = 200.0
SCRATCH_DATABASE = "unsub_bench_audience"
LOAD_BATCH = 5000
INVALID_SHARE = 0.01
REPEAT_SHARE = 0.01
SUMMARY = re.compile(r"(\d+) rows: (\d+) sendable, (\d+) suppressed, (\d+) invalid \(([\d.]+) s\)")
# Area codes in service; every (area code, exchange) prefix used is still checked with phonenumbers.
AREA_CODES = (
    201, 202, 203, 206, 212, 213, 214, 215, 216, 248, 267, 281, 301, 303, 305, 310, 312, 313, 314, 317,
    323, 347, 404, 407, 408, 412, 415, 425, 469, 480, 503, 510, 512, 571, 602, 614, 617, 619, 646, 650,
    678, 702, 703, 704, 713, 718, 720, 732, 773, 786, 801, 813, 818, 832, 858, 904, 917, 919, 949, 972,
)
FIRST_NAMES = ("James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
               "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Maria",
               "Wei", "Priya", "Ahmed", "Fatima", "Jose", "Ana", "Kenji", "Olga", "Nguyen", "Chloe")
LAST_NAMES = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
              "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
              "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson")
SENDABLE, SUPPRESSED, INVALID = 0, 1, 2
KIND_NAMES = ("sendable", "suppressed", "invalid")


# -- the floors (run as child processes of this script) ---------------------------------


def floor_copy(source: Path, target: Path) -> dict:
    """Floor 1: csv.reader to csv.writer, every row as it is."""
    with open(source, newline="", encoding="utf-8") as inp, open(target, "w", newline="", encoding="utf-8") as out:
        csv.writer(out, lineterminator="\n").writerows(csv.reader(inp))
    return {}


def floor_normalise(source: Path) -> dict:
    """Floor 2: csv.reader, and phonenumbers parse + is_valid_number + E.164 for every phone cell; no cache."""
    import phonenumbers

    parse, is_valid, format_number = phonenumbers.parse, phonenumbers.is_valid_number, phonenumbers.format_number
    e164, parse_error = phonenumbers.PhoneNumberFormat.E164, phonenumbers.NumberParseException
    rows = valid = 0
    with open(source, newline="", encoding="utf-8") as inp:
        reader = csv.reader(inp)
        column = next(reader).index("phone")
        for row in reader:
            rows += 1
            try:
                number = parse(row[column], "US")
            except parse_error:
                continue
            if is_valid(number):
                format_number(number, e164)
                valid += 1
    return {"rows": rows, "valid": valid}


def run_worker(kind: str, source: Path, target: Path | None) -> None:
    result = floor_copy(source, target) if kind == "copy" and target else floor_normalise(source)
    print(json.dumps(result))


# -- the contact list -----------------------------------------------------------------


@dataclass
class ContactList:
    """The generated file and what unsub must make of each row."""

    path: Path
    rows: int
    kinds: bytearray  # SENDABLE / SUPPRESSED / INVALID per row (id - 1)
    e164: list[str | None]  # the normalised number per row, None for invalid rows
    invalid_raw: dict[int, str]  # row index -> phone cell as written, for invalid rows
    suppressed: list[str]  # the opted-out numbers (E.164), all in the file
    distinct: int
    prefixes: int
    seconds: float = 0.0

    def expected(self) -> dict[str, int]:
        return {name: self.kinds.count(code) for code, name in enumerate(KIND_NAMES)}


def _strict(text: str) -> str | None:
    """E.164 of a US-region number if phonenumbers says it is valid (what unsub's strict check asks)."""
    import phonenumbers

    try:
        number = phonenumbers.parse(text, "US")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _written(digits: str, rng: random.Random) -> str:
    """A ten-digit US number as people and exports write it."""
    area, exchange, line = digits[:3], digits[3:6], digits[6:]
    draw = rng.random()
    if draw < 0.40:
        return f"+1{digits}"
    if draw < 0.70:
        return f"({area}) {exchange}-{line}"
    if draw < 0.85:
        return f"+1 {area}-{exchange}-{line}"
    if draw < 0.95:
        return f"{area}.{exchange}.{line}"
    return f"1 {area} {exchange} {line}"


def _invalid(rng: random.Random) -> str:
    """Something found in a phone column that is not a valid number."""
    while True:
        kind = rng.randrange(6)
        area, exchange, line = rng.choice(AREA_CODES), rng.randrange(200, 1000), rng.randrange(10000)
        if kind == 0:
            text = ""
        elif kind == 1:
            text = rng.choice(("n/a", "none", "unknown", "-", "call the office", "TBD", "see email"))
        elif kind == 2:
            text = f"{exchange}-{line:04d}"  # no area code
        elif kind == 3:
            text = f"({rng.randrange(100, 200)}) {exchange}-{line:04d}"  # area codes never start with 1
        elif kind == 4:
            text = f"+1 {area} {exchange} {line:04d} {rng.randrange(100, 1000)}"  # too long
        else:
            text = f"+1 {area} {exchange}"  # cut short
        if _strict(text) is None:
            return text


def generate(path: Path, rows: int, suppressions: int, seed: int) -> ContactList:
    """Write the contact list and return the expected outcome of every row."""
    started = time.perf_counter()
    rng = random.Random(seed)
    invalid = round(rows * INVALID_SHARE)
    repeats = round(rows * REPEAT_SHARE)
    distinct = rows - invalid - repeats
    if suppressions > distinct:
        raise SystemExit(f"--suppressions {suppressions} is more than the {distinct} distinct numbers of {rows} rows")
    # Prefixes (area code + exchange), each filled to about half of its 10,000 lines:
    # numbers cluster by exchange as a real list does. Each prefix is checked at both ends.
    wanted = distinct // 5000 + 1
    candidates = [f"{area}{exchange}" for area in AREA_CODES for exchange in range(200, 1000)]
    rng.shuffle(candidates)
    prefixes: list[str] = []
    for prefix in candidates:
        if all(_strict(f"+1{prefix}{line}") == f"+1{prefix}{line}" for line in ("0000", "9999")):
            prefixes.append(prefix)
            if len(prefixes) == wanted:
                break
    if len(prefixes) < wanted:
        raise SystemExit(f"only {len(prefixes)} valid prefixes of {wanted}: phonenumbers' metadata changed?")
    numbers = [f"+1{prefixes[i // 10000]}{i % 10000:04d}" for i in rng.sample(range(len(prefixes) * 10000), distinct)]
    blocked = set(rng.sample(numbers, suppressions))
    slots = ["new"] * distinct + ["repeat"] * repeats + ["invalid"] * invalid
    rng.shuffle(slots)
    kinds = bytearray(rows)
    e164: list[str | None] = [None] * rows
    invalid_raw: dict[int, str] = {}
    next_distinct = 0
    with open(path, "w", newline="", encoding="utf-8") as out:
        write = csv.writer(out).writerow  # \r\n, as Excel and most exports write
        write(["id", "name", "phone"])
        for index, slot in enumerate(slots):
            if slot == "invalid":
                phone = _invalid(rng)
                invalid_raw[index] = phone
                kinds[index] = INVALID
            else:
                if slot == "new":
                    number = numbers[next_distinct]
                    next_distinct += 1
                else:
                    number = numbers[rng.randrange(distinct)]  # the same contact again, maybe written otherwise
                phone = _written(number[2:], rng)
                e164[index] = number
                kinds[index] = SUPPRESSED if number in blocked else SENDABLE
                if index % 997 == 0 and _strict(phone) != number:  # spot check; floor 2 checks them all
                    raise SystemExit(f"generated {phone!r} for {number}, phonenumbers says {_strict(phone)}")
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            write([index + 1, f"{last}, {first}" if rng.random() < 0.03 else f"{first} {last}", phone])
    return ContactList(path, rows, kinds, e164, invalid_raw, sorted(blocked), distinct, len(prefixes),
                       time.perf_counter() - started)


# -- the database ---------------------------------------------------------------------


def create_scratch(url: str, name: str) -> str:
    """Create (again) database ``name`` on the server ``url`` names; return its URL."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def drop_scratch(url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def load_suppressions(url: str, numbers: list[str]) -> tuple[int, float]:
    """Record an opt-out on sms for each number, in batches; (events added, seconds)."""
    from webhook.domain import ConsentEvent
    from webhook.store import open_store

    started = time.perf_counter()
    store = open_store(url)
    try:
        store.migrate()
        base = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
        added = 0
        for start in range(0, len(numbers), LOAD_BATCH):
            added += store.import_events([
                ConsentEvent(channel="sms", address=number, action="opt_out", source="import",
                             occurred_at=base + dt.timedelta(seconds=i), match_kind="import", message_id=f"bench:{i}")
                for i, number in enumerate(numbers[start:start + LOAD_BATCH], start)
            ])
    finally:
        store.close()
    return added, time.perf_counter() - started


# -- measuring ------------------------------------------------------------------------


@dataclass
class Run:
    """One child process: wall time, CPU time, peak RSS and what it wrote."""

    seconds: float
    cpu_seconds: float
    peak_mb: float
    stdout: str
    stderr: str
    others_cpu: float  # CPU seconds the rest of the machine used meanwhile (0 when /proc/stat is missing)


@dataclass
class Step:
    name: str
    command: list[str]
    runs: list[Run] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(r.seconds for r in self.runs)

    @property
    def median(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def peak_mb(self) -> float:
        return max(r.peak_mb for r in self.runs)


# A child's peak RSS must be read from a small parent: a process forked (or vforked) from this
# one starts with this one's high-water mark, which wait4 would report as the child's.
TIME = Path("/usr/bin/time")
LAUNCHER = ("import os, subprocess, sys; child = subprocess.Popen(sys.argv[2:]); _, status, u = os.wait4(child.pid, 0); "
            "open(sys.argv[1], 'w').write(f'{u.ru_maxrss} {u.ru_utime} {u.ru_stime}'); "
            "sys.exit(os.waitstatus_to_exitcode(status))")


def busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (user, nice, system, irq, softirq, steal)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:9]]
    except OSError:
        return 0.0
    return (sum(fields[:3]) + sum(fields[5:8])) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(limit: float) -> float:
    """Wait (up to ``limit`` seconds) until the machine is idle for a second; return the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        busy = busy_seconds()
        time.sleep(1.0)
        if busy_seconds() - busy < 0.1:
            break
    return time.monotonic() - started - 1.0


def measure(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> Run:
    """Run a command to completion under /usr/bin/time (or a small Python launcher) for its peak RSS."""
    usage = log.with_suffix(".usage")
    if TIME.exists():
        wrapped = [str(TIME), "-f", "%M %U %S", "-o", str(usage), *command]
    else:
        wrapped = [sys.executable, "-c", LAUNCHER, str(usage), *command]
    with open(log.with_suffix(".out"), "w+") as out, open(log.with_suffix(".err"), "w+") as err:
        busy, started = busy_seconds(), time.perf_counter()
        returncode = subprocess.run(wrapped, stdout=out, stderr=err, env=env, cwd=cwd).returncode
        seconds, busy = time.perf_counter() - started, busy_seconds() - busy
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {returncode}:\n{stderr[-3000:]}")
    peak_kb, user, system = usage.read_text().strip().splitlines()[-1].split()  # time -o may add a line first
    cpu = float(user) + float(system)
    return Run(seconds, cpu, int(peak_kb) * 1024 / 1e6, stdout, stderr, max(busy - cpu, 0.0))


def unsub_command() -> list[str]:
    script = Path(sys.executable).parent / "unsub"
    return [str(script)] if script.exists() else [sys.executable, "-m", "webhook.cli"]


def check_outputs(contacts: ContactList, files: dict[int, Path]) -> list[str]:
    """Every row in exactly the expected file, numbers normalised, invalid cells as written."""
    from webhook.csv_safe import safe_cell

    problems: list[str] = []
    seen = bytearray(contacts.rows)
    for kind, path in files.items():
        with open(path, newline="", encoding="utf-8") as inp:
            reader = csv.reader(inp)
            if next(reader, None) != ["id", "name", "phone"]:
                problems.append(f"{path.name}: header is not id,name,phone")
            for row in reader:
                index = int(row[0]) - 1
                seen[index] += 1
                expected = contacts.kinds[index]
                # Invalid cells as written, through the formula guard every CSV of unsub gets.
                want = safe_cell(contacts.invalid_raw[index]) if expected == INVALID else contacts.e164[index]
                if expected != kind or row[2] != want:
                    problems.append(f"row {index + 1} in {path.name} as {row[2]!r}: expected it "
                                    f"{KIND_NAMES[expected]}, as {want!r}")
                if len(problems) >= 10:
                    return problems
    missing = contacts.rows - seen.count(1)
    if missing:
        problems.append(f"{missing} rows not written exactly once")
    return problems


def machine() -> dict[str, str]:
    """Where and on what code the numbers were measured."""
    import sqlite3

    import phonenumbers

    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "webhook"], cwd=REPO_DIR, capture_output=True, text=True)
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "phonenumbers": phonenumbers.__version__,
        "sqlite": sqlite3.sqlite_version,
        "load": " ".join(open("/proc/loadavg").read().split()[:3]) if Path("/proc/loadavg").exists() else "?",
        "commit": commit.stdout.strip() + (" (webhook/ modified)" if dirty.stdout.strip() else ""),
    }


def profile(command: list[str], env: dict[str, str], cwd: Path, stats: Path, top: int) -> None:
    """One more unsub run under cProfile (not measured); print the top entries."""
    import pstats

    # [unsub script, args...] or [python, -m, webhook.cli, args...]: cProfile runs either.
    target = command[1:] if command[1] == "-m" else command
    subprocess.run([sys.executable, "-m", "cProfile", "-o", str(stats), *target], env=env, cwd=cwd, check=True)
    for order in ("cumulative", "tottime"):
        print(f"\n## cProfile of unsub, sorted by {order} (top {top})\n")
        pstats.Stats(str(stats), stream=sys.stdout).strip_dirs().sort_stats(order).print_stats(top)


# -- main -----------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the contact list")
    parser.add_argument("--suppressions", type=int, default=100_000, help="opt-outs recorded, all for numbers in the list")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs of each step (interleaved)")
    parser.add_argument("--database-url", help="postgresql://... server for a scratch database "
                        f"({SCRATCH_DATABASE}, dropped afterwards); default: a fresh SQLite file in the temp dir")
    parser.add_argument("--scratch-database", default=SCRATCH_DATABASE, help="name of the PostgreSQL scratch database")
    parser.add_argument("--seed", type=int, default=20261126, help="seed of the generated list")
    parser.add_argument("--quiet-wait", type=float, default=300,
                        help="before each run, wait up to this many seconds for other processes to go idle")
    parser.add_argument("--profile", action="store_true", help="then profile one unsub run with cProfile")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (files, database, logs)")
    parser.add_argument("--worker", choices=("copy", "normalise"), help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args.worker, args.input, args.output)
        return 0
    if args.rows < 100 or args.repeat < 1:
        parser.error("--rows must be at least 100 and --repeat at least 1")
    if args.database_url and not args.database_url.startswith(("postgresql:", "postgres:")):
        parser.error("--database-url takes a postgresql:// URL (SQLite runs use a fresh file in the temp dir)")

    temp = Path(tempfile.mkdtemp(prefix="unsub-audience-"))
    scratch_url = None
    failed = False
    try:
        info = machine()
        print(f"# audience filter benchmark, {info['date']}\n")
        print(f"machine: {info['cores']} cores ({info['cpu']}), Python {info['python']}, phonenumbers "
              f"{info['phonenumbers']}, SQLite {info['sqlite']}, commit {info['commit']}; load average {info['load']}; temp dir {temp}")

        source = temp / "contacts.csv"
        contacts = generate(source, args.rows, args.suppressions, args.seed)
        expected = contacts.expected()
        print(f"generated {args.rows} rows ({source.stat().st_size / 1e6:.1f} MB) in {contacts.seconds:.1f} s: "
              f"{contacts.distinct} distinct numbers in {contacts.prefixes} prefixes, expected {expected}")

        if args.database_url:
            scratch_url = create_scratch(args.database_url, args.scratch_database)
            url, backend = scratch_url, f"PostgreSQL (scratch database {args.scratch_database})"
        else:
            url, backend = f"sqlite:///{temp / 'unsub.db'}", "SQLite (temp dir)"
        added, load_seconds = load_suppressions(url, contacts.suppressed)
        print(f"database: {backend}; {added} opt-outs recorded in {load_seconds:.1f} s "
              f"({added / load_seconds:,.0f}/s, not measured)")
        if added != len(contacts.suppressed):
            raise SystemExit(f"recorded {added} opt-outs, not {len(contacts.suppressed)}")

        env = {k: v for k, v in os.environ.items() if k not in ("DEFAULT_REGION", "KEYWORDS_FILE", "DATABASE_URL")}
        env["DATABASE_URL"] = url
        me = [sys.executable, str(Path(__file__).resolve())]
        def outputs_of(tag: str) -> dict[int, Path]:
            return {kind: temp / f"{tag}-{KIND_NAMES[kind]}.csv" for kind in (SENDABLE, SUPPRESSED, INVALID)}

        def unsub_filter(files: dict[int, Path], *jobs: str) -> list[str]:
            return [*unsub_command(), "audience", "filter", "--channel", "sms", "--category", "campaign", "--region",
                    "US", str(source), "-o", str(files[SENDABLE]), "--suppressed", str(files[SUPPRESSED]),
                    "--invalid", str(files[INVALID]), "-q", *jobs]

        cores = os.cpu_count() or 1
        files_of = {"one": outputs_of("jobs-1"), "default": outputs_of("jobs-default")}
        steps = [
            Step("csv copy (floor 1)", [*me, "--worker", "copy", "--input", str(source), "--output", str(temp / "copy.csv")]),
            Step("csv + phonenumbers (floor 2)", [*me, "--worker", "normalise", "--input", str(source)]),
            Step("unsub audience filter --jobs 1", unsub_filter(files_of["one"], "--jobs", "1")),
            Step(f"**unsub audience filter** (default: --jobs {cores})", unsub_filter(files_of["default"])),
        ]
        copy_floor, floor, unsub_one, unsub = steps
        step_files = {id(unsub_one): files_of["one"], id(unsub): files_of["default"]}
        reported: list[float] = []
        disturbances = 0
        for repeat in range(args.repeat):
            for step in steps:
                waited = wait_for_quiet(args.quiet_wait)
                if waited > 1:
                    print(f"  (waited {waited:.0f} s for the machine to go idle)", flush=True)
                run = measure(step.command, env, temp, temp / f"{len(step.runs)}-{steps.index(step)}")
                step.runs.append(run)
                disturbed = run.others_cpu > 0.1 * run.seconds
                disturbances += disturbed
                print(f"  run {repeat + 1}/{args.repeat} {step.name}: {run.seconds:.2f} s, CPU {run.cpu_seconds:.2f} s, "
                      f"peak {run.peak_mb:.0f} MB, other processes {run.others_cpu:.2f} CPU s"
                      + (" (DISTURBED: more than 10% of a core)" if disturbed else ""), flush=True)
                if step is floor:
                    result = json.loads(run.stdout)
                    want_valid = args.rows - expected["invalid"]
                    if result != {"rows": args.rows, "valid": want_valid}:
                        failed = True
                        print(f"FAIL: floor 2 read {result}, expected {args.rows} rows, {want_valid} valid")
                if step is unsub or step is unsub_one:
                    match = SUMMARY.search(run.stderr)
                    got = dict(zip(("rows", *KIND_NAMES), map(int, match.groups()[:4]), strict=True)) if match else None
                    if got != {"rows": args.rows, **expected}:
                        failed = True
                        print(f"FAIL: unsub said {run.stderr.strip()!r}, expected {expected}")
                    elif step is unsub:
                        reported.append(float(match.group(5)))
                    if repeat == 0:
                        for problem in check_outputs(contacts, step_files[id(step)]):
                            failed = True
                            print(f"FAIL: {problem}")
                    if repeat == 0 and step is unsub:
                        for kind, path in files_of["one"].items():
                            if path.read_bytes() != files_of["default"][kind].read_bytes():
                                failed = True
                                print(f"FAIL: --jobs 1 and --jobs {cores} wrote different {KIND_NAMES[kind]} files")

        rows = args.rows

        def paired(step: Step) -> float:
            """Median over rounds of this step's time / floor 2's time in the same round (drift cancels)."""
            return statistics.median(a.seconds / b.seconds for a, b in zip(step.runs, floor.runs, strict=True))

        print("\n| step | best (s) | median (s) | us/row (best) | CPU s (median) | peak RSS (MB) "
              "| x floor 2 (best/best) | x floor 2 (median of rounds) |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for step in steps:
            cpu = statistics.median(r.cpu_seconds for r in step.runs)
            print(f"| {step.name} | {step.best:.2f} | {step.median:.2f} | {step.best / rows * 1e6:.1f} | {cpu:.2f} | "
                  f"{step.peak_mb:.0f} | {step.best / floor.best:.2f} | {paired(step):.2f} |")
        per_number = (floor.best - copy_floor.best) / rows * 1e6
        print(f"\nrows: {rows}, runs per step: {args.repeat}; floor 2 minus floor 1: {per_number:.1f} us a number "
              f"(phonenumbers alone, roughly: floor 1 also writes the file)")
        for each in (unsub_one, unsub):
            rounds = ", ".join(f"{a.seconds / b.seconds:.2f}" for a, b in zip(each.runs, floor.runs, strict=True))
            print(f"{each.name} / floor 2 in each round: {rounds}")
        if reported:
            print(f"unsub's own summary time (after start-up and imports): best {min(reported):.1f} s")
        ratio = paired(unsub)
        met = ratio <= TARGET_RATIO and unsub.peak_mb < TARGET_PEAK_MB
        print(f"target: <= {TARGET_RATIO}x normalising floor, peak < {TARGET_PEAK_MB:.0f} MB: "
              f"{'MET' if met else 'NOT MET'} ({ratio:.2f}x, median of rounds; {unsub.best / floor.best:.2f}x best/best; "
              f"{unsub.peak_mb:.0f} MB)")
        print("checks: " + ("FAILED (see above)" if failed else
                            "unsub's counts and all three output files match the generated list, row by row"))
        if disturbances:
            print(f"WARNING: in {disturbances} runs other processes used more than 10% of a core; "
                  "the times are not reliable"
                  + (" (for unsub's runs that includes the PostgreSQL server answering it)" if args.database_url else ""))
        if args.profile:
            profile(unsub_one.command, env, temp, temp / "unsub.prof", 25)  # one process: cProfile sees it all
    finally:
        if scratch_url and args.database_url:
            if args.keep:
                print(f"kept scratch database {args.scratch_database}")
            else:
                drop_scratch(args.database_url, args.scratch_database)
        if args.keep:
            print(f"kept {temp}")
        else:
            shutil.rmtree(temp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
