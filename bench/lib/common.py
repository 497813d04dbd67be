"""Small helpers shared by the benchmark scripts (standard library only)."""

import os
import random
import resource
import signal
import socket
import statistics
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DEFAULT_BIN_DIR = os.path.join(REPO_ROOT, "build")

# Listening ports are drawn from here: high, and below Linux's default
# ephemeral range (32768-60999), so the benchmark's own client sockets never
# take a port a server is about to bind.
PORT_RANGE = (20000, 29999)


def free_port(tries=200):
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    for _ in range(tries):
        port = random.randint(*PORT_RANGE)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
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
    def handler(signum, _frame):
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
