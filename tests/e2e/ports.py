"""Free loopback ports for the daemons and peers a test starts.

Ports come from below the kernel's ephemeral range (32768-60999 on Linux):
a port the kernel handed out for bind(0) can be given again at once to an
outgoing connection (a client of the test, a daemon's delivery), which then
holds it when the daemon the port was meant for starts listening ("Address
already in use"). Ports below that range are never used for outgoing
connections. Each port is handed out once per test run, so two daemons of
one test never get the same one either.
"""

from __future__ import annotations

import random
import socket

LOWEST = 20000
HIGHEST = 32000  # below /proc/sys/net/ipv4/ip_local_port_range's 32768

_handed_out: set[int] = set()


def _bindable(port: int, udp_too: bool) -> bool:
    kinds = [socket.SOCK_STREAM] + ([socket.SOCK_DGRAM] if udp_too else [])
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port(udp_too: bool = False) -> int:
    """A loopback port free for TCP (and UDP when asked), never handed out before."""
    for _ in range(1000):
        port = random.randint(LOWEST, HIGHEST)
        if port not in _handed_out and _bindable(port, udp_too):
            _handed_out.add(port)
            return port
    raise AssertionError("no free loopback port found")


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports."""
    return [free_port() for _ in range(count)]
