#!/usr/bin/python3
"""Messages per second from a simple sequential Python smtplib loop, against
stokend's MX role and against a private Postfix doing final delivery into a
Maildir, run back to back on the same machine.

Two variants, each a single client sending one message at a time:

  session   one SMTP session, M messages one after another (default 2000)
  connect   a new connection (greeting, EHLO, MAIL, RCPT, DATA, QUIT) per
            message (default 500)

Each message is about 1 KiB, from bench@sender.test to alice@example.test,
with a unique Message-ID.

What the client sees is the time until its 250 after DATA. The two 250s do
not mean the same thing: stokend answers once the message is fsynced into
alice's Maildir; Postfix answers once the message is fsynced into its queue,
and its virtual(8) agent writes (and fsyncs) the Maildir copy afterwards. So
for Postfix the script also reports the time until all M messages are in
its Maildir (counted in new/), measured from the same start. The ratio
against that figure is the fairer one.

Per-message latencies (p50, p99, max) are printed too, with the slowest
messages, to show spikes.

Rounds alternate the order (stokend first, then Postfix first...) to spread
the effect of a noisy machine. Both servers run side by side for the whole
run, each idle while the other is measured.

Everything runs on 127.0.0.1 on high ports; every process started here is
stopped here, also on Ctrl-C or SIGTERM.
"""

import argparse
import json
import os
import smtplib
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))

from common import (DEFAULT_BIN_DIR, count_files, free_port,  # noqa: E402
                    fsync_probe, install_signal_cleanup, load1, log,
                    machine_note, median, percentile)
from postfix_peer import PostfixPeer  # noqa: E402
from stokend_instance import StokendInstance  # noqa: E402

FROM = "bench@sender.test"
TO = "alice@example.test"


