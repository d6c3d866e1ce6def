"""Webhook throughput: unsub's Twilio webhook against a bare Flask app, same gunicorn flags;
or (``--compare endpoint``) unsub with one enabled consent-webhook endpoint against unsub
without, in alternating rounds.

One run starts the bare app (bare_app.py: static empty TwiML), then unsub
(``webhook:create_app()`` on a fresh database), each under exactly the same gunicorn
flags, warms each up with wrk, then loads it with wrk for a fixed time. Every request
is a unique, validly signed Twilio inbound-message webhook (unique MessageSid, distinct
sender numbers, 70% "STOP"). It prints a table and the ratio unsub/bare, checks in the
database that every STOP sent became one opt-out event, and writes a JSON result to
benchmarks/results/.

With ``--compare endpoint`` each round measures unsub twice, each time on a fresh database
(a SQLite file, or a scratch PostgreSQL database): once as it is, once with one enabled
endpoint added through the store (so every STOP also writes a delivery to the outbox in
its transaction); the order alternates between rounds. No worker runs, so the deliveries
stay pending and are counted: one per opt-out. It prints every round, the medians, the
median of the per-round ratios with its spread, and checks it against 0.9. See README.md
in this folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import platform
import random
import secrets
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlencode, urlsplit

import phonenumbers

from webhook.providers.twilio import signature_for

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
LUA_SCRIPT = BENCH_DIR / "requests.lua"
RESULTS_DIR = BENCH_DIR / "results"
PATH = "/webhooks/twilio"
DEFAULT_GUNICORN_ARGS = "--workers 2 --threads 1 --worker-class sync"
TARGET_RATIO = 0.4
ENDPOINT_TARGET_RATIO = 0.9  # with one enabled endpoint / without (issue 12)
SCRATCH_DATABASE = "unsub_bench_webhook"
OTHER_BODIES = ("hello", "HELP", "Is my order on its way?", "Thanks!")  # none opts in or out
AREA_CODES = ("212", "213", "305", "312", "415", "503", "617", "702", "718", "917")
OUR_NUMBER = "+14155550100"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Request:
    """One pre-generated webhook: its X-Twilio-Signature and form-encoded body."""

    signature: str
    body: str
    is_stop: bool


@dataclass
class AppResult:
    """What one app did under load (the measured run only, not the warm-up)."""

    app: str
    requests_per_s: float
    completed: int
    duration_s: float
    latency_ms: dict[str, float]
    errors: dict[str, int]
    issued: int
    repeats: int
    cpu_percent: dict[str, float] = field(default_factory=dict)
    stop_sent: int = 0
    opt_out_events: int | None = None
    deliveries_queued: int | None = None
    wrk_threads: list[dict] = field(default_factory=list)


# -- requests ------------------------------------------------------------------------


def sender_number(index: int) -> str:
    """A distinct, possible US number for each index: +1 AAA 2xx xxxx."""
    area = AREA_CODES[index % len(AREA_CODES)]
    return f"+1{area}{2000000 + index // len(AREA_CODES)}"


def make_requests(token: str, url: str, start: int, count: int, stop_share: float, run_tag: str, seed: int) -> list[Request]:
    """``count`` unique signed inbound-message webhooks, indices ``start``.. (distinct senders and SIDs).

    Exactly round(count * stop_share) of them say "STOP", in a shuffled (seeded) order.
    """
    stops = round(count * stop_share)
    kinds = [True] * stops + [False] * (count - stops)
    random.Random(seed + start).shuffle(kinds)
    account = "AC" + run_tag * 4
    out: list[Request] = []
    for offset, is_stop in enumerate(kinds):
        index = start + offset
        sid = f"SM{run_tag}{index:024x}"
        params = {
            "ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": "0",
            "ToCity": "SAN FRANCISCO", "FromZip": "94105", "SmsSid": sid, "FromState": "CA",
            "SmsStatus": "received", "FromCity": "SAN FRANCISCO",
            "Body": "STOP" if is_stop else OTHER_BODIES[index % len(OTHER_BODIES)],
            "FromCountry": "US", "To": OUR_NUMBER, "ToZip": "94105", "NumSegments": "1",
            "ReferralNumMedia": "0", "MessageSid": sid, "AccountSid": account,
            "From": sender_number(index), "ApiVersion": "2010-04-01",
        }
        out.append(Request(signature_for(token, url, params), urlencode(params), is_stop))
    for index in (start, start + count - 1):  # the scheme is the same for all: spot-check it
        assert phonenumbers.is_possible_number(phonenumbers.parse(sender_number(index))), sender_number(index)
    return out


def write_requests(path: Path, requests: list[Request]) -> None:
    """The file requests.lua reads: the count, then "signature<TAB>body" per line."""
    with path.open("w", encoding="ascii") as out:
        out.write(f"{len(requests)}\n")
        for request in requests:
            out.write(f"{request.signature}\t{request.body}\n")


def stops_issued(requests: list[Request], wrk: dict) -> int:
    """How many STOP requests wrk's threads sent (each thread replays its own slice)."""
    total = 0
    for thread in wrk["threads"]:
        first, count, issued = thread["first"], thread["count"], thread["issued"]
        sent = requests[first:first + min(issued, count)]
        total += sum(r.is_stop for r in sent)
    return total


