"""Worker throughput: how many consent webhooks per second ``unsub worker`` delivers.

Each round starts from a fresh database (a SQLite file in a temp dir, or a scratch
PostgreSQL database), adds one enabled endpoint with the store's own
``create_endpoint``, and records ``--deliveries`` opt-outs of distinct contacts with the
store's ``import_events``, so the outbox holds that many pending deliveries written by
the real code (the consent transaction queues them). Then it starts a receiver (a
separate process: a threaded ``http.server`` that answers 200 at once and keeps what it
got), starts ``--workers`` ``unsub worker`` processes (the Procfile's ``worker:`` line),
and times until the database shows every delivery delivered. It then stops the workers
with SIGTERM, checks that every delivery arrived exactly once and verifies with
``standardwebhooks``, prints a table (median and spread of the rounds) and writes a JSON
result to benchmarks/results/. See README.md in this folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
SCRATCH_DATABASE = "unsub_bench_worker"
TARGET_PER_S = 500.0
LOAD_BATCH = 2000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- the receiver (its own process: ``--receiver PORT``) ----------------------------------


def serve_receiver(port: int) -> None:
    """Answer every POST 200 at once and keep it; ``GET /count`` and ``GET /dump`` read what came."""
    received: list[dict] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the worker's connection pool expects
        # One segment per answer: with Nagle on, the body waits for the ACK of the headers
        # (the client delays it up to 40 ms), which would cap every connection at 25 answers/s.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got = {
                "at": time.monotonic(), "id": self.headers.get("webhook-id"),
                "timestamp": self.headers.get("webhook-timestamp"), "signature": self.headers.get("webhook-signature"),
                "body": body.decode("utf-8", errors="replace"),
            }
            with lock:
                received.append(got)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def do_GET(self) -> None:  # noqa: N802
            with lock:
                snapshot = list(received)
            answer = json.dumps(len(snapshot) if self.path == "/count" else snapshot).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 128
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print("receiver ready", flush=True)
    server.serve_forever()


# -- processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.loads(answer.read())


def start_receiver(port: int, log_path: Path) -> subprocess.Popen:
    with log_path.open("ab") as log:
        receiver = subprocess.Popen([sys.executable, __file__, "--receiver", str(port)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            get_json(f"http://127.0.0.1:{port}/count")
            return receiver
        except OSError:
            if receiver.poll() is not None:
                sys.exit(f"the receiver exited:\n{log_path.read_text()}")
            time.sleep(0.05)
    sys.exit("the receiver did not start")


def stop(process: subprocess.Popen, timeout: float = 30) -> int:
    """SIGTERM (as a platform stops a process), SIGKILL after ``timeout``; the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes and their threads so far."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def machine_cpu() -> float:
    """Busy CPU seconds of the whole machine so far (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def postgres_pids() -> list[int]:
    """PostgreSQL server processes on this machine (their CPU is the database's share)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


# -- the database ---------------------------------------------------------------------


def scratch_url(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def recreate_scratch(url: str, name: str, *, drop_only: bool = False) -> str:
    """Drop and (unless ``drop_only``) create the scratch database ``name`` on ``url``'s server."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if not drop_only:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return scratch_url(url, name)


def prefill(url: str, receiver_url: str, count: int) -> tuple[str, float]:
    """One enabled endpoint and ``count`` opt-outs of distinct contacts, through the store.

    Returns the endpoint's secret and the seconds it took."""
    from webhook import outbox
    from webhook.domain import ConsentEvent
    from webhook.store import open_store

    started = time.perf_counter()
    store = open_store(url)
    try:
        store.migrate()
        secret = outbox.new_secret()
        store.create_endpoint(receiver_url, "worker benchmark", secret)
        base = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
        for start in range(0, count, LOAD_BATCH):
            store.import_events([
                ConsentEvent(channel="sms", address=f"+1415{2000000 + i:07d}", action="opt_out", source="sms",
                             occurred_at=base + dt.timedelta(milliseconds=i), keyword="STOP", language="en",
                             match_kind="keyword", raw_text="STOP", message_id=f"SMbench{i:026x}")
                for i in range(start, min(count, start + LOAD_BATCH))
            ])
        pending = store.outbox_backlog().pending
    finally:
        store.close()
    if url.startswith("postgresql"):
        # What autovacuum does within a minute of such a burst: without statistics the planner
        # takes the outbox for empty and sorts every due delivery at each claim.
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE outbox")
    if pending != count:
        sys.exit(f"expected {count} pending deliveries after the pre-fill, found {pending}")
    return secret, time.perf_counter() - started


def outbox_states(url: str) -> dict[str, object]:
    """Deliveries by state, attempts counted and logged, and the first attempts that failed
    (a delivery retried after a transport error is allowed, at least once, but shown)."""
    query = "SELECT state, count(*), sum(attempts) FROM outbox GROUP BY state"
    failed = ("SELECT outbox_id, attempted_at, worker, status_code, duration_ms, error FROM outbox_attempts "
              "WHERE status_code IS NULL OR status_code <> 200 ORDER BY id LIMIT 5")
    if url.startswith("sqlite:///"):
        import sqlite3

        from webhook.settings import sqlite_path

        with sqlite3.connect(sqlite_path(url.partition("?")[0])) as conn:
            rows = conn.execute(query).fetchall()
            logged = conn.execute("SELECT count(*) FROM outbox_attempts").fetchone()[0]
            errors = [tuple(str(v) for v in row) for row in conn.execute(failed).fetchall()]
    else:
        import psycopg

        with psycopg.connect(url) as conn:
            rows = conn.execute(query).fetchall()
            logged = conn.execute("SELECT count(*) FROM outbox_attempts").fetchone()[0]
            errors = [tuple(str(v) for v in row) for row in conn.execute(failed).fetchall()]
    found: dict[str, object] = {state: int(n) for state, n, _ in rows}
    found["attempts_counted"] = sum(int(a or 0) for _, _, a in rows)
    found["attempts_logged"] = int(logged)
    if errors:
        found["failed_attempts"] = [list(row) for row in errors]
    return found


def delivered_count(url: str, conn_cache: dict) -> int:
    """How many deliveries are recorded delivered (one connection kept for the polling)."""
    query = "SELECT count(*) FROM outbox WHERE state = 'delivered'"
    if "conn" not in conn_cache:
        if url.startswith("sqlite:///"):
            import sqlite3

            from webhook.settings import sqlite_path

            conn_cache["conn"] = sqlite3.connect(sqlite_path(url.partition("?")[0]), isolation_level=None)
        else:
            import psycopg

            conn_cache["conn"] = psycopg.connect(url, autocommit=True)
    return int(conn_cache["conn"].execute(query).fetchone()[0])


# -- one round --------------------------------------------------------------------------


@dataclass
class Round:
    """One measured round."""

    number: int
    deliveries: int
    workers: int
    prefill_s: float
    seconds: float  # from starting the workers until the database shows every delivery delivered
    per_s: float  # deliveries / seconds
    first_after_s: float  # from starting the workers until the receiver got the first delivery
    steady_per_s: float  # deliveries between the receiver's first and last one, per second
    received: int
    distinct: int
    verified: int
    states: dict[str, object]
    worker_exit: list[int]
    cpu_percent: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def run_round(number: int, args: argparse.Namespace, workdir: Path) -> Round:
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    round_dir = workdir / f"round-{number}"
    round_dir.mkdir()
    if args.database_url:
        url = recreate_scratch(args.database_url, args.scratch_database)
    else:
        url = f"sqlite:///{round_dir / 'unsub.db'}"
    port = free_port()
    receiver = start_receiver(port, round_dir / "receiver.log")
    base = f"http://127.0.0.1:{port}"
    polling: dict = {}
    workers: list[subprocess.Popen] = []
    try:
        secret, prefill_s = prefill(url, f"{base}/hooks", args.deliveries)
        env = {k: v for k, v in os.environ.items() if k not in ("KEYWORDS_FILE", "PUBLIC_BASE_URL")}
        env.update(DATABASE_URL=url, TWILIO_AUTH_TOKEN=secrets.token_urlsafe(24), SECRET_KEY=secrets.token_urlsafe(24),
                   WEBHOOK_ALLOW_HTTP="1")
        time.sleep(0.5)
        unsub = shutil.which("unsub", path=str(Path(sys.executable).parent)) or "unsub"
        print(f"[round {number}] {args.deliveries} pending (pre-fill {prefill_s:.1f} s); starting {args.workers} x "
              f"`unsub worker`", flush=True)
        machine0, pg0 = machine_cpu(), cpu_seconds(postgres_pids())
        receiver0 = cpu_seconds([receiver.pid])
        started = time.monotonic()
        for index in range(args.workers):
            log = (round_dir / f"worker-{index}.log").open("ab")
            command = [unsub, "worker", *(["--once"] if args.once else [])]
            workers.append(subprocess.Popen(command, cwd=round_dir, env=env, stdout=log, stderr=subprocess.STDOUT))
        deadline = started + args.timeout
        while delivered_count(url, polling) < args.deliveries:
            if time.monotonic() > deadline:
                sys.exit(f"[round {number}] not all delivered within {args.timeout:g} s: {outbox_states(url)}")
            exited = [w.poll() is not None for w in workers]
            if (all(exited) or (not args.once and any(exited))) and delivered_count(url, polling) < args.deliveries:
                sys.exit(f"[round {number}] worker(s) exited with {[w.returncode for w in workers]} before all was "
                         f"delivered: {outbox_states(url)}; see {round_dir}")
            time.sleep(0.02)
        seconds = time.monotonic() - started
        wall = seconds
        cpu = {
            "workers": round(100 * cpu_seconds([w.pid for w in workers]) / wall, 1),
            "receiver": round(100 * (cpu_seconds([receiver.pid]) - receiver0) / wall, 1),
            "machine": round(100 * (machine_cpu() - machine0) / wall, 1),
        }
        if args.database_url:
            cpu["postgres"] = round(100 * (cpu_seconds(postgres_pids()) - pg0) / wall, 1)
        # --once: each worker exits by itself once nothing is due; else SIGTERM, as a platform stops it.
        exits = [w.wait(timeout=args.timeout) if args.once else stop(w) for w in workers]
        received = get_json(f"{base}/dump")
        assert isinstance(received, list)
    finally:
        for w in workers:
            stop(w)
        stop(receiver)
        if "conn" in polling:
            polling["conn"].close()
    states = outbox_states(url)
    hook = Webhook(secret)
    verified = 0
    for got in received:
        try:
            payload = hook.verify(got["body"], {"webhook-id": got["id"], "webhook-timestamp": got["timestamp"],
                                                "webhook-signature": got["signature"]})
        except WebhookVerificationError:
            continue
        if isinstance(payload, dict) and payload.get("type") == "consent.opted_out":
            verified += 1
    times = sorted(got["at"] for got in received)
    distinct = len({got["id"] for got in received})
    problems = []
    if len(received) != args.deliveries or distinct != args.deliveries:
        problems.append(f"received {len(received)} requests, {distinct} distinct webhook-ids, for {args.deliveries} deliveries")
    if verified != len(received):
        problems.append(f"{len(received) - verified} deliveries did not verify as consent.opted_out")
    if states.get("delivered") != args.deliveries or states["attempts_logged"] != args.deliveries:
        problems.append(f"outbox after the round: {states}")
    if any(code != 0 for code in exits):
        problems.append(f"worker exit statuses {exits} (SIGTERM must end a worker with 0)")
    if args.database_url and not args.keep:
        recreate_scratch(args.database_url, args.scratch_database, drop_only=True)
    return Round(
        number=number, deliveries=args.deliveries, workers=args.workers, prefill_s=round(prefill_s, 2),
        seconds=round(seconds, 3), per_s=round(args.deliveries / seconds, 1),
        first_after_s=round(times[0] - started, 3) if times else 0.0,
        steady_per_s=round((len(times) - 1) / (times[-1] - times[0]), 1) if len(times) > 1 else 0.0,
        received=len(received), distinct=distinct, verified=verified, states=states, worker_exit=exits,
        cpu_percent=cpu, problems=problems,
    )


# -- report ------------------------------------------------------------------------------


def spread(values: list[float]) -> dict[str, float]:
    """Median, min, max, and the range as ± % of the median."""
    median = statistics.median(values)
    return {
        "median": round(median, 1), "min": round(min(values), 1), "max": round(max(values), 1),
        "range_pct": round(100 * (max(values) - min(values)) / 2 / median, 1) if median else 0.0,
    }


def code_version() -> dict[str, object]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(REPO_DIR), *args], capture_output=True, text=True)
        return done.stdout.rstrip("\n") if done.returncode == 0 else "unknown"

    return {"git_commit": git("rev-parse", "--short", "HEAD"),
            "uncommitted": git("status", "--porcelain", "--", "webhook").splitlines()}


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=10000, help="pending deliveries per round (default 10000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--workers", type=int, default=1, help="`unsub worker` processes (default 1; SQLite: run one)")
    parser.add_argument(
        "--database-url", default=None,
        help="a postgresql:// server: each round runs on a fresh scratch database there (default: a SQLite file per round)",
    )
    parser.add_argument("--scratch-database", default=SCRATCH_DATABASE, help=f"its name (default {SCRATCH_DATABASE})")
    parser.add_argument("--once", action="store_true",
                        help="run `unsub worker --once` (drain and exit) instead of the Procfile's `unsub worker`")
    parser.add_argument("--timeout", type=float, default=300, help="give up a round after this many seconds (default 300)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help=f"where the JSON goes (default {RESULTS_DIR})")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, databases) and the scratch database")
    parser.add_argument("--receiver", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.receiver:
        serve_receiver(args.receiver)
        return 0
    started = dt.datetime.now(dt.timezone.utc)
    workdir = Path(tempfile.mkdtemp(prefix="unsub-worker-bench-"))
    load_before = os.getloadavg()
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(f"{backend}, {args.workers} worker(s), {args.deliveries} deliveries x {args.rounds} rounds; "
          f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}", flush=True)
    rounds = []
    for number in range(1, args.rounds + 1):
        done = run_round(number, args, workdir)
        rounds.append(done)
        print(f"[round {number}] {done.per_s:.0f} deliveries/s ({done.seconds:.2f} s; first after {done.first_after_s:.2f} s, "
              f"steady {done.steady_per_s:.0f}/s); CPU % {done.cpu_percent}"
              + ("" if not done.problems else f"; PROBLEMS: {done.problems}"), flush=True)
    load_after = os.getloadavg()
    overall = spread([r.per_s for r in rounds])
    steady = spread([r.steady_per_s for r in rounds])
    problems = [f"round {r.number}: {p}" for r in rounds for p in r.problems]
    verdict = "met" if overall["median"] >= TARGET_PER_S else "NOT met"
    print(f"\ndeliveries/s (workers started -> all recorded delivered): median {overall['median']:.0f}, "
          f"min {overall['min']:.0f}, max {overall['max']:.0f} (±{overall['range_pct']:.0f} %); target >= {TARGET_PER_S:.0f}: {verdict}")
    print(f"deliveries/s at the receiver (first -> last): median {steady['median']:.0f}, min {steady['min']:.0f}, "
          f"max {steady['max']:.0f}")
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    from importlib.metadata import version

    result = {
        "benchmark": "worker_throughput",
        "started_at": started.isoformat(timespec="seconds"),
        "code": code_version(),
        "machine": {"nproc": len(os.sched_getaffinity(0)), "platform": platform.platform(),
                    "python": platform.python_version(), "urllib3": version("urllib3"),
                    "loadavg_before": load_before, "loadavg_after": load_after},
        "settings": {"backend": backend, "database_url": redact(args.database_url or "sqlite (a file per round)"),
                     "workers": args.workers, "deliveries": args.deliveries, "rounds": args.rounds},
        "rounds": [asdict(r) for r in rounds],
        "per_s": overall, "steady_per_s": steady, "target_per_s": TARGET_PER_S,
        "target_met": overall["median"] >= TARGET_PER_S, "valid": not problems, "problems": problems,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"worker_throughput-{started:%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    if args.keep:
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
