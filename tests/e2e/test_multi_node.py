"""Several nodes, one token state, behind a load balancer: the combined
scenario of README "Several nodes: tokens on Redis".

A private redis-server (unix socket, appendonly yes, appendfsync always), a
private dnsmasq and a private HAProxy (TCP mode, `balance first`, PROXY
protocol v2, connecting from 127.0.0.3) in front of two b.test nodes, B1 and
B2, which share their token store in Redis and one secrets file; one a.test
node, A, with its own SQLite store. DNS names HAProxy for everything of
b.test: its MX (mx.b.test, A's delivery.mx_port is HAProxy's MX frontend)
and its Token Server (SRV _submissions._tcp.b.test -> tokens.b.test at
HAProxy's submissions frontend). Each B node has, besides its own
listeners, an MX and an implicit-TLS submission listener with
proxy_protocol: true that trusts only the balancer.

In order (one module, shared peers):
1. bob, on B1, writes alice by MX with a temporary token; A harvests it.
2. alice -> bob by the fast lane through HAProxy to B1: 2.1.13, a permanent
   token in Redis; the client behind HAProxy (A, 127.0.0.1), not the
   balancer, is in the Received field B1 wrote and in B1's log.
3. B1 stopped: HAProxy gives A's next connection to B2, which takes the
   permanent token B1 issued (2.1.12). B1 comes back.
4. redis-server killed: the Token Server answers 4xx, A delivers by MX
   through HAProxy, exactly one copy, nothing lost; Redis restarts from its
   append-only file and the fast lane resumes with the same token.
5. REVSTOKEN on B2: B1 refuses the token (AUTH STOKEN 535) within a second.
"""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path

import pytest

from peers import Dnsmasq, HAProxy, Redis, copies_in, delivered_once, fast_lane_line, private_ca
from peers import send_chat, started_group, wait_until, wallet
from ports import free_ports
from smtpwire import SMTPWire
from stokend_daemon import RUNNING, Stokend, configure_node
from storedmail import received_field

# Each piece runs under the sanitizers in test_token_redis.py (the Redis
# store, its cache and outages) and test_proxy_protocol.py (HAProxy); this
# module adds their combination, checked once (CI's time is counted).
pytestmark = pytest.mark.once

PASSWORDS = {"alice@a.test": "Alice-pw-4711", "bob@b.test": "Bob-pw-0815"}
BALANCER = "127.0.0.3"


def proxied_listeners(mx_port: int, submissions_port: int) -> list[dict]:
    trusted = {"proxy_protocol": True, "trusted_proxies": [BALANCER]}
    return [{"role": "mx", "address": "127.0.0.1", "port": mx_port, "tls": "starttls", **trusted},
            {"role": "submission", "address": "127.0.0.1", "port": submissions_port,
             "tls": "implicit", **trusted}]