# -- processes -----------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(app_spec: str, flags: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """gunicorn ``flags`` ``app_spec``, output to ``log_path``."""
    command = [sys.executable, "-m", "gunicorn", *flags, app_spec]
    with log_path.open("ab") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_until_answering(url: str, server: subprocess.Popen, log_path: Path, timeout: float = 30.0) -> None:
    """Until the server answers HTTP (a GET: both apps say 405, and nothing is logged or recorded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"gunicorn exited with {server.returncode}; its log ({log_path}):\n{tail(log_path)}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    stop_server(server)
    sys.exit(f"gunicorn did not answer {url} within {timeout:.0f} s; its log ({log_path}):\n{tail(log_path)}")


def stop_server(server: subprocess.Popen) -> None:
    """Graceful stop (SIGTERM: workers finish the request in hand), SIGKILL after 30 s."""
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def processes() -> dict[int, tuple[int, float]]:
    """Every process: pid -> (parent pid, CPU seconds used so far), from /proc/PID/stat."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        found[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return found


def descendants(root: int, table: dict[int, tuple[int, float]]) -> set[int]:
    """``root`` and every process below it (gunicorn master and workers)."""
    found, todo = {root}, [root]
    while todo:
        parent = todo.pop()
        children = [pid for pid, (ppid, _) in table.items() if ppid == parent]
        found.update(children)
        todo += children
    return found


def sample(wrk_pid: int, server_pid: int) -> dict[str, float]:
    """CPU seconds used so far: by wrk, gunicorn, kernel threads, and the machine (/proc/stat)."""
    table = processes()
    machine = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = machine[:8]
    return {
        "at": time.monotonic(),
        "wrk": table.get(wrk_pid, (0, 0.0))[1],
        "gunicorn": sum(table[pid][1] for pid in descendants(server_pid, table)),
        "kernel_threads": sum(cpu for pid, (ppid, cpu) in table.items() if ppid == 2),
        "irq": (irq + softirq) / CLOCK_TICKS,
        "steal": steal / CLOCK_TICKS,
        "iowait": iowait / CLOCK_TICKS,
        "machine": (user + nice + system + irq + softirq + steal) / CLOCK_TICKS,
    }


def cpu_percent(start: dict[str, float], end: dict[str, float]) -> dict[str, float]:
    """CPU use between two samples in % of one core; "other" is what other processes used.

    Interrupt time ("irq", mostly loopback networking) is also counted in the time of the
    process it interrupted, so it is shown but not subtracted.
    """
    wall = end["at"] - start["at"]
    use = {key: round(100 * (end[key] - start[key]) / wall, 1) for key in start if key != "at"}
    accounted = ("wrk", "gunicorn", "kernel_threads", "steal")
    use["other"] = round(use["machine"] - sum(use[key] for key in accounted), 1)
    return use


