"""Two stokend nodes that have never met exchange tokens through ordinary
mail, then deliver chat mail to each other through the fast lane.

Node A serves a.test (built-in Maildir); node B serves b.test (a real
Dovecot over LMTP) and, on B's built-in Maildir, f.test (found by the
STARTTLS SRV record, _submission._tcp) and, for the failure cases, d.test
(its SRV record points at a port where no Token Server listens), e.test (no
SRV record at all) and g.test (its SRV record points at B's MX port, which
is no Token Server), and h.test, which node A is configured to reach in
the EHLO + SYNC dialect (fast_lane.dialects). A private dnsmasq publishes MX, SRV and
address records; a private CA certifies each node's Token Server name
(tokens.a.test, tokens.b.test), and each node trusts only that CA for the
fast lane. Both nodes run on 127.0.0.1: each one's delivery.mx_port is the
other's MX listener.

The scenario runs in order (one module, shared nodes):
1. alice@a.test -> bob@b.test: no token yet, so the ordinary way (MX), with
   a Submission-Token header that B harvests into bob's wallet;
2. bob -> alice: fast lane with that temporary token; A answers 2.1.13 (B
   keeps the permanent token) and B's MYSTOKEN gives alice a permanent one;
3. alice -> bob and bob -> alice again: both fast lane, 2.1.12;
then the failure cases, each delivered exactly once by MX instead.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from peers import (Dovecot, Dnsmasq, fast_lane_line, free_port, outcomes, private_ca, queue_id, submit,
                   wait_for_log, wait_removed, wait_until, wallet)
from stokend_daemon import RUNNING, Stokend

PASSWORDS = {
    "alice@a.test": "Alice-pw-4711",
    "bob@b.test": "Bob-pw-0815",
    "dave@d.test": "Dave-pw-2323",
    "erin@e.test": "Erin-pw-4242",
    "frank@f.test": "Frank-pw-1717",
    "gina@g.test": "Gina-pw-5353",
    "hank@h.test": "Hank-pw-6464",
}


class Nodes:
    def __init__(self, base: Path):
        self.base = base
        self.started = []
        self.ca, issued = private_ca(base / "ca", ["tokens.a.test", "tokens.b.test"])
        self.dovecot = Dovecot(users=("bob",))
        self.started.append(self.dovecot)
        self.a = Stokend(base / "a", users={"alice@a.test": PASSWORDS["alice@a.test"]})
        self.b = Stokend(base / "b", users={k: v for k, v in PASSWORDS.items()
                                            if not k.endswith("@a.test")})
        self.dead_port = free_port()  # d.test's Token Server: nobody listens
        self.dns = Dnsmasq(
            mx=[("a.test", "mx.a.test", 10), ("b.test", "mx.b.test", 10),
                ("d.test", "mx.b.test", 10), ("e.test", "mx.b.test", 10),
                ("f.test", "mx.b.test", 10), ("g.test", "mx.b.test", 10),
                ("h.test", "mx.b.test", 10)],
            hosts=[("mx.a.test", "127.0.0.1"), ("mx.b.test", "127.0.0.1"),
                   ("tokens.a.test", "127.0.0.1"), ("tokens.b.test", "127.0.0.1")],
            srv=[("_submissions._tcp.a.test", "tokens.a.test", self.a.submissions_port),
                 ("_submissions._tcp.b.test", "tokens.b.test", self.b.submissions_port),
                 ("_submissions._tcp.d.test", "tokens.b.test", self.dead_port),
                 # STARTTLS discovery (RFC 6186): B's submission port...
                 ("_submission._tcp.f.test", "tokens.b.test", self.b.submission_port),
                 # ...and a server that is no Token Server: B's MX port.
                 ("_submission._tcp.g.test", "tokens.b.test", self.b.mx_port),
                 ("_submissions._tcp.h.test", "tokens.b.test", self.b.submissions_port)])
        self.started.append(self.dns)
        common = {
            "log_level": "debug",
            "dns": {"servers": self.dns.servers, "timeout": "1s"},
            "fast_lane": {"ca_file": str(self.ca), "timeout": "5s"},
        }
        self._configure(self.a, "a.test", ["a.test"], issued["tokens.a.test"], self.b.mx_port,
                        {**common, "fast_lane": {**common["fast_lane"],
                                                 "dialects": {"h.test": "ehlo-sync"}}}, {})
        self._configure(self.b, "b.test",
                        ["b.test", "d.test", "e.test", "f.test", "g.test", "h.test"],
                        issued["tokens.b.test"], self.a.mx_port, common,
                        {"b.test": self.dovecot.unix_route})
        for node in (self.a, self.b):
            node.start()
            RUNNING.append(node)

    @staticmethod
    def _configure(node: Stokend, domain: str, domains: list[str], certificate, peer_mx_port: int,
                   common: dict, routes: dict) -> None:
        from stokend_daemon import deep_merge, to_yaml
        cert, key = certificate
        node.config = deep_merge(node.config, {
            **common,
            "hostname": f"mx.{domain}",
            "local_domains": domains,
            "tls": {"certificate": str(cert), "private_key": str(key)},
            "delivery": {"mx_port": peer_mx_port},
            **({"routes": routes} if routes else {}),
        })
        node.config_path.write_text(to_yaml(node.config))

    def close(self) -> list[str]:
        problems = []
        for node in (self.a, self.b):
            problems += node.stop()
        for peer in reversed(self.started):
            peer.close()
        return problems


@pytest.fixture(scope="module")
def nodes():
    base = Path(tempfile.mkdtemp(prefix="stokend-fast-lane-"))
    pair = Nodes(base)
    yield pair
    problems = pair.close()
    shutil.rmtree(base, ignore_errors=True)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


_counter = 0


def chat_message(sender: str, recipient: str) -> tuple[bytes, str]:
    """A chat message (Chat-Version, RFC 5322) with a unique marker."""
    global _counter
    _counter += 1
    marker = f"fast-lane-{time.monotonic_ns()}-{_counter}"
    text = (f"From: <{sender}>\r\nTo: <{recipient}>\r\nSubject: chat\r\n"
            f"Message-ID: <chat${marker}@test>\r\nChat-Version: 1.0\r\n"
            f"Date: Sun, 22 Nov 2026 12:00:00 +0000\r\n\r\nhello {marker}\r\n")
    return text.encode(), marker


def send(node: Stokend, sender: str, recipient: str) -> tuple[str, str]:
    """Submits a chat message; returns (queue id, marker)."""
    data, marker = chat_message(sender, recipient)
    reply = submit(node, sender, PASSWORDS[sender], [recipient], data, implicit_tls=True)
    return queue_id(reply), marker


def copies(paths: list[Path], marker: str) -> list[bytes]:
    found = []
    for path in paths:
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            continue
        if marker.encode() in content:
            found.append(content)
    return found


def stored_in_maildir(node: Stokend, address: str, marker: str) -> list[bytes]:
    folder = node.maildir(address)
    return copies([p for sub in ("new", "cur") for p in (folder / sub).glob("*")], marker)


def wait_single_copy(find, marker: str, what: str) -> bytes:
    """Waits for the message to be stored, then checks it stays one copy."""
    found = wait_until(lambda: find(marker) or None, 15.0, what=f"{what} stored")
    time.sleep(0.3)
    found = find(marker)
    assert len(found) == 1, f"{what}: {len(found)} copies"
    return found[0]



def test_first_message_takes_the_ordinary_way_and_is_harvested(nodes):
    qid, marker = send(nodes.a, "alice@a.test", "bob@b.test")
    log = wait_removed(nodes.a, qid, 15.0)
    # No token yet: no fast-lane attempt at all, the MX path delivered it.
    assert f"fast-lane: {qid}" not in log
    result = outcomes(log, qid)
    assert [(r, o, a) for r, o, a, _ in result] == [("bob@b.test", "delivered", 1)]
    assert "2.1.12" not in result[0][3] and "fast lane" not in result[0][3]
    stored = wait_single_copy(lambda m: copies(nodes.dovecot.all_mail("bob"), m), marker, "bob")
    # B took the token and removed the header before storing the message.
    assert b"Submission-Token" not in stored
    assert b"with ESMTPS" in stored and b"with LMTPSA" not in stored
    held = wallet(nodes.b, "bob@b.test")
    assert re.search(r"bob@b\.test\s+alice@a\.test\s+temp\s+header", held), held


def test_reply_takes_the_fast_lane_and_exchanges_permanent_tokens(nodes):
    qid, marker = send(nodes.b, "bob@b.test", "alice@a.test")
    line = fast_lane_line(nodes.b, qid, "alice@a.test")
    assert line.group(1).startswith("delivered"), line.group(0)
    assert line.group(2) == f"tokens.a.test[127.0.0.1]:{nodes.a.submissions_port}"
    assert line.group(3) == "250 2.1.13"
    log = wait_removed(nodes.b, qid)
    result = outcomes(log, qid)
    assert [(r, o, a) for r, o, a, _ in result] == [("alice@a.test", "delivered", 1)]
    assert "fast lane" in result[0][3]
    # Postfix-shaped lines (README "Logs"): relay= the Token Server on B; on
    # A, the Token Server's synchronous delivery, received and delivered.
    server = re.escape(line.group(2))
    assert re.search(rf"stokend/smtp\[\d+\]: {qid}: to=<alice@a\.test>, relay={server}, "
                     rf"delay=[\d.]+, delays=[\d./]+, dsn=2\.1\.13, status=sent \(250 2\.1\.13 ",
                     log), log
    stored = wait_single_copy(lambda m: stored_in_maildir(nodes.a, "alice@a.test", m), marker,
                              "alice")
    a_log = wait_for_log(nodes.a, r"stokend/local\[\d+\]: (\S+): to=<alice@a\.test>, relay=local, "
                                  r"delay=[\d.]+, delays=[\d./]+, dsn=2\.1\.1[23], status=sent "
                                  r"\(250 2\.1\.1[23] ")
    assert re.search(rf"stokend/smtpd\[\d+\]: {a_log.group(1)}: client=unknown\[127\.0\.0\.1\], "
                     r"sasl_method=STOKEN$", nodes.a.log(), re.M)
    assert b"with LMTPSA" in stored
    # The 2.1.13 gave bob a permanent token; MYSTOKEN gave alice one.
    assert re.search(r"bob@b\.test\s+alice@a\.test\s+perm\s+2\.1\.13", wallet(nodes.b, "bob@b.test"))
    assert re.search(r"alice@a\.test\s+bob@b\.test\s+perm\s+MYSTOKEN",
                     wallet(nodes.a, "alice@a.test"))
    # Permanent tokens never reach a log.
    for node in (nodes.a, nodes.b):
        for token in re.findall(r"(1-created:\S+)", wallet(node, "alice@a.test") +
                                wallet(node, "bob@b.test")):
            assert token not in node.log()


@pytest.mark.parametrize("direction", ["a-to-b", "b-to-a", "a-to-b-again"])
def test_from_then_on_both_directions_take_the_fast_lane(nodes, direction):
    if direction.startswith("a-to-b"):
        sender_node, sender, recipient = nodes.a, "alice@a.test", "bob@b.test"
        find = lambda m: copies(nodes.dovecot.all_mail("bob"), m)  # noqa: E731
    else:
        sender_node, sender, recipient = nodes.b, "bob@b.test", "alice@a.test"
        find = lambda m: stored_in_maildir(nodes.a, "alice@a.test", m)  # noqa: E731
    qid, marker = send(sender_node, sender, recipient)
    line = fast_lane_line(sender_node, qid, recipient)
    assert line.group(3) == "250 2.1.12", line.group(0)
    result = outcomes(wait_removed(sender_node, qid), qid)
    assert [(r, o, a) for r, o, a, _ in result] == [(recipient, "delivered", 1)]
    stored = wait_single_copy(find, marker, recipient)
    assert b"with LMTPSA" in stored
    # The fast lane carries no Submission-Token: the pair has permanent tokens.
    assert b"Submission-Token" not in stored


def harvest_token_for_alice(nodes, remote: str) -> None:
    """remote (on B) writes alice a chat message by MX: alice's wallet gets
    B's temporary token for alice -> remote."""
    qid, marker = send(nodes.b, remote, "alice@a.test")
    wait_removed(nodes.b, qid, 15.0)
    wait_single_copy(lambda m: stored_in_maildir(nodes.a, "alice@a.test", m), marker, "alice")
    assert re.search(rf"alice@a\.test\s+{re.escape(remote)}\s+temp\s+header",
                     wallet(nodes.a, "alice@a.test"))


