#!/usr/bin/python3
"""The latency rspamd as a milter adds to a message: stokend against Postfix,
side by side in one run, on the same messages.

Four receivers, all final delivery into a Maildir on this machine, all on
loopback:

  s   stokend, MX listener, `milters: [rspamd]`
  s0  stokend, the same without milters
  p   Postfix (virtual(8) into a Maildir), smtpd_milters = rspamd
  p0  Postfix, the same without the milter

One private rspamd (proxy worker in milter mode, scanning by itself, Debian's
rules as shipped: bench/lib/rspamd_peer.py) serves s and p; a private dnsmasq
is its only resolver (NXDOMAIN for everything, so every lookup is answered at
once).

A measurement is one whole SMTP session on a fresh connection, as an MX sees
mail: connect, the greeting, EHLO, MAIL, RCPT, DATA, the message, the 250,
QUIT. The time runs from connect() to reading the 250 after the data: Postfix
talks to its milter during the session (CONNECT at connect, HELO, MAIL, RCPT
as they come), stokend at the end of the data, so only the whole session
compares them fairly. The milter's cost is the difference between a receiver
and its twin without milter, at the median and the 90th percentile; the goal
is stokend's difference no larger than Postfix's (ratio <= 1).

Rounds alternate between the four receivers in rotating order so that noise
hits them alike; every measured message is checked to have been scanned
(X-Rspamd-Queue-Id in the stored copy for s and p, none for s0 and p0).

    bench/milter_latency.py [-n 200] [--rounds 10] [--bin-dir build] [--json FILE]
"""

import argparse
import json
import os
import secrets
import socket
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from common import (DEFAULT_BIN_DIR, free_port, install_signal_cleanup,  # noqa: E402
                    log, machine_note, percentile)
from dnsmasq_peer import DnsmasqPeer  # noqa: E402
from postfix_peer import PostfixPeer  # noqa: E402
from rspamd_peer import RspamdPeer  # noqa: E402
from stokend_instance import StokendInstance  # noqa: E402

RECIPIENT = "alice@example.test"
BODY = ("Hello Alice,\r\n\r\nthe minutes of Tuesday's meeting are below; the next one\r\n"
        "is on Thursday at ten in the small room.\r\n\r\nBest,\r\nBob\r\n") * 8


def message(marker):
    return (f"From: Bob <bob@example.org>\r\nTo: <{RECIPIENT}>\r\n"
            f"Subject: minutes {marker}\r\nMessage-ID: <{marker}@example.org>\r\n"
            f"Date: Mon, 7 Dec 2026 12:00:00 +0000\r\n\r\n{BODY}").encode()


def read_reply(sock, buffer):
    while True:
        end = buffer.find(b"\r\n")
        while end != -1:
            line = bytes(buffer[:end])
            del buffer[:end + 2]
            if len(line) >= 4 and line[3:4] == b" ":
                return int(line[:3]), line
            end = buffer.find(b"\r\n")
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed")
        buffer.extend(chunk)


def one_session(port, marker):
    """Seconds from connect() to the 250 after the data."""
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        buffer = bytearray()
        steps = [None, b"EHLO client.example.org\r\n", b"MAIL FROM:<bob@example.org>\r\n",
                 f"RCPT TO:<{RECIPIENT}>\r\n".encode(), b"DATA\r\n"]
        for step in steps:
            if step:
                sock.sendall(step)
            code, line = read_reply(sock, buffer)
            if code >= 400:
                raise RuntimeError(f"{step!r}: {line!r}")
        sock.sendall(message(marker) + b".\r\n")
        code, line = read_reply(sock, buffer)
        elapsed = time.perf_counter() - start
        if code != 250:
            raise RuntimeError(f"end of data: {line!r}")
        sock.sendall(b"QUIT\r\n")
    return elapsed


