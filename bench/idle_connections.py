#!/usr/bin/python3
"""Memory held by idle SMTP connections: stokend against Postfix.

Opens N connections (default 1000, at most 200,000) to stokend's MX port,
one after another, from 127.0.0.2 and, past 25,000, further loopback
source addresses (one address has only about 28,000 ephemeral ports);
each reads the 220 greeting and then stays idle. Reports stokend's resident
memory (VmRSS) before, while they are held, and after they are closed, and
the growth per connection. Then does the same against a private Postfix
with min(N, 2000) connections unless --postfix-connections says otherwise
(smtpd processes, one per connection; default_process_limit = that+50,
smtpd_client_connection_count_limit = 0), summing the memory of all its
processes: RSS (shared pages counted once per process, what `ps` shows) and
PSS (shared pages split among the processes sharing them, the fairer sum).

A connection counts as held when it got its 220 and is still open (no EOF,
no 421) after the hold period. If a server holds fewer than N, that is
reported as such.

stokend is started with RLIMIT_NOFILE = N+256 (it needs at least N+100);
this script raises its own limit to 2N+256.

Everything runs on 127.0.0.1 on high ports; every process started here is
stopped here, also on Ctrl-C or SIGTERM.
"""

import argparse
import json
import os
import select
import socket
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))

from common import (DEFAULT_BIN_DIR, free_port, install_signal_cleanup,  # noqa: E402
                    log, machine_note, proc_status_kb, pss_kb, raise_nofile)
from postfix_peer import PostfixPeer  # noqa: E402
from stokend_instance import StokendInstance  # noqa: E402


def read_greeting(sock, deadline):
    """Reads one complete SMTP reply; returns its text or None."""
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(4096)
        except (socket.timeout, OSError):
            return None
        if not chunk:
            return None
        data += chunk
        lines = data.split(b"\r\n")
        for line in lines[:-1]:
            if len(line) >= 4 and line[3:4] == b" ":
                return data.decode("latin-1")
    return None


# One source address has about 28,000 ephemeral ports towards one server
# port (net.ipv4.ip_local_port_range): beyond that the clients bind to
# further loopback addresses, 127.0.0.2, 127.0.0.3, ...
PER_SOURCE = 25000
IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h: the port is chosen at connect()


