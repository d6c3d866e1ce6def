"""The worker: claims due deliveries from the outbox, sends them, records each attempt.

``unsub worker`` (the Procfile's ``worker:`` line) runs one. Several may run against
PostgreSQL: a delivery is claimed by one worker for a lease (``LEASE``); a worker that dies
(``kill -9``) loses nothing, its claims expire and another worker takes them over.

Deliveries go out in lanes (one per endpoint): each lane has its own threads, so a slow or
unreachable endpoint never holds up another one, and a lane never holds more claims than
its threads can send within the lease. One contact's deliveries on a lane go out in the
order they were recorded (the store only hands out the first pending one of each contact).
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import signal
import socket
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Callable

import urllib3

from webhook import forwarding, metrics, outbox
from webhook.domain import AttemptResult, ClaimedDelivery, utcnow
from webhook.providers import whatsapp_cloud
from webhook.store import Store, StoreUnavailable

log = logging.getLogger("unsub.worker")
# A claim is this worker's for this long: the longest a lane's claims can take is two rounds
# of its threads, each bounded by the 15 s timeout, so a live worker never loses one.
LEASE = timedelta(seconds=45)
LANE_THREADS = 16
MAX_CLAIM = 256
IDLE_WAIT = 2.0  # the longest sleep without looking for work (the waker usually ends it sooner)


@dataclass
class Lane:
    executor: ThreadPoolExecutor
    in_flight: int = 0
    futures: set[Future] = field(default_factory=set)


class Waker:
    """Ends the worker's wait when there may be new work: PostgreSQL's NOTIFY, or SQLite's
    ``data_version`` (it changes when another connection commits), read 20 times a second."""

    def __init__(self, store: Store, wake: threading.Event, stop: threading.Event) -> None:
        self.store, self.wake, self.stop = store, wake, stop

    def start(self) -> None:
        threading.Thread(target=self._run, name="unsub-worker-waker", daemon=True).start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                for _ in self.store.outbox_changes(self.stop):
                    self.wake.set()
            except StoreUnavailable as error:
                log.warning("waiting for new deliveries: %s; polling meanwhile", error)
                self.stop.wait(IDLE_WAIT)


class Worker:
    def __init__(
        self,
        store: Store,
        *,
        schedule: tuple[timedelta, ...] = outbox.DEFAULT_RETRY_SCHEDULE,
        attribution_window: timedelta = timedelta(hours=72),
        lane_threads: int = LANE_THREADS,
        lease: timedelta = LEASE,
        timeout: float = outbox.DELIVERY_TIMEOUT_SECONDS,
        clock: Callable[[], datetime] = utcnow,
        whatsapp_token: str | None = None,
        twilio_token: str | None = None,
    ) -> None:
        self.store = store
        self.schedule = schedule
        self.window = attribution_window
        self.lane_threads = lane_threads
        self.lease = lease
        self.clock = clock
        self.whatsapp_token = whatsapp_token  # replies through the WhatsApp Cloud API
        self.twilio_token = twilio_token  # re-signs forwards for the business's own webhook
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.results: queue.SimpleQueue[AttemptResult] = queue.SimpleQueue()
        self.lanes: dict[str, Lane] = {}
        self._lock = threading.Lock()  # lanes' in_flight counts change in the lanes' threads
        self.http = urllib3.PoolManager(
            num_pools=64, maxsize=lane_threads, retries=False, timeout=urllib3.Timeout(total=timeout),
            headers={"user-agent": "unsub-webhooks/1"},
        )

    # -- the loop ---------------------------------------------------------------------

    def run(self, *, once: bool = False) -> int:
        """Deliver until stopped (SIGTERM, SIGINT) or, with ``once``, until nothing is due.
        Returns how many attempts were made."""
        made = 0
        if not once:
            Waker(self.store, self.wake, self.stop).start()
        log.info("worker %s started", self.name)
        while not self.stop.is_set():
            # Read before draining: an attempt puts its result before it stops counting as in
            # flight, so when nothing was in flight here every result is recorded below and the
            # claim sees the outbox as it is (a lane that was busy during the claim, or a
            # contact's next delivery waiting for the one just sent, is not taken for "done").
            idle = not self._in_flight()
            made += self._record(self._drain())
            claimed = self._claim()
            for delivery in claimed:
                self._submit(delivery)
            if claimed:
                continue
            if once and idle:
                break
            self.wake.wait(self._idle_wait())
            self.wake.clear()
        made += self._shut_down()
        log.info("worker %s stopped after %d attempts", self.name, made)
        return made

    def _claim(self) -> list[ClaimedDelivery]:
        full = [name for name, lane in self.lanes.items() if lane.in_flight >= self.lane_threads]
        try:
            return self.store.claim_deliveries(self.name, per_lane=self.lane_threads, limit=MAX_CLAIM,
                                               lease=self.lease, busy_lanes=full)
        except StoreUnavailable as error:
            log.warning("cannot claim deliveries: %s", error)
            self.stop.wait(IDLE_WAIT)
            return []

    def _idle_wait(self) -> float:
        if self._in_flight():
            return 0.5  # results will wake us; look again soon all the same
        try:
            due = self.store.next_due_at()
        except StoreUnavailable:
            return IDLE_WAIT
        if due is None:
            return IDLE_WAIT
        return max(0.0, min(IDLE_WAIT, (due - self.clock()).total_seconds()))

    def _in_flight(self) -> int:
        return sum(lane.in_flight for lane in self.lanes.values())

    def _submit(self, delivery: ClaimedDelivery) -> None:
        lane = self.lanes.get(delivery.lane)
        if lane is None:
            lane = self.lanes[delivery.lane] = Lane(ThreadPoolExecutor(self.lane_threads, f"unsub-lane-{len(self.lanes)}"))
        with self._lock:
            lane.in_flight += 1
        future = lane.executor.submit(self._attempt, delivery)
        lane.futures.add(future)

        def done(_: Future) -> None:
            lane.futures.discard(future)
            self.wake.set()

        future.add_done_callback(done)

    def _drain(self) -> list[AttemptResult]:
        found = []
        while True:
            try:
                found.append(self.results.get_nowait())
            except queue.Empty:
                return found

    def _record(self, results: list[AttemptResult]) -> int:
        if not results:
            return 0
        while True:
            try:
                self.store.finish_attempts(results)
                metrics.count_deliveries(dict(Counter(r.outcome for r in results if r.outcome != "released")))
                break
            except StoreUnavailable as error:
                # The claims stay ours until the lease ends; if the database stays away the
                # deliveries are attempted again by whoever claims them next (at least once).
                log.warning("cannot record %d attempts yet: %s", len(results), error)
                if self.stop.wait(1.0):
                    break
        return sum(result.outcome != "released" for result in results)

    def _shut_down(self) -> int:
        """Stop cleanly: attempts under way finish (bounded by the timeout), the ones not
        started are released for another worker, and every result is recorded."""
        for lane in self.lanes.values():
            for future in list(lane.futures):
                future.cancel()
        for lane in self.lanes.values():
            lane.executor.shutdown(wait=True, cancel_futures=True)
        made = self._record(self._drain())
        try:
            self.store.release_claims(self.name)
        except StoreUnavailable as error:
            log.warning("could not release claims (they expire by themselves): %s", error)
        return made

    def install_signal_handlers(self) -> None:
        def stop(signum: int, _frame: object) -> None:
            log.info("worker %s: signal %d, finishing what it holds", self.name, signum)
            self.stop.set()
            self.wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    # -- one attempt (in a lane's thread) -------------------------------------------------------

    def _attempt(self, delivery: ClaimedDelivery) -> None:
        try:
            try:
                result = self._send(delivery)
            except Exception as error:  # noqa: BLE001 - one bad delivery must not stop the lane
                log.exception("delivery %s failed unexpectedly", delivery.id)
                result = self._failed_attempt(delivery, self.clock(), None, 0, "",
                                              f"internal error: {type(error).__name__}", None, delivery.body)
            self.results.put(result)  # before in_flight drops: run(once=True) relies on it
        finally:
            with self._lock:
                self.lanes[delivery.lane].in_flight -= 1

    def _send(self, delivery: ClaimedDelivery) -> AttemptResult:
        started_at = self.clock()
        if self.stop.is_set():
            return AttemptResult(delivery.id, "released", started_at, self.name)
        body = delivery.body if delivery.body is not None else self._build_body(delivery)
        if body is None:  # its event is gone (an erasure ran meanwhile): nothing to announce
            return AttemptResult(delivery.id, "failed", started_at, self.name, error="the event no longer exists")
        payload = body.encode("utf-8")
        if delivery.kind == "whatsapp_reply":
            if not self.whatsapp_token:
                return self._failed_attempt(delivery, started_at, None, 0, "", "WHATSAPP_ACCESS_TOKEN is not set in the worker",
                                            None, body)
            headers = whatsapp_cloud.reply_headers(self.whatsapp_token)
        elif delivery.kind == "forward":
            if not self.twilio_token:
                return self._failed_attempt(delivery, started_at, None, 0, "", "TWILIO_AUTH_TOKEN is not set in the worker",
                                            None, body)
            # Twilio's fields as they arrived, signed afresh for the forward URL at each attempt.
            form, intent, channel = forwarding.from_outbox(body)
            request = forwarding.build(self.twilio_token, delivery.target, form, intent, channel)
            payload, headers = request.body, request.headers
        else:
            headers = outbox.signed_headers(delivery.secret, delivery.webhook_id, body, started_at)
        started = time.perf_counter()
        status: int | None = None
        answer = b""
        retry_header = None
        error = None
        try:
            response = self.http.request("POST", delivery.target, body=payload, headers=headers,
                                         redirect=False, preload_content=False)
            try:
                answer = response.read(outbox.EXCERPT_CHARS * 4, decode_content=True) or b""
            finally:
                response.release_conn()
            status, retry_header = response.status, response.headers.get("Retry-After")
        except urllib3.exceptions.HTTPError as failure:
            error = _reason(failure)
        duration = int((time.perf_counter() - started) * 1000)
        if status is not None and 200 <= status < 300:
            return AttemptResult(delivery.id, "delivered", started_at, self.name, status, duration, outbox.excerpt(answer),
                                 body=body)
        if status == 410 and delivery.kind == "webhook":
            return AttemptResult(delivery.id, "failed", started_at, self.name, status, duration, outbox.excerpt(answer),
                                 "410 Gone: the endpoint is disabled", body=body, disable_endpoint=True)
        if status is not None and 400 <= status < 500 and status not in (408, 429) and delivery.kind != "webhook":
            # The provider refused the request itself (outside the 24 h window, a bad number):
            # the same request will be refused again.
            return AttemptResult(delivery.id, "failed", started_at, self.name, status, duration, outbox.excerpt(answer),
                                 f"HTTP {status}: refused by the provider", body=body)
        after = outbox.retry_after(retry_header, started_at) if status in (429, 503) else None
        return self._failed_attempt(delivery, started_at, status, duration, outbox.excerpt(answer),
                                    error or f"HTTP {status}", after, body)

    def _failed_attempt(self, delivery: ClaimedDelivery, at: datetime, status: int | None, duration: int, answer: str,
                        error: str, after: timedelta | None, body: str | None) -> AttemptResult:
        retry_at = outbox.next_attempt(delivery.attempts, self.schedule, self.clock(), after,
                                       event_type=delivery.event_type)
        return AttemptResult(delivery.id, "retry" if retry_at else "failed", at, self.name, status, duration, answer,
                             error, retry_at, body)

    def _build_body(self, delivery: ClaimedDelivery) -> str | None:
        if delivery.event_id is None:
            return None
        facts = self.store.event_facts(delivery.event_id, self.window)
        if facts is None:
            return None
        return outbox.consent_body(replace(facts, status=delivery.status_after or facts.status,
                                           previous_status=delivery.previous_status or facts.previous_status))


def _reason(failure: Exception) -> str:
    """A connection failure in one line (timeouts say so)."""
    if isinstance(failure, urllib3.exceptions.TimeoutError) or "timed out" in str(failure).lower():
        return "timed out"
    text = str(getattr(failure, "reason", None) or failure)
    return " ".join(text.split())[:200]
