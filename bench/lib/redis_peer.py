"""A private redis-server for benchmarks: a unix socket in its own folder (no
TCP port), appendonly yes with appendfsync always (the settings README
"Several nodes" asks for), its log in the folder. start() waits until it
answers PING; stop() ends it.
"""

import os
import shutil
import socket
import subprocess
import time

from common import stop_process

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisPeer:
    def __init__(self, folder):
        self.folder = os.path.abspath(folder)
        self.socket_path = os.path.join(self.folder, "redis.sock")
        self.proc = None

    @property
    def url(self):
        return f"unix:{self.socket_path}"

    def _answers(self):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(1)
                probe.connect(self.socket_path)
                probe.sendall(b"PING\r\n")
                return probe.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self, timeout=30):
        if not os.access(REDIS_SERVER, os.X_OK):
            raise RuntimeError("redis-server is not installed (Debian package redis-server)")
        os.makedirs(self.folder, exist_ok=True)
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", "0", "--unixsocket", self.socket_path,
             "--unixsocketperm", "700", "--dir", self.folder, "--appendonly", "yes",
             "--appendfsync", "always", "--save", "", "--daemonize", "no",
             "--logfile", os.path.join(self.folder, "redis.log")],
            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._answers():
                return True
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not answer")

    def stop(self):
        stop_process(self.proc, 10)
