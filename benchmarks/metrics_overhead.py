"""What metrics cost the webhook path: unsub with and without METRICS_TOKEN, in alternating rounds.

Each round starts the Procfile's gunicorn flags (2 sync workers, the masking logger class and
``--config python:webhook.gunicorn_conf``, so with METRICS_TOKEN the workers count into a
multiprocess directory) on one fresh SQLite database, warms it up, then loads it with wrk
(the same signed Twilio webhooks as webhook_throughput.py, each sent once). Rounds alternate
off, on, off, on, ... so drift on a shared machine hits both sides alike. It prints each
round, the median requests/s of each side, the median loss and the spread (min..max of
each side). See README.md ("Metrics overhead").
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from webhook_throughput import (  # noqa: E402
    PATH,
    Plan,
    benchmark_app,
    free_port,
    make_requests,
    write_requests,
)

TARGET_LOSS = 0.05
PROCFILE_FLAGS = ["--workers", "2", "--timeout", "20", "--access-logfile", "-",
                  "--logger-class", "webhook.access_log.MaskingLogger", "--config", "python:webhook.gunicorn_conf"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per side (default 5; at least 5)")
    parser.add_argument("--duration", type=float, default=8, help="measured seconds per round (default 8)")
    parser.add_argument("--warmup", type=float, default=2, help="warm-up seconds per round (default 2)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-rps", type=int, default=3000, help="sizes the pre-generated requests per round")
    args = parser.parse_args(argv)
    if args.rounds < 5:
        parser.error("--rounds: at least 5 per side")
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    port = free_port()
    url = f"http://127.0.0.1:{port}{PATH}"
    workdir = Path(tempfile.mkdtemp(prefix="unsub-metrics-bench-"))
    database_url = f"sqlite:///{workdir / 'unsub.db'}"
    token, run_tag = secrets.token_urlsafe(24), secrets.token_hex(4)
    flags = [*PROCFILE_FLAGS, "--bind", f"127.0.0.1:{port}", "--chdir", str(workdir)]
    base_env = {k: v for k, v in os.environ.items()
                if k not in ("PUBLIC_BASE_URL", "KEYWORDS_FILE", "ADMIN_TOKEN", "PORT", "METRICS_TOKEN",
                             "PROMETHEUS_MULTIPROC_DIR", "LOG_FORMAT")}
    base_env.update(TWILIO_AUTH_TOKEN=token, SECRET_KEY=secrets.token_urlsafe(24), DATABASE_URL=database_url)
    per_round = math.ceil(args.max_rps * args.duration)
    warm = math.ceil(args.max_rps * args.warmup)
    results: dict[str, list[float]] = {"off": [], "on": []}
    try:
        for index in range(args.rounds * 2):
            side = "off" if index % 2 == 0 else "on"
            start = index * (per_round + warm)
            plan = Plan(url=url, flags=flags, threads=args.threads, connections=args.connections,
                        duration=args.duration, warmup=args.warmup, warmup_file=workdir / "warmup.txt",
                        main_file=workdir / "requests.txt",
                        main_requests=make_requests(token, url, start + warm, per_round, 0.7, run_tag, index),
                        workdir=workdir)
            write_requests(plan.warmup_file, make_requests(token, url, start, warm, 0.7, run_tag, index))
            write_requests(plan.main_file, plan.main_requests)
            env = dict(base_env, **({"METRICS_TOKEN": secrets.token_urlsafe(24)} if side == "on" else {}))
            result = benchmark_app(f"metrics-{side}", "webhook:create_app()", env, plan, None)
            if result.errors and any(result.errors.values()) or result.repeats:
                sys.exit(f"round {index + 1} is invalid: errors {result.errors}, repeats {result.repeats}")
            results[side].append(result.requests_per_s)
            print(f"round {index + 1:2d} metrics {side:3s}: {result.requests_per_s:8.1f} req/s  "
                  f"p50 {result.latency_ms.get('p50')} ms  p99 {result.latency_ms.get('p99')} ms", flush=True)
            time.sleep(1.0)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    off, on = statistics.median(results["off"]), statistics.median(results["on"])
    loss = 1 - on / off
    pairs = [1 - b / a for a, b in zip(results["off"], results["on"], strict=True)]
    print(f"\nmedian without METRICS_TOKEN: {off:.1f} req/s (spread {min(results['off']):.1f}..{max(results['off']):.1f})")
    print(f"median with METRICS_TOKEN:    {on:.1f} req/s (spread {min(results['on']):.1f}..{max(results['on']):.1f})")
    print(f"median loss: {loss * 100:.1f} % (target < {TARGET_LOSS * 100:.0f} %); per adjacent pair: "
          + ", ".join(f"{p * 100:+.1f} %" for p in pairs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
