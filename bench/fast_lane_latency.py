#!/usr/bin/python3
"""End-to-end latency of one message, from the 250 the sender gets at
submission to the moment the message is stored in the recipient's mailbox:
stokend's fast lane against the normal path and against what an ISP runs
today, all on this machine in one run.

Every case ends in the same private Dovecot (LMTP over its unix socket,
Maildir, fsync on), each in a mailbox of its own:

  a  fast lane: alice@a.test submits to stokend node A (implicit TLS, AUTH
     PLAIN); A's queue hands the message to its Remote Client, which finds
     B's Token Server by SRV (_submissions._tcp.b.test), speaks LHLO, AUTH
     STOKEN and RCPT ... STOKEN= over TLS (certificate checked against a
     private CA), and B delivers into Dovecot before answering 2.1.12.
     alice's token for bob@b.test is obtained through the protocol itself
     first: alice sends bob a chat message by MX carrying a Submission-Token
     header, B harvests it, bob replies over the fast lane with it, A answers
     2.1.13 with a permanent token and keeps B's MYSTOKEN for alice.
  b  normal path between the same two nodes: carol@a.test to dave@b.test,
     a pair without tokens: A's queue -> MX lookup (dnsmasq) -> B's MX
     listener (STARTTLS) -> B's queue -> LMTP -> Dovecot.
  c  what an ISP runs today: a submission Postfix relays (STARTTLS) to an MX
     Postfix whose smtpd scans with rspamd as a milter (proxy worker in milter
     mode, Debian's rules as shipped), which delivers into Dovecot over LMTP.
  d  the same chain without rspamd (a second smtpd listener of the same MX
     Postfix, without the milter).
  e  the floor: the benchmark itself speaks LMTP to the same Dovecot socket
     on a warm connection; the time runs from sending MAIL.
  f  case a in the Token Server's other dialect: alice@a.test to sue@s.test,
     a second domain of node B (SRV to the same Token Server), which A's
     Remote Client is configured to reach with EHLO and MAIL FROM:<...> SYNC
     (fast_lane.dialects: {s.test: ehlo-sync}, the form of Dovecot's COI
     plugin) while b.test is set to lhlo. sue's token is obtained the same
     way as bob's. Not in the default cases: --cases afe compares the two
     dialects with the floor.

For a to d the time runs from reading the 250 after DATA at submission.
"Stored" is the moment the message file appears in the recipient's Maildir
new/ (Dovecot renames it there once written and fsynced): an inotify watch
(IN_MOVED_TO | IN_CREATE) on each new/ folder, read in a poll loop and
stamped on arrival; no polling interval. One message is in flight at a
time; after each one the script pauses --gap-ms so its trailing work
(queue bookkeeping, Postfix's cleanup) does not overlap the next.

Rounds (--rounds) alternate between the cases in rotating order, so noise
hits them alike; each case gets -n messages (default 500) after --warmup
unmeasured ones. Every measured message is checked to have taken the path
its case claims (trace headers of the stored copy; at the end, stokend's
queue and fast-lane log lines, Postfix's delivery log and rspamd's scan log
are counted per recipient). Any mismatch ends the run with an error.

Everything is on loopback, on high ports: node A listens on 127.0.0.10 and
node B on 127.0.0.11 with the same port numbers (MX delivery between them
uses delivery.mx_port), the rest on 127.0.0.1; dnsmasq is the only DNS
server anyone is given. Every process started here is stopped here, also on
Ctrl-C. Measure latency in a run of its own, never right after a throughput
run.
"""

import argparse
import email.parser
import email.policy
import email.utils
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from common import (DEFAULT_BIN_DIR, free_port, fsync_probe,  # noqa: E402
                    install_signal_cleanup, load1, log, machine_note, percentile,
                    wait_for_port)
from dnsmasq_peer import DnsmasqPeer  # noqa: E402
from dovecot_peer import DovecotPeer  # noqa: E402
from inotify_watch import FolderWatch  # noqa: E402
from postfix_peer import PostfixPeer  # noqa: E402
from private_ca import PrivateCA  # noqa: E402
from redis_peer import RedisPeer  # noqa: E402
from rspamd_peer import RspamdPeer  # noqa: E402
from smtp_wire import ProtocolError, Wire  # noqa: E402
from stokend_instance import PASSWORD, StokendInstance, wait_until  # noqa: E402

NODE_A = "127.0.0.10"
NODE_B = "127.0.0.11"
ISP_SENDER = "sam@isp.test"
CASE_KEYS = "abcdef"
DEFAULT_CASES = "abcde"
ISP_DNS = {
    "mx": [("a.test", "mx.a.test", 10), ("b.test", "mx.b.test", 10),
           ("s.test", "mx.b.test", 10), ("isp.test", "mx.isp.test", 10)],
    "hosts": [("mx.a.test", NODE_A), ("mx.b.test", NODE_B),
              ("tokens.a.test", NODE_A), ("tokens.b.test", NODE_B),
              ("mx.isp.test", "127.0.0.1"), ("submission.isp.test", "127.0.0.1")],
    "txt": [("isp.test", "v=spf1 ip4:127.0.0.0/8 -all"),
            ("_dmarc.isp.test", "v=DMARC1; p=none")],
}


class BenchError(RuntimeError):
    pass


# --- messages -----------------------------------------------------------------

