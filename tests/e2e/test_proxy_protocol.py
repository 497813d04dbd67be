"""Listeners behind a load balancer: the PROXY protocol, versions 1 and 2.

A real HAProxy (Debian's haproxy, started privately on loopback ports) sits
in front of an MX listener that has `proxy_protocol: true` and trusts only
the balancer's address (127.0.0.3, HAProxy's `source`). Proves that a client
connecting through HAProxy from 127.0.0.5 (v1, `send-proxy`) or 127.0.0.6
(v2, `send-proxy-v2`) is the one named in the stored message's Received field
and in the log, not the balancer; that the per-address connection limit
counts the client, not the balancer (so clients of one balancer do not
share one allowance); that a connection from an address not
in trusted_proxies is closed before any greeting, even with a well-formed
header; and that a trusted peer sending something other than a PROXY header
is closed with a log line naming why. The listeners without proxy_protocol
are unaffected (the harness uses them throughout).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from peers import HAPROXY, HAProxy
from smtpwire import SMTPWire
from stokend_daemon import free_ports
from storedmail import received_field

BALANCER = "127.0.0.3"
ALICE = "alice@example.test"
WAIT = 10.0

pytestmark = pytest.mark.skipif(not Path(HAPROXY).exists(),
                                reason="haproxy is not installed (Debian package haproxy)")


@pytest.fixture(scope="module")
def behind_proxy(module_stokend_factory, tmp_path_factory):
    """A daemon with a proxy_protocol MX listener, and HAProxy in front of it:
    frontend ports (v1, v2)."""
    proxied_port, v1_port, v2_port = free_ports(3)
    mta = module_stokend_factory(
        limits={"max_connections_per_ip": 2},
        extra_listeners=[{"role": "mx", "address": "127.0.0.1", "port": proxied_port,
                          "tls": "starttls", "proxy_protocol": True,
                          "trusted_proxies": [BALANCER, "10.0.0.0/8"]}])
    directory = tmp_path_factory.mktemp("haproxy")
    config = f"""\
global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend v1
    bind 127.0.0.1:{v1_port}
    default_backend stokend_v1
frontend v2
    bind 127.0.0.1:{v2_port}
    default_backend stokend_v2
backend stokend_v1
    server mx 127.0.0.1:{proxied_port} send-proxy source {BALANCER}
backend stokend_v2
    server mx 127.0.0.1:{proxied_port} send-proxy-v2 source {BALANCER}
"""
    proxy = HAProxy(directory, config, [v1_port, v2_port])
    try:
        yield mta, proxied_port, v1_port, v2_port
    finally:
        proxy.close()


def closed_without_a_reply(conn: socket.socket) -> bool:
    """The daemon closed without sending a byte: an end of stream, or a reset
    (a close with our bytes unread)."""
    try:
        return conn.recv(100) == b""
    except ConnectionResetError:
        return True


def deliver_through(port: int, client: str, subject: str) -> None:
    message = (f"From: someone@remote.test\r\nTo: {ALICE}\r\n"
               f"Subject: {subject}\r\n\r\nHello.\r\n").encode()
    with SMTPWire(port, source=client) as conn:
        assert conn.greeting.code == 220, conn.greeting
        conn.ehlo("client.remote.test")
        reply = conn.transaction("someone@remote.test", [ALICE], message)
        assert reply.code == 250, reply
        conn.command("QUIT")


def stored_with_subject(mta, subject: str) -> bytes:
    for stored in mta.messages(ALICE):
        if f"Subject: {subject}\r\n".encode() in stored:
            return stored
    raise AssertionError(f"no stored message with subject {subject!r}")


@pytest.mark.parametrize("version,client", [(1, "127.0.0.5"), (2, "127.0.0.6")])
def test_the_client_behind_haproxy_is_the_peer(behind_proxy, version, client):
    mta, _, v1_port, v2_port = behind_proxy
    subject = f"through PROXY v{version}"
    deliver_through(v1_port if version == 1 else v2_port, client, subject)
    received = received_field(stored_with_subject(mta, subject))
    assert f"[{client}]".encode() in received, received
    assert BALANCER.encode() not in received, received
    assert client in mta.log(), mta.log_tail()


def test_the_connection_limit_counts_clients_not_the_balancer(behind_proxy):
    """max_connections_per_ip is 2: four connections of two clients through
    the one balancer are all served; a third of one client is refused."""
    mta, _, v1_port, v2_port = behind_proxy
    with SMTPWire(v1_port, source="127.0.0.7") as first, \
            SMTPWire(v2_port, source="127.0.0.7") as second, \
            SMTPWire(v1_port, source="127.0.0.8") as third, \
            SMTPWire(v2_port, source="127.0.0.8") as fourth:
        for conn in (first, second, third, fourth):
            assert conn.greeting.code == 220, conn.greeting
        with SMTPWire(v1_port, source="127.0.0.7") as again:
            assert again.greeting.code == 421, again.greeting
            assert "Too many connections from your address" in str(again.greeting)


def test_an_untrusted_peer_is_closed_before_the_greeting(behind_proxy):
    mta, proxied_port, _, _ = behind_proxy
    with socket.create_connection(("127.0.0.1", proxied_port), timeout=WAIT,
                                  source_address=("127.0.0.9", 0)) as conn:
        conn.sendall(b"PROXY TCP4 192.0.2.1 127.0.0.1 40000 25\r\n")
        assert closed_without_a_reply(conn), "an untrusted peer gets nothing, not even a greeting"
    deadline = time.monotonic() + WAIT
    while "closed connection from 127.0.0.9: not a trusted proxy" not in mta.log():
        assert time.monotonic() < deadline, mta.log_tail()
        time.sleep(0.05)


def test_a_trusted_peer_without_a_header_is_closed(behind_proxy):
    mta, proxied_port, _, _ = behind_proxy
    with socket.create_connection(("127.0.0.1", proxied_port), timeout=WAIT,
                                  source_address=(BALANCER, 0)) as conn:
        conn.sendall(b"EHLO client.remote.test\r\n")
        assert closed_without_a_reply(conn)
    deadline = time.monotonic() + WAIT
    while f"closed connection from proxy {BALANCER}: no PROXY protocol header" not in mta.log():
        assert time.monotonic() < deadline, mta.log_tail()
        time.sleep(0.05)
