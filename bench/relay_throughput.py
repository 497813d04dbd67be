#!/usr/bin/python3
"""Relay throughput: smtp-source -> stokend -> smtp-sink, against the same
through a private Postfix and against smtp-source -> smtp-sink with nothing
in between (the loopback limit), all on this machine in one run.

Three paths, each ending in its own smtp-sink:

  loopback  smtp-source -> smtp-sink
  stokend   smtp-source -> stokend (MX role) -> smtp-sink
            relay.test is a local domain with one user, user@relay.test,
            and `routes: {relay.test: "smtp:[127.0.0.1]:SINK"}` sends its
            mail on. stokend answers 250 once the message is in its queue
            (appended to a segment file and made durable by a group commit
            fdatasync), then delivers it over pooled SMTP connections.
  postfix   smtp-source -> Postfix (relay mode) -> smtp-sink
            relayhost = [127.0.0.1]:SINK, mynetworks = 127.0.0.0/8.
            Postfix answers 250 once cleanup has fsynced the queue file
            (its default), then its smtp client delivers it.

For each message size and number of parallel smtp-source sessions, N
messages go from sender bench@source.test to user@relay.test. Two times are
taken from the moment smtp-source starts:

  250/s  until smtp-source exits with every message answered 250 (the
         relay's acceptance rate);
  e2e/s  until the sink has counted all N messages (its `smtp-sink -c`
         counter), i.e. relayed end to end. This is the figure compared.

The order alternates per cell and repeat (loopback, then stokend and Postfix
taking turns to go first) to spread the noise of a shared machine, and each
cell is repeated (--repeat, default 2); the tables show the medians.
Before each round of a cell the disk's fsync latency is probed (a small new
file, p50), since it bounds both relays. CPU time per message is taken for
stokend (all its threads) and for Postfix (its master, the children it
reaped and those still alive), and the machine's overall CPU use during
each run.

With --profile, a further run of one cell (1 KB x 10 sessions unless
--profile-size and --profile-sessions say otherwise; not counted in the
tables) records stokend with `perf record -g` and prints its top functions
(self time, by shared object, by thread, and user-space entry points with
the kernel time below them) and the number of fdatasync/fsync calls per
message; then a smaller run under `perf trace -s` gives the time spent in
each system call per thread (fdatasync latency, idle time in epoll_wait).
Where perf cannot record, or with --profiler callgrind/both, stokend runs
under valgrind's callgrind (start-up excluded) for instruction counts.

Everything runs on 127.0.0.1 on high ports; every process started here is
stopped here, also on Ctrl-C or SIGTERM; every wait is bounded.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.dont_write_bytecode = True  # leave no __pycache__ in the tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))

from common import (DEFAULT_BIN_DIR, REPO_ROOT, cpu_seconds,  # noqa: E402
                    free_port, fsync_probe, install_signal_cleanup, load1,
                    log, machine_cpu_ticks, machine_note, median,
                    raise_nofile, stop_process)
from postfix_peer import PostfixPeer  # noqa: E402
from smtp_tools import (SMTP_SINK, SMTP_SOURCE, SmtpSink,  # noqa: E402
                        SmtpSource)
from stokend_instance import StokendInstance  # noqa: E402

SENDER = "bench@source.test"
RELAY_DOMAIN = "relay.test"
RECIPIENT = f"user@{RELAY_DOMAIN}"
NAMES = {"loopback": "loopback", "stokend": "stokend", "postfix": "Postfix"}
GOAL_VS_POSTFIX = 5.0
GOAL_VS_LOOPBACK = 0.40


class Target:
    """One path under test: where smtp-source connects, the sink at its
    end, and how to read the relay's CPU time."""

    def __init__(self, key, port, sink, cpu=None, alive=None):
        self.key = key
        self.port = port
        self.sink = sink
        self.cpu = cpu or (lambda: None)
        self.alive = alive or (lambda: True)


