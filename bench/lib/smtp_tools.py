"""Postfix's load tools, smtp-sink and smtp-source, started and stopped by a
benchmark.

SmtpSink runs `smtp-sink -c` on 127.0.0.1:PORT and follows its running
counter (it rewrites "sess=S quit=Q mesg=M" after every session end, QUIT
and end of DATA) on a reader thread, noting when the count of messages
reaches a target. The sink is never told to exit after N messages: it would
quit before answering the last one.

SmtpSource runs `smtp-source` against a port and reports when it finished,
its exit status, how many DATA commands it saw completed (its -c counter)
and what it printed on standard error (a rejected command is fatal to it).
"""

import os
import re
import shutil
import subprocess
import threading
import time

from common import stop_process, wait_for_port

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"

_COUNTER = re.compile(rb"mesg=(\d+)")


class SmtpSink:
    def __init__(self, port, backlog=1024, max_connections=1024,
                 user="nobody"):
        self.port = int(port)
        self.backlog = backlog
        self.max_connections = max_connections
        self.user = user
        self.proc = None
        self._thread = None
        self._cond = threading.Condition()
        self._count = 0
        self._target = None
        self._reached_at = None
        self._last_change = time.monotonic()

    def start(self, timeout=10):
        args = [SMTP_SINK, "-c", "-m", str(self.max_connections)]
        if os.geteuid() == 0:
            args += ["-u", self.user]
        args += [f"127.0.0.1:{self.port}", str(self.backlog)]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        # A probe connection counts as a session, not as a message.
        if not wait_for_port(self.port, timeout,
                             alive=lambda: self.proc.poll() is None):
            self.stop()
            raise RuntimeError(f"smtp-sink did not listen on {self.port}")

    def _read(self):
        fd = self.proc.stdout.fileno()
        tail = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            now = time.monotonic()
            data = tail + chunk
            # Only complete updates (each ends in \r or \n) are trusted.
            cut = max(data.rfind(b"\r"), data.rfind(b"\n"))
            if cut < 0:
                tail = data
                continue
            tail = data[cut + 1:]
            found = _COUNTER.findall(data[:cut])
            if not found:
                continue
            count = int(found[-1])
            with self._cond:
                if count != self._count:
                    self._count = count
                    self._last_change = now
                if (self._target is not None and self._reached_at is None
                        and count >= self._target):
                    self._reached_at = now
                self._cond.notify_all()

    @property
    def count(self):
        with self._cond:
            return self._count

    def expect(self, target):
        """Sets the count to wait for; the moment it is reached is noted by
        the reader thread as soon as the sink reports it."""
        with self._cond:
            self._target = target
            self._reached_at = (time.monotonic() if self._count >= target
                                else None)

    def wait(self, timeout):
        """Waits until the expected count is reached. Returns the monotonic
        time it was seen, or None after timeout seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._reached_at is None:
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc and self.proc.poll() is not None):
                    break
                self._cond.wait(min(left, 0.5))
            return self._reached_at

    def wait_quiet(self, quiet=2.0, timeout=60.0):
        """Waits (bounded) until the count has not changed for `quiet`
        seconds: leftovers of a failed run have arrived. Returns the count."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                since = time.monotonic() - self._last_change
            if since >= quiet:
                break
            time.sleep(0.1)
        return self.count

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def stop(self, timeout=10):
        if self.proc is None:
            return
        stop_process(self.proc, timeout)
        if self._thread is not None:
            self._thread.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class SmtpSource:
    """One smtp-source run: start(), then wait(timeout)."""

    def __init__(self, port, sessions, messages, size, sender, recipient,
                 helo="source.test", reuse_connections=False):
        self.args = [SMTP_SOURCE, "-c", "-s", str(sessions),
                     "-m", str(messages), "-l", str(size),
                     "-M", helo, "-f", sender, "-t", recipient]
        if reuse_connections:
            self.args.append("-d")
        self.args.append(f"127.0.0.1:{port}")
        self.messages = messages
        self.proc = None
        self.started_at = None
        self.finished_at = None
        self.returncode = None
        self.completed = 0  # DATA commands completed, from its -c counter
        self.errors = ""

    def start(self):
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        return self.started_at

    def wait(self, timeout):
        """Waits for smtp-source to exit (killed after timeout seconds).
        Returns True if it exited 0."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
            self.finished_at = time.monotonic()
        except subprocess.TimeoutExpired:
            self.stop()
            out, err = self.proc.communicate(timeout=10)
            self.finished_at = None
            err = (err or b"") + b"\n(killed: time limit)"
        self.returncode = self.proc.returncode
        numbers = re.findall(rb"\d+", out or b"")
        self.completed = int(numbers[-1]) if numbers else 0
        self.errors = (err or b"").decode("utf-8", "replace").strip()
        return self.returncode == 0

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