def test_token_server_down_falls_back_to_mx(nodes):
    harvest_token_for_alice(nodes, "dave@d.test")
    qid, marker = send(nodes.a, "alice@a.test", "dave@d.test")
    line = fast_lane_line(nodes.a, qid, "dave@d.test")
    assert line.group(4) and "connect" in line.group(4) and str(nodes.dead_port) in line.group(4), \
        line.group(0)
    result = outcomes(wait_removed(nodes.a, qid, 15.0), qid)
    assert [(r, o, a) for r, o, a, _ in result] == [("dave@d.test", "delivered", 1)]
    assert "fast lane" not in result[0][3]
    stored = wait_single_copy(lambda m: stored_in_maildir(nodes.b, "dave@d.test", m), marker, "dave")
    assert b"with ESMTPS" in stored and b"with LMTPSA" not in stored
    # A server that cannot be reached says nothing about the token: it stays.
    assert re.search(r"alice@a\.test\s+dave@d\.test", wallet(nodes.a, "alice@a.test"))


def test_missing_srv_record_falls_back_to_mx(nodes):
    harvest_token_for_alice(nodes, "erin@e.test")
    qid, marker = send(nodes.a, "alice@a.test", "erin@e.test")
    line = fast_lane_line(nodes.a, qid, "erin@e.test")
    assert line.group(4) and "no submission SRV record for e.test" in line.group(4), line.group(0)
    result = outcomes(wait_removed(nodes.a, qid, 15.0), qid)
    assert [(r, o, a) for r, o, a, _ in result] == [("erin@e.test", "delivered", 1)]
    stored = wait_single_copy(lambda m: stored_in_maildir(nodes.b, "erin@e.test", m), marker, "erin")
    assert b"with ESMTPS" in stored