WORDS = ("the meeting moved to thursday afternoon so we can go over the draft "
         "together bring the notes from last week and the figures for the "
         "second quarter if you have them ready otherwise send them later "
         "tonight and I will read them on the train tomorrow morning").split()


def chat_message(case, number, sender, recipient, size):
    """A COI chat message (Chat-Version header) of about size bytes, with a
    unique Message-ID; returns (bytes, message id)."""
    domain = sender.split("@", 1)[1]
    message_id = f"<chat$bench.{case}.{number}.{secrets.token_hex(6)}@{domain}>"
    head = (f"From: <{sender}>\r\n"
            f"To: <{recipient}>\r\n"
            f"Date: {email.utils.formatdate(localtime=True)}\r\n"
            f"Subject: Chat: latency {case} {number}\r\n"
            f"Message-ID: {message_id}\r\n"
            "Chat-Version: 1.0\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 7bit\r\n\r\n")
    body, line, i = [], [], secrets.randbelow(len(WORDS))
    length = 0
    while length < size:
        word = WORDS[i % len(WORDS)]
        i += 7
        if sum(len(w) + 1 for w in line) + len(word) > 72:
            text = " ".join(line) + "\r\n"
            body.append(text)
            length += len(text)
            line = []
        line.append(word)
    if line:
        body.append(" ".join(line) + "\r\n")
    return (head + "".join(body)).encode(), message_id


def read_headers(path):
    with open(path, "rb") as f:
        data = f.read(65536)
    end = data.find(b"\r\n\r\n")
    if end < 0:
        end = data.find(b"\n\n")
    return email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
        data[:end if end >= 0 else len(data)] + b"\n\n", headersonly=True)


# --- senders --------------------------------------------------------------------

class Submitter:
    """A warm SMTP session to a submission service; submit() returns the
    monotonic ns at which the 250 after DATA was read."""

    def __init__(self, connect):
        self._connect = connect
        self.wire = None

    def submit(self, sender, recipient, data):
        for attempt in (1, 2):
            if self.wire is None:
                self.wire = self._connect()
            try:
                self.wire.command(f"MAIL FROM:<{sender}>", 250)
                break
            except (OSError, ProtocolError):
                # The server may have closed an idle session: one new one.
                self.close()
                if attempt == 2:
                    raise
        self.wire.command(f"RCPT TO:<{recipient}>", 250)
        self.wire.command("DATA", 354)
        self.wire.send(data + b".\r\n")
        code, lines = self.wire.reply()
        at = time.monotonic_ns()
        if code != 250:
            raise BenchError(f"submission refused the message: {' / '.join(lines)}")
        return at

    def finish(self):
        pass

    def close(self):
        if self.wire is not None:
            self.wire.close()
            self.wire = None


class LmtpFloor:
    """LMTP straight into Dovecot on a warm connection: submit() sends MAIL,
    RCPT, DATA (pipelined) and the message and returns the moment MAIL was
    sent; finish() reads Dovecot's reply afterwards."""

    def __init__(self, socket_path):
        self.socket_path = socket_path
        self.wire = None

    def submit(self, sender, recipient, data):
        if self.wire is None:
            self.wire = Wire.unix(self.socket_path)
            self.wire.greeting()
            self.wire.ehlo("floor.bench.test", lmtp=True)
        at = time.monotonic_ns()
        self.wire.send(f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode())
        self.wire.expect(250, "MAIL")
        self.wire.expect(250, "RCPT")
        self.wire.expect(354, "DATA")
        self.wire.send(data + b".\r\n")
        return at

    def finish(self):
        code, lines = self.wire.reply()
        if code != 250:
            raise BenchError(f"Dovecot refused the message: {' / '.join(lines)}")

    def close(self):
        if self.wire is not None:
            self.wire.close()
            self.wire = None


def stokend_submitter(node, user, ca_file, server_name):
    context = ssl.create_default_context(cafile=ca_file)

    def connect():
        wire = Wire.tcp(node.address, node.submission_port, tls_context=context,
                        server_name=server_name)
        wire.greeting()
        wire.ehlo("client.bench.test")
        wire.auth_plain(user, PASSWORD)
        return wire
    return Submitter(connect)


def postfix_submitter(port, ca_file, server_name):
    context = ssl.create_default_context(cafile=ca_file)

    def connect():
        wire = Wire.tcp("127.0.0.1", port)
        wire.greeting()
        wire.ehlo("client.bench.test")
        wire.starttls(context, server_name)
        wire.ehlo("client.bench.test")
        return wire
    return Submitter(connect)


# --- cases ----------------------------------------------------------------------

def received(headers):
    return [" ".join(r.split()) for r in headers.get_all("Received") or []]


def check_fast_lane(headers):
    rec = received(headers)
    if not any("by mx.b.test" in r and "with LMTPSA" in r for r in rec):
        return "no 'Received: ... by mx.b.test with LMTPSA' (B's Token Server): not the fast lane"
    return None


def check_fast_lane_sync(headers):
    # The SYNC variant's trace type is ESMTPS, or ESMTPSA after AUTH STOKEN
    # (rfcdraft §10), where LHLO gives LMTPSA. That it came through B's
    # Token Server and not its MX listener is checked in node A's log at the
    # end (a fast-lane line and 2.1.12 for every message).
    rec = received(headers)
    if any("with LMTPSA" in r for r in rec):
        return "came through the Token Server with LHLO (LMTPSA), not EHLO + SYNC"
    if not any("by mx.b.test" in r and re.search(r"with ESMTPSA? id ", r) for r in rec):
        return "no 'Received: ... by mx.b.test with ESMTPS(A)' (B's Token Server, SYNC form)"
    return None