def postfix_cpu(peer):
    master = peer.master_pid()
    if not master:
        return None
    total = cpu_seconds(master, with_reaped_children=True) or 0.0
    for pid in peer.pids():
        if pid != master:
            total += cpu_seconds(pid) or 0.0
    return total


def run_one(target, size, sessions, messages, args, quiet=False):
    """One smtp-source run against a target; returns its figures."""
    sink = target.sink
    base = sink.count
    sink.expect(base + messages)
    cpu0 = target.cpu()
    busy0, total0 = machine_cpu_ticks()
    load_before = load1()
    source = SmtpSource(target.port, sessions, messages, size, SENDER,
                        RECIPIENT, reuse_connections=args.reuse_connections)
    try:
        t0 = source.start()
        ok = source.wait(args.run_timeout)
    finally:
        source.stop()  # on a signal it may still be running
    left = max(1.0, args.run_timeout - (time.monotonic() - t0))
    reached = sink.wait(left if ok else min(left, 10.0))
    cpu1 = target.cpu()
    busy1, total1 = machine_cpu_ticks()
    result = {
        "target": target.key, "size": size, "sessions": sessions,
        "messages": messages, "ok": bool(ok and reached),
        "source_exit": source.returncode, "source_completed": source.completed,
        "sink_received": sink.count - base,
        "accept_s": (source.finished_at - t0) if source.finished_at else None,
        "e2e_s": (reached - t0) if reached else None,
        "cpu_s": (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None
        else None,
        "machine_busy": ((busy1 - busy0) / (total1 - total0)
                         if total1 > total0 else None),
        "load1": load_before,
        "errors": source.errors[-500:],
    }
    result["accept_rate"] = (messages / result["accept_s"]
                             if result["accept_s"] else None)
    result["e2e_rate"] = (messages / result["e2e_s"]
                          if result["e2e_s"] else None)
    if not result["ok"]:
        # Let whatever is still on its way arrive before the next run counts.
        sink.wait_quiet(quiet=2.0, timeout=60.0)
        result["sink_received_settled"] = sink.count - base
    if not quiet:
        log(describe_run(result))
    return result


def fmt_rate(value):
    return "-" if value is None else f"{value:.0f}"


def fmt_ratio(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def fmt_pct(value):
    return "-" if value is None else f"{100 * value:.0f} %"


def yes_no(flag):
    return "y" if flag else "n"


def size_label(size):
    if size % 1024 == 0:
        return f"{size // 1024} KB"
    return f"{size} B"


def describe_run(r):
    text = (f"{NAMES[r['target']]:8} {size_label(r['size']):>6} "
            f"x{r['sessions']:<3} {r['messages']} msgs: "
            f"250/s {fmt_rate(r['accept_rate'])}, "
            f"e2e/s {fmt_rate(r['e2e_rate'])}")
    if r["cpu_s"] is not None:
        text += f", CPU {1000 * r['cpu_s'] / r['messages']:.2f} ms/msg"
    if r["machine_busy"] is not None:
        text += f", machine {100 * r['machine_busy']:.0f}% busy"
    if not r["ok"]:
        text += (f"  FAILED: smtp-source exit {r['source_exit']}, "
                 f"{r['source_completed']} completed, sink got "
                 f"{r.get('sink_received_settled', r['sink_received'])}; "
                 f"{r['errors'].splitlines()[-1] if r['errors'] else ''}")
    return text


def ratio(a, b):
    return a / b if a is not None and b else None


def med(results, key):
    values = [r[key] for r in results if r.get(key) is not None and r["ok"]]
    return median(values) if values else None


def summarise(results, sizes, sessions_list):
    rows = []
    for size in sizes:
        for sessions in sessions_list:
            cell = [r for r in results
                    if r["size"] == size and r["sessions"] == sessions]
            by = {k: [r for r in cell if r["target"] == k] for k in NAMES}
            row = {"size": size, "sessions": sessions,
                   "fsync_p50_ms": med(cell, "fsync_p50_ms")}
            for k in NAMES:
                row[f"{k}_accept"] = med(by[k], "accept_rate")
                row[f"{k}_e2e"] = med(by[k], "e2e_rate")
                cpu = [1000 * r["cpu_s"] / r["messages"] for r in by[k]
                       if r["cpu_s"] is not None and r["ok"]]
                row[f"{k}_cpu_ms"] = median(cpu) if cpu else None
                row[f"{k}_failed"] = sum(1 for r in by[k] if not r["ok"])
            row["vs_postfix"] = ratio(row["stokend_e2e"], row["postfix_e2e"])
            row["vs_loopback"] = ratio(row["stokend_e2e"],
                                       row["loopback_e2e"])
            row["postfix_vs_loopback"] = ratio(row["postfix_e2e"],
                                               row["loopback_e2e"])
            rows.append(row)
    return rows


def print_tables(results, rows, args):
    print()
    print("Medians over the repeats, messages per second from the start of "
          "smtp-source:")
    print("250/s: until smtp-source had every 250; e2e/s: until the sink "
          "had every message;")
    print("fsync ms: p50 of fsyncing a small new file, probed before each "
          "round of the cell.")
    print()
    print("| size | sessions | loopback | stokend 250/s | stokend e2e/s "
          "| Postfix 250/s | Postfix e2e/s | stokend/Postfix | "
          "stokend/loopback | Postfix/loopback | goal >=5x, >=40 % "
          "| fsync ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
          "| --- | --- |")
    for row in rows:
        goal = "-"
        if row["vs_postfix"] is not None and row["vs_loopback"] is not None:
            goal = ("yes" if row["vs_postfix"] >= GOAL_VS_POSTFIX
                    and row["vs_loopback"] >= GOAL_VS_LOOPBACK else "no")
            goal += (f" ({yes_no(row['vs_postfix'] >= GOAL_VS_POSTFIX)}"
                     f"/{yes_no(row['vs_loopback'] >= GOAL_VS_LOOPBACK)})")
        fails = sum(row[f"{k}_failed"] for k in NAMES)
        print(f"| {size_label(row['size'])} | {row['sessions']} "
              f"| {fmt_rate(row['loopback_e2e'])} "
              f"| {fmt_rate(row['stokend_accept'])} "
              f"| **{fmt_rate(row['stokend_e2e'])}** "
              f"| {fmt_rate(row['postfix_accept'])} "
              f"| {fmt_rate(row['postfix_e2e'])} "
              f"| **{fmt_ratio(row['vs_postfix'])}x** "
              f"| **{fmt_pct(row['vs_loopback'])}** "
              f"| {fmt_pct(row['postfix_vs_loopback'])} "
              f"| {goal}{f', {fails} failed runs' if fails else ''} "
              f"| {fmt_ratio(row['fsync_p50_ms'])} |")
    print()
    print("CPU time per message relayed (ms, median), all threads/processes "
          "of the relay:")
    print()
    print("| size | sessions | stokend | Postfix | Postfix/stokend |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        s, p = row["stokend_cpu_ms"], row["postfix_cpu_ms"]
        print(f"| {size_label(row['size'])} | {row['sessions']} "
              f"| {fmt_ratio(s)} | {fmt_ratio(p)} "
              f"| {fmt_ratio(ratio(p, s), 1)}x |")
    if args.verbose_runs:
        print()
        print("Every run (in order):")
        print()
        print("| # | size | sessions | path | 250/s | e2e/s | CPU ms/msg "
              "| machine busy | load1 | fsync ms | ok |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
              "| --- |")
        for i, r in enumerate(results, 1):
            cpu = (f"{1000 * r['cpu_s'] / r['messages']:.2f}"
                   if r["cpu_s"] is not None else "-")
            busy = (f"{100 * r['machine_busy']:.0f} %"
                    if r["machine_busy"] is not None else "-")
            print(f"| {i} | {size_label(r['size'])} | {r['sessions']} "
                  f"| {NAMES[r['target']]} | {fmt_rate(r['accept_rate'])} "
                  f"| {fmt_rate(r['e2e_rate'])} | {cpu} | {busy} "
                  f"| {r['load1']:.2f} | {fmt_ratio(r.get('fsync_p50_ms'))} "
                  f"| {'yes' if r['ok'] else 'NO'} |")


# --- profiling -------------------------------------------------------------

def perf_usable(workdir):
    perf = shutil.which("perf")
    if not perf:
        return None
    out = os.path.join(workdir, "perf-probe.data")
    try:
        r = subprocess.run([perf, "record", "-q", "-o", out, "--", "true"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    finally:
        if os.path.exists(out):
            os.unlink(out)
    return perf if r.returncode == 0 else None


def start_quiet(argv):
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def stop_profiler(proc, timeout=60):
    """perf writes its data on SIGINT."""
    stop_process(proc, timeout, signal.SIGINT)


def report_lines(cmd, limit, keep=lambda line: True):
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return ["(report timed out)"]
    lines = [l.rstrip() for l in r.stdout.splitlines()
             if l.strip() and not l.startswith("#") and keep(l)]
    return lines[:limit]


# Frames that only restate "everything": the program's entry, the thread
# start, and std::function / inlining plumbing.
BORING_FRAMES = ("] 0x", "[unknown]", "(inlined)", "_M_invoke", "__invoke",
                 "std::function<", " main", "_start", "__libc_start",
                 "stokend::run_daemon", "clone3", "start_thread")


def inclusive_line_wanted(line):
    return "[.]" in line and not any(b in line for b in BORING_FRAMES)


def cell_label(args):
    return (f"{size_label(args.profile_size)} x {args.profile_sessions} "
            "sessions")


def print_block(title, lines, note=None):
    print()
    print(f"{title}:")
    if note:
        print(note)
    print()
    print("```")
    for line in lines:
        print(line)
    print("```")


def profile_perf(perf, target, stokend, args, workdir):
    n = args.profile_messages
    data = os.path.join(workdir, "perf.data")
    stat_out = os.path.join(workdir, "perf-stat.txt")
    profilers = []
    try:
        profilers.append(start_quiet(
            [perf, "record", "-q", "-F", str(args.perf_frequency),
             "--call-graph", args.perf_call_graph, "-p", str(stokend.pid),
             "-o", data]))
        profilers.append(start_quiet(
            [perf, "stat", "-x", ",", "-o", stat_out, "-p", str(stokend.pid),
             "-e", "syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync,"
                   "context-switches,task-clock"]))
        time.sleep(1.0)  # let perf attach to every thread
        result = run_one(target, args.profile_size, args.profile_sessions, n,
                         args)
    finally:
        for proc in profilers:
            stop_profiler(proc)
    print()
    print(f"Profile: stokend under `perf record -F {args.perf_frequency} "
          f"--call-graph {args.perf_call_graph}`, {cell_label(args)}, "
          f"{n} messages: {fmt_rate(result['e2e_rate'])} e2e/s under the "
          "profiler. On-CPU samples of all its threads, kernel included.")
    if result["cpu_s"] is not None and result["e2e_s"]:
        print(f"stokend CPU: {1000 * result['cpu_s'] / n:.3f} ms per message,"
              f" {100 * result['cpu_s'] / result['e2e_s']:.0f} % of one core"
              f" during the run; the machine was "
              f"{100 * (result['machine_busy'] or 0):.0f} % busy "
              f"({os.cpu_count()} cores, load {result['load1']:.1f}).")
    counts = {}
    try:
        with open(stat_out) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) >= 3 and re.match(r"^\d+(\.\d+)?$", parts[0]):
                    counts[parts[2]] = float(parts[0])
    except OSError:
        pass
    if counts:
        fdatasyncs = counts.get("syscalls:sys_enter_fdatasync", 0)
        fsyncs = counts.get("syscalls:sys_enter_fsync", 0)
        syncs = fdatasyncs + fsyncs
        print(f"fdatasync {fdatasyncs:.0f}, fsync {fsyncs:.0f}: "
              f"{syncs / n:.3f} syncs per message "
              f"({n / syncs if syncs else 0:.1f} messages per sync); "
              f"{counts.get('context-switches', 0) / n:.1f} context switches"
              " per message.")
    pct = re.compile(r"^\s*\d+\.\d+%")
    report = [perf, "report", "-i", data, "--stdio", "-g", "none"]

    def lines(extra, limit, keep=None):
        return report_lines(
            report + extra, limit,
            keep=lambda l: bool(pct.match(l)) and (keep is None or keep(l)))

    threads = []
    for line in lines(["--no-children", "-F", "overhead,pid"], 12):
        m = re.search(r"(\d+):", line)
        if m and int(m.group(1)) == stokend.pid:
            line += "   (main thread: event loop)"
        threads.append(line)
    print_block("By thread (share of stokend's samples)", threads)
    print_block("By shared object",
                lines(["--no-children", "-F", "overhead,dso"], 10))
    print_block("Top functions, self time (--no-children)",
                lines(["--no-children", "-F", "overhead,sym",
                       "--percent-limit", "0.3"], args.profile_top))
    print_block("Top user-space functions, self time",
                lines(["--no-children", "-F", "overhead,dso,sym",
                       "--percent-limit", "0.1"], args.profile_top,
                      keep=lambda l: "[.]" in l and "[.] 0x" not in l))
    print_block(
        "User-space functions, time including everything they call "
        "(kernel too)",
        lines(["--children", "--sort", "dso,sym", "--percent-limit", "1"],
              args.profile_top, keep=inclusive_line_wanted),
        note="(children, self. With --call-graph fp the user-space call "
             "chains stop at libraries built without frame pointers, so "
             "mostly system-call wrappers show; --perf-call-graph dwarf "
             "gives whole chains)")
    if args.profile_callers:
        print_block(
            "Call chains into the top entries (caller graph, 2 % and up)",
            report_lines([perf, "report", "-i", data, "--stdio",
                          "--no-children", "-F", "overhead,sym", "-g",
                          "caller,2,callee,function,percent",
                          "--percent-limit", "3"], args.profile_callers))

    if args.syscall_trace_messages:
        time.sleep(args.pause)
        trace_out = os.path.join(workdir, "perf-trace.txt")
        trace = None
        try:
            trace = start_quiet([perf, "trace", "-s", "-p", str(stokend.pid),
                                 "-o", trace_out])
            time.sleep(1.0)
            traced = run_one(target, args.profile_size,
                             args.profile_sessions,
                             args.syscall_trace_messages, args)
        finally:
            if trace is not None:
                stop_profiler(trace)
        summary = []
        try:
            with open(trace_out) as f:
                block = []
                for line in f:
                    line = line.rstrip()
                    if re.match(r"^\s*\S.*\(\d+\), \d+ events", line):
                        block = [line]
                        summary.append(line)
                        continue
                    if re.match(r"^\s+[a-z_0-9]+\s+\d+\s+\d+\s+[\d.]+", line):
                        block.append(line)
                        if len(block) <= args.trace_top + 1:
                            summary.append(line)
                    elif line.strip().startswith(("syscall", "-----")):
                        summary.append(line)
        except OSError:
            summary = ["(no output from perf trace)"]
        print_block(
            f"System calls per thread, `perf trace -s`, {cell_label(args)}, "
            f"{args.syscall_trace_messages} messages "
            f"({fmt_rate(traced['e2e_rate'])} e2e/s, slowed by the tracing)",
            summary, note="(time in ms spent inside each call: waiting in "
                          "epoll_wait is idle, in fdatasync the disk)")
    return result


def profile_callgrind(args, workdir, sink):
    valgrind = shutil.which("valgrind")
    annotate = shutil.which("callgrind_annotate")
    control = shutil.which("callgrind_control")
    if not valgrind or not annotate or not control:
        print("\nProfile: neither perf nor valgrind's callgrind is usable "
              "here; skipped.")
        return None
    out = os.path.join(workdir, "callgrind.out")
    port = free_port()
    inst = StokendInstance(
        args.bin_dir, os.path.join(workdir, "stokend-callgrind"), port,
        max_connections=1000, max_connections_per_ip=1000,
        local_domains=[RELAY_DOMAIN], users=[RECIPIENT],
        routes={RELAY_DOMAIN: f"smtp:[127.0.0.1]:{sink.port}"},
        dns_servers=f"127.0.0.1:{free_port()}",
        # Start-up (password hashing, certificate generation) is left out:
        # instrumentation is switched on just before the run.
        command_prefix=[valgrind, "--tool=callgrind", "--instr-atstart=no",
                        f"--callgrind-out-file={out}"])
    n = args.callgrind_messages
    try:
        inst.start(timeout=120)
        target = Target("stokend", port, sink,
                        cpu=lambda: cpu_seconds(inst.pid), alive=inst.alive)
        run_one(target, args.profile_size, args.profile_sessions, 20, args,
                quiet=True)  # warm-up
        subprocess.run([control, "-i", "on", str(inst.pid)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=60)
        result = run_one(target, args.profile_size, args.profile_sessions, n,
                         args)
    finally:
        inst.stop(timeout=120)  # callgrind writes its file on exit
    keep = re.compile(r"^\s*[\d,]+ \(\s*[\d.]+%\)")
    top = report_lines([annotate, out], args.profile_top + 1,
                       keep=lambda l: bool(keep.match(l)))
    total = re.match(r"^\s*([\d,]+)", top[0]) if top else None
    per_message = (f"; {int(total.group(1).replace(',', '')) / n:,.0f} "
                   "instructions per message" if total else "")
    print_block(
        f"Profile: stokend under valgrind --tool=callgrind, "
        f"{cell_label(args)}, {n} messages (instructions executed, user "
        "space only, "
        f"start-up excluded{per_message})", top)
    return result


# --- main ------------------------------------------------------------------

class Scraper:
    """GET /metrics once a second on a thread of its own, until stopped;
    counts the scrapes that answered 200 (printed at the end)."""

    def __init__(self, port):
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.scrapes = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(1.0):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    response.read()
                    self.scrapes += 1
            except OSError:
                self.failures += 1

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(10)
        log(f"metrics: {self.scrapes} scrapes answered, {self.failures} failed")


def parse_list(text, kind=int):
    return [kind(x) for x in text.split(",") if x.strip()]


def main():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bin-dir", default=DEFAULT_BIN_DIR,
                   help="folder with stokend and stokenctl (default: build/)")
    p.add_argument("--sizes", default="1024,102400",
                   help="message payload sizes in bytes (smtp-source -l)")
    p.add_argument("--messages", default="2000,500",
                   help="messages per run, one per size")
    p.add_argument("--sessions", default="1,10,50",
                   help="parallel smtp-source sessions (-s)")
    p.add_argument("--repeat", type=int, default=2,
                   help="runs per cell and path; the tables give medians")
    p.add_argument("--reuse-connections", action="store_true",
                   help="smtp-source -d: all messages of a session over one "
                        "connection (default: a connection per message)")
    p.add_argument("--pause", type=float, default=1.0,
                   help="seconds between runs")
    p.add_argument("--run-timeout", type=float, default=300.0,
                   help="time limit of one run, in seconds")
    p.add_argument("--skip-postfix", action="store_true")
    p.add_argument("--metrics", action="store_true",
                   help="stokend with its metrics endpoint on (metrics.listen "
                        "on a free loopback port), scraped once a second "
                        "during the runs as a Prometheus server would")
    p.add_argument("--profile", action="store_true",
                   help="after the tables, profile stokend on one cell")
    p.add_argument("--profile-size", type=int, default=1024,
                   help="message size of the profiled cell")
    p.add_argument("--profile-sessions", type=int, default=10,
                   help="sessions of the profiled cell")
    p.add_argument("--profiler",
                   choices=("auto", "perf", "callgrind", "both"),
                   default="auto",
                   help="auto: perf, or callgrind where perf cannot record")
    p.add_argument("--profile-messages", type=int, default=10000)
    p.add_argument("--callgrind-messages", type=int, default=1000)
    p.add_argument("--profile-top", type=int, default=30,
                   help="functions listed")
    p.add_argument("--profile-callers", type=int, default=0,
                   help="also print this many lines of call chains")
    p.add_argument("--syscall-trace-messages", type=int, default=2000,
                   help="messages of the `perf trace -s` pass (0: none)")
    p.add_argument("--trace-top", type=int, default=10,
                   help="system calls listed per thread")
    p.add_argument("--perf-frequency", type=int, default=2999)
    p.add_argument("--perf-call-graph", default="fp",
                   help="perf record --call-graph: fp (as -g) or dwarf")
    p.add_argument("--verbose-runs", action="store_true",
                   help="also print every run")
    p.add_argument("--json", help="write every run's figures to this file")
    p.add_argument("--keep", action="store_true",
                   help="keep the work folder (logs, perf data)")
    args = p.parse_args()

    sizes = parse_list(args.sizes)
    counts = parse_list(args.messages)
    if len(counts) == 1:
        counts = counts * len(sizes)
    if len(counts) != len(sizes):
        p.error("--messages needs one count per size (or a single count)")
    sessions_list = parse_list(args.sessions)
    if args.repeat < 1 or min(counts) < 1 or min(sessions_list) < 1:
        p.error("counts, sessions and --repeat must be at least 1")
    for exe in (SMTP_SINK, SMTP_SOURCE):
        if not os.access(exe, os.X_OK):
            p.error(f"{exe} not found: install Debian's postfix package")
    for name in ("stokend", "stokenctl"):
        if not os.access(os.path.join(args.bin_dir, name), os.X_OK):
            p.error(f"{name} not found in {args.bin_dir}: build it or pass "
                    "--bin-dir")
    if os.geteuid() != 0 and not args.skip_postfix:
        p.error("run as root (Postfix's master starts as root)")

    install_signal_cleanup()
    raise_nofile(8192)
    started = []  # everything with a stop(), stopped in reverse order
    workdir = tempfile.mkdtemp(prefix="bench-relay-")
    os.chmod(workdir, 0o755)  # Postfix's unprivileged processes
    results = []
    try:
        print("Relay throughput, smtp-source -> relay -> smtp-sink")
        print(machine_note())
        print("uptime at start:", subprocess.run(
            ["uptime"], stdout=subprocess.PIPE, text=True).stdout.strip())
        try:
            head = subprocess.run(
                ["git", "-C", REPO_ROOT, "rev-parse", "--short", "HEAD"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            head = ""
        print(f"source tree at {head or 'unknown commit'}; sizes "
              f"{', '.join(map(size_label, sizes))}; messages "
              f"{', '.join(map(str, counts))}; sessions "
              f"{', '.join(map(str, sessions_list))}; repeat {args.repeat}; "
              + ("one connection per session" if args.reuse_connections
                 else "a connection per message"))
        sys.stdout.flush()

        sinks = {}
        for key in NAMES:
            if key == "postfix" and args.skip_postfix:
                continue
            sink = SmtpSink(free_port())
            sink.start()
            started.append(sink)
            sinks[key] = sink

        targets = {"loopback": Target("loopback", sinks["loopback"].port,
                                      sinks["loopback"])}
        metrics_port = free_port()
        stokend = StokendInstance(
            args.bin_dir, os.path.join(workdir, "stokend"), free_port(),
            max_connections=2000, max_connections_per_ip=1000,
            nofile=8192, local_domains=[RELAY_DOMAIN], users=[RECIPIENT],
            routes={RELAY_DOMAIN:
                    f"smtp:[127.0.0.1]:{sinks['stokend'].port}"},
            # Nothing should need DNS; if anything asks, it asks loopback
            # where nothing answers.
            dns_servers=f"127.0.0.1:{free_port()}",
            extra_config=(["metrics:", f"  listen: 127.0.0.1:{metrics_port}"]
                          if args.metrics else []))
        started.append(stokend)
        stokend.start()
        if args.metrics:
            scraper = Scraper(metrics_port)
            started.append(scraper)
            scraper.start()
        targets["stokend"] = Target(
            "stokend", stokend.mx_port, sinks["stokend"],
            cpu=lambda: cpu_seconds(stokend.pid), alive=stokend.alive)

        if not args.skip_postfix:
            peer = PostfixPeer(os.path.join(workdir, "postfix"), free_port(),
                               mode="relay",
                               relay_port=sinks["postfix"].port)
            started.append(peer)
            peer.start()
            targets["postfix"] = Target(
                "postfix", peer.port, sinks["postfix"],
                cpu=lambda: postfix_cpu(peer),
                alive=lambda: peer.master_pid() is not None)

        # Warm-up: processes spawned, connections pooled, files created.
        for key, target in targets.items():
            r = run_one(target, 1024, min(10, max(sessions_list)), 50, args,
                        quiet=True)
            if not r["ok"]:
                raise RuntimeError(f"warm-up through {NAMES[key]} failed: "
                                   f"{describe_run(r)}")
        log("warm-up done")

        cells = [(size, count, sessions)
                 for size, count in zip(sizes, counts)
                 for sessions in sessions_list]
        for ci, (size, count, sessions) in enumerate(cells):
            for rep in range(args.repeat):
                # The disk's fsync latency right now bounds every relay.
                probe = fsync_probe(workdir, count=20)
                log(f"fsync floor: small file p50 "
                    f"{probe['file_p50_ms']:.2f} ms")
                relays = ["stokend", "postfix"]
                if (ci + rep) % 2:
                    relays.reverse()
                for key in ["loopback"] + relays:
                    if key not in targets:
                        continue
                    target = targets[key]
                    if not target.alive():
                        raise RuntimeError(f"{NAMES[key]} is no longer "
                                           "running")
                    time.sleep(args.pause)
                    result = run_one(target, size, sessions, count, args)
                    result["fsync_p50_ms"] = probe["file_p50_ms"]
                    results.append(result)
        if not stokend.alive():
            raise RuntimeError("stokend exited:\n" + stokend.log_tail())

        rows = summarise(results, sizes, sessions_list)
        print_tables(results, rows, args)
        print()
        print("uptime at end:", subprocess.run(
            ["uptime"], stdout=subprocess.PIPE, text=True).stdout.strip())
        sys.stdout.flush()

        profile_result = None
        if args.profile:
            time.sleep(args.pause)
            perf = (perf_usable(workdir)
                    if args.profiler in ("auto", "perf", "both") else None)
            if perf:
                profile_result = profile_perf(perf, targets["stokend"],
                                              stokend, args, workdir)
            elif args.profiler in ("perf", "both"):
                print("\nProfile: perf cannot record here.")
            if args.profiler == "callgrind" or args.profiler == "both" or (
                    args.profiler == "auto" and not perf):
                time.sleep(args.pause)
                callgrind_result = profile_callgrind(args, workdir,
                                                     sinks["stokend"])
                profile_result = profile_result or callgrind_result
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"runs": results, "summary": rows,
                           "profile_run": profile_result}, f, indent=1)
        failed = sum(1 for r in results if not r["ok"])
        if failed:
            print(f"\n{failed} run(s) failed; see the messages above.")
        return 0
    finally:
        for thing in reversed(started):
            try:
                thing.stop()
            except Exception as e:  # keep stopping the others
                log(f"stopping {type(thing).__name__}: {e}")
        if args.keep:
            log(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
