"""The metrics endpoint: GET /metrics and GET /healthz (metrics.listen).

A daemon with metrics on runs a scenario whose counts are known — messages
accepted on the MX port and delivered to the built-in Maildir, recipients
refused (unknown user, relay), a failed and a successful AUTH PLAIN, a
refused AUTH STOKEN, STARTTLS handshakes, a submission to a next hop (a
private smtp-sink) that answers 4xx, so the delivery is deferred — and the
counters scraped with urllib afterwards must have moved by exactly that
much. promtool (Prometheus' own checker) must accept the scrape. /healthz
answers 200 while the daemon takes mail, 503 while the spool's file system
is under queue.min_free_space (a reserve larger than any disk gives that
state without filling one) and while the daemon is stopping. The HTTP side
has limits: methods other than GET get 405, other paths 404, a malformed
request 400, a request head over max_request_size 431, connections over
max_connections 503, and a connection that sends nothing is closed after the
timeout.
"""

from __future__ import annotations

import base64
import re
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.request

import pytest

from peers import PeerSet, free_port, queue_daemon, queue_id, send_mx, submit, wait_for_log, wait_until
from smtpwire import SMTPWire
from stokend_daemon import USERS
from tokenwire import deliver, genstoken

ALICE = "alice@example.test"
ALICE_PW = USERS[ALICE]
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def get(port: int, path: str, method: str = "GET") -> tuple[int, dict, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def scrape_text(port: int) -> str:
    status, headers, body = get(port, "/metrics")
    assert status == 200, body
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return body.decode()


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        samples[(name, frozenset(LABEL.findall(labels or "")))] = float(value)
    return samples


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    return parse(scrape_text(port))


def scrape_when_idle(port: int) -> dict[tuple[str, frozenset], float]:
    """A scrape once no session is open (the start-up probes included), so
    that counts taken when sessions end belong to what follows."""
    def idle():
        samples = scrape(port)
        open_now = sum(v for (name, _), v in samples.items() if name == "stokend_sessions_open")
        return samples if open_now == 0 else None
    return wait_until(idle, 10, what="no session open")


def value(samples, name: str, **labels) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"no sample {name}{labels}"
    return samples[key]


def delta(before, after, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def message(marker: str, to: str = ALICE) -> bytes:
    return (f"From: <someone@remote.test>\r\nTo: <{to}>\r\nSubject: {marker}\r\n"
            f"Message-ID: <{marker}@remote.test>\r\n\r\nMarker {marker}.\r\n").encode()


def raw_http(port: int, request: bytes, timeout: float = 10) -> bytes:
    """Sends request bytes, returns everything until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(request)
        received = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                return received
            received += chunk


@pytest.fixture
def peers():
    with PeerSet() as peer_set:
        yield peer_set


def test_counters_follow_a_known_scenario(stokend_factory, peers):
    grumpy = peers.sink(soft=("RCPT",), soft_reply="450 4.2.0 mailbox busy, try later")
    port = free_port()
    mta = queue_daemon(stokend_factory, metrics={"listen": f"127.0.0.1:{port}"},
                       routes={"later.test": grumpy.route},
                       timeouts={"auth_failure_base_delay": "100ms"})
    before = scrape_when_idle(port)

    # 3 messages over the MX port into alice's Maildir.
    for i in range(3):
        queue_id(send_mx(mta, "someone@remote.test", [ALICE], message(f"mx-{i}")))
    assert mta.settle(10)
    assert len(mta.messages(ALICE)) == 3

    # 2 unknown recipients and 1 relay attempt, refused at RCPT.
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo("client.remote.test")
        assert conn.command("MAIL FROM:<someone@remote.test>").code == 250
        assert conn.command("RCPT TO:<nobody@example.test>").code == 550
        assert conn.command("RCPT TO:<nobody-else@example.test>").code == 550
        assert conn.command("RCPT TO:<someone@elsewhere.test>").code == 550
        conn.command("QUIT")

    # One STARTTLS session with a failed AUTH PLAIN and a refused AUTH STOKEN.
    with SMTPWire(mta.submission_port) as conn:
        conn.ehlo("client.example.test")
        conn.starttls()
        conn.ehlo("client.example.test")
        assert conn.auth_plain(ALICE, "wrong password").code == 535
        conn.command("LHLO client.example.test")
        stoken = base64.b64encode(f"{ALICE}\0not-a-token".encode()).decode()
        assert conn.command(f"AUTH STOKEN {stoken}").code == 535
        conn.command("QUIT")

    # One STARTTLS session with AUTH PLAIN, submitting to a next hop that
    # answers 450 at RCPT: the delivery is deferred.
    qid = queue_id(submit(mta, ALICE, ALICE_PW, ["friend@later.test"], message("deferred")))
    wait_for_log(mta, rf"queue: {qid} to=<friend@later\.test> deferred after 1 attempts", timeout=10)

    # Sessions are counted when they end, just after the client's QUIT.
    wait_until(lambda: delta(before, scrape(port), "stokend_sessions_total", role="submission") == 2,
               10, what="both submission sessions counted")
    after = scrape(port)
    assert delta(before, after, "stokend_messages_accepted_total", role="mx") == 3
    assert delta(before, after, "stokend_messages_accepted_total", role="submission") == 1
    assert delta(before, after, "stokend_deliveries_total", route="maildir", outcome="sent") == 3
    assert delta(before, after, "stokend_deliveries_total", route="smtp", outcome="deferred") == 1
    assert delta(before, after, "stokend_deliveries_total", route="smtp", outcome="sent") == 0
    assert delta(before, after, "stokend_messages_rejected_total", reason="unknown_recipient") == 2
    assert delta(before, after, "stokend_messages_rejected_total", reason="relay_denied") == 1
    assert delta(before, after, "stokend_auth_total", mechanism="plain", result="failure") == 1
    assert delta(before, after, "stokend_auth_total", mechanism="plain", result="success") == 1
    assert delta(before, after, "stokend_auth_total", mechanism="stoken", result="failure") == 1
    assert delta(before, after, "stokend_token_verifications_total", verdict="malformed") == 1
    assert delta(before, after, "stokend_tls_handshakes_total", direction="inbound",
                 version="TLSv1.3") == 2
    assert delta(before, after, "stokend_tls_handshakes_total", direction="inbound",
                 version="TLSv1.2") == 0
    assert delta(before, after, "stokend_connections_total", listener="mx", outcome="admitted") == 4
    assert delta(before, after, "stokend_connections_total", listener="submission",
                 outcome="admitted") == 2
    assert delta(before, after, "stokend_sessions_total", role="mx") == 4
    assert value(after, "stokend_sessions_open", listener="submission") == 0
    # Accept to delivered: one observation per delivered recipient.
    assert delta(before, after, "stokend_delivery_latency_seconds_count") == 3
    assert value(after, "stokend_delivery_latency_seconds_bucket", le="+Inf") == \
        value(after, "stokend_delivery_latency_seconds_count")
    # Every acceptance and every delivery outcome was synced to the spool.
    assert delta(before, after, "stokend_spool_fsync_seconds_count") >= 1
    # The deferred message is still queued.
    assert value(after, "stokend_queue_messages") == 1
    assert value(after, "stokend_queue_bytes") > 0
    assert value(after, "stokend_queue_oldest_message_age_seconds") >= 0


def test_token_server_deliveries_count_as_their_own_route(stokend_factory):
    port = free_port()
    mta = stokend_factory(metrics={"listen": f"127.0.0.1:{port}"})
    remote = "bob@remote.example"
    token = genstoken(mta, ALICE, "TEMP", remote)
    before = scrape_when_idle(port)
    [reply] = deliver(mta, remote, [(ALICE, token)], message("token-server"))
    assert reply.enhanced == "2.1.13", str(reply)  # stored, permanent token exchanged
    wait_until(lambda: delta(before, scrape(port), "stokend_sessions_total",
                             role="token_server") == 1, 10, what="the token session counted")
    after = scrape(port)
    assert delta(before, after, "stokend_deliveries_total", route="token_server",
                 outcome="sent") == 1
    # Straight into the Maildir, but not counted as a queued Maildir delivery.
    assert delta(before, after, "stokend_deliveries_total", route="maildir", outcome="sent") == 0
    assert delta(before, after, "stokend_messages_accepted_total", role="token_server") == 1
    assert delta(before, after, "stokend_auth_total", mechanism="stoken", result="success") == 1
    # AUTH STOKEN (without the pair) and RCPT STOKEN= (with it).
    assert delta(before, after, "stokend_token_verifications_total", verdict="valid") == 2
    assert delta(before, after, "stokend_delivery_latency_seconds_count") == 0  # never queued
    assert len(mta.messages(ALICE)) == 1


@pytest.mark.once
def test_promtool_accepts_the_scrape(stokend_factory, tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    port = free_port()
    mta = stokend_factory(metrics={"listen": f"127.0.0.1:{port}"})
    queue_id(send_mx(mta, "someone@remote.test", [ALICE], message("promtool")))
    assert mta.settle(10)
    text = scrape_text(port)
    (tmp_path / "scrape.txt").write_text(text)
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", \
        result.stdout + result.stderr


def test_healthz_and_the_http_answers(stokend_factory):
    port = free_port()
    mta = stokend_factory(metrics={"listen": f"127.0.0.1:{port}", "max_request_size": "1K"})
    status, _, body = get(port, "/healthz")
    assert (status, body) == (200, b"ok\n")

    status, headers, _ = get(port, "/metrics", method="POST")
    assert status == 405 and headers["Allow"] == "GET"
    assert get(port, "/healthz", method="DELETE")[0] == 405
    assert get(port, "/metrics", method="HEAD")[0] == 405
    assert get(port, "/")[0] == 404
    assert get(port, "/metrics/extra")[0] == 404
    assert get(port, "/metrics?name[]=x")[0] == 200
    assert raw_http(port, b"GET /metrics HTTP/2\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    over_long = b"GET /metrics HTTP/1.1\r\nX-Filler: " + b"a" * 2048 + b"\r\n\r\n"
    assert raw_http(port, over_long).startswith(b"HTTP/1.1 431 ")
    assert mta.running()


def test_connection_limit_and_timeout(stokend_factory):
    # A daemon of its own: no earlier connection may still hold a slot.
    port = free_port()
    stokend_factory(metrics={"listen": f"127.0.0.1:{port}", "max_connections": 3,
                             "timeout": "3s"})
    # Three idle connections take every slot: a fourth is refused at once.
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
    try:
        # Accepted in the order they came, so after the three; the refusal
        # comes at once, before any request.
        assert raw_http(port, b"").startswith(b"HTTP/1.1 503 ")
        # The timeout closes connections that send nothing.
        for conn in idle:
            conn.settimeout(10)
            assert conn.recv(1) == b"", "an idle metrics connection must be closed"
    finally:
        for conn in idle:
            conn.close()
    assert get(port, "/healthz")[0] == 200


def test_healthz_503_while_the_spool_is_under_its_reserve(stokend_factory):
    port = free_port()
    # A reserve no disk has: the spool counts as full from the start.
    mta = stokend_factory(metrics={"listen": f"127.0.0.1:{port}"},
                          queue={"min_free_space": "1000000G"})
    status, _, body = get(port, "/healthz")
    assert status == 503
    assert b"queue.min_free_space" in body
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo("client.remote.test")
        assert str(conn.command("MAIL FROM:<someone@remote.test>")).startswith("452 4.3.1")
        conn.command("QUIT")
    assert value(scrape(port), "stokend_messages_rejected_total", reason="disk_full") == 1


def test_healthz_503_while_stopping(stokend_factory):
    port = free_port()
    # A failed AUTH holds its session for the delay: the daemon drains that long.
    mta = stokend_factory(metrics={"listen": f"127.0.0.1:{port}"},
                          timeouts={"auth_failure_base_delay": "3s"})
    assert get(port, "/healthz")[0] == 200
    with SMTPWire(mta.submission_port) as conn:
        conn.ehlo("client.example.test")
        conn.starttls()
        conn.ehlo("client.example.test")
        conn.send(b"AUTH PLAIN " + base64.b64encode(f"\0{ALICE}\0wrong".encode()) + b"\r\n")
        wait_for_log(mta, r"authentication failed for alice@example\.test", timeout=10)
        mta.proc.send_signal(signal.SIGTERM)
        wait_for_log(mta, r"shutting down", timeout=10)
        status, _, body = get(port, "/healthz")
        assert (status, body) == (503, b"stopping\n")
    # The session ends with the client: the daemon finishes stopping by itself.
    mta.proc.wait(timeout=15)
    assert mta.terminate() == 0