def make_message(tag, index, size):
    head = (f"From: Bench <{FROM}>\r\n"
            f"To: Alice <{TO}>\r\n"
            f"Subject: bench {tag} {index}\r\n"
            f"Message-ID: <{tag}.{index}.{os.getpid()}@sender.test>\r\n"
            "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n"
            "\r\n")
    body_len = max(0, size - len(head))
    line = "The quick brown fox jumps over the lazy dog 0123456789 abcdefg\r\n"
    body = (line * (body_len // len(line) + 1))[:body_len]
    if body_len >= 2:
        body = body[:-2] + "\r\n"
    return (head + body).encode("ascii")


class Target:
    def __init__(self, name, port, maildir_new, alive):
        self.name = name
        self.port = port
        self.maildir_new = maildir_new
        self.alive = alive


def run_session(target, count, size, tag, deadline, io_timeout):
    """One session, `count` messages. Returns per-message latencies and the
    start time; stops early at the deadline or on the first error."""
    lat, errors = [], []
    start = time.monotonic()
    try:
        s = smtplib.SMTP("127.0.0.1", target.port, timeout=io_timeout)
        s.ehlo("client.sender.test")
    except (OSError, smtplib.SMTPException) as e:
        return start, lat, [f"connect: {e!r}"]
    try:
        for i in range(count):
            if time.monotonic() > deadline:
                errors.append(f"time limit after {i} messages")
                break
            msg = make_message(tag, i, size)
            t = time.monotonic()
            try:
                refused = s.sendmail(FROM, [TO], msg)
            except (OSError, smtplib.SMTPException) as e:
                errors.append(f"message {i}: {e!r}")
                break
            lat.append(time.monotonic() - t)
            if refused:
                errors.append(f"message {i}: refused {refused}")
                break
        try:
            s.quit()
        except (OSError, smtplib.SMTPException):
            pass
    finally:
        s.close()
    return start, lat, errors


def run_connect(target, count, size, tag, deadline, io_timeout):
    """A new connection per message. Latency covers connect to QUIT reply."""
    lat, errors = [], []
    start = time.monotonic()
    for i in range(count):
        if time.monotonic() > deadline:
            errors.append(f"time limit after {i} messages")
            break
        msg = make_message(tag, i, size)
        t = time.monotonic()
        try:
            with smtplib.SMTP("127.0.0.1", target.port,
                              local_hostname="client.sender.test",
                              timeout=io_timeout) as s:
                refused = s.sendmail(FROM, [TO], msg)
        except (OSError, smtplib.SMTPException) as e:
            errors.append(f"message {i}: {e!r}")
            break
        lat.append(time.monotonic() - t)
        if refused:
            errors.append(f"message {i}: refused {refused}")
            break
    return start, lat, errors


def measure(target, variant, count, size, round_no, args):
    tag = f"{target.name}-{variant}-r{round_no}"
    load = load1()
    before = count_files(target.maildir_new)
    deadline = time.monotonic() + args.time_limit
    fn = run_session if variant == "session" else run_connect
    start, lat, errors = fn(target, count, size, tag, deadline,
                            args.io_timeout)
    client_done = time.monotonic()
    sent = len(lat)
    # Wait until every accepted message is in the Maildir (immediate for a
    # server that delivers before its 250).
    want = before + sent
    wait_deadline = time.monotonic() + args.delivery_timeout
    while count_files(target.maildir_new) < want and \
            time.monotonic() < wait_deadline:
        time.sleep(0.002)
    in_maildir = time.monotonic()
    delivered = count_files(target.maildir_new) - before
    client_s = client_done - start
    maildir_s = in_maildir - start
    # Slowest messages, to show spikes (index, ms).
    slow = sorted(range(sent), key=lambda i: lat[i], reverse=True)[:5]
    return {
        "server": target.name, "variant": variant, "round": round_no,
        "load1": load,
        "wanted": count, "sent": sent, "delivered": delivered,
        "errors": errors,
        "client_seconds": client_s,
        "client_rate": sent / client_s if client_s > 0 else 0.0,
        "maildir_seconds": maildir_s,
        "maildir_rate": delivered / maildir_s if maildir_s > 0 else 0.0,
        "maildir_lag_ms": (in_maildir - client_done) * 1000,
        "p50_ms": median(lat) * 1000, "p90_ms": percentile(lat, 90) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
        "max_ms": max(lat) * 1000 if lat else float("nan"),
        "over_10x_median": sum(1 for x in lat if x > 10 * median(lat)),
        "slowest": [(i, round(lat[i] * 1000, 2)) for i in slow],
    }


def settle(seconds):
    os.sync()  # let the disk finish writing back the previous run
    time.sleep(seconds)


HEADER = ("round variant server    sent  seconds  client/s  maildir/s"
          "  lag ms  p50 ms  p99 ms   max ms  load")


def fmt_row(r):
    return (f"{r['round']:>5} {r['variant']:<8}{r['server']:<9}"
            f"{r['sent']:>6}{r['client_seconds']:>9.2f}"
            f"{r['client_rate']:>10.1f}{r['maildir_rate']:>11.1f}"
            f"{r['maildir_lag_ms']:>8.1f}"
            f"{r['p50_ms']:>8.2f}{r['p99_ms']:>8.2f}{r['max_ms']:>9.2f}"
            f"{r['load1']:>6.1f}")


def main():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bin-dir", default=DEFAULT_BIN_DIR,
                   help="folder with stokend and stokenctl "
                        "(default: build/ at the repository root)")
    p.add_argument("-m", "--messages", type=int, default=2000,
                   help="messages in the one-session variant (default 2000)")
    p.add_argument("-c", "--connections", type=int, default=500,
                   help="messages in the connection-per-message variant "
                        "(default 500)")
    p.add_argument("--size", type=int, default=1024,
                   help="message size in bytes (default 1024)")
    p.add_argument("--rounds", type=int, default=1,
                   help="rounds; each runs both variants on both servers")
    p.add_argument("--variants", default="session,connect",
                   help="comma-separated: session, connect")
    p.add_argument("--settle", type=float, default=2.0,
                   help="seconds of quiet (after sync) between runs")
    p.add_argument("--io-timeout", type=float, default=30.0,
                   help="socket timeout of one SMTP exchange")
    p.add_argument("--time-limit", type=float, default=300.0,
                   help="seconds allowed for one run's sending")
    p.add_argument("--delivery-timeout", type=float, default=120.0,
                   help="seconds to wait for the last Maildir delivery")
    p.add_argument("--only", choices=("stokend", "postfix"),
                   help="measure one server only (no ratios)")
    p.add_argument("--json", metavar="FILE", help="also write results here")
    args = p.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    if any(v not in ("session", "connect") for v in variants):
        p.error("--variants: session and/or connect")
    for n in (args.messages, args.connections, args.rounds):
        if not 1 <= n <= 100000:
            p.error("counts must be between 1 and 100000")
    install_signal_cleanup()
    print(f"# smtplib_loop {time.strftime('%Y-%m-%d %H:%M:%S')}; "
          f"{machine_note()}; session M={args.messages}, "
          f"connect M={args.connections}, {args.size} B, "
          f"{args.rounds} round(s)")
    results, probes = [], []
    with tempfile.TemporaryDirectory(prefix="bench-smtplib-") as workdir:
        os.chmod(workdir, 0o755)  # Postfix's unprivileged processes
        inst = StokendInstance(args.bin_dir, os.path.join(workdir, "stokend"),
                               free_port())
        peer = PostfixPeer(os.path.join(workdir, "postfix"), free_port(),
                           mode="mailbox")
        try:
            targets = []
            if args.only in (None, "stokend"):
                inst.start()
                targets.append(Target("stokend", inst.mx_port,
                                      inst.maildir_new, inst.alive))
            if args.only in (None, "postfix"):
                peer.start()
                targets.append(Target("postfix", peer.port, peer.maildir_new,
                                      lambda: peer.master_pid() is not None))
            # Warm-up: one message each, not counted.
            for t in targets:
                measure(t, "connect", 1, args.size, 0, args)
            for rnd in range(1, args.rounds + 1):
                settle(args.settle)
                probes.append((rnd, fsync_probe(workdir)))
                order = targets if rnd % 2 else list(reversed(targets))
                for variant in variants:
                    count = (args.messages if variant == "session"
                             else args.connections)
                    for t in order:
                        settle(args.settle)
                        log(f"round {rnd}: {variant} x{count} -> {t.name}")
                        r = measure(t, variant, count, args.size, rnd, args)
                        results.append(r)
                        log("  " + fmt_row(r))
                        if not t.alive():
                            raise RuntimeError(f"{t.name} died")
        finally:
            inst.stop()
            peer.stop()
            stokend_log = inst.log_tail(10)

    print()
    print(HEADER)
    for r in results:
        print(fmt_row(r))
    print()
    print("client/s: messages/s until the client had its last 250 (and QUIT "
          "reply in 'connect').")
    print("maildir/s: messages/s until all were in the Maildir, from the "
          "same start.")
    print("lag ms: from the client's last reply until the last message was "
          "in the Maildir.")
    print("load: 1-minute load average when the run started.")
    for rnd, probe in probes:
        print(f"fsync floor before round {rnd}: small file "
              f"p50 {probe['file_p50_ms']:.2f} / p99 {probe['file_p99_ms']:.2f}"
              f" ms, folder p50 {probe['dir_p50_ms']:.2f} / p99 "
              f"{probe['dir_p99_ms']:.2f} ms")
    print()
    print("ratios stokend/Postfix (per round and variant):")
    for rnd in range(1, args.rounds + 1):
        for variant in variants:
            pair = {r["server"]: r for r in results
                    if r["round"] == rnd and r["variant"] == variant}
            s, q = pair.get("stokend"), pair.get("postfix")
            if not s or not q or not q["client_rate"] or not q["maildir_rate"]:
                continue
            print(f"  round {rnd} {variant:<8} client-seen "
                  f"{s['client_rate'] / q['client_rate']:.2f}x   "
                  f"to-Maildir {s['maildir_rate'] / q['maildir_rate']:.2f}x")
    if args.rounds > 1:
        print("median over rounds (messages/s; ratio of the medians):")
        for variant in variants:
            med = {}
            for name in ("stokend", "postfix"):
                rs = [r for r in results
                      if r["server"] == name and r["variant"] == variant]
                if rs:
                    med[name] = (median([r["client_rate"] for r in rs]),
                                 median([r["maildir_rate"] for r in rs]))
            if len(med) == 2 and med["postfix"][0] and med["postfix"][1]:
                s, q = med["stokend"], med["postfix"]
                print(f"  {variant:<8} stokend {s[0]:.0f}, Postfix client-seen "
                      f"{q[0]:.0f} / to-Maildir {q[1]:.0f}; ratio "
                      f"{s[0] / q[0]:.2f}x / {s[1] / q[1]:.2f}x")
    print()
    for r in results:
        notes = []
        if r["errors"]:
            notes.append(f"errors: {r['errors'][:3]}")
        if r["delivered"] != r["sent"]:
            notes.append(f"delivered {r['delivered']} of {r['sent']}")
        if r["over_10x_median"]:
            notes.append(f"{r['over_10x_median']} messages over 10x median")
        notes.append(f"slowest (index, ms): {r['slowest']}")
        print(f"round {r['round']} {r['variant']} {r['server']}: "
              + "; ".join(notes))
    if any(r["errors"] for r in results) and stokend_log:
        print("\nstokend log tail:\n" + stokend_log)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": results, "fsync_probes": probes}, f, indent=2)
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
