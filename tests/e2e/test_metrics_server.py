"""Metrics and JSON logs from the Procfile's web process as a platform runs it (issue 16):
its exact command line through a shell, two gunicorn workers."""

from __future__ import annotations

import json
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.conftest import ADMIN_TOKEN, csrf
from tests.e2e.servers import Server, free_port, server_env

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
WEB = next(line for line in (ROOT / "Procfile").read_text(encoding="utf-8").splitlines()
           if line.startswith("web: ")).removeprefix("web: ")
TOKEN = "metrics-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def procfile_web(tmp_path: Path, **extra: str) -> Server:
    port = free_port()
    env = server_env(f"sqlite:///{tmp_path / 'unsub.db'}", PORT=str(port), WEB_CONCURRENCY="2", **extra)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the venv's gunicorn
    for name in ("METRICS_TOKEN", "LOG_FORMAT", "PROMETHEUS_MULTIPROC_DIR"):
        if name not in extra:
            env.pop(name, None)
    server = Server(["sh", "-c", WEB], tmp_path, env, port)
    server.wait_ready()
    return server


def sample(text: str, family: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        found = re.match(r"([a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if found and found[1] == family and all(f'{k}="{v}"' in (found[2] or "") for k, v in labels.items()):
            total += float(found[3])
    return total


def worker_pids(folder) -> set[str]:
    """The processes that wrote counters into the multiprocess folder (counter_<pid>.db)."""
    return {found[1] for path in folder.glob("counter_*.db") if (found := re.fullmatch(r"counter_(\d+)\.db", path.name))}


def scrape(server: Server) -> str:
    answer = requests.get(server.base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.text


def test_sixteen_stops_add_up_across_both_workers(tmp_path):
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"left by an earlier run")  # removed at start-up
    server = procfile_web(tmp_path, METRICS_TOKEN=TOKEN, PROMETHEUS_MULTIPROC_DIR=str(folder))
    try:
        assert not (folder / "counter_1.db").exists()
        before = sample(scrape(server), "unsub_consent_changes_total", channel="sms", action="opt_out")
        # Eight at a time, each on a new connection: gunicorn's two workers share the listening
        # socket, so both take some (which one takes which is the kernel's choice).
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda n: server.send("STOP", f"+1415555{n:04d}").status_code, range(16)))
        assert answers == [200] * 16
        sent = 16
        for _ in range(20):  # on a busy machine one worker may have taken them all: more traffic, no opt-outs
            if len(worker_pids(folder)) >= 2:
                break
            with ThreadPoolExecutor(8) as pool:
                assert set(pool.map(lambda n: server.send("hello", f"+1415556{n:04d}").status_code, range(8))) == {200}
            sent += 8
        assert len(worker_pids(folder)) >= 2, worker_pids(folder)  # both workers counted something
        text = scrape(server)  # summed over both workers' files
        assert sample(text, "unsub_consent_changes_total", channel="sms", action="opt_out", source="keyword") - before == 16
        assert sample(text, "unsub_inbound_messages_total", provider="twilio", channel="sms", intent="opt_out") == 16
        assert sample(text, "unsub_http_request_duration_seconds_count", route="/webhooks/twilio", method="POST",
                      status="200") == sent
        assert 'unsub_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/webhooks/twilio",status="200"}' in text
        assert "unsub_outbox_pending 0.0" in text and 'unsub_build_info{version="0.1.0"} 1.0' in text
        assert requests.get(server.base + "/metrics", timeout=5).status_code == 401
        assert requests.get(server.base + "/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"},
                            timeout=5).status_code == 401
    finally:
        server.stop()


def test_without_metrics_token_the_route_does_not_exist(tmp_path):
    server = procfile_web(tmp_path)
    try:
        assert requests.get(server.base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).status_code == 404
    finally:
        server.stop()


def test_json_logs_every_line_is_an_object_without_addresses(tmp_path):
    server = procfile_web(tmp_path, LOG_FORMAT="json", METRICS_TOKEN=TOKEN)
    try:
        # Webhooks
        assert server.send("STOP", "+14155550123").status_code == 200
        assert server.send("hello, call me at +1 415 555 0199 or mail carol@example.com", "+14155550124").status_code == 200
        # API calls, one with an error answer and a router's request id
        assert requests.get(f"{server.base}/api/v1/subscriptions/sms/+14155550123", headers=ADMIN, timeout=5).status_code == 200
        refused = requests.get(f"{server.base}/api/v1/subscriptions/nope/bob@example.com",
                               headers={**ADMIN, "X-Request-Id": "ticket-7"}, timeout=5)
        assert refused.status_code == 404 and refused.json()["request_id"] == "ticket-7"
        assert requests.delete(f"{server.base}/api/v1/contacts/dave@example.com", headers=ADMIN, timeout=5).status_code == 200
        assert requests.get(f"{server.base}/unsubscribe/not-a-real-token-abcdef", timeout=5).status_code in (400, 404)
        # Admin pages, signed in through the form
        admin = requests.Session()
        page = admin.get(f"{server.base}/admin/login", timeout=5)
        assert admin.post(f"{server.base}/admin/login", data={"token": ADMIN_TOKEN, "csrf_token": csrf(page.content),
                                                              "next": "/admin/events"}, timeout=5).status_code == 200
        assert admin.get(f"{server.base}/admin/contacts", params={"q": "+14155550123"}, timeout=5).status_code == 200
        for page_path in ("/admin/events", "/admin/keywords", "/admin/contacts/export?address=%2B14155550123"):
            assert admin.get(server.base + page_path, timeout=5).status_code in (200, 404), page_path
        assert requests.get(f"{server.base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).status_code == 200
    finally:
        server.stop()
    lines = server.log.read_text(encoding="utf-8").splitlines()
    objects = [json.loads(line) for line in lines]  # every line parses
    assert len(objects) > 15
    for item in objects:
        assert {"time", "level", "logger", "message"} <= set(item), item
    requests_logged = [o for o in objects if o["logger"] == "gunicorn.access"]
    assert {"method", "route", "status", "duration_ms", "request_id"} <= set(requests_logged[0])
    assert any(o.get("request_id") == "ticket-7" and o["status"] == 404 for o in requests_logged)
    assert any(o["logger"].startswith("unsub") and o.get("request_id") for o in objects)  # the app's lines name it
    text = "\n".join(lines)
    for secret in ("4155550123", "4155550124", "555 0199", "bob@", "carol@", "dave@", "not-a-real-token", TOKEN, ADMIN_TOKEN,
                   "call me"):
        assert secret not in text, secret