def run_wrk(url: str, requests_file: Path, threads: int, connections: int, seconds: float, server_pid: int | None = None) -> tuple[dict, dict[str, float]]:
    """One wrk run; returns its WRK_RESULT and (when ``server_pid``) CPU use in % of one core.

    CPU is sampled like ``top`` over the middle of the run (from 1 s after wrk starts its
    clock to 0.5 s before the end), so wrk's loading of the requests is not counted.
    """
    command = [
        "stdbuf", "-oL", "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s",
        "-s", str(LUA_SCRIPT), url, "--", str(requests_file), str(threads),
    ]
    wrk = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert wrk.stdout is not None
    output: list[str] = []
    cpu: dict[str, float] = {}
    for line in wrk.stdout:
        output.append(line)
        if line.startswith("Running") and server_pid is not None and seconds >= 3:
            time.sleep(1.0)
            start = sample(wrk.pid, server_pid)
            time.sleep(seconds - 1.5)
            cpu = cpu_percent(start, sample(wrk.pid, server_pid))
    if wrk.wait() != 0:
        sys.exit(f"wrk failed ({wrk.returncode}):\n{''.join(output)}")
    for line in output:
        if line.startswith("WRK_RESULT "):
            return json.loads(line[len("WRK_RESULT "):]), cpu
    sys.exit(f"wrk printed no WRK_RESULT line:\n{''.join(output)}")


# -- database ------------------------------------------------------------------------


def count_opt_outs(database_url: str) -> int | None:
    """Opt-out events in the consent log (None when the database cannot be read)."""
    return count_rows(database_url, "SELECT count(*) FROM consent_events WHERE action = 'opt_out'")


def count_deliveries(database_url: str) -> int | None:
    """Deliveries in the outbox (None when the database cannot be read)."""
    return count_rows(database_url, "SELECT count(*) FROM outbox")


def count_rows(database_url: str, query: str) -> int | None:
    """The count ``query`` (fixed text) reads, or None when the database cannot be read."""
    try:
        if database_url.startswith("sqlite:///"):
            from webhook.settings import sqlite_path

            with sqlite3.connect(sqlite_path(database_url.partition("?")[0])) as conn:
                return conn.execute(query).fetchone()[0]
        import psycopg

        with psycopg.connect(database_url) as conn:
            return conn.execute(query).fetchone()[0]
    except Exception as error:  # noqa: BLE001 - report and go on: the numbers are still useful
        print(f"warning: cannot count rows in {redact(database_url)}: {error}", file=sys.stderr)
        return None


def fresh_database(args: argparse.Namespace, workdir: Path, name: str) -> str:
    """A new, empty database for one measured run: a SQLite file in ``workdir``, or the
    scratch database ``--scratch-database`` dropped and created again on ``--database-url``'s server."""
    if not args.database_url:
        return f"sqlite:///{workdir / f'{name}.db'}" + (f"?{args.sqlite_options}" if args.sqlite_options else "")
    import psycopg
    from psycopg import sql

    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(args.scratch_database)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(args.scratch_database)))
    return urlsplit(args.database_url)._replace(path=f"/{args.scratch_database}").geturl()


def prepare_database(database_url: str, endpoint_url: str | None) -> None:
    """Migrate, and with ``endpoint_url`` add one enabled consent-webhook endpoint (the store's
    own ``create_endpoint``, as the admin API does)."""
    from webhook import outbox
    from webhook.store import open_store

    store = open_store(database_url)
    try:
        store.migrate()
        if endpoint_url:
            store.create_endpoint(endpoint_url, "throughput benchmark", outbox.new_secret())
    finally:
        store.close()


# -- one app -------------------------------------------------------------------------


@dataclass
class Plan:
    url: str
    flags: list[str]
    threads: int
    connections: int
    duration: float
    warmup: float
    warmup_file: Path
    main_file: Path
    main_requests: list[Request]
    workdir: Path


