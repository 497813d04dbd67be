"""A private dnsmasq on a loopback port: the only DNS server the benchmark's
peers are given, so nothing they look up leaves the machine.

It serves the records it is given (MX, A, SRV, TXT) and answers NXDOMAIN for
every other name (`--local=/#/`: no upstream server at all). No
configuration file, no hosts file, no resolv.conf are read.
"""

import os
import shutil
import socket
import struct
import subprocess
import time

from common import free_port, stop_process


def dnsmasq_binary():
    for path in ("/usr/sbin/dnsmasq", shutil.which("dnsmasq") or ""):
        if path and os.access(path, os.X_OK):
            return path
    raise RuntimeError("dnsmasq not found: apt-get install dnsmasq-base")


def _udp_port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def query_a(port, name, timeout=1.0):
    """A minimal DNS A query to 127.0.0.1:port; returns the rcode or None."""
    qid = os.getpid() & 0xFFFF
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(packet, ("127.0.0.1", port))
            data, _ = s.recvfrom(4096)
        except OSError:
            return None
    return data[3] & 0x0F if len(data) >= 4 else None


class DnsmasqPeer:
    def __init__(self, directory, mx=(), hosts=(), srv=(), txt=()):
        """mx: (domain, host, preference); hosts: (name, address);
        srv: (service name, target, port, priority, weight); txt: (name,
        text)."""
        self.dir = os.path.abspath(directory)
        self.mx = list(mx)
        self.hosts = list(hosts)
        self.srv = list(srv)
        self.txt = list(txt)
        self.port = None
        self.proc = None
        self._log = None

    @property
    def server(self):
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=15):
        os.makedirs(self.dir, exist_ok=True)
        for _ in range(50):
            port = free_port()
            if _udp_port_free(port):
                break
        else:
            raise RuntimeError("no free UDP port for dnsmasq")
        self.port = port
        args = [dnsmasq_binary(), "--keep-in-foreground", "--conf-file=/dev/null",
                "--no-resolv", "--no-hosts", "--no-poll", f"--port={port}",
                "--listen-address=127.0.0.1", "--bind-interfaces",
                f"--pid-file={os.path.join(self.dir, 'dnsmasq.pid')}",
                "--local=/#/"]
        args += [f"--mx-host={d},{h},{p}" for d, h, p in self.mx]
        args += [f"--host-record={n},{a}" for n, a in self.hosts]
        args += [f"--srv-host={s},{t},{p},{prio},{w}" for s, t, p, prio, w in self.srv]
        args += [f"--txt-record={n},{t}" for n, t in self.txt]
        self._log = open(os.path.join(self.dir, "dnsmasq.log"), "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + timeout
        probe = self.hosts[0][0] if self.hosts else "probe.test"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dnsmasq exited ({self.proc.returncode}); see "
                                   f"{os.path.join(self.dir, 'dnsmasq.log')}")
            if query_a(port, probe, 0.2) is not None:
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dnsmasq does not answer on {port}")

    def stop(self, timeout=10):
        stop_process(self.proc, timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