def check_stokend_mx(headers):
    rec = received(headers)
    if any("with LMTPSA" in r for r in rec):
        return "came through a Token Server (LMTPSA), not by MX"
    if not any("by mx.b.test" in r and re.search(r"with ESMTPS?\b", r) for r in rec):
        return "no 'Received: ... by mx.b.test with ESMTP(S)' (B's MX listener)"
    if not any("by mx.a.test" in r and "with ESMTPSA" in r for r in rec):
        return "no 'Received: ... by mx.a.test with ESMTPSA' (A's submission)"
    return None


def check_postfix_chain(with_rspamd):
    def check(headers):
        rec = received(headers)
        if not any("by submission.isp.test (Postfix)" in r for r in rec):
            return "no Received by the submission Postfix"
        if not any("by mx.isp.test (Postfix)" in r for r in rec):
            return "no Received by the MX Postfix"
        scanned = headers.get("X-Rspamd-Queue-Id") is not None
        if with_rspamd and not scanned:
            return "no X-Rspamd-Queue-Id: rspamd did not scan it"
        if not with_rspamd and scanned:
            return "X-Rspamd-Queue-Id present: rspamd scanned it"
        return None
    return check


def check_floor(headers):
    rec = received(headers)
    if len(rec) != 1:
        return f"{len(rec)} Received fields, expected Dovecot's one"
    return None


class Case:
    def __init__(self, key, title, sender, recipient, user, check):
        self.key = key
        self.title = title
        self.sender = sender
        self.recipient = recipient
        self.user = user  # the Dovecot user
        self.check = check
        self.client = None
        self.folder = None
        self.samples_ms = []
        self.sent = 0  # messages sent since the measured phase began
        self.checked = 0

    def summary(self):
        ms = self.samples_ms
        if not ms:
            return None
        return {"n": len(ms), "p50": percentile(ms, 50), "p90": percentile(ms, 90),
                "p99": percentile(ms, 99), "max": max(ms), "mean": sum(ms) / len(ms)}


def make_cases():
    return {
        "a": Case("a", "fast lane, stokend A -> Token Server B -> Dovecot",
                  "alice@a.test", "bob@b.test", "bob", check_fast_lane),
        "b": Case("b", "normal path, stokend A -> MX -> stokend B -> Dovecot",
                  "carol@a.test", "dave@b.test", "dave", check_stokend_mx),
        "c": Case("c", "Postfix -> Postfix + rspamd milter -> LMTP Dovecot",
                  ISP_SENDER, "erin@c.test", "erin", check_postfix_chain(True)),
        "d": Case("d", "Postfix -> Postfix -> LMTP Dovecot (no rspamd)",
                  ISP_SENDER, "frank@d.test", "frank", check_postfix_chain(False)),
        "e": Case("e", "floor: LMTP straight into Dovecot",
                  ISP_SENDER, "gina@e.test", "gina", check_floor),
        "f": Case("f", "fast lane as (a), EHLO + MAIL ... SYNC dialect",
                  "alice@a.test", "sue@s.test", "sue", check_fast_lane_sync),
    }


# --- the run --------------------------------------------------------------------