def benchmark_app(name: str, app_spec: str, env: dict[str, str], plan: Plan, database_url: str | None) -> AppResult:
    """Start ``app_spec``, warm it up, measure it, stop it; check the database when given."""
    log_path = plan.workdir / f"gunicorn-{name}.log"
    print(f"[{name}] starting gunicorn {shlex.join(plan.flags)} {app_spec}", flush=True)
    server = start_server(app_spec, plan.flags, env, log_path)
    try:
        wait_until_answering(plan.url, server, log_path)
        print(f"[{name}] warm-up {plan.warmup:g} s", flush=True)
        run_wrk(plan.url, plan.warmup_file, plan.threads, plan.connections, plan.warmup)
        time.sleep(1.0)  # let requests in flight at the end of the warm-up finish
        before = count_opt_outs(database_url) if database_url else None
        queued_before = count_deliveries(database_url) if database_url else None
        print(f"[{name}] measuring {plan.duration:g} s", flush=True)
        wrk, cpu = run_wrk(plan.url, plan.main_file, plan.threads, plan.connections, plan.duration, server.pid)
        # Requests sent in wrk's last instant wait in the listen queue; a stopping gunicorn
        # drops those, so give the workers time to answer them first.
        time.sleep(1.0)
    finally:
        stop_server(server)
    after = count_opt_outs(database_url) if database_url else None
    queued_after = count_deliveries(database_url) if database_url else None
    seconds = wrk["duration_us"] / 1e6
    result = AppResult(
        app=name,
        requests_per_s=round(wrk["requests"] / seconds, 1),
        completed=wrk["requests"],
        duration_s=round(seconds, 3),
        latency_ms={k: round(v / 1000, 2) for k, v in wrk["latency_us"].items()},
        errors=wrk["errors"],
        issued=sum(t["issued"] for t in wrk["threads"]),
        repeats=sum(t["repeats"] for t in wrk["threads"]),
        cpu_percent=cpu,
        stop_sent=stops_issued(plan.main_requests, wrk),
        wrk_threads=wrk["threads"],
    )
    if before is not None and after is not None:
        result.opt_out_events = after - before
    if queued_before is not None and queued_after is not None:
        result.deliveries_queued = queued_after - queued_before
    return result


# -- report --------------------------------------------------------------------------


def cpu_count() -> int:
    """CPUs this process may run on (what nproc prints)."""
    return len(os.sched_getaffinity(0))


def redact(url: str) -> str:
    """A database URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def tool_version(command: list[str]) -> str:
    """First line a tool prints about its version."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except OSError:
        return "unknown"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) else "unknown"