def test_starttls_discovery_reaches_the_token_server(nodes):
    harvest_token_for_alice(nodes, "frank@f.test")
    qid, marker = send(nodes.a, "alice@a.test", "frank@f.test")
    line = fast_lane_line(nodes.a, qid, "frank@f.test")
    assert line.group(2) == f"tokens.b.test[127.0.0.1]:{nodes.b.submission_port}", line.group(0)
    assert line.group(3) == "250 2.1.13"
    wait_removed(nodes.a, qid)
    stored = wait_single_copy(lambda m: stored_in_maildir(nodes.b, "frank@f.test", m), marker,
                              "frank")
    assert b"with LMTPSA" in stored


def test_a_server_without_stoken_is_left_at_once(nodes):
    harvest_token_for_alice(nodes, "gina@g.test")
    qid, marker = send(nodes.a, "alice@a.test", "gina@g.test")
    line = fast_lane_line(nodes.a, qid, "gina@g.test")
    # B's MX role answers LHLO with 502: not a Token Server.
    assert line.group(4) and "LHLO" in line.group(4) and "502" in line.group(4), line.group(0)
    result = outcomes(wait_removed(nodes.a, qid, 15.0), qid)
    assert [(r, o, a) for r, o, a, _ in result] == [("gina@g.test", "delivered", 1)]
    stored = wait_single_copy(lambda m: stored_in_maildir(nodes.b, "gina@g.test", m), marker, "gina")
    assert b"with ESMTPS" in stored
    assert re.search(r"alice@a\.test\s+gina@g\.test", wallet(nodes.a, "alice@a.test"))