class Cluster:
    def __init__(self, base: Path):
        self.redis = Redis(base / "redis")
        self.dns = None
        self.proxy = None
        self.ca, issued = private_ca(base / "ca", ["tokens.a.test", "tokens.b.test"])
        b1_mx, b1_subs, b2_mx, b2_subs, self.front_mx, self.front_subs = free_ports(6)
        self.a = Stokend(base / "a", users={"alice@a.test": PASSWORDS["alice@a.test"]})
        self.b1 = Stokend(base / "b1", {"extra_listeners": proxied_listeners(b1_mx, b1_subs)},
                          users={"bob@b.test": PASSWORDS["bob@b.test"]})
        self.b2 = Stokend(base / "b2", {"extra_listeners": proxied_listeners(b2_mx, b2_subs)},
                          users={"bob@b.test": PASSWORDS["bob@b.test"]})
        # `balance first`: B1 while it is up; a refused connection is retried
        # on the other server (redispatch), so B1 down means B2.
        self.proxy = HAProxy(base / "haproxy", f"""\
global
    maxconn 200
defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 1
    option redispatch 1
frontend mx
    bind 127.0.0.1:{self.front_mx}
    default_backend b_mx
frontend submissions
    bind 127.0.0.1:{self.front_subs}
    default_backend b_submissions
backend b_mx
    balance first
    server b1 127.0.0.1:{b1_mx} send-proxy-v2 source {BALANCER}
    server b2 127.0.0.1:{b2_mx} send-proxy-v2 source {BALANCER}
backend b_submissions
    balance first
    server b1 127.0.0.1:{b1_subs} send-proxy-v2 source {BALANCER}
    server b2 127.0.0.1:{b2_subs} send-proxy-v2 source {BALANCER}
""", [self.front_mx, self.front_subs])
        self.dns = Dnsmasq(
            mx=[("a.test", "mx.a.test", 10), ("b.test", "mx.b.test", 10)],
            hosts=[("mx.a.test", "127.0.0.1"), ("mx.b.test", "127.0.0.1"),
                   ("tokens.a.test", "127.0.0.1"), ("tokens.b.test", "127.0.0.1")],
            srv=[("_submissions._tcp.a.test", "tokens.a.test", self.a.submissions_port),
                 ("_submissions._tcp.b.test", "tokens.b.test", self.front_subs)])
        common = {
            "log_level": "debug",
            "dns": {"servers": self.dns.servers, "timeout": "1s"},
            "fast_lane": {"ca_file": str(self.ca), "timeout": "5s"},
        }
        shared_tokens = {"store": {"backend": "redis", "url": self.redis.url,
                                   "connect_timeout": "500ms", "command_timeout": "500ms"},
                         "secrets_file": str(base / "b-token-secrets")}
        configure_node(self.a, "a.test", issued["tokens.a.test"], self.front_mx, common, {})
        for node in (self.b1, self.b2):
            configure_node(node, "b.test", issued["tokens.b.test"], self.a.mx_port, common,
                            shared_tokens)
        # B1 first: it creates the shared secrets file B2 then reads.
        for node in (self.a, self.b1, self.b2):
            node.start()
            RUNNING.append(node)


    def close(self) -> list[str]:
        problems = []
        for node in (self.a, self.b1, self.b2):
            problems += node.stop()
        for peer in (self.proxy, self.dns):
            if peer:
                peer.close()
        self.redis.close()
        return problems


@pytest.fixture(scope="module")
def cluster():
    yield from started_group(Cluster, "stokend-multi-node-")


def send(node: Stokend, sender: str, recipient: str) -> tuple[str, str]:
    return send_chat(node, sender, PASSWORDS[sender], recipient)


def one_copy_for_bob(cluster, marker: str) -> tuple[Stokend, bytes]:
    """The node that stored the marked message for bob, and the message;
    exactly one copy over both B nodes."""
    nodes = [cluster.b1, cluster.b2]
    wait_until(lambda: copies_in(nodes, "bob@b.test", marker) or None, 20.0,
               what=f"{marker} stored for bob")
    time.sleep(0.3)
    holders = [node for node in nodes if copies_in([node], "bob@b.test", marker)]
    found = copies_in(nodes, "bob@b.test", marker)
    assert len(found) == 1, f"bob: {len(found)} copies"
    return holders[0], found[0]


def alices_token_for_bob(cluster) -> str:
    match = re.search(r"alice@a\.test\s+bob@b\.test\s+.*?(1-created:\S+)",
                      wallet(cluster.a, "alice@a.test"))
    assert match, wallet(cluster.a, "alice@a.test")
    return match.group(1)


def test_b1_gives_alice_a_token_by_mx(cluster):
    qid, marker = send(cluster.b1, "bob@b.test", "alice@a.test")
    delivered_once(cluster.b1, qid, "alice@a.test")
    wait_until(lambda: "bob@b.test" in wallet(cluster.a, "alice@a.test"), 10.0,
               what="A to harvest bob's token into alice's wallet")