def connect_from(index, port, timeout):
    """A connection to 127.0.0.1:port from 127.0.0.(2 + index // PER_SOURCE)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((f"127.0.0.{2 + index // PER_SOURCE}", 0))
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
    except OSError:
        s.close()
        raise
    return s


def open_idle(port, n, per_conn_timeout, overall_deadline):
    """Opens up to n connections, each reading its 220. Returns
    (sockets holding a 220, failures by kind, seconds taken)."""
    held, failures = [], {}
    t0 = time.monotonic()
    for index in range(n):
        if time.monotonic() > overall_deadline:
            failures["overall time limit"] = failures.get(
                "overall time limit", 0) + 1
            continue
        deadline = min(overall_deadline,
                       time.monotonic() + per_conn_timeout)
        try:
            s = connect_from(index, port, per_conn_timeout)
        except OSError as e:
            key = f"connect: {e.strerror or e}"
            failures[key] = failures.get(key, 0) + 1
            continue
        reply = read_greeting(s, deadline)
        if reply is None or not reply.startswith("220"):
            key = ("no greeting" if reply is None
                   else f"greeting {reply[:3]}")
            failures[key] = failures.get(key, 0) + 1
            s.close()
            continue
        held.append(s)
    return held, failures, time.monotonic() - t0


def still_open(socks):
    """How many sockets are still open and silent (no EOF, no reply)."""
    closed = set()
    for i in range(0, len(socks), 500):
        batch = socks[i:i + 500]
        # poll() copes with descriptors above FD_SETSIZE; select() does not.
        p = select.poll()
        for s in batch:
            p.register(s, select.POLLIN | select.POLLHUP | select.POLLERR)
        for fd, _ev in p.poll(0):
            closed.add(fd)
    return sum(1 for s in socks if s.fileno() not in closed)


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def mib(kb):
    return "-" if kb is None else f"{kb / 1024:.1f}"


def measure_stokend(args, workdir):
    port = free_port()
    inst = StokendInstance(args.bin_dir, os.path.join(workdir, "stokend"),
                           port, max_connections=args.connections + 100,
                           max_connections_per_ip=args.connections + 100,
                           nofile=args.connections + 256)
    try:
        inst.start()
        time.sleep(args.settle)
        before = inst.rss_kb()
        deadline = time.monotonic() + args.time_limit
        held, failures, took = open_idle(port, args.connections,
                                         args.connect_timeout, deadline)
        time.sleep(args.hold)
        open_now = still_open(held)
        during = inst.rss_kb()
        hwm = proc_status_kb(inst.pid, "VmHWM")
        close_all(held)
        time.sleep(args.settle)
        after_close = inst.rss_kb()
        alive = inst.alive()
        return {
            "server": "stokend", "wanted": args.connections,
            "greeted": len(held), "held": open_now, "failures": failures,
            "open_seconds": took, "processes": 1,
            "rss_before_kb": before, "rss_during_kb": during,
            "rss_after_close_kb": after_close, "vmhwm_kb": hwm,
            "pss_before_kb": None, "pss_during_kb": None,
            "alive_at_end": alive,
        }
    finally:
        inst.stop()


def sum_memory(peer):
    pids = peer.pids()
    rss = sum(proc_status_kb(p, "VmRSS") or 0 for p in pids)
    pss = sum(pss_kb(p) or 0 for p in pids)
    return len(pids), rss, pss


def measure_postfix(args, workdir):
    port = free_port()
    wanted = args.postfix_connections
    peer = PostfixPeer(os.path.join(workdir, "postfix"), port,
                       mode="mailbox", process_limit=wanted + 50)
    try:
        peer.start()
        time.sleep(args.settle)
        nproc0, rss0, pss0 = sum_memory(peer)
        deadline = time.monotonic() + args.time_limit
        held, failures, took = open_idle(port, wanted,
                                         args.connect_timeout, deadline)
        time.sleep(args.hold)
        open_now = still_open(held)
        nproc1, rss1, pss1 = sum_memory(peer)
        close_all(held)
        time.sleep(args.settle)
        nproc2, rss2, pss2 = sum_memory(peer)
        refused = len(peer.log_lines("too many connections")) + len(
            peer.log_lines("process limit"))
        return {
            "server": "postfix", "wanted": wanted,
            "greeted": len(held), "held": open_now, "failures": failures,
            "open_seconds": took, "processes": nproc1,
            "processes_before": nproc0, "processes_after_close": nproc2,
            "rss_before_kb": rss0, "rss_during_kb": rss1,
            "rss_after_close_kb": rss2, "vmhwm_kb": None,
            "pss_before_kb": pss0, "pss_during_kb": pss1,
            "pss_after_close_kb": pss2, "log_limit_lines": refused,
            "alive_at_end": peer.master_pid() is not None,
        }
    finally:
        peer.stop()


def per_conn(r, key):
    b, d = r.get(key + "_before_kb"), r.get(key + "_during_kb")
    if b is None or d is None or not r["held"]:
        return None
    return (d - b) / r["held"]


def print_table(results):
    print()
    print(f"{'server':<16}{'held/N':>12}{'procs':>7}{'before MiB':>12}"
          f"{'held MiB':>10}{'closed MiB':>12}{'KiB/conn':>10}")
    for r in results:
        rows = [("RSS", "rss")]
        if r["server"] == "postfix":
            rows.append(("PSS", "pss"))
        for label, key in rows:
            pc = per_conn(r, key)
            name = f"{r['server']} {label}"
            print(f"{name:<16}{str(r['held']) + '/' + str(r['wanted']):>12}"
                  f"{r['processes']:>7}{mib(r.get(key + '_before_kb')):>12}"
                  f"{mib(r.get(key + '_during_kb')):>10}"
                  f"{mib(r.get(key + '_after_close_kb')):>12}"
                  f"{'-' if pc is None else f'{pc:.1f}':>10}")
    for r in results:
        if r["failures"]:
            print(f"{r['server']}: connections not held: {r['failures']}")
        if r["greeted"] != r["held"]:
            print(f"{r['server']}: {r['greeted'] - r['held']} connections "
                  "were closed by the server during the hold")
        print(f"{r['server']}: opened {r['greeted']} in "
              f"{r['open_seconds']:.2f} s")
        if r.get("processes_after_close") is not None:
            print(f"{r['server']}: {r['processes_after_close']} processes "
                  "after the clients closed (idle smtpd processes wait "
                  "max_idle, 100 s, for reuse)")
    by = {r["server"]: r for r in results}
    if "stokend" in by and "postfix" in by:
        s = per_conn(by["stokend"], "rss")
        for key in ("rss", "pss"):
            p = per_conn(by["postfix"], key)
            if s and p:
                print(f"per-connection memory, Postfix {key.upper()} / "
                      f"stokend RSS: {p / s:.1f}x")


def main():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("-n", "--connections", type=int, default=1000,
                   help="idle connections to open (default 1000)")
    p.add_argument("--bin-dir", default=DEFAULT_BIN_DIR,
                   help="folder with stokend and stokenctl "
                        "(default: build/ at the repository root)")
    p.add_argument("--postfix-connections", type=int, metavar="N",
                   help="idle connections to open to Postfix (default: the "
                        "same as -n up to 2000: one smtpd process each)")
    p.add_argument("--hold", type=float, default=3.0,
                   help="seconds to hold them idle before measuring")
    p.add_argument("--settle", type=float, default=1.0,
                   help="seconds to wait after start and after closing")
    p.add_argument("--connect-timeout", type=float, default=10.0,
                   help="seconds allowed for one connect + greeting")
    p.add_argument("--time-limit", type=float, default=300.0,
                   help="seconds allowed to open all connections, per server")
    p.add_argument("--only", choices=("stokend", "postfix"),
                   help="measure one server only")
    p.add_argument("--json", metavar="FILE", help="also write results here")
    args = p.parse_args()
    if not 1 <= args.connections <= 200000:
        p.error("--connections must be between 1 and 200000")
    if args.postfix_connections is None:
        args.postfix_connections = min(args.connections, 2000)
    if not 1 <= args.postfix_connections <= 10000:
        p.error("--postfix-connections must be between 1 and 10000")
    install_signal_cleanup()
    got = raise_nofile(2 * args.connections + 256)
    if got < args.connections + 64:
        p.error(f"cannot raise the open-file limit to {args.connections} "
                f"(got {got})")
    print(f"# idle_connections N={args.connections} "
          f"{time.strftime('%Y-%m-%d %H:%M:%S')}; {machine_note()}")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as workdir:
        os.chmod(workdir, 0o755)  # Postfix's unprivileged processes
        if args.only in (None, "stokend"):
            log("stokend...")
            results.append(measure_stokend(args, workdir))
        if args.only in (None, "postfix"):
            log("postfix...")
            results.append(measure_postfix(args, workdir))
    print_table(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
