"""Real server processes for end-to-end tests: gunicorn (as the Procfile runs it) and `unsub serve`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

from tests.conftest import ADMIN_TOKEN, AUTH_TOKEN, SECRET_KEY
from webhook.providers.twilio import SIGNATURE_HEADER, signature_for

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A server process group on 127.0.0.1; stopped (or killed) by the test."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log = cwd / f"server-{port}.log"
        self._log = self.log.open("wb")
        self.process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if requests.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log.read_text()}")

    def kill(self) -> None:
        """kill -9 the whole process group (master and workers)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def send(self, body: str, sender: str, sid: str | None = None, session: requests.Session | None = None, timeout: float = 15) -> requests.Response:
        url = self.base + "/webhooks/twilio"
        params = {"MessageSid": sid or f"SM{uuid.uuid4().hex}", "From": sender, "To": "+14155550100", "Body": body}
        headers = {SIGNATURE_HEADER: signature_for(AUTH_TOKEN, url, params)}
        return (session or requests).post(url, data=params, headers=headers, timeout=timeout)


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KEYWORDS_FILE", "PUBLIC_BASE_URL", "DATABASE_URL")}
    env.update(TWILIO_AUTH_TOKEN=AUTH_TOKEN, SECRET_KEY=SECRET_KEY, ADMIN_TOKEN=ADMIN_TOKEN, DATABASE_URL=database_url, **extra)
    return env


def gunicorn(database_url: str, cwd: Path, *, workers: int = 2, preload: bool = True, extra: list[str] | None = None,
             env: dict[str, str] | None = None) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--timeout", "20"]
    if preload:
        argv.append("--preload")
    argv += (extra or []) + ["webhook:create_app()"]
    server = Server(argv, cwd, server_env(database_url, **(env or {})), port)
    server.wait_ready()
    return server


class WorkerProcess:
    """`unsub worker` (the Procfile's worker: line) in its own process group."""

    def __init__(self, database_url: str, cwd: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.log = cwd / f"worker-{uuid.uuid4().hex[:8]}.log"
        self._log = self.log.open("wb")
        self.process = subprocess.Popen([str(BIN / "unsub"), "worker", *args], cwd=cwd,
                                        env=server_env(database_url, **(env or {})), stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while b" started" not in self.log.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as a platform stops a process; its exit status."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        status = self.process.wait(timeout=timeout)
        self._log.close()
        return status

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)
        self._log.close()