def test_a_temporary_token_through_the_balancer_becomes_permanent_and_names_the_client(cluster):
    qid, marker = send(cluster.a, "alice@a.test", "bob@b.test")
    line = fast_lane_line(cluster.a, qid, "bob@b.test", timeout=20.0)
    assert line.group(3) == "250 2.1.13", line.group(0)
    delivered_once(cluster.a, qid, "bob@b.test")
    holder, stored = one_copy_for_bob(cluster, marker)
    assert holder is cluster.b1
    # A connected from 127.0.0.1; HAProxy from the balancer's address.
    received = received_field(stored)
    assert b"[127.0.0.1]" in received and BALANCER.encode() not in received, received
    sessions = [line for line in cluster.b1.log().splitlines() if "LMTPSA" in line or
                "sasl_method=STOKEN" in line]
    assert sessions and all(BALANCER not in line for line in sessions), sessions
    assert any("127.0.0.1" in line for line in sessions), sessions
    # The permanent token is in Redis: B2 lists it.
    assert "alice@a.test" in cluster.b2.ctl("token", "list", "issued").stdout


def test_b1_down_b2_takes_the_permanent_token_b1_issued(cluster):
    cluster.b1.terminate()
    try:
        qid, marker = send(cluster.a, "alice@a.test", "bob@b.test")
        line = fast_lane_line(cluster.a, qid, "bob@b.test", timeout=20.0)
        assert line.group(3) == "250 2.1.12", line.group(0)
        delivered_once(cluster.a, qid, "bob@b.test")
        holder, _ = one_copy_for_bob(cluster, marker)
        assert holder is cluster.b2
    finally:
        cluster.b1.users = {}  # already in its users file
        cluster.b1.start()
        RUNNING.append(cluster.b1)


def test_redis_killed_mail_goes_by_mx_and_the_fast_lane_resumes(cluster):
    token = alices_token_for_bob(cluster)
    cluster.redis.kill()
    try:
        qid, marker = send(cluster.a, "alice@a.test", "bob@b.test")
        line = fast_lane_line(cluster.a, qid, "bob@b.test", timeout=20.0)
        assert line.group(4) and re.match(r"4\d\d ", line.group(4)), line.group(0)
        delivered_once(cluster.a, qid, "bob@b.test")  # by MX, through HAProxy
        one_copy_for_bob(cluster, marker)
        assert alices_token_for_bob(cluster) == token  # a 4xx keeps the token
    finally:
        cluster.redis.start()
    # The B nodes' back-off (up to 5 s) ends; the token was in the AOF.
    time.sleep(6)
    qid, marker = send(cluster.a, "alice@a.test", "bob@b.test")
    line = fast_lane_line(cluster.a, qid, "bob@b.test", timeout=20.0)
    assert line.group(3) == "250 2.1.12", line.group(0)
    delivered_once(cluster.a, qid, "bob@b.test")
    one_copy_for_bob(cluster, marker)


def auth_stoken(port: int, recipient: str, token: str) -> int:
    credentials = base64.b64encode(f"{recipient}\0{token}".encode()).decode()
    with SMTPWire(port, implicit_tls=True) as conn:
        assert conn.greeting.code == 220, str(conn.greeting)
        assert conn.command("LHLO remote-client.a.test").code == 250
        return conn.command(f"AUTH STOKEN {credentials}").code


def test_revstoken_on_b2_is_refused_on_b1_within_a_second(cluster):
    token = alices_token_for_bob(cluster)
    assert auth_stoken(cluster.b1.submissions_port, "bob@b.test", token) == 235
    with SMTPWire(cluster.b2.submissions_port, implicit_tls=True) as conn:
        assert conn.greeting.code == 220
        conn.ehlo("client.b.test")
        assert conn.auth_plain("bob@b.test", PASSWORDS["bob@b.test"]).code == 235
        reply = conn.command("REVSTOKEN alice@a.test")
        assert (reply.code, reply.enhanced) == (250, "2.1.0"), str(reply)
        revoked_at = time.monotonic()
    # Probes until B1 refuses; the bound is on when the refused probe was
    # sent, not on how long its TLS handshake took on a busy machine.
    while True:
        sent_at = time.monotonic()
        code = auth_stoken(cluster.b1.submissions_port, "bob@b.test", token)
        if code == 535:
            break
        assert code == 235, code
        assert sent_at - revoked_at < 5.0, "B1 still accepts the token B2 revoked"
    assert sent_at - revoked_at < 1.0, f"refused only {sent_at - revoked_at:.3f} s after REVSTOKEN"
