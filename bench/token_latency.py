#!/usr/bin/python3
"""Synchronous token delivery latency into Dovecot, beside Dovecot alone.

One machine, one run, one private Dovecot (LMTP, Maildir) as the mailstore:

  token     a Remote Client -> stokend's Token Server (implicit TLS, LHLO,
            AUTH STOKEN once per session) -> LMTP over a unix socket ->
            Dovecot. Each transaction is MAIL, RCPT ... STOKEN=<permanent
            token>, DATA pipelined, then the message; the time runs from
            sending MAIL to reading "250 2.1.12 <addr> <id> ...", which
            stokend sends only after Dovecot committed the message.
  floor     the same client speaking LMTP straight to the same Dovecot over
            TCP (no TLS): the mailstore's own cost, which no relay can beat.
  session   as token, but a new TCP + TLS connection, LHLO and AUTH STOKEN
            for every message (a Remote Client without a warm connection).

token and floor run in alternating rounds (--rounds) so machine noise hits
both alike; p50/p90/p99 are over all --count deliveries of each. Then
`smtp-source -L -d -m COUNT` sends the same number of messages straight
into Dovecot over one connection; its mean per message (elapsed / count) is
Postfix's view of the same floor.

Latency is measured on its own, never right after a throughput run: the
disk may still be writing back.
"""

import argparse
import base64
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from common import (DEFAULT_BIN_DIR, free_port, install_signal_cleanup, log,  # noqa: E402
                    machine_note, percentile)
from dovecot_peer import DovecotPeer  # noqa: E402
from stokend_instance import StokendInstance  # noqa: E402

SENDER = "bob@remote.example"
RECIPIENT = "alice@example.test"