def test_ehlo_sync_dialect_delivers_and_exchanges_tokens(nodes):
    # A speaks EHLO + MAIL ... SYNC to h.test's Token Server (B), without
    # AUTH STOKEN (B's EHLO reply does not list it): each RCPT's token is
    # checked against its pair alone (rfcdraft/ §10).
    harvest_token_for_alice(nodes, "hank@h.test")
    qid, marker = send(nodes.a, "alice@a.test", "hank@h.test")
    line = fast_lane_line(nodes.a, qid, "hank@h.test")
    assert line.group(2) == f"tokens.b.test[127.0.0.1]:{nodes.b.submissions_port}", line.group(0)
    assert line.group(3) == "250 2.1.13"
    wait_removed(nodes.a, qid)
    stored = wait_single_copy(lambda m: stored_in_maildir(nodes.b, "hank@h.test", m), marker,
                              "hank")
    # B's Token Server took A's session as the EHLO form: A said EHLO to it.
    assert re.search(rf"client \[127\.0\.0\.1\]:{nodes.b.submissions_port}: ready \(EHLO, tls=yes",
                     nodes.a.log()), nodes.a.log()[-3000:]
    assert b"Submission-Token" not in stored
    # rfcdraft §8.5: the SYNC variant without AUTH STOKEN is ESMTPS at B
    # (A's own field, from alice's submission, is ESMTPSA).
    assert re.search(rb"by mx\.b\.test[^;]* with ESMTPS id ", stored), stored[:600]
    assert b"with LMTPSA" not in stored
    assert re.search(r"alice@a\.test\s+hank@h\.test\s+perm\s+2\.1\.13",
                     wallet(nodes.a, "alice@a.test"))
    # The permanent token works the next time, in the same dialect.
    qid, marker = send(nodes.a, "alice@a.test", "hank@h.test")
    assert fast_lane_line(nodes.a, qid, "hank@h.test").group(3) == "250 2.1.12"
    wait_removed(nodes.a, qid)
    wait_single_copy(lambda m: stored_in_maildir(nodes.b, "hank@h.test", m), marker, "hank")


def test_revoked_token_is_dropped_and_mail_goes_by_mx(nodes):
    # bob's server withdraws every token it gave alice for writing to bob.
    nodes.b.ctl("token", "revoke", "alice@a.test", "bob@b.test")
    qid, marker = send(nodes.a, "alice@a.test", "bob@b.test")
    line = fast_lane_line(nodes.a, qid, "bob@b.test")
    # A warm session gets 550 5.7.30 at RCPT, a new one 535 at AUTH.
    assert line.group(4) and re.search(r"^(550 5\.7\.30|535 )", line.group(4)), line.group(0)
    assert line.group(0).endswith("(token dropped)")
    result = outcomes(wait_removed(nodes.a, qid, 15.0), qid)
    assert [(r, o, a) for r, o, a, _ in result] == [("bob@b.test", "delivered", 1)]
    stored = wait_single_copy(lambda m: copies(nodes.dovecot.all_mail("bob"), m), marker, "bob")
    assert b"with ESMTPS" in stored
    wait_until(lambda: not re.search(r"alice@a\.test\s+bob@b\.test", wallet(nodes.a, "alice@a.test")),
               5.0, what="the revoked token to leave alice's wallet")
