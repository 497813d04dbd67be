"""Small helpers shared by the benchmark scripts (standard library only)."""

import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DEFAULT_BIN_DIR = os.path.join(REPO_ROOT, "build")

# Listening ports are drawn from here: high, and below Linux's default
# ephemeral range (32768-60999), so the benchmark's own client sockets never
# take a port a server is about to bind.
PORT_RANGE = (20000, 29999)


def free_port(tries=200, hosts=("127.0.0.1",)):
    """A TCP port that nothing listens on right now, on 127.0.0.1 or on
    every one of the given (loopback) addresses."""
    for _ in range(tries):
        port = random.randint(*PORT_RANGE)
        for host in hosts:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    break
        else:
            return port
    raise RuntimeError("no free port found")


def wait_for_port(port, timeout, host="127.0.0.1", alive=None):
    """Waits until host:port accepts a TCP connection. True if it did.

    alive: optional callable; the wait stops early once it returns False.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            return False
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def proc_status_kb(pid, field):
    """A kB field of /proc/PID/status (VmRSS, VmHWM...), or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def pss_kb(pid):
    """Proportional set size in kB (shared pages split among sharers)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def raise_nofile(wanted):
    """Raises this process's RLIMIT_NOFILE to at least `wanted`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:  # root may raise the hard limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def median(values):
    return statistics.median(values) if values else float("nan")


def install_signal_cleanup():
    """Turns SIGTERM/SIGHUP/SIGINT into SystemExit so `finally` blocks run
    and every process the script started is stopped."""
    caught = []

    def handler(signum, _frame):
        # One signal is enough: further ones must not cut the cleanup short.
        if caught:
            return
        caught.append(signum)
        log(f"signal {signum}: stopping the servers and exiting")
        raise SystemExit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, handler)


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def count_files(directory):
    try:
        return len(os.listdir(directory))
    except FileNotFoundError:
        return 0


def machine_note():
    """One line about the conditions: cores, kernel, load."""
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    u = os.uname()
    return (f"{os.cpu_count()} cores, Linux {u.release}, loopback 127.0.0.1, "
            f"load average at start {load[0]:.2f}")


def fsync_probe(directory, count=50, size=1024):
    """The machine's fsync floor right now, in ms (p50, p99): writing a small
    new file and fsyncing it, then renaming it into another folder and
    fsyncing that folder (what a Maildir delivery does). Bounded in count."""
    tmp = os.path.join(directory, "probe-tmp")
    new = os.path.join(directory, "probe-new")
    os.makedirs(tmp, exist_ok=True)
    os.makedirs(new, exist_ok=True)
    data = b"x" * size
    file_ms, dir_ms = [], []
    for i in range(count):
        src = os.path.join(tmp, f"{i}")
        fd = os.open(src, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            t = time.perf_counter()
            os.fsync(fd)
            file_ms.append((time.perf_counter() - t) * 1000)
        finally:
            os.close(fd)
        os.rename(src, os.path.join(new, f"{i}"))
        dfd = os.open(new, os.O_RDONLY | os.O_DIRECTORY)
        try:
            t = time.perf_counter()
            os.fsync(dfd)
            dir_ms.append((time.perf_counter() - t) * 1000)
        finally:
            os.close(dfd)
    for d in (tmp, new):
        for name in os.listdir(d):
            os.unlink(os.path.join(d, name))
        os.rmdir(d)
    return {"file_p50_ms": percentile(file_ms, 50),
            "file_p99_ms": percentile(file_ms, 99),
            "dir_p50_ms": percentile(dir_ms, 50),
            "dir_p99_ms": percentile(dir_ms, 99)}


def load1():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def cpu_seconds(pid, with_reaped_children=False):
    """CPU time (user + system, all threads) of a process in seconds, or None.
    with_reaped_children adds the time of the children it has waited for
    (a Postfix master's cutime/cstime holds its exited smtpd, cleanup...)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the ")": state is field 3 of stat(5), so utime (14) is index 11.
    ticks = int(fields[11]) + int(fields[12])
    if with_reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_cpu_ticks():
    """(busy, total) jiffies over all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice;
    # guest time is already counted in user.
    total = sum(values[:8])
    idle = values[3] + values[4]
    return total - idle, total


def stop_process(proc, timeout, stop_signal=signal.SIGTERM):
    """stop_signal (SIGTERM), then SIGKILL if proc has not exited within
    timeout seconds. Does nothing to a process that is gone already."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(stop_signal)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