class Wire:
    """A line-oriented SMTP/LMTP client over a socket (TLS or not)."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        """Reads one (possibly multi-line) reply; returns (code, last line)."""
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise RuntimeError("connection closed")
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), line.decode(errors="replace")

    def expect(self, code):
        got, line = self.reply()
        if got != code:
            raise RuntimeError(f"expected {code}, got: {line}")
        return line

    def close(self):
        try:
            self.send(b"QUIT\r\n")
            self.reply()
        except (OSError, RuntimeError):
            pass
        self.sock.close()


def message(size, number):
    body_line = b"x" * 76 + b"\r\n"
    body = body_line * max(1, size // len(body_line))
    return (f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: latency {number}\r\n"
            f"Message-ID: <latency-{number}-{time.time_ns()}@remote.example>\r\n\r\n"
            ).encode() + body


def token_session(port, token, context):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock = context.wrap_socket(raw, server_hostname="mx.example.test")
    wire = Wire(sock)
    wire.expect(220)
    wire.send(b"LHLO remote.example\r\n")
    wire.expect(250)
    credentials = base64.b64encode(f"{RECIPIENT}\0{token}".encode()).decode()
    wire.send(f"AUTH STOKEN {credentials}\r\n".encode())
    wire.expect(235)
    return wire


def lmtp_session(port):
    wire = Wire(socket.create_connection(("127.0.0.1", port), timeout=10))
    wire.expect(220)
    wire.send(b"LHLO remote.example\r\n")
    wire.expect(250)
    return wire


def transaction(wire, data, rcpt_suffix=b""):
    """One pipelined MAIL/RCPT/DATA transaction; returns seconds taken."""
    started = time.perf_counter()
    wire.send(f"MAIL FROM:<{SENDER}>\r\n".encode() +
              f"RCPT TO:<{RECIPIENT}>".encode() + rcpt_suffix + b"\r\nDATA\r\n")
    wire.expect(250)
    wire.expect(250)
    wire.expect(354)
    wire.send(data + b".\r\n")
    code, line = wire.reply()
    elapsed = time.perf_counter() - started
    if code != 250:
        raise RuntimeError(f"delivery failed: {line}")
    return elapsed, line


def summary(name, samples):
    ms = sorted(s * 1000 for s in samples)
    return (f"{name:<28} n={len(ms):5d}  p50 {percentile(ms, 50):7.2f} ms  "
            f"p90 {percentile(ms, 90):7.2f} ms  p99 {percentile(ms, 99):7.2f} ms  "
            f"mean {sum(ms) / len(ms):7.2f} ms")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin-dir", default=DEFAULT_BIN_DIR)
    parser.add_argument("--count", type=int, default=1000,
                        help="deliveries per path (default 1000)")
    parser.add_argument("--rounds", type=int, default=10,
                        help="alternating rounds token/floor (default 10)")
    parser.add_argument("--session-count", type=int, default=300,
                        help="deliveries with a new session each (default 300)")
    parser.add_argument("--size", type=int, default=1024, help="body bytes (default 1024)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    install_signal_cleanup()

    work = tempfile.mkdtemp(prefix="stokend-token-latency-")
    os.chmod(work, 0o755)
    dovecot = DovecotPeer(os.path.join(work, "dovecot"), users=("alice",))
    submission_port = free_port()
    stokend = StokendInstance(args.bin_dir, os.path.join(work, "stokend"), free_port(),
                              routes={"example.test": dovecot.unix_route},
                              submission_port=submission_port)
    try:
        dovecot.start()
        stokend.start()
        made = subprocess.run([stokend.stokenctl, "--config", stokend.config, "token", "new",
                               "perm", SENDER, RECIPIENT], cwd=stokend.dir, text=True,
                              capture_output=True, timeout=60)
        if made.returncode != 0:
            raise RuntimeError(f"stokenctl token new failed: {made.stdout}{made.stderr}")
        token = made.stdout.split()[-1]
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        stoken = f" STOKEN={token}".encode()

        log(machine_note())
        token_wire = token_session(submission_port, token, context)
        floor_wire = lmtp_session(dovecot.port)
        for number in range(20):  # warm-up: Dovecot's processes, page cache
            transaction(token_wire, message(args.size, number), stoken)
            transaction(floor_wire, message(args.size, number))
        token_samples, floor_samples = [], []
        per_round = max(1, args.count // args.rounds)
        for round_number in range(args.rounds):
            order = [("token", token_wire, stoken, token_samples),
                     ("floor", floor_wire, b"", floor_samples)]
            if round_number % 2:
                order.reverse()
            for _, wire, suffix, samples in order:
                for number in range(per_round):
                    elapsed, line = transaction(wire, message(args.size, number), suffix)
                    if suffix and " 2.1.12 " not in line:
                        raise RuntimeError(f"expected 2.1.12, got: {line}")
                    samples.append(elapsed)
        token_wire.close()
        floor_wire.close()

        session_samples = []
        for number in range(args.session_count):
            started = time.perf_counter()
            wire = token_session(submission_port, token, context)
            transaction(wire, message(args.size, number), stoken)
            session_samples.append(time.perf_counter() - started)
            wire.close()

        smtp_source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
        started = time.perf_counter()
        subprocess.run([smtp_source, "-L", "-d", "-s", "1", "-m", str(args.count),
                        "-l", str(args.size), "-f", SENDER, "-t", RECIPIENT,
                        f"127.0.0.1:{dovecot.port}"], check=True, timeout=600)
        source_elapsed = time.perf_counter() - started

        print()
        print(f"Synchronous token delivery into Dovecot LMTP, {args.size}-byte bodies")
        print(summary("token (warm session)", token_samples))
        print(summary("floor (LMTP to Dovecot)", floor_samples))
        print(summary("token, new session each", session_samples))
        print(f"{'smtp-source -L -d (floor)':<28} n={args.count:5d}  "
              f"mean {source_elapsed / args.count * 1000:7.2f} ms per message")
        t50, f50 = percentile(sorted(token_samples), 50), percentile(sorted(floor_samples), 50)
        t99, f99 = percentile(sorted(token_samples), 99), percentile(sorted(floor_samples), 99)
        print(f"token - floor: p50 +{(t50 - f50) * 1000:.2f} ms, p99 +{(t99 - f99) * 1000:.2f} ms;"
              f" ratio p50 {t50 / f50:.2f}x, p99 {t99 / f99:.2f}x")
        delivered = dovecot.count_delivered("alice")
        expected = 2 * (20 + per_round * args.rounds) + args.session_count + args.count
        print(f"messages in Dovecot's Maildir: {delivered} (expected {expected})")
    finally:
        stokend.stop()
        dovecot.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
