"""webhook.metrics: the pure parts (bearer check, labels, what a scrape shows)."""

from __future__ import annotations

import pytest

from webhook import metrics


def test_the_bearer_check_wants_the_exact_token():
    assert metrics.token_matches("Bearer " + "t" * 20, "t" * 20)
    for header in (None, "", "t" * 20, "Bearer " + "t" * 19, "bearer " + "t" * 20, "Bearer " + "t" * 20 + " ", "Basic x"):
        assert not metrics.token_matches(header, "t" * 20)


def test_a_redelivered_message_counts_as_duplicate():
    assert metrics.inbound_intent("opt_out", "duplicate") == "duplicate"
    assert metrics.inbound_intent("opt_out", None) == "opt_out"
    assert metrics.inbound_intent("opt_out", "unchanged") == "opt_out"


def test_a_scrape_shows_the_counters_then_the_gauges(monkeypatch):
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    metrics.enable()
    metrics.count_consent_change("sms", "opt_out", "keyword")
    metrics.count_deliveries({"delivered": 2})
    body, content_type = metrics.render(metrics.Scrape(lambda: iter([metrics.build_info("9.9")])))
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert 'unsub_consent_changes_total{action="opt_out",channel="sms",source="keyword"}' in text
    assert 'unsub_deliveries_total{result="delivered"}' in text
    assert 'unsub_build_info{version="9.9"} 1.0' in text


@pytest.mark.parametrize("header, status", [(None, 401), ("Bearer wrong-token-0123456789", 401),
                                            ("Bearer " + "m" * 20, 200)])
def test_the_worker_endpoint_checks_the_token(header, status):
    import urllib.error
    import urllib.request

    from tests.e2e.servers import free_port

    metrics.enable()
    port = free_port()
    server = metrics.serve("127.0.0.1", port, "m" * 20, "0.1.0")
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": header} if header else {})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                got, body = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            got, body = error.code, ""
    finally:
        server.shutdown()
    assert got == status
    if status == 200:
        assert 'unsub_build_info{version="0.1.0"} 1.0' in body


def test_made_up_methods_share_one_label():
    assert metrics.method_label("POST") == "POST"
    assert {metrics.method_label(m) for m in ("FOO", "post", "GETX", "X" * 500)} == {"other"}


def test_start_up_empties_only_the_clients_files_from_a_shared_folder(tmp_path):
    from webhook.gunicorn_conf import prepare_multiproc_dir

    keep = ["unsub.db", "unsub.db-wal", "unsub.db-shm", "notes.db", "counter_1.db.bak"]
    drop = ["counter_12.db", "gauge_livesum_12.db", "histogram_7.db", "summary_3.db"]
    for name in keep + drop:
        (tmp_path / name).write_bytes(b"x")
    environ = {"METRICS_TOKEN": "t" * 20, metrics.MULTIPROC_ENV: str(tmp_path)}
    assert prepare_multiproc_dir(environ) == str(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)