def stored_with(maildir_new, marker, timeout=30):
    deadline = time.monotonic() + timeout
    needle = f"minutes {marker}".encode()
    while time.monotonic() < deadline:
        try:
            for name in os.listdir(maildir_new):
                with open(os.path.join(maildir_new, name), "rb") as f:
                    data = f.read()
                if needle in data:
                    return data
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"message {marker} not stored in {maildir_new}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=200, help="measured messages per receiver")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--bin-dir", default=DEFAULT_BIN_DIR)
    parser.add_argument("--json")
    args = parser.parse_args()
    install_signal_cleanup()
    work = tempfile.mkdtemp(prefix="milter-latency-")
    os.chmod(work, 0o755)  # Postfix's and rspamd's users reach their folders
    started = []
    try:
        dns = DnsmasqPeer(os.path.join(work, "dns"), hosts=[("probe.test", "127.0.0.1")])
        dns.start()
        started.append(dns)
        rspamd = RspamdPeer(os.path.join(work, "rspamd"), dns.server)
        log("starting rspamd (loading rules, compiling hyperscan: up to a few minutes)")
        if not rspamd.start():
            log("warning: rspamd's hyperscan database not loaded yet; scans use PCRE")
        started.append(rspamd)
        receivers = {}
        for name, milter in (("s", True), ("s0", False)):
            extra = [f"milters:\n  - {{name: rspamd, address: \"{rspamd.milter}\", "
                     "roles: [mx], command_timeout: 60s}"] if milter else []
            instance = StokendInstance(args.bin_dir, os.path.join(work, name), free_port(),
                                       users=[RECIPIENT], dns_servers=dns.server,
                                       extra_config=extra)
            instance.start()
            started.append(instance)
            receivers[name] = (instance.mx_port, instance.maildir_new, milter)
        for name, milter in (("p", True), ("p0", False)):
            extra = {"smtpd_milters": rspamd.milter, "milter_default_action": "tempfail",
                     "milter_protocol": "6"} if milter else {}
            peer = PostfixPeer(os.path.join(work, name), free_port(), extra_main=extra)
            peer.prepare()
            peer.start()
            started.append(peer)
            receivers[name] = (peer.port, peer.maildir_new, milter)
        order = list(receivers)
        times = {name: [] for name in order}
        per_round = max(1, args.n // args.rounds)
        for name in order:  # warm-up: connections, rspamd's caches
            for _ in range(args.warmup):
                one_session(receivers[name][0], secrets.token_hex(6))
        for round_number in range(args.rounds):
            rotated = order[round_number % 4:] + order[:round_number % 4]
            for name in rotated:
                port, maildir_new, milter = receivers[name]
                for _ in range(per_round):
                    marker = secrets.token_hex(6)
                    times[name].append(one_session(port, marker))
                    stored = stored_with(maildir_new, marker)
                    if (b"X-Rspamd-Queue-Id:" in stored) != milter:
                        raise RuntimeError(f"{name}: message {marker} scanned={not milter}")
            log(f"round {round_number + 1}/{args.rounds} done")
        result = {"machine": machine_note(), "messages_per_receiver": per_round * args.rounds}
        for name in order:
            values = sorted(times[name])
            result[name] = {"p50_ms": percentile(values, 50) * 1000,
                            "p90_ms": percentile(values, 90) * 1000}
        for p in ("p50_ms", "p90_ms"):
            stokend_added = result["s"][p] - result["s0"][p]
            postfix_added = result["p"][p] - result["p0"][p]
            result[f"added_{p}"] = {"stokend": stokend_added, "postfix": postfix_added,
                                    "ratio": stokend_added / postfix_added
                                    if postfix_added > 0 else None}
        print(json.dumps(result, indent=2))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2)
    finally:
        for peer in reversed(started):
            try:
                peer.stop()
            except Exception as error:  # noqa: BLE001 - stop the others all the same
                log(f"stopping {peer}: {error}")


if __name__ == "__main__":
    main()
