"""Two Token Servers for b.test sharing their tokens in one Redis server, and
what an outage of Redis does (README "Several nodes: tokens on Redis").

Node A serves a.test (SQLite token store); nodes B1 and B2 both serve
b.test, with tokens.store on one private redis-server (unix socket in the
test's folder, appendonly yes, appendfsync always) and one secrets file. A
private dnsmasq publishes b.test's Token Servers as two SRV targets, B1
first (priority 10) and B2 second (priority 20), so A reaches B2 only while
B1 is down; b.test's MX is B1. A private CA certifies tokens.a.test,
tokens1.b.test and tokens2.b.test.

The scenario runs in order (one module, shared nodes):
1. bob (on B1) writes alice by MX, with a temporary token B1 minted; A
   harvests it into alice's wallet.
2. alice -> bob by the fast lane through B1: 2.1.13, a permanent token that
   B1 stores in Redis; B2's stokenctl lists it.
3. B1 down: alice -> bob reaches B2, which takes B1's permanent token
   (2.1.12). B1 comes back.
4. redis-server killed (SIGKILL): B1's Token Server answers 4xx, alice's
   mail goes by MX and her token stays; bob's mail from B1 goes by MX as
   B1 cannot read his wallet; nothing is lost. Redis restarts from its
   append-only file: the fast lane resumes with the same token.
5. stokenctl token revoke on B2: B1 refuses the token at once.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from peers import Dnsmasq, Redis, private_ca, wait_for_log
from peers import started_group, wait_until
from peers import copies_in, delivered_once, fast_lane_line, send_chat, wallet
from stokend_daemon import RUNNING, Stokend, configure_node, deep_merge, to_yaml

PASSWORDS = {"alice@a.test": "Alice-pw-4711", "bob@b.test": "Bob-pw-0815"}


class Nodes:
    def __init__(self, base: Path):
        self.base = base
        self.redis = Redis(base / "redis")
        self.dns = None
        self.ca, issued = private_ca(base / "ca",
                                     ["tokens.a.test", "tokens1.b.test", "tokens2.b.test"])
        self.a = Stokend(base / "a", users={"alice@a.test": PASSWORDS["alice@a.test"]})
        self.b1 = Stokend(base / "b1", users={"bob@b.test": PASSWORDS["bob@b.test"]})
        self.b2 = Stokend(base / "b2", users={"bob@b.test": PASSWORDS["bob@b.test"]})
        self.dns = Dnsmasq(
            mx=[("a.test", "mx.a.test", 10), ("b.test", "mx.b.test", 10)],
            hosts=[("mx.a.test", "127.0.0.1"), ("mx.b.test", "127.0.0.1"),
                   ("tokens.a.test", "127.0.0.1"), ("tokens1.b.test", "127.0.0.1"),
                   ("tokens2.b.test", "127.0.0.1")],
            srv=[("_submissions._tcp.a.test", "tokens.a.test", self.a.submissions_port),
                 ("_submissions._tcp.b.test", "tokens1.b.test", self.b1.submissions_port, 10),
                 ("_submissions._tcp.b.test", "tokens2.b.test", self.b2.submissions_port, 20)])
        common = {
            "log_level": "debug",
            "dns": {"servers": self.dns.servers, "timeout": "1s"},
            "fast_lane": {"ca_file": str(self.ca), "timeout": "5s"},
        }
        shared_tokens = {"store": {"backend": "redis", "url": self.redis.url,
                                   "connect_timeout": "500ms", "command_timeout": "500ms"},
                         "secrets_file": str(base / "b-token-secrets")}
        configure_node(self.a, "a.test", issued["tokens.a.test"], self.b1.mx_port, common, {})
        configure_node(self.b1, "b.test", issued["tokens1.b.test"], self.a.mx_port, common,
                        shared_tokens)
        configure_node(self.b2, "b.test", issued["tokens2.b.test"], self.a.mx_port, common,
                        shared_tokens)
        # B1 first: it creates the shared secrets file B2 then reads.
        for node in (self.a, self.b1, self.b2):
            node.start()
            RUNNING.append(node)


    def close(self) -> list[str]:
        problems = []
        for node in (self.a, self.b1, self.b2):
            problems += node.stop()
        if self.dns:
            self.dns.close()
        self.redis.close()
        return problems


@pytest.fixture(scope="module")
def nodes():
    yield from started_group(Nodes, "stokend-redis-")


def send(node: Stokend, sender: str, recipient: str) -> tuple[str, str]:
    """Submits a chat message with a unique marker; returns (queue id, marker)."""
    return send_chat(node, sender, PASSWORDS[sender], recipient)


def single_copy(nodes, address: str, marker: str) -> bytes:
    """Waits for the message in the address's Maildir on any node, then
    checks it stays exactly one copy (nothing lost, nothing doubled)."""
    searched = [nodes.a] if address.endswith("@a.test") else [nodes.b1, nodes.b2]
    wait_until(lambda: copies_in(searched, address, marker) or None, 20.0,
               what=f"{marker} stored for {address}")
    time.sleep(0.3)
    found = copies_in(searched, address, marker)
    assert len(found) == 1, f"{address}: {len(found)} copies"
    return found[0]



def test_b1_gives_alice_a_token_by_mx(nodes):
    qid, marker = send(nodes.b1, "bob@b.test", "alice@a.test")
    reply = delivered_once(nodes.b1, qid, "alice@a.test")
    assert "fast lane" not in reply
    stored = single_copy(nodes, "alice@a.test", marker)
    assert b"Submission-Token" not in stored  # harvested and removed by A
    assert re.search(r"alice@a\.test\s+bob@b\.test\s+temp\s+header", wallet(nodes.a, "alice@a.test"))


def test_temporary_token_through_b1_gives_a_permanent_token_in_redis(nodes):
    qid, marker = send(nodes.a, "alice@a.test", "bob@b.test")
    line = fast_lane_line(nodes.a, qid, "bob@b.test", timeout=20.0)
    assert line.group(3) == "250 2.1.13", line.group(0)
    assert line.group(2) == f"tokens1.b.test[127.0.0.1]:{nodes.b1.submissions_port}"
    delivered_once(nodes.a, qid, "bob@b.test")
    stored = single_copy(nodes, "bob@b.test", marker)
    assert b"with LMTPSA" in stored
    assert copies_in([nodes.b1], "bob@b.test", marker)
    assert re.search(r"alice@a\.test\s+bob@b\.test\s+perm\s+2\.1\.13",
                     wallet(nodes.a, "alice@a.test"))
    # B1 issued it into Redis: B2's stokenctl, on the same store, lists it.
    issued_on_b2 = nodes.b2.ctl("token", "list", "issued", "bob@b.test").stdout
    assert re.search(r"bob@b\.test\s+alice@a\.test", issued_on_b2), issued_on_b2


def test_b1_down_b2_takes_the_permanent_token_b1_issued(nodes):
    nodes.b1.terminate()
    try:
        qid, marker = send(nodes.a, "alice@a.test", "bob@b.test")
        line = fast_lane_line(nodes.a, qid, "bob@b.test", timeout=20.0)
        assert line.group(3) == "250 2.1.12", line.group(0)
        assert line.group(2) == f"tokens2.b.test[127.0.0.1]:{nodes.b2.submissions_port}"
        delivered_once(nodes.a, qid, "bob@b.test")
        single_copy(nodes, "bob@b.test", marker)
        assert copies_in([nodes.b2], "bob@b.test", marker)
    finally:
        nodes.b1.users = {}  # already in its users file
        nodes.b1.start()
        RUNNING.append(nodes.b1)


def test_redis_killed_mail_goes_by_mx_and_the_fast_lane_resumes(nodes):
    token_before = re.search(r"(1-created:\S+)", wallet(nodes.a, "alice@a.test")).group(1)
    nodes.redis.kill()
    try:
        # alice -> bob: B1's Token Server cannot verify; a 4xx, so A keeps
        # the token and sends by MX, which B1 accepts and delivers.
        qid, marker = send(nodes.a, "alice@a.test", "bob@b.test")
        line = fast_lane_line(nodes.a, qid, "bob@b.test", timeout=20.0)
        assert line.group(4) and re.search(r"\b4\d\d 4\.\d\.\d", line.group(4)), line.group(0)
        assert not line.group(0).endswith("(token dropped)")
        reply = delivered_once(nodes.a, qid, "bob@b.test")
        assert "fast lane" not in reply
        stored = single_copy(nodes, "bob@b.test", marker)
        assert b"with ESMTPS" in stored
        wait_for_log(nodes.b1, r"token store: .*redis unix:")
        # bob -> alice: B1 cannot read bob's wallet; MX it is.
        qid, marker = send(nodes.b1, "bob@b.test", "alice@a.test")
        wait_for_log(nodes.b1, rf"fast-lane: {re.escape(qid)} to=<alice@a\.test>: cannot read the wallet")
        delivered_once(nodes.b1, qid, "alice@a.test")
        single_copy(nodes, "alice@a.test", marker)
        assert token_before in wallet(nodes.a, "alice@a.test")
    finally:
        nodes.redis.start()
    # Past B1's longest back-off (5 s), its next store call reaches Redis.
    time.sleep(6)
    qid, marker = send(nodes.a, "alice@a.test", "bob@b.test")
    line = fast_lane_line(nodes.a, qid, "bob@b.test", timeout=20.0)
    # The permanent token B1 issued before the outage is still in Redis.
    assert line.group(3) == "250 2.1.12", line.group(0)
    delivered_once(nodes.a, qid, "bob@b.test")
    single_copy(nodes, "bob@b.test", marker)


def test_revocation_on_b2_holds_on_b1(nodes):
    nodes.b2.ctl("token", "revoke", "alice@a.test", "bob@b.test")
    qid, marker = send(nodes.a, "alice@a.test", "bob@b.test")
    line = fast_lane_line(nodes.a, qid, "bob@b.test", timeout=20.0)
    # B1 (first in the SRV records) refuses: a warm session at RCPT
    # (550 5.7.30), a new one at AUTH (535).
    assert line.group(4), line.group(0)
    assert re.search(r"^(550 5\.7\.30|535 )", line.group(4)), line.group(0)
    assert line.group(0).endswith("(token dropped)")
    delivered_once(nodes.a, qid, "bob@b.test")
    single_copy(nodes, "bob@b.test", marker)
    wait_until(lambda: not re.search(r"alice@a\.test\s+bob@b\.test", wallet(nodes.a, "alice@a.test")),
               5.0, what="the revoked token to leave alice's wallet")


def token_rows(listing: str) -> list[str]:
    """The data rows of `stokenctl token list`, without headings."""
    return sorted(line for line in listing.splitlines()
                  if line and not line.startswith(("LOCAL", "issued", "wallet")))


def test_migrate_copies_a_store_into_the_other_backend(nodes, tmp_path):
    # B2's store (Redis) into a new SQLite file: a stokenctl configured with
    # that file lists exactly what B2 lists.
    copy = tmp_path / "copy.db"
    result = nodes.b2.ctl("token", "migrate", "--to", "sqlite", str(copy))
    assert re.match(r"migrated \d+ issued tokens, \d+ wallet tokens and \d+ revocation marks "
                    rf"from redis {re.escape(nodes.redis.url)} to sqlite {re.escape(str(copy))}$",
                    result.stdout.strip()), result.stdout
    config = deep_merge(nodes.b2.config, {"tokens": {"store": str(copy)}})
    config_path = tmp_path / "sqlite.yaml"
    config_path.write_text(to_yaml(config))
    from stokend_daemon import STOKENCTL
    listed = subprocess.run([str(STOKENCTL), "--config", str(config_path), "token", "list"],
                            cwd=nodes.b2.dir, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    original = token_rows(nodes.b2.ctl("token", "list").stdout)
    assert original and token_rows(listed.stdout) == original

    # A's store (SQLite) into Redis: the permanent tokens A issued (the
    # MYSTOKEN it gave bob) show up there.
    nodes.a.ctl("token", "migrate", "--to", "redis", nodes.redis.url)
    a_issued = token_rows(nodes.a.ctl("token", "list", "issued").stdout)
    assert a_issued
    assert token_rows(nodes.b2.ctl("token", "list", "issued", "alice@a.test").stdout) == a_issued

    # Bad input changes nothing and says why.
    bad = nodes.a.ctl("token", "migrate", "--to", "redis", "redis://user:pw@host", check=False)
    assert bad.returncode == 1 and "use password_file" in bad.stderr, bad.stderr
    usage = nodes.a.ctl("token", "migrate", "--to", "mysql", "x", check=False)
    assert usage.returncode == 2 and "usage: token migrate" in usage.stderr, usage.stderr


def test_a_node_with_other_secrets_refuses_to_start(nodes):
    # B3 would share B1's and B2's Redis store but has a secrets file of its
    # own (created at its first start, with the same ids t1, p1 and other
    # keys): its tokens would be refused by the others, so it does not start.
    b3 = Stokend(nodes.base / "b3", users={})
    b3.config = deep_merge(b3.config, {
        "hostname": "mx.b.test", "local_domains": ["b.test"],
        "dns": {"servers": nodes.dns.servers},
        "tokens": {"store": {"backend": "redis", "url": nodes.redis.url},
                   "secrets_file": str(nodes.base / "b3-token-secrets")}})
    b3.config_path.write_text(to_yaml(b3.config))
    with pytest.raises(AssertionError, match="exited with 1 during start-up"):
        b3.start()
    assert re.search(r"secret (t1, p1|p1, t1|t1|p1)\S* differs from the one the other nodes of "
                     rf"redis {re.escape(nodes.redis.url)} use", b3.log()), b3.log_tail()
    # The nodes that share the secrets still work.
    assert nodes.b1.running() and nodes.b2.running()
