"""A local HTTP receiver for end-to-end tests: records every request it gets and answers as
the test tells it (status, delay, headers), per request."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    started: float
    finished: float = 0.0
    status: int = 0

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"


class Receiver:
    """``answer(received, count_so_far) -> Answer`` decides each answer (200 at once by default)."""

    def __init__(self, answer: Callable[[Received, int], Answer] | None = None) -> None:
        self.answer = answer or (lambda received, count: Answer())
        self.received: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length),
                               time.monotonic())
                with receiver.lock:
                    count = len(receiver.received)
                    receiver.received.append(got)
                answer = receiver.answer(got, count)
                if answer.delay:
                    time.sleep(answer.delay)
                got.status = answer.status
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)
                got.finished = time.monotonic()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, check: Callable[[list[Received]], bool], seconds: float = 15.0) -> list[Received]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.lock:
                snapshot = list(self.received)
            if check(snapshot):
                return snapshot
            time.sleep(0.05)
        with self.lock:
            raise AssertionError(f"not within {seconds}s; received {[(r.path, r.status, r.body[:80]) for r in self.received]}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