def code_version() -> dict[str, object]:
    """Which unsub was measured: git commit, files changed since, and a hash of the package."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(REPO_DIR), *args], capture_output=True, text=True)
        return done.stdout.rstrip("\n") if done.returncode == 0 else "unknown"

    digest = hashlib.sha256()
    for path in sorted((REPO_DIR / "webhook").rglob("*")):
        if path.is_file() and path.suffix in (".py", ".yaml", ".sql"):
            digest.update(str(path.relative_to(REPO_DIR)).encode() + b"\0" + path.read_bytes())
    return {
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted": git("status", "--porcelain", "--", "webhook").splitlines(),
        "webhook_sha256": digest.hexdigest()[:16],
    }


def machine_info() -> dict[str, object]:
    """Where the numbers were measured."""
    cpu_model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
        "unknown",
    )
    from importlib.metadata import version

    return {
        "nproc": cpu_count(),
        "cpu_model": cpu_model,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "loadavg_at_start": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "gunicorn": version("gunicorn"),
        "flask": version("flask"),
        "wrk": tool_version(["wrk", "--version"]),
    }


def endpoint_problems(result: AppResult, endpoints: int) -> list[str]:
    """Why one run of ``--compare endpoint`` does not measure what it claims (empty when it does)."""
    problems = problems_of(result, None)
    if result.deliveries_queued is not None and result.opt_out_events is not None \
            and result.deliveries_queued != endpoints * result.opt_out_events:
        problems.append(f"{result.app}: {result.deliveries_queued} deliveries queued for {result.opt_out_events} "
                        f"opt-outs and {endpoints} endpoint(s)")
    return problems


def problems_of(unsub: AppResult, bare: AppResult | None) -> list[str]:
    """Why the run does not measure what it claims (empty when it does)."""
    problems = []
    for result in (bare, unsub) if bare else (unsub,):
        if result.repeats:
            problems.append(f"{result.app}: wrk resent {result.repeats} requests: use a larger --requests")
        failed = {k: v for k, v in result.errors.items() if v}
        if failed:
            problems.append(f"{result.app}: errors {failed} (every request must be answered 200)")
    # With no errors every STOP sent was answered 200 (those in flight when wrk's clock
    # stopped are answered before the server is stopped), so each must be one event.
    if unsub.opt_out_events is not None and unsub.opt_out_events != unsub.stop_sent:
        problems.append(f"{unsub.app}: {unsub.opt_out_events} opt-out events recorded for {unsub.stop_sent} STOP requests sent")
    return problems


def warnings_of(results: list[AppResult], limit: float = 10.0) -> list[str]:
    """Runs that other processes or the hypervisor (steal) disturbed, over ``limit`` % of one core."""
    return [
        f"{r.app}: other processes and steal took {r.cpu_percent['other'] + r.cpu_percent['steal']:.0f} % CPU"
        " while measuring: numbers disturbed, run again"
        for r in results
        if r.cpu_percent and r.cpu_percent["other"] + r.cpu_percent["steal"] > limit
    ]


def print_table(bare: AppResult, unsub: AppResult, ratio: float) -> None:
    """Both apps side by side, then the ratio against the target."""
    def row(label: str, get: Callable[[AppResult], object]) -> None:
        print(f"{label:<34}{get(bare):>14}{get(unsub):>14}")

    print()
    row("", lambda r: r.app)
    row("requests/s", lambda r: f"{r.requests_per_s:.1f}")
    row("requests completed", lambda r: r.completed)
    for key in ("p50", "p90", "p99", "max"):
        row(f"latency {key} (ms)", lambda r, k=key: f"{r.latency_ms[k]:.2f}")
    row("non-2xx (status > 399)", lambda r: r.errors["status"])
    row("socket errors (conn/read/write/to)", lambda r: "/".join(str(r.errors[k]) for k in ("connect", "read", "write", "timeout")))
    row("requests resent (must be 0)", lambda r: r.repeats)
    for key in ("wrk", "gunicorn", "kernel_threads", "steal", "other", "machine", "irq", "iowait"):
        row(f"CPU % {key.replace('_', ' ')}", lambda r, k=key: r.cpu_percent.get(k, "-"))
    row("STOP requests sent", lambda r: r.stop_sent)
    row("opt-out events recorded", lambda r: "-" if r.opt_out_events is None else r.opt_out_events)
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(f"\nratio unsub/bare: {ratio:.3f} (target >= {TARGET_RATIO}: {verdict})")
    print(f"CPU % is of one core; the machine has {cpu_count()} ({100 * cpu_count()} %).")


# -- main ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see --help)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--compare", choices=("bare", "endpoint"), default="bare",
        help="bare: unsub against the bare Flask app (default); endpoint: unsub with one enabled consent-webhook "
        "endpoint against unsub without, in alternating rounds, each run on a fresh database",
    )
    parser.add_argument("--rounds", type=int, default=5, help="--compare endpoint: rounds of with and without (default 5)")
    parser.add_argument(
        "--scratch-database", default=SCRATCH_DATABASE,
        help=f"--compare endpoint on PostgreSQL: the database created afresh for each run on --database-url's server "
        f"(default {SCRATCH_DATABASE}; dropped at the end)",
    )
    parser.add_argument("--duration", type=float, default=15, help="measured seconds per app (default 15)")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up seconds per app, not measured (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument(
        "--gunicorn-args", default=DEFAULT_GUNICORN_ARGS,
        help=f"gunicorn flags for both apps (default {DEFAULT_GUNICORN_ARGS!r}); --bind, --chdir "
        "(a temp dir) and --pythonpath (this folder) are added to both",
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    parser.add_argument(
        "--database-url", default=None,
        help="DATABASE_URL for unsub (default: a fresh SQLite file in a temp dir); postgresql:// URLs are passed through",
    )
    parser.add_argument(
        "--sqlite-options", default="",
        help="query string for the default SQLite URL, e.g. 'synchronous=full' (default: none)",
    )
    parser.add_argument(
        "--max-rps", type=float, default=10000,
        help="a rate no app will reach here; sizes the pre-generated requests (default 10000)",
    )
    parser.add_argument("--requests", type=int, default=0, help="measured requests to generate (default: max-rps x duration)")
    parser.add_argument("--stop-share", type=float, default=0.7, help="share of STOP messages (default 0.7)")
    parser.add_argument("--seed", type=int, default=1, help="seed for the order of STOP and other messages")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help=f"where the JSON goes (default {RESULTS_DIR})")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temp dir (logs, database, request files)")
    return parser.parse_args(argv)


def cpu_per_request(result: AppResult) -> float:
    """gunicorn's CPU microseconds per request while measuring (0 when not sampled)."""
    if not result.cpu_percent or not result.requests_per_s:
        return 0.0
    return round(result.cpu_percent["gunicorn"] / 100 * 1e6 / result.requests_per_s, 1)


