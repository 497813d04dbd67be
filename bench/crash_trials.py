#!/usr/bin/python3
"""Crash trials: kill -9 under load, restart, count what the users see.

Each trial: load clients submit messages to stokend's MX port, each message
carrying a unique marker (Message-ID and an X-Crash-Marker header, and in
every body line); at a random moment the daemon is killed with SIGKILL; it
is started again on the same folder and left to deliver whatever it
recovered, until `stokenctl queue list` says the queue is empty. Then every
message that arrived is compared with what was sent:

  acknowledged  the client read "250" after its DATA;
  unanswered    the client sent the end of DATA and the kill cut the reply
                off (may or may not be delivered: both are correct);
  lost          acknowledged, never delivered;
  duplicated    delivered more than once (counted as the extra copies);
  corrupted     a delivered copy that is not the message as sent (it must
                end with exactly the bytes sent; stokend adds a Received
                field above them), or one with no or an unknown marker.

Two delivery paths (--path):

  smtp     (default) relay.test is routed to a next hop that keeps every
           message it accepts (lib/marker_sink.py: it records the message
           before answering 250), the way a relay in front of an existing
           MX is set up: `routes: {relay.test: "smtp:[127.0.0.1]:SINK"}`.
  maildir  the built-in Maildir of alice@example.test; new/ is read, and
           the files the kill left in tmp/ are counted, and again once the
           restarted daemon has drained its queue.

A duplicate is a delivery that finished at the next hop (or in the Maildir)
whose outcome was not yet durable in stokend's spool when it was killed:
after the restart the message is recovered as still pending and delivered
again. The load keeps the queue's delivery slots full
(queue.max_concurrent_deliveries, default 100 here): --clients parallel
sessions, each sending its next message as soon as the last was answered.

  /usr/bin/python3 bench/crash_trials.py [--trials 20] [--clients 40]
      [--path smtp|maildir] [--size 1024] [--kill-after 1.0,3.0]
      [--concurrency 100] [--seed S] [--drain-timeout 120] [--json FILE]
      [--bin-dir build]

Prints one line per trial and the totals (acknowledged, lost, duplicated,
corrupted; largest duplicates in one trial). Exit status 1 if anything
acknowledged was lost or anything delivered was corrupted, 0 otherwise:
duplicates are counted, not judged. Everything runs on 127.0.0.1, on high
ports; every process started here is stopped here, also on Ctrl-C.
"""

import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
from common import (DEFAULT_BIN_DIR, free_port, install_signal_cleanup,  # noqa: E402
                    log, machine_note, raise_nofile)
from marker_sink import MarkerSink, read_dump  # noqa: E402
from stokend_instance import StokendInstance, wait_until  # noqa: E402

SENDER = "load@source.test"
RELAY_RECIPIENT = "user@relay.test"
MAILDIR_RECIPIENT = "alice@example.test"
MARKER_FIELD = re.compile(rb"^X-Crash-Marker: (\S+)\r$", re.M)
QUEUED = re.compile(rb"^250 ")


def message(marker, recipient, size):
    """The message sent for a marker; the same bytes every time, so that a
    delivered copy can be checked against it."""
    head = [f"From: Load <{SENDER}>",
            f"To: <{recipient}>",
            f"Subject: crash trial {marker}",
            f"Message-ID: <{marker}@source.test>",
            f"X-Crash-Marker: {marker}",
            ""]
    text = "\r\n".join(head) + "\r\n"
    line_no = 0
    while len(text) < size:
        text += f"{line_no:03d} {marker} the quick brown fox jumps over the lazy dog\r\n"
        line_no += 1
    return text.encode()


