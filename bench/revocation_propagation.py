#!/usr/bin/python3
"""How long a revocation on one stokend node takes to hold on another that
shares its token store in Redis (README "Several nodes: tokens on Redis").

One machine, one run: a private redis-server (unix socket in the work
folder, appendonly yes, appendfsync always) and two stokend nodes for
example.test with tokens.store on it and one secrets file, each with an
implicit-TLS submission listener (the Token Server). Node 2 runs with the
verification cache kept current over pub/sub (the default) unless
--no-cache.

Each round uses a pair of its own (bobN@remote.example -> alice), so that a
revocation mark of an earlier round (whole seconds) can never decide a
later one:

  1. alice, logged in on node 1 (a warm submission session), gets a
     temporary token for bobN with GENSTOKEN TEMP;
  2. a Remote Client opens a Token Server session on node 2 with that
     token (LHLO, AUTH STOKEN: node 2 has verified it, and cached what it
     read) and sends MAIL FROM:<bobN>;
  3. alice sends REVSTOKEN bobN on node 1; the clock starts as the command
     leaves, and is read again when node 1's 250 arrives;
  4. the Remote Client probes node 2 with RCPT TO:<alice> STOKEN=<token>
     (RSET and MAIL again after each 250) until node 2 refuses it
     (550 5.7.30).

Printed: p50/p99/max of "REVSTOKEN sent -> node 2 refuses" and of "node 1's
250 -> node 2 refuses", and how many probes node 2 still accepted after
node 1 had answered 250. Goal: p99 within 100 ms.
"""

import argparse
import base64
import os
import select
import shutil
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from common import (DEFAULT_BIN_DIR, free_port, install_signal_cleanup, log,  # noqa: E402
                    machine_note, percentile)
from redis_peer import REDIS_SERVER, RedisPeer  # noqa: E402
from smtp_wire import Wire  # noqa: E402
from stokend_instance import PASSWORD, USER, StokendInstance  # noqa: E402

def tls_context():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the nodes' self-signed certificates
    return context


def submission_session(node, context):
    wire = Wire.tcp(node.address, node.submission_port, tls_context=context,
                    server_name=node.hostname)
    wire.greeting()
    wire.ehlo("client.example.test")
    wire.auth_plain(USER, PASSWORD)
    return wire


def token_session(node, context, token):
    wire = Wire.tcp(node.address, node.submission_port, tls_context=context,
                    server_name=node.hostname)
    wire.greeting()
    wire.ehlo("remote.example", lmtp=True)
    credentials = base64.b64encode(f"{USER}\0{token}".encode()).decode()
    wire.command(f"AUTH STOKEN {credentials}", 235)
    return wire


def readable(wire):
    """Whether a reply is waiting, without blocking."""
    if b"\r\n" in wire.buffer or wire.sock.pending():
        return True
    return bool(select.select([wire.sock], [], [], 0)[0])


def one_round(number, alice, context, node2, probe_limit):
    """Returns (seconds from REVSTOKEN sent, seconds from its 250 or None
    when node 2 refused before that 250 was read, probes accepted after the
    250)."""
    remote = f"bob{number}@remote.example"
    lines = alice.command(f"GENSTOKEN TEMP {remote}", 250)
    token = next(word for word in lines[0].split() if word.startswith("1-created:"))
    probe = token_session(node2, context, token)
    try:
        probe.command(f"MAIL FROM:<{remote}>", 250)
        started = time.perf_counter()
        alice.send(f"REVSTOKEN {remote}\r\n".encode())
        acknowledged = None
        accepted_after_ack = 0
        for _ in range(probe_limit):
            if acknowledged is None and readable(alice):
                alice.expect(250, "REVSTOKEN")
                acknowledged = time.perf_counter()
            probe.send(f"RCPT TO:<{USER}> STOKEN={token}\r\n".encode())
            code, lines = probe.reply()
            now = time.perf_counter()
            if code == 550:
                if acknowledged is None:  # refused before node 1's 250 was read
                    alice.expect(250, "REVSTOKEN")
                    return now - started, None, 0
                return now - started, now - acknowledged, accepted_after_ack
            if code != 250:
                raise RuntimeError(f"probe: unexpected reply {' / '.join(lines)}")
            if acknowledged is not None:
                accepted_after_ack += 1
            probe.send(f"RSET\r\nMAIL FROM:<{remote}>\r\n".encode())
            probe.expect(250, "RSET")
            probe.expect(250, "MAIL")
        raise RuntimeError(f"node 2 still accepted the token after {probe_limit} probes")
    finally:
        probe.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin-dir", default=DEFAULT_BIN_DIR)
    parser.add_argument("--rounds", type=int, default=200, help="revocations (default 200)")
    parser.add_argument("--no-cache", action="store_true",
                        help="node 2 with tokens.store.cache: false (every check asks Redis)")
    parser.add_argument("--probe-limit", type=int, default=100000,
                        help="give up a round after this many probes (default 100000)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    install_signal_cleanup()
    if not os.access(REDIS_SERVER, os.X_OK):
        log("redis-server is not installed (Debian package redis-server)")
        return 1

    work = tempfile.mkdtemp(prefix="stokend-revocation-")
    redis = None
    nodes = []
    try:
        redis = RedisPeer(os.path.join(work, "redis"))
        redis.start()
        socket_path = redis.socket_path
        secrets = os.path.join(work, "token-secrets")
        for number in (1, 2):
            cache = "false" if (number == 2 and args.no_cache) else "true"
            nodes.append(StokendInstance(
                args.bin_dir, os.path.join(work, f"node{number}"), free_port(),
                submission_port=free_port(), hostname=f"node{number}.example.test",
                extra_config=["tokens:",
                              f'  secrets_file: "{secrets}"',
                              f'  store: {{backend: redis, url: "unix:{socket_path}", '
                              f"cache: {cache}}}"]))
        for node in nodes:  # node 1 creates the secrets file node 2 reads
            node.start()
        context = tls_context()
        log(machine_note())
        alice = submission_session(nodes[0], context)
        from_sent, from_ack, late = [], [], 0
        for number in range(args.rounds):
            sent, acked, accepted = one_round(number, alice, context, nodes[1], args.probe_limit)
            from_sent.append(sent * 1000)
            if acked is not None:
                from_ack.append(acked * 1000)
            late += accepted
        alice.close()

        print()
        print(f"Revocation propagation between two nodes on one Redis, {args.rounds} rounds, "
              f"node 2 {'without' if args.no_cache else 'with'} the verification cache")
        for name, samples in (("REVSTOKEN sent -> node 2 refuses", from_sent),
                              ("node 1's 250 -> node 2 refuses", from_ack)):
            if samples:
                print(f"{name:<36} p50 {percentile(samples, 50):7.2f} ms  "
                      f"p99 {percentile(samples, 99):7.2f} ms  max {max(samples):7.2f} ms  "
                      f"({len(samples)} rounds)")
        print(f"rounds where node 2 refused before node 1's 250 was read: "
              f"{args.rounds - len(from_ack)}")
        print(f"probes node 2 accepted after node 1's 250: {late}")
        goal = percentile(from_sent, 99) <= 100
        print(f"goal p99 <= 100 ms: {'met' if goal else 'missed'}")
        return 0
    finally:
        for node in nodes:
            node.stop()
        if redis is not None:
            redis.stop()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