class Bench:
    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.keys = [k for k in CASE_KEYS if k in args.cases]
        self.cases = make_cases()
        self.watch = None
        self.peers = []  # started, stopped in reverse order
        self.node_a = self.node_b = None
        self.dovecot = self.rspamd = self.redis = None
        self.postfix_sub = self.postfix_mx = None
        self.log_offsets = {}
        self.notes = {}

    # -- start-up --

    def start(self):
        args, work = self.args, self.work
        want_stokend = any(k in self.keys for k in "abf")
        want_postfix = any(k in self.keys for k in "cd")
        self.ca = PrivateCA(os.path.join(work, "ca")).create()
        mx_port = free_port(hosts=(NODE_A, NODE_B))
        sub_port = free_port(hosts=(NODE_A, NODE_B))
        while sub_port == mx_port:
            sub_port = free_port(hosts=(NODE_A, NODE_B))

        self.dnsmasq = DnsmasqPeer(
            os.path.join(work, "dnsmasq"),
            srv=[("_submissions._tcp.a.test", "tokens.a.test", sub_port, 0, 1),
                 ("_submissions._tcp.b.test", "tokens.b.test", sub_port, 0, 1),
                 ("_submissions._tcp.s.test", "tokens.b.test", sub_port, 0, 1)],
            # The ISP's sender domain as a legitimate one has it: an MX,
            # names that resolve, SPF and DMARC (rspamd checks them all).
            **ISP_DNS)
        self._start(self.dnsmasq)

        users = [self.cases[k].user for k in self.keys]
        self.dovecot = DovecotPeer(os.path.join(work, "dovecot"), users=users)
        self._start(self.dovecot)
        self.watch = FolderWatch()
        for key in self.keys:
            case = self.cases[key]
            case.folder = self.dovecot.create_maildir(case.user)
            self.watch.add(case.folder)

        if want_stokend and args.token_store == "redis":
            self.redis = RedisPeer(os.path.join(work, "redis"))
            self._start(self.redis)
        if want_stokend:
            self._start_nodes(mx_port, sub_port)
        if "c" in self.keys:
            self.rspamd = RspamdPeer(os.path.join(work, "rspamd"), self.dnsmasq.server,
                                     unix_socket=args.milter == "unix")
            log("starting rspamd (loading rules, compiling hyperscan: up to a few minutes)")
            if not self._start(self.rspamd):
                log("warning: rspamd's hyperscan database not loaded yet; scans use PCRE")
        if want_postfix:
            self._start_postfix()
        if "e" in self.keys:
            self.cases["e"].client = LmtpFloor(self.dovecot.socket_path)

    def _start(self, peer):
        self.peers.append(peer)
        return peer.start()

    def _start_nodes(self, mx_port, sub_port):
        ca_pem = self.ca.certificate
        common = [
            "delivery:",
            f"  mx_port: {mx_port}",
            "fast_lane:",
            "  enabled: true",
            f'  ca_file: "{ca_pem}"',
            "  mx_fallback: false",
            "  timeout: 30s",
            "  distribute_tokens: chat",
            # (a) in the draft's dialect, (f) in the COI plugin's.
            "  dialects: {b.test: lhlo, s.test: ehlo-sync}",
        ]
        nodes = {}
        for name, address, domains, users, routes in (
                ("a", NODE_A, ["a.test"], ["alice@a.test", "carol@a.test"], {}),
                ("b", NODE_B, ["b.test", "s.test"], ["bob@b.test", "dave@b.test", "sue@s.test"],
                 {"b.test": self.dovecot.unix_route, "s.test": self.dovecot.unix_route})):
            cert, key = self.ca.issue(f"tokens.{name}.test", [f"mx.{name}.test"])
            # --token-store redis: both nodes' stores in the one Redis, each
            # under a prefix of its own (they are two deployments, not nodes
            # of one: their secrets differ).
            store = ([] if self.redis is None else
                     ["tokens:", f'  store: {{backend: redis, url: "{self.redis.url}", '
                                 f'key_prefix: "{name}:"}}'])
            nodes[name] = StokendInstance(
                self.args.bin_dir, os.path.join(self.work, f"node-{name}"), mx_port,
                local_domains=domains, users=users, routes=routes,
                dns_servers=self.dnsmasq.server, extra_config=common + store,
                submission_port=sub_port, address=address, hostname=f"mx.{name}.test",
                mx_tls="starttls", certificate=cert, private_key=key, log_level="info")
        self.node_a, self.node_b = nodes["a"], nodes["b"]
        self._start(self.node_a)
        self._start(self.node_b)
        if not _wait_port(self.node_a.address, sub_port) or not _wait_port(self.node_b.address,
                                                                           sub_port):
            raise BenchError("a stokend node does not listen on its submission port")
        self.cases["a"].client = stokend_submitter(self.node_a, "alice@a.test", ca_pem,
                                                   "tokens.a.test")
        self.cases["b"].client = stokend_submitter(self.node_a, "carol@a.test", ca_pem,
                                                   "tokens.a.test")
        self.cases["f"].client = stokend_submitter(self.node_a, "alice@a.test", ca_pem,
                                                   "tokens.a.test")

    def _start_postfix(self):
        work = self.work
        mx_cert, mx_key = self.ca.issue("mx.isp.test")
        sub_cert, sub_key = self.ca.issue("submission.isp.test")
        mx_plain = free_port()
        mx_rspamd = free_port()
        while mx_rspamd == mx_plain:
            mx_rspamd = free_port()
        tls_server = lambda cert, key: {  # noqa: E731
            "smtpd_tls_security_level": "may",
            "smtpd_tls_cert_file": cert,
            "smtpd_tls_key_file": key,
        }
        mx_main = {
            "myhostname": "mx.isp.test",
            "mydomain": "isp.test",
            "virtual_mailbox_domains": "c.test d.test",
            "virtual_mailbox_maps": "inline:{ erin@c.test=erin, frank@d.test=frank }",
            "virtual_transport": f"lmtp:unix:{self.dovecot.socket_path}",
            "relayhost": "",
            **tls_server(mx_cert, mx_key),
            # The milter is set on the rspamd listener only (master.cf).
            "milter_protocol": "6",
            "milter_default_action": "tempfail",
            "milter_mail_macros": "i {mail_addr} {client_addr} {client_name} {auth_authen}",
        }
        extra_master = []
        if self.rspamd is not None:
            extra_master.append(f"127.0.0.1:{mx_rspamd} inet n - n - - smtpd "
                                f"-o smtpd_milters={self.rspamd.milter} "
                                "-o syslog_name=postfix-mx-rspamd")
        self.postfix_mx = PostfixPeer(os.path.join(work, "postfix-mx"), mx_plain, mode="custom",
                                      extra_main=mx_main, extra_master=extra_master)
        self._start(self.postfix_mx)
        if self.rspamd is not None and not _wait_port("127.0.0.1", mx_rspamd):
            raise BenchError(f"the MX Postfix does not listen on {mx_rspamd}")
        transports = [f"d.test=smtp:[127.0.0.1]:{mx_plain}"]
        if self.rspamd is not None:
            transports.append(f"c.test=smtp:[127.0.0.1]:{mx_rspamd}")
        sub_main = {
            "myhostname": "submission.isp.test",
            "mydomain": "isp.test",
            "transport_maps": "inline:{ " + ", ".join(transports) + " }",
            "relayhost": "",
            **tls_server(sub_cert, sub_key),
            "smtp_tls_security_level": "none" if self.args.relay_tls == "none" else "may",
            # As in Debian's default main.cf: resume TLS sessions to the MX.
            "smtp_tls_session_cache_database": "btree:${data_directory}/smtp_scache",
        }
        if self.args.relay_tls == "tls12":
            sub_main["smtp_tls_protocols"] = ">=TLSv1.2, <=TLSv1.2"
        self.postfix_sub = PostfixPeer(os.path.join(work, "postfix-submission"), free_port(),
                                       mode="custom", extra_main=sub_main)
        self._start(self.postfix_sub)
        for key in "cd":
            if key in self.keys:
                self.cases[key].client = postfix_submitter(self.postfix_sub.port,
                                                           self.ca.certificate,
                                                           "submission.isp.test")

    # -- one message --

    def send_one(self, case, number, record=True):
        data, message_id = chat_message(case.key, number, case.sender, case.recipient,
                                        self.args.size)
        stray = self.watch.drain()
        if stray:
            raise BenchError("unexpected deliveries: " + ", ".join(a.path for a in stray))
        started = case.client.submit(case.sender, case.recipient, data)
        case.sent += 1
        arrival = self.watch.wait(self.args.timeout)
        if arrival is None:
            raise BenchError(f"({case.key}) message {message_id} not stored within "
                             f"{self.args.timeout} s\n{self.diagnostics()}")
        case.client.finish()
        if arrival.directory != case.folder:
            raise BenchError(f"({case.key}) a message arrived in {arrival.directory}, "
                             f"expected {case.folder}")
        headers = read_headers(arrival.path)
        if headers.get("Message-ID", "").strip() != message_id:
            raise BenchError(f"({case.key}) stored {headers.get('Message-ID')}, "
                             f"expected {message_id}")
        problem = case.check(headers)
        if problem:
            raise BenchError(f"({case.key}) {case.title}: message {number} took another "
                             f"path: {problem}\n{self.diagnostics()}")
        case.checked += 1
        latency_ms = (arrival.at_ns - started) / 1e6
        if record:
            case.samples_ms.append(latency_ms)
        return latency_ms, headers

    # -- the fast lane's tokens, through the protocol --

    def establish_fast_lane(self, case):
        """alice's token for case.recipient, through the protocol."""
        a, b = self.node_a, self.node_b
        remote, remote_domain = case.recipient, case.recipient.split("@", 1)[1]
        log(f"fast lane ({case.key}): alice -> {remote} by MX with a Submission-Token header")
        self.send_one(_with_check(case, check_stokend_mx), "setup-1", record=False)
        wallet = stokenctl(b, "token", "list", "wallet", remote)
        log(f"  {remote}'s wallet on B: {wallet.strip() or '(empty)'}")
        log(f"fast lane ({case.key}): {remote} -> alice, which should take the fast lane "
            "with that token")
        alice_new = os.path.join(a.dir, "var", "mail", "a.test", "alice", "new")
        before = _count(alice_new)
        outcomes_before = _outcomes(b, "alice@a.test")
        reply = stokend_submitter(b, remote, self.ca.certificate, "tokens.b.test")
        data, _ = chat_message(f"reply-{case.key}", 1, remote, "alice@a.test", self.args.size)
        reply.submit(remote, "alice@a.test", data)
        reply.close()
        if not wait_until(lambda: _count(alice_new) > before, self.args.timeout):
            raise BenchError(f"{remote}'s reply did not reach alice\n" + self.diagnostics())
        outcome = _wait_value(lambda: _last_outcome(b, "alice@a.test")
                              if _outcomes(b, "alice@a.test") > outcomes_before else None, 10)
        log(f"  B's queue: {outcome or '(no outcome line)'}")
        alice_wallet = stokenctl(a, "token", "list", "wallet", "alice@a.test")
        log(f"  alice's wallet on A: {alice_wallet.strip() or '(empty)'}")
        self.notes.setdefault("setup", {})[case.key] = {"reply_outcome": outcome}
        if not outcome or " 2.1.1" not in outcome:
            raise BenchError(f"{remote}'s reply did not take the fast lane (expected "
                             f"2.1.12/2.1.13 in B's queue log): {outcome}\n{self.diagnostics()}")
        log(f"fast lane ({case.key}): alice -> {remote}, expecting the fast lane now "
            f"({remote_domain}: {'EHLO + SYNC' if case.key == 'f' else 'LHLO'})")
        self.send_one(case, "setup-2", record=False)
        # A logs the outcome once B has answered, just after the message is
        # stored: wait for it, so it is not counted with the measured ones.
        if not wait_until(lambda: _outcomes(a, remote) >= 2, 10):
            raise BenchError("node A logged no outcome for the set-up messages\n"
                             + self.diagnostics())

    # -- the measured phase --

    def run(self):
        args = self.args
        for key in "af":
            if key in self.keys:
                self.establish_fast_lane(self.cases[key])
        # Counted from here: everything each case sends from now on.
        for case in self.cases.values():
            case.sent = 0
            case.checked = 0
        for name, path in self._logs().items():
            self.log_offsets[name] = _size(path)
        log(f"warm-up: {args.warmup} messages per case")
        for key in self.keys:
            for number in range(args.warmup):
                self.send_one(self.cases[key], f"warm{number}", record=False)
                time.sleep(args.gap_ms / 1000)
        rounds = max(1, min(args.rounds, args.n))
        per_round = [args.n // rounds + (1 if r < args.n % rounds else 0) for r in range(rounds)]
        started = time.monotonic()
        for r in range(rounds):
            order = self.keys[r % len(self.keys):] + self.keys[:r % len(self.keys)]
            for key in order:
                case = self.cases[key]
                for i in range(per_round[r]):
                    self.send_one(case, f"r{r}m{i}")
                    time.sleep(args.gap_ms / 1000)
            done = sum(per_round[:r + 1])
            line = ", ".join(f"{k} p50 {percentile(self.cases[k].samples_ms, 50):.1f}"
                             for k in self.keys)
            log(f"round {r + 1}/{rounds}: {done} per case, {time.monotonic() - started:.0f} s;"
                f" ms so far: {line}")
        self.verify_logs()

    # -- path checks from the servers' logs --

    def _logs(self):
        logs = {}
        if self.node_a:
            logs["node_a"] = self.node_a.log_path
            logs["node_b"] = self.node_b.log_path
        if self.postfix_mx:
            logs["postfix_mx"] = self.postfix_mx.maillog
            logs["postfix_sub"] = self.postfix_sub.maillog
        if self.rspamd:
            logs["rspamd"] = self.rspamd.log_path
        return logs

    def _new_lines(self, name):
        path = self._logs()[name]
        with open(path, "rb") as f:
            f.seek(self.log_offsets.get(name, 0))
            return f.read().decode("utf-8", "replace").splitlines()

    def verify_logs(self, timeout=15):
        """The servers log a delivery just after it is stored: the last
        message's lines may take a moment, so the check is repeated for a
        bounded time until it passes."""
        deadline = time.monotonic() + timeout
        while True:
            results, problems = self._check_logs()
            if not problems or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        self.path_results = results
        if problems:
            raise BenchError("path check failed:\n  " + "\n  ".join(problems))

    def _check_logs(self):
        results, problems = {}, []
        if self.node_a:
            lines = self._new_lines("node_a")
            outcome = re.compile(r"queue: \S+ to=<([^>]+)> (\S+) after (\d+) attempts: (.*)")
            for key, fast in (("a", True), ("b", False), ("f", True)):
                if key not in self.keys:
                    continue
                case = self.cases[key]
                found = [m for m in map(outcome.search, lines) if m and m.group(1) == case.recipient]
                good = [m for m in found if m.group(2) == "delivered" and m.group(3) == "1"
                        and m.group(4).startswith("250 ")
                        and ((" 2.1.12 " in m.group(4) or " 2.1.13 " in m.group(4)) == fast)]
                lane = [ln for ln in lines if "fast-lane: " in ln
                        and f"to=<{case.recipient}>" in ln and " delivered " in ln]
                results[key] = {"queue_outcomes": len(found), "as_expected": len(good),
                                "fast_lane_lines": len(lane)}
                if len(found) != case.sent or len(good) != case.sent:
                    bad = [m.group(0) for m in found if m not in good][:3]
                    problems.append(f"({key}) node A logged {len(found)} outcomes for "
                                    f"{case.recipient}, {len(good)} as expected, for {case.sent} "
                                    f"messages sent; e.g. {bad}")
                if fast and len(lane) != case.sent:
                    problems.append(f"({key}) node A logged {len(lane)} fast-lane deliveries "
                                    f"for {case.sent} messages")
                if not fast and lane:
                    problems.append(f"({key}) node A logged {len(lane)} fast-lane deliveries "
                                    "on the normal path")
        if self.postfix_mx:
            mx_lines = self._new_lines("postfix_mx")
            sub_lines = self._new_lines("postfix_sub")
            scans = self._new_lines("rspamd") if self.rspamd else []
            for key in "cd":
                if key not in self.keys:
                    continue
                case = self.cases[key]
                rcpt = f"to=<{case.recipient}>"
                relayed = [ln for ln in sub_lines if rcpt in ln and "status=sent" in ln]
                stored = [ln for ln in mx_lines if rcpt in ln and "status=sent" in ln
                          and "lmtp" in ln]
                other = [ln for ln in sub_lines + mx_lines
                         if rcpt in ln and "status=" in ln and "status=sent" not in ln]
                scanned = [ln for ln in scans if "rspamd_task_write_log" in ln
                           and f"rcpts: <{case.recipient}>" in ln]
                results[key] = {"relayed": len(relayed), "stored": len(stored),
                                "rspamd_scans": len(scanned)}
                if len(relayed) != case.sent or len(stored) != case.sent or other:
                    problems.append(f"({key}) Postfix logged {len(relayed)} relayed and "
                                    f"{len(stored)} stored for {case.sent} messages; "
                                    f"other outcomes: {other[:3]}")
                expected_scans = case.sent if key == "c" else 0
                if len(scanned) != expected_scans:
                    problems.append(f"({key}) rspamd scanned {len(scanned)} messages for "
                                    f"{case.recipient}, expected {expected_scans}")
                if key == "c":
                    actions = {}
                    for ln in scanned:
                        m = re.search(r"\(default: \w+ \(([^)]+)\)", ln)
                        actions[m.group(1) if m else "?"] = actions.get(
                            m.group(1) if m else "?", 0) + 1
                    results[key]["rspamd_actions"] = actions
                    times = [float(m.group(1)) for m in
                             (re.search(r"time: ([\d.]+)ms", ln) for ln in scanned) if m]
                    if times:
                        results[key]["rspamd_scan_ms_p50"] = round(percentile(times, 50), 2)
                        results[key]["rspamd_scan_ms_p99"] = round(percentile(times, 99), 2)
                    if scanned:
                        m = re.search(r"\[([-\d.]+)/[-\d.]+\] \[([^\]]*)\]", scanned[-1])
                        if m:
                            results[key]["rspamd_last_score"] = m.group(1)
                            results[key]["rspamd_last_symbols"] = m.group(2)
        for key in self.keys:
            case = self.cases[key]
            results.setdefault(key, {})["trace_headers_ok"] = case.checked
            if case.checked != case.sent:
                problems.append(f"({key}) {case.checked} of {case.sent} messages checked")
        return results, problems

    def diagnostics(self):
        out = []
        for name, peer in (("node A", self.node_a), ("node B", self.node_b)):
            if peer is not None:
                out.append(f"--- {name} log (last lines)\n{peer.log_tail(12)}")
        for name, peer in (("submission Postfix", self.postfix_sub),
                           ("MX Postfix", self.postfix_mx)):
            if peer is not None:
                out.append(f"--- {name} maillog (last lines)\n{peer._log_tail(8)}")
        if self.rspamd is not None:
            out.append(f"--- rspamd log (last lines)\n{self.rspamd.log_tail(4)}")
        return "\n".join(out)

    def stop(self):
        for case in self.cases.values():
            if case.client is not None:
                try:
                    case.client.close()
                except Exception:  # noqa: BLE001 - stopping anyway
                    pass
        if self.watch is not None:
            self.watch.close()
        for peer in reversed(self.peers):
            try:
                peer.stop()
            except Exception as e:  # noqa: BLE001 - stop the others anyway
                log(f"stopping {type(peer).__name__}: {e}")


# --- small helpers ------------------------------------------------------------

def _with_check(case, check):
    """The same case with another path check (for the set-up message)."""
    other = Case(case.key, case.title, case.sender, case.recipient, case.user, check)
    other.client, other.folder = case.client, case.folder
    return other


def stokenctl(node, *args):
    r = subprocess.run([node.stokenctl, "--config", node.config, *args], cwd=node.dir,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    return r.stdout if r.returncode == 0 else f"(stokenctl {' '.join(args)}: {r.stderr.strip()})"


def _last_outcome(node, recipient):
    try:
        with open(node.log_path, errors="replace") as f:
            lines = [ln for ln in f if f"to=<{recipient}>" in ln and "queue: " in ln
                     and " attempts: " in ln]
    except OSError:
        return None
    return lines[-1].strip() if lines else None


def _outcomes(node, recipient):
    try:
        with open(node.log_path, errors="replace") as f:
            return sum(1 for ln in f if f"to=<{recipient}>" in ln and "queue: " in ln
                       and " attempts: " in ln)
    except OSError:
        return 0


def _wait_value(function, timeout, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = function()
        if value is not None or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def _wait_port(host, port, timeout=30):
    return wait_for_port(port, timeout, host=host)


def _count(directory):
    try:
        return len(os.listdir(directory))
    except FileNotFoundError:
        return 0


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


# --- report ---------------------------------------------------------------------

def report(bench, args, conditions):
    keys = bench.keys
    stats = {k: bench.cases[k].summary() for k in keys}
    print()
    print(f"End-to-end latency, 250 at submission -> stored in Dovecot's Maildir new/ "
          f"(inotify); {args.size}-byte chat messages, one at a time")
    print(f"{'case':<58} {'n':>5} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8} {'mean':>8}")
    for k in keys:
        s = stats[k]
        print(f"({k}) {bench.cases[k].title:<54} {s['n']:>5} {s['p50']:>8.2f} {s['p90']:>8.2f} "
              f"{s['p99']:>8.2f} {s['max']:>8.2f} {s['mean']:>8.2f}")
    print("(ms; (e) runs from sending MAIL on a warm LMTP connection)")
    goals = {}
    if "a" in keys and "e" in keys:
        a99, e99 = stats["a"]["p99"], stats["e"]["p99"]
        met = a99 <= e99 + 5
        goals["a_p99_le_e_p99_plus_5ms"] = met
        print(f"goal (a) p99 <= (e) p99 + 5 ms: {a99:.2f} vs {e99 + 5:.2f} ms "
              f"({a99 - e99:+.2f} ms over the floor): {'met' if met else 'MISSED'}")
    if "a" in keys and "c" in keys:
        a99, c99 = stats["a"]["p99"], stats["c"]["p99"]
        met = a99 * 10 <= c99
        goals["a_p99_le_c_p99_over_10"] = met
        print(f"goal (a) p99 <= (c) p99 / 10: {a99:.2f} / {c99:.2f} ms = {a99 / c99:.3f} "
              f"(1/{c99 / a99:.1f}): {'met' if met else 'MISSED'}")
    pairs = [("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("d", "c"), ("a", "e"),
             ("f", "e"), ("f", "a")]
    ratio_lines = []
    for x, y in pairs:
        if x in keys and y in keys:
            ratio_lines.append(f"{x}/{y} p50 {stats[x]['p50'] / stats[y]['p50']:.3f} "
                               f"p99 {stats[x]['p99'] / stats[y]['p99']:.3f}")
    if ratio_lines:
        print("ratios: " + "; ".join(ratio_lines))
    if "f" in keys and "e" in keys:
        f99, e99 = stats["f"]["p99"], stats["e"]["p99"]
        met = f99 <= e99 + 5
        goals["f_p99_le_e_p99_plus_5ms"] = met
        print(f"goal (f) p99 <= (e) p99 + 5 ms: {f99:.2f} vs {e99 + 5:.2f} ms "
              f"({f99 - e99:+.2f} ms over the floor): {'met' if met else 'MISSED'}")
    if "a" in keys and "f" in keys and "e" in keys:
        print("dialects over the floor (e): " + "; ".join(
            f"{name} p50 {stats[k]['p50']:.2f} ms ({stats[k]['p50'] / stats['e']['p50']:.2f}x, "
            f"{stats[k]['p50'] - stats['e']['p50']:+.2f}), p99 {stats[k]['p99']:.2f} ms "
            f"({stats[k]['p99'] / stats['e']['p99']:.2f}x, "
            f"{stats[k]['p99'] - stats['e']['p99']:+.2f})"
            for k, name in (("a", "LHLO"), ("f", "EHLO + SYNC"))))
    if "c" in keys and "d" in keys:
        print(f"rspamd's share: (c) - (d) p50 {stats['c']['p50'] - stats['d']['p50']:+.2f} ms, "
              f"p99 {stats['c']['p99'] - stats['d']['p99']:+.2f} ms")
    print("paths verified:")
    for k in keys:
        print(f"  ({k}) {json.dumps(bench.path_results.get(k, {}), sort_keys=True)}")
    print(f"conditions: {conditions['machine']}; load average at end "
          f"{conditions['load_end']:.2f}; fsync p50/p99 before "
          f"{conditions['fsync_before']['file_p50_ms']:.2f}/"
          f"{conditions['fsync_before']['file_p99_ms']:.2f} ms, after "
          f"{conditions['fsync_after']['file_p50_ms']:.2f}/"
          f"{conditions['fsync_after']['file_p99_ms']:.2f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"stats_ms": stats, "goals": goals, "paths": bench.path_results,
                       "conditions": conditions, "notes": bench.notes,
                       "samples_ms": {k: bench.cases[k].samples_ms for k in keys},
                       "args": vars(args)}, f, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=500, help="measured messages per case "
                        "(default 500)")
    parser.add_argument("--rounds", type=int, default=10,
                        help="rounds alternating between the cases (default 10)")
    parser.add_argument("--warmup", type=int, default=5,
                        help="unmeasured messages per case first (default 5)")
    parser.add_argument("--size", type=int, default=1024, help="body bytes (default 1024)")
    parser.add_argument("--gap-ms", type=float, default=50,
                        help="pause after each message is stored (default 50)")
    parser.add_argument("--timeout", type=float, default=30,
                        help="seconds one message may take before the run fails (default 30)")
    parser.add_argument("--milter", choices=("inet", "unix"), default="inet",
                        help="(c): Postfix reaches rspamd over loopback TCP, as rspamd's "
                        "quick start sets it up (default), or over a unix socket")
    parser.add_argument("--relay-tls", choices=("tls13", "tls12", "none"), default="tls13",
                        help="(c), (d): STARTTLS from the submission Postfix to the MX "
                        "Postfix as negotiated by default (TLS 1.3), capped at TLS 1.2, or "
                        "none")
    parser.add_argument("--token-store", choices=("sqlite", "redis"), default="sqlite",
                        help="(a), (b): the nodes' token stores in their SQLite files "
                        "(default) or in a private redis-server (appendfsync always), "
                        "verification cached as the daemon does by default")
    parser.add_argument("--cases", default=DEFAULT_CASES,
                        help="which of abcdef to run (default abcde; afe compares the "
                        "Token Server's two dialects with the floor)")
    parser.add_argument("--bin-dir", default=DEFAULT_BIN_DIR,
                        help="where stokend and stokenctl are (default build/)")
    parser.add_argument("--json", help="also write the figures and samples to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (Postfix's master, Dovecot and rspamd start as root)")
    if not args.cases or set(args.cases) - set(CASE_KEYS):
        sys.exit("--cases: letters from abcdef")
    if args.n < 1:
        sys.exit("-n must be at least 1")
    install_signal_cleanup()

    work = tempfile.mkdtemp(prefix="stokend-fast-lane-latency-")
    os.chmod(work, 0o755)
    bench = Bench(args, work)
    code = 0
    try:
        conditions = {"machine": machine_note(),
                      "fsync_before": fsync_probe(work)}
        log(conditions["machine"])
        bench.start()
        bench.run()
        conditions["fsync_after"] = fsync_probe(work)
        conditions["load_end"] = load1()
        report(bench, args, conditions)
    except (BenchError, RuntimeError, OSError) as e:
        log(f"FAILED: {e}")
        code = 1
    finally:
        bench.stop()
        if args.keep:
            log(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