class Load:
    """What one trial's clients sent, and the replies they read."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = set()
        self.unanswered = set()
        self.refused = []


def read_reply(sock, buffer):
    """One SMTP reply (the last line's code and text) and the rest."""
    while True:
        end = buffer.find(b"\r\n")
        while end >= 0:
            line = buffer[:end]
            buffer = buffer[end + 2:]
            if len(line) < 4 or line[3:4] != b"-":
                return line, buffer
            end = buffer.find(b"\r\n")
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buffer += chunk


def client(port, trial, number, recipient, size, stop, load):
    """Sends messages on one session until stopped or cut off. MAIL, RCPT
    and DATA go pipelined (RFC 2920), then the message."""
    count = 0
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buffer = b""
            line, buffer = read_reply(s, buffer)
            s.sendall(b"EHLO load.source.test\r\n")
            line, buffer = read_reply(s, buffer)
            envelope = (f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{recipient}>\r\n"
                        "DATA\r\n").encode()
            while not stop.is_set():
                marker = f"t{trial}c{number}n{count}"
                count += 1
                s.sendall(envelope)
                replies = []
                for _ in range(3):
                    line, buffer = read_reply(s, buffer)
                    replies.append(line)
                if not replies[2].startswith(b"354"):
                    with load.lock:
                        load.refused.append(
                            f"{marker}: {b' / '.join(replies).decode()}")
                    s.sendall(b"RSET\r\n")
                    line, buffer = read_reply(s, buffer)
                    time.sleep(0.05)
                    continue
                with load.lock:
                    load.unanswered.add(marker)
                s.sendall(message(marker, recipient, size) + b".\r\n")
                line, buffer = read_reply(s, buffer)
                with load.lock:
                    if QUEUED.match(line):
                        load.unanswered.discard(marker)
                        load.acked.add(marker)
                    else:
                        load.unanswered.discard(marker)
                        load.refused.append(f"{marker}: {line.decode()}")
    except OSError:
        pass  # the daemon died under us (ConnectionError is an OSError)


class Deliveries:
    """Everything delivered so far: marker -> copies, when the first copy
    arrived (wall clock), and the bad copies."""

    def __init__(self, recipient, size):
        self.recipient = recipient
        self.size = size
        self.copies = {}
        self.first_at = {}
        self.corrupted = []

    def add(self, data, where, received_at):
        found = MARKER_FIELD.search(data)
        if not found:
            self.corrupted.append(f"{where}: no marker")
            return
        marker = found.group(1).decode("ascii", "replace")
        if not re.fullmatch(r"t\d+c\d+n\d+", marker) or not data.endswith(
                message(marker, self.recipient, self.size)):
            self.corrupted.append(f"{where}: {marker} is not the message as sent")
        self.copies[marker] = self.copies.get(marker, 0) + 1
        self.first_at.setdefault(marker, received_at)


class SinkReader:
    """New messages in the sink's dump."""

    def __init__(self, sink):
        self.sink = sink
        self.offset = 0

    def collect(self, deliveries):
        messages, self.offset = read_dump(self.sink.dump, self.offset)
        for i, (received_at, data) in enumerate(messages):
            deliveries.add(data, f"sink message at {self.offset}-{i}",
                           received_at)
        return len(messages)


class MaildirReader:
    """New files in a Maildir's new/ folder."""

    def __init__(self, folder):
        self.folder = folder
        self.seen = set()

    def collect(self, deliveries):
        added = 0
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return 0
        for name in names:
            if name in self.seen:
                continue
            self.seen.add(name)
            path = os.path.join(self.folder, name)
            with open(path, "rb") as f:
                deliveries.add(f.read(), name, os.fstat(f.fileno()).st_mtime)
            added += 1
        return added


def queue_is_empty(daemon):
    r = subprocess.run([daemon.stokenctl, "--config", daemon.config, "queue",
                        "list"], cwd=daemon.dir, stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True, timeout=30)
    return r.returncode == 0 and "Mail queue is empty" in r.stdout


def run_trial(number, args, rng, daemon, reader, deliveries, recipient,
              tmp_folder):
    load = Load()
    stop = threading.Event()
    threads = [threading.Thread(target=client,
                                args=(daemon.mx_port, number, n, recipient,
                                      args.size, stop, load), daemon=True)
               for n in range(args.clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(rng.uniform(*args.kill_after))
    daemon.kill()
    killed_at = time.monotonic()
    killed_wall = time.time()
    stop.set()
    for thread in threads:
        thread.join(30)
    # Delivered before the kill (the dump is written before each 250):
    # acknowledged minus this is the backlog the restart must recover.
    before_restart = reader.collect(deliveries)
    # Files a delivery cut short by the kill left in the Maildir's tmp/.
    tmp_left = set(os.listdir(tmp_folder)) if tmp_folder and os.path.isdir(
        tmp_folder) else set()

    daemon.start(timeout=60, add_users=False)
    restarted_at = time.monotonic()
    if not wait_until(lambda: queue_is_empty(daemon), args.drain_timeout,
                      interval=0.2):
        raise RuntimeError(f"trial {number}: the queue did not drain within "
                           f"{args.drain_timeout}s:\n{daemon.log_tail()}")
    drained_at = time.monotonic()
    after_restart = reader.collect(deliveries)
    # Of those, the ones still there once the queue is empty (nothing is
    # being delivered any more).
    tmp_still_there = (len(tmp_left & set(os.listdir(tmp_folder)))
                       if tmp_left else 0)

    prefix = f"t{number}c"
    mine = {m: c for m, c in deliveries.copies.items() if m.startswith(prefix)}
    result = {
        "trial": number,
        "load_s": round(killed_at - started, 3),
        "acknowledged": len(load.acked),
        "unanswered": len(load.unanswered),
        "unanswered_delivered": sum(1 for m in load.unanswered if m in mine),
        "refused": len(load.refused),
        "delivered_before_kill": before_restart,
        "delivered_after_restart": after_restart,
        "lost": sorted(m for m in load.acked if m not in mine),
        "duplicated": sum(c - 1 for c in mine.values() if c > 1),
        "duplicated_messages": sum(1 for c in mine.values() if c > 1),
        # How long before the kill the oldest duplicated message had first
        # arrived: the span of finished deliveries whose outcome was lost.
        "oldest_duplicate_ms": round(max(
            ((killed_wall - deliveries.first_at[m]) * 1000
             for m, c in mine.items() if c > 1), default=0.0), 1),
        "unknown": sorted(m for m in mine if m not in load.acked
                          and m not in load.unanswered),
        "restart_s": round(restarted_at - killed_at, 3),
        "drain_s": round(drained_at - restarted_at, 3),
    }
    if tmp_folder:
        result["maildir_tmp_after_kill"] = len(tmp_left)
        result["maildir_tmp_left_after_restart"] = tmp_still_there
    if load.refused:
        result["refused_examples"] = load.refused[:3]
    return result


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--clients", type=int, default=40,
                   help="parallel load sessions (default 40)")
    p.add_argument("--path", choices=("smtp", "maildir"), default="smtp")
    p.add_argument("--size", type=int, default=1024,
                   help="approximate message size in bytes (default 1024)")
    p.add_argument("--kill-after", default="1.0,3.0",
                   help="MIN,MAX seconds of load before the kill (default 1.0,3.0)")
    p.add_argument("--concurrency", type=int, default=100,
                   help="queue.max_concurrent_deliveries (default 100)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--drain-timeout", type=float, default=120.0)
    p.add_argument("--json", help="write every trial's figures here")
    p.add_argument("--bin-dir", default=DEFAULT_BIN_DIR)
    p.add_argument("--keep", action="store_true",
                   help="keep the temporary folder (its path is printed)")
    args = p.parse_args()
    low, high = (float(v) for v in args.kill_after.split(","))
    if not 0 < low <= high or args.trials < 1 or args.clients < 1:
        p.error("--kill-after needs 0 < MIN <= MAX; --trials and --clients >= 1")
    args.kill_after = (low, high)
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    return args


def main():
    args = parse_args()
    install_signal_cleanup()
    raise_nofile(4096)
    rng = random.Random(args.seed)
    workdir = tempfile.mkdtemp(prefix="stokend-crash-")
    log(f"crash_trials: {machine_note()}; seed {args.seed}; folder {workdir}")
    sink = None
    daemon = None
    results = []
    try:
        common = dict(max_connections=args.clients + 100,
                      max_connections_per_ip=args.clients + 100,
                      extra_config=["queue:",
                                    f"  max_concurrent_deliveries: {args.concurrency}"])
        if args.path == "smtp":
            sink = MarkerSink(free_port(), os.path.join(workdir, "sink.dump"))
            sink.start()
            daemon = StokendInstance(
                args.bin_dir, os.path.join(workdir, "stokend"), free_port(),
                local_domains=["relay.test"], users=[RELAY_RECIPIENT],
                routes={"relay.test": f"smtp:[127.0.0.1]:{sink.port}"},
                # Nothing needs DNS; if anything asks, it asks loopback
                # where nothing answers.
                dns_servers=f"127.0.0.1:{free_port()}", **common)
            recipient = RELAY_RECIPIENT
            reader = SinkReader(sink)
            tmp_folder = None
        else:
            daemon = StokendInstance(args.bin_dir,
                                     os.path.join(workdir, "stokend"),
                                     free_port(), **common)
            recipient = MAILDIR_RECIPIENT
            reader = MaildirReader(daemon.maildir_new)
            tmp_folder = os.path.join(os.path.dirname(daemon.maildir_new),
                                      "tmp")
        deliveries = Deliveries(recipient, args.size)
        daemon.start(timeout=60)
        for number in range(args.trials):
            result = run_trial(number, args, rng, daemon, reader, deliveries,
                               recipient, tmp_folder)
            results.append(result)
            extra = (f" maildir tmp/ after the kill {result['maildir_tmp_after_kill']}"
                     f", still there after the restart "
                     f"{result['maildir_tmp_left_after_restart']}"
                     if tmp_folder else "")
            print(f"trial {number + 1:3d}/{args.trials}: load {result['load_s']:.2f}s"
                  f" acknowledged {result['acknowledged']:5d}"
                  f" (delivered before the kill {result['delivered_before_kill']:5d})"
                  f" unanswered {result['unanswered']:3d}"
                  f" (delivered {result['unanswered_delivered']})"
                  f" lost {len(result['lost'])}"
                  f" duplicated {result['duplicated']:3d}"
                  f" (oldest {result['oldest_duplicate_ms']:.0f} ms before the kill)"
                  f" unknown {len(result['unknown'])}"
                  f" drain {result['drain_s']:.1f}s{extra}", flush=True)
    finally:
        if daemon is not None:
            daemon.stop()
        if sink is not None:
            sink.stop()

    acknowledged = sum(r["acknowledged"] for r in results)
    lost = sum(len(r["lost"]) for r in results)
    duplicated = [r["duplicated"] for r in results]
    unknown = sum(len(r["unknown"]) for r in results)
    corrupted = len(deliveries.corrupted)
    print(f"\n{len(results)} trials, path {args.path}, {args.clients} clients, "
          f"{args.size} B, max_concurrent_deliveries {args.concurrency}, "
          f"seed {args.seed}")
    print(f"acknowledged {acknowledged}, lost {lost}, duplicated {sum(duplicated)}"
          f" (largest in one trial {max(duplicated)}, mean "
          f"{sum(duplicated) / len(duplicated):.1f}, trials with any "
          f"{sum(1 for d in duplicated if d)}), corrupted {corrupted},"
          f" unknown {unknown}, unanswered "
          f"{sum(r['unanswered'] for r in results)} (delivered "
          f"{sum(r['unanswered_delivered'] for r in results)}), refused "
          f"{sum(r['refused'] for r in results)}")
    if tmp_folder:
        print("maildir tmp/ files left by the kills: "
              f"{sum(r['maildir_tmp_after_kill'] for r in results)}, "
              "of which still there once the restarted daemon drained "
              f"its queue: "
              f"{sum(r['maildir_tmp_left_after_restart'] for r in results)}")
    for problem in deliveries.corrupted[:5]:
        print(f"corrupted: {problem}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": {k: v for k, v in vars(args).items()},
                       "trials": results,
                       "corrupted": deliveries.corrupted}, f, indent=1)
    if args.keep:
        log(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if lost or corrupted or unknown else 0


if __name__ == "__main__":
    sys.exit(main())