def compare_endpoint(args: argparse.Namespace, plan: Plan, env: dict[str, str], started: dt.datetime,
                     code: dict[str, object]) -> int:
    """Alternating rounds of unsub without and with one enabled endpoint, each on a fresh database."""
    load_before = os.getloadavg()
    # No worker runs: the endpoint only has to exist (nothing is sent to it).
    endpoint_url = "http://127.0.0.1:9/unsub-benchmark-hooks"
    runs: list[dict] = []
    problems: list[str] = []
    for number in range(1, args.rounds + 1):
        order = ("without", "with") if number % 2 else ("with", "without")
        measured: dict[str, AppResult] = {}
        for condition in order:
            name = f"{condition}-{number}"
            database_url = fresh_database(args, plan.workdir, name)
            prepare_database(database_url, endpoint_url if condition == "with" else None)
            result = benchmark_app(name, "webhook:create_app()", {**env, "DATABASE_URL": database_url}, plan, database_url)
            measured[condition] = result
            problems += endpoint_problems(result, 1 if condition == "with" else 0)
            time.sleep(1.0)
        ratio = measured["with"].requests_per_s / measured["without"].requests_per_s
        # gunicorn's CPU per request: less moved than requests/s by what else runs on the machine.
        cost = {c: cpu_per_request(measured[c]) for c in ("without", "with")}
        cpu_ratio = cost["without"] / cost["with"] if cost["without"] and cost["with"] else 0.0
        runs.append({"round": number, "order": list(order), "ratio": round(ratio, 4),
                     "cpu_us_per_request": cost, "cpu_ratio": round(cpu_ratio, 4),
                     "without": asdict(measured["without"]), "with": asdict(measured["with"])})
        print(f"[round {number}] without {measured['without'].requests_per_s:.0f} req/s, with "
              f"{measured['with'].requests_per_s:.0f} req/s: ratio {ratio:.3f}; gunicorn CPU per request "
              f"{cost['without']:.0f} / {cost['with']:.0f} us: ratio {cpu_ratio:.3f}", flush=True)
    if args.database_url and not args.keep_temp:
        import psycopg
        from psycopg import sql

        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(args.scratch_database)))
    load_after = os.getloadavg()

    def summary(values: list[float]) -> dict[str, float]:
        median = statistics.median(values)
        return {"median": round(median, 3), "min": round(min(values), 3), "max": round(max(values), 3),
                "range_pct": round(100 * (max(values) - min(values)) / 2 / median, 1)}

    ratios = summary([run["ratio"] for run in runs])
    cpu_ratios = summary([run["cpu_ratio"] for run in runs])
    without = summary([run["without"]["requests_per_s"] for run in runs])
    with_endpoint = summary([run["with"]["requests_per_s"] for run in runs])
    met = ratios["median"] >= ENDPOINT_TARGET_RATIO
    print(f"\nrequests/s without an endpoint: median {without['median']:.0f} ({without['min']:.0f}-{without['max']:.0f})")
    print(f"requests/s with one enabled endpoint: median {with_endpoint['median']:.0f} "
          f"({with_endpoint['min']:.0f}-{with_endpoint['max']:.0f})")
    print("ratio with/without per round: " + ", ".join(f"{run['ratio']:.3f}" for run in runs))
    print(f"median ratio {ratios['median']:.3f} (spread {ratios['min']:.3f}-{ratios['max']:.3f}); "
          f"target >= {ENDPOINT_TARGET_RATIO}: {'met' if met else 'NOT met'}")
    print(f"gunicorn CPU per request, without/with: median {cpu_ratios['median']:.3f} "
          f"(spread {cpu_ratios['min']:.3f}-{cpu_ratios['max']:.3f})")
    print(f"load average before {' '.join(f'{v:.2f}' for v in load_before)}, after {' '.join(f'{v:.2f}' for v in load_after)}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    warnings = warnings_of([AppResult(**{**run[c], "app": f"{c}-{run['round']}"}) for run in runs for c in ("without", "with")])
    for warning in warnings:
        print(f"WARNING: {warning}")
    machine = machine_info()
    machine["loadavg_at_end"] = load_after
    result = {
        "benchmark": "webhook_throughput", "compare": "endpoint",
        "started_at": started.isoformat(timespec="seconds"), "code": code, "machine": machine,
        "settings": {
            "gunicorn_flags": plan.flags, "wrk_threads": args.threads, "wrk_connections": args.connections,
            "duration_s": args.duration, "warmup_s": args.warmup, "requests_generated": len(plan.main_requests),
            "stop_share": args.stop_share, "rounds": args.rounds,
            "database": redact(args.database_url) + f" (scratch {args.scratch_database})" if args.database_url
            else "a fresh SQLite file per run" + (f" ?{args.sqlite_options}" if args.sqlite_options else ""),
        },
        "rounds": runs, "ratio": ratios, "cpu_ratio": cpu_ratios, "without_requests_per_s": without, "with_requests_per_s": with_endpoint,
        "target_ratio": ENDPOINT_TARGET_RATIO, "target_met": met, "valid": not problems, "problems": problems,
        "warnings": warnings,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"webhook_throughput-endpoint-{started:%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")
    if args.keep_temp:
        print(f"kept {plan.workdir}")
    else:
        shutil.rmtree(plan.workdir, ignore_errors=True)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    """Generate requests, measure bare then unsub, report; 1 when the run is invalid."""
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    started = dt.datetime.now(dt.timezone.utc)
    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}{PATH}"
    workdir = Path(tempfile.mkdtemp(prefix="unsub-bench-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'unsub.db'}" + (f"?{args.sqlite_options}" if args.sqlite_options else "")
    code = code_version()
    token = secrets.token_urlsafe(24)
    run_tag = secrets.token_hex(4)
    flags = [*shlex.split(args.gunicorn_args), "--bind", f"127.0.0.1:{port}", "--chdir", str(workdir), "--pythonpath", str(BENCH_DIR)]
    env = {k: v for k, v in os.environ.items() if k not in ("PUBLIC_BASE_URL", "KEYWORDS_FILE", "ADMIN_TOKEN", "PORT")}
    env.update(TWILIO_AUTH_TOKEN=token, SECRET_KEY=secrets.token_urlsafe(24), DATABASE_URL=database_url)

    main_count = args.requests or math.ceil(args.max_rps * args.duration)
    warmup_count = math.ceil(args.max_rps * args.warmup)
    t0 = time.monotonic()
    warmup_requests = make_requests(token, url, 0, warmup_count, args.stop_share, run_tag, args.seed)
    main_requests = make_requests(token, url, warmup_count, main_count, args.stop_share, run_tag, args.seed)
    plan = Plan(
        url=url, flags=flags, threads=args.threads, connections=args.connections,
        duration=args.duration, warmup=args.warmup, warmup_file=workdir / "warmup.txt",
        main_file=workdir / "requests.txt", main_requests=main_requests, workdir=workdir,
    )
    write_requests(plan.warmup_file, warmup_requests)
    write_requests(plan.main_file, main_requests)
    where = "a fresh database per run" if args.compare == "endpoint" else redact(database_url)
    print(f"unsub database: {where}; code {code['git_commit']} (webhook sha256 {code['webhook_sha256']})")
    print(f"generated {warmup_count} warm-up + {main_count} measured signed requests in {time.monotonic() - t0:.1f} s ({workdir})")

    if args.compare == "endpoint":
        return compare_endpoint(args, plan, env, started, code)
    # The same request file for both apps: each server sees every request once.
    bare = benchmark_app("bare", "bare_app:create_app()", env, plan, None)
    time.sleep(1.0)
    unsub = benchmark_app("unsub", "webhook:create_app()", env, plan, database_url)

    ratio = unsub.requests_per_s / bare.requests_per_s if bare.requests_per_s else 0.0
    print_table(bare, unsub, ratio)
    problems = problems_of(unsub, bare)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    warnings = warnings_of([bare, unsub])
    if code_version()["webhook_sha256"] != code["webhook_sha256"]:
        warnings.append("the webhook package changed during the run: run again")
    for warning in warnings:
        print(f"WARNING: {warning}")

    result = {
        "benchmark": "webhook_throughput",
        "started_at": started.isoformat(timespec="seconds"),
        "code": code,
        "machine": machine_info(),
        "settings": {
            "gunicorn_flags": flags, "wrk_threads": args.threads, "wrk_connections": args.connections,
            "duration_s": args.duration, "warmup_s": args.warmup, "requests_generated": main_count,
            "warmup_requests_generated": warmup_count, "stop_share": args.stop_share,
            "database_url": redact(database_url), "url": url,
        },
        "results": {"bare": asdict(bare), "unsub": asdict(unsub)},
        "ratio": round(ratio, 4),
        "target_ratio": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO,
        "valid": not problems,
        "problems": problems,
        "warnings": warnings,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"webhook_throughput-{started:%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")
    if args.keep_temp:
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
