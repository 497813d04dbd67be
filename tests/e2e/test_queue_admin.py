"""stokenctl queue ...: the running daemon's queue, inspected and changed over
its control socket.

Proves that a message for a destination that is down shows up in `queue list`
with its recipient and the last reply, and in `queue show` with its details;
that `queue hold` marks it held ('!' in the listing) and `queue release` clears
that; that `queue delete` removes it for good: once the destination is up and
the queue is flushed, the message kept alongside it is delivered and the
deleted one never is; that an unknown queue id fails with exit status 1 and a
malformed one is a usage error (2); that the control socket is private to the
daemon's user (mode 0600) and removed when the daemon stops; and that without a
running daemon stokenctl says so and exits 1. Hold, release, delete and requeue
also take ALL or --domain D: the selection is counted in the answer, a message
that also has recipients outside D is left alone, and requeue releases a held
message and makes it due at once (postsuper -r). A usage error names the
mistake on its first line and shows only that command's synopsis.
"""

from __future__ import annotations

import re
import socket
import stat
import threading
import time

import pytest

from smtpwire import SMTPWire
from stokend_daemon import USERS, Stokend, free_ports

ALICE = "alice@example.test"
CONTROL_SOCKET = "var/stokend.sock"  # relative: inside the daemon's directory
UNKNOWN_ID = "00000000000000000bad"
WAIT = 10.0

QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as ([0-9a-f]+)$")


def message(subject: str) -> bytes:
    return (f"From: Alice <{ALICE}>\r\n"
            f"Subject: {subject}\r\n"
            f"\r\n"
            f"About {subject}.\r\n").encode()


def submit(mta: Stokend, recipient: str | list[str], subject: str) -> str:
    """Submits as alice (STARTTLS, AUTH PLAIN); returns the queue id."""
    recipients = [recipient] if isinstance(recipient, str) else recipient
    with SMTPWire(mta.submission_port) as conn:
        conn.ehlo()
        conn.starttls()
        conn.ehlo()
        assert conn.auth_plain(ALICE, USERS[ALICE]).code == 235
        reply = conn.transaction(ALICE, recipients, message(subject))
        conn.command("QUIT")
    match = QUEUED.match(str(reply))
    assert match, f"unexpected reply to DATA: {reply}"
    return match.group(1)


def wait_until(predicate, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def queue_list(mta: Stokend) -> str:
    result = mta.ctl("queue", "list")
    assert result.stderr == ""
    return result.stdout


def listing_with(mta: Stokend, text: str, count: int = 1) -> str | None:
    """The listing once it holds text count times, else None."""
    listing = queue_list(mta)
    return listing if listing.count(text) >= count else None


def entry(listing: str, qid: str) -> str:
    """The lines of one message in a listing ('' when it is not there)."""
    for block in listing.split("\n\n"):
        lines = block.splitlines()
        for index, line in enumerate(lines):
            if line.startswith(qid):
                return "\n".join(lines[index:])
    return ""


class SinkServer:
    """A next hop that accepts every message and remembers the recipients it
    was offered; runs in a thread on a loopback port."""

    def __init__(self, port: int):
        self.recipients: list[str] = []
        self.sessions: list[tuple[socket.socket, threading.Thread]] = []
        self.listener = socket.create_server(("127.0.0.1", port))
        self.listener.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            session = threading.Thread(target=self._session, args=(conn,), daemon=True)
            self.sessions.append((conn, session))
            session.start()

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(WAIT)
        reader = conn.makefile("rb")
        try:
            conn.sendall(b"220 sink.remote.test ESMTP\r\n")
            for line in reader:
                command = line.decode(errors="replace").strip()
                verb = command.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    conn.sendall(b"250 sink.remote.test\r\n")
                elif verb == "RCPT":
                    self.recipients.append(command.split(":", 1)[1].strip(" <>"))
                    conn.sendall(b"250 2.1.5 Ok\r\n")
                elif verb == "DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    for data_line in reader:
                        if data_line == b".\r\n":
                            break
                    conn.sendall(b"250 2.0.0 Ok: kept\r\n")
                elif verb == "QUIT":
                    conn.sendall(b"221 2.0.0 Bye\r\n")
                    break
                else:
                    conn.sendall(b"250 2.0.0 Ok\r\n")
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        """Stops listening and hangs up on the daemon's pooled connections,
        waiting until it has closed its side, as a next hop going away does."""
        self.stopping = True
        self.thread.join(2)
        self.listener.close()
        for conn, session in self.sessions:
            try:
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            session.join(WAIT)


@pytest.fixture
def down_port():
    """A loopback port where nothing listens (yet)."""
    return free_ports(1)[0]


@pytest.fixture
def relay(stokend_factory, down_port) -> Stokend:
    """A daemon routing remote.test to a next hop that is down, retrying only
    after an hour, so what it cannot deliver stays queued."""
    return stokend_factory(routes={"remote.test": f"smtp:[127.0.0.1]:{down_port}"},
                           queue={"first_retry": "1h"}, control_socket=CONTROL_SOCKET)


@pytest.fixture(scope="module")
def control_mta(module_stokend_factory) -> Stokend:
    """A daemon with an empty queue, shared by the tests that change nothing."""
    return module_stokend_factory(control_socket=CONTROL_SOCKET)


def test_hold_release_delete_and_flush(relay, down_port):
    gone = submit(relay, "gone@remote.test", "to be deleted")
    kept = submit(relay, "kept@remote.test", "to be kept")

    # The first attempts fail at once (connection refused) and are recorded.
    listing = wait_until(lambda: listing_with(relay, "Connection refused", 2),
                         "both deferrals in the listing")
    assert listing.startswith("-Queue ID-"), listing
    assert listing.endswith("\n-- 2 messages, 2 pending recipients\n"), listing
    block = entry(listing, gone)
    lines = [line.strip() for line in block.splitlines()]
    assert re.match(rf"^{gone}\s+\d+ .+ {re.escape(ALICE)}$", lines[0]), block
    assert lines[1].startswith("(") and "Connection refused" in lines[1], block
    assert lines[2] == "gone@remote.test", block
    assert "kept@remote.test" in entry(listing, kept)

    details = relay.ctl("queue", "show", gone).stdout
    assert details.startswith(f"id:                 {gone}\nstate:              queued\n"), details
    assert f"sender:             {ALICE}\n" in details
    assert "recipient:          gone@remote.test\n" in details
    assert "  status:           pending\n  attempts:         1\n" in details
    assert re.search(r"  last reply:       .*Connection refused", details), details
    assert "Subject: to be deleted\n" in details

    result = relay.ctl("queue", "hold", gone)
    assert result.stderr == f"{gone} held\n" and result.stdout == ""
    assert re.search(rf"^{gone}! ", queue_list(relay), re.M)
    assert "state:              held\n" in relay.ctl("queue", "show", gone).stdout

    result = relay.ctl("queue", "release", gone)
    assert result.stderr == f"{gone} released\n"
    assert re.search(rf"^{gone}  ", queue_list(relay), re.M)

    result = relay.ctl("queue", "delete", gone)
    assert result.stderr == f"{gone} deleted\n"
    listing = queue_list(relay)
    assert gone not in listing
    assert listing.endswith("\n-- 1 message, 1 pending recipient\n"), listing
    result = relay.ctl("queue", "show", gone, check=False)
    assert result.returncode == 1
    assert result.stderr == f"stokenctl: {gone}: no such message\n"

    # The destination comes up: a flush delivers what is left, and only that.
    sink = SinkServer(down_port)
    try:
        result = relay.ctl("queue", "flush")
        assert result.stderr == "1 message scheduled\n"
        wait_until(lambda: queue_list(relay) == "Mail queue is empty\n", "the queue to empty")
        time.sleep(0.3)  # time for a stray attempt to show up
        assert sink.recipients == ["kept@remote.test"]
    finally:
        sink.close()
    log = relay.log()
    assert re.search(rf"queue: {kept} to=<kept@remote\.test> delivered", log), relay.log_tail()
    assert f"queue: {gone} deleted by the administrator" in log
    assert not re.search(rf"queue: {gone} to=<[^>]*> delivered", log)


def test_flush_of_one_message(relay):
    qid = submit(relay, "later@remote.test", "flush me")
    wait_until(lambda: listing_with(relay, "Connection refused"), "the first deferral")
    result = relay.ctl("queue", "flush", qid)
    assert result.returncode == 0 and result.stderr == "1 message scheduled\n"
    wait_until(lambda: "  attempts:         2\n" in relay.ctl("queue", "show", qid).stdout,
               "the second attempt")


def test_selections_all_and_domain(stokend_factory):
    down = free_ports(2)
    relay = stokend_factory(routes={"remote.test": f"smtp:[127.0.0.1]:{down[0]}",
                                    "other.test": f"smtp:[127.0.0.1]:{down[1]}"},
                            queue={"first_retry": "1h"}, control_socket=CONTROL_SOCKET)
    first = submit(relay, "a@remote.test", "one")
    second = submit(relay, "b@REMOTE.test", "two")
    other = submit(relay, "c@other.test", "three")
    mixed = submit(relay, ["d@remote.test", "e@other.test"], "four")
    wait_until(lambda: listing_with(relay, "Connection refused", 5), "every first deferral")

    result = relay.ctl("queue", "hold", "--domain", "Remote.Test")
    assert result.stderr == ("2 messages held\n"
                             "1 message for remote.test left alone: "
                             "they also have recipients elsewhere\n"), result
    listing = queue_list(relay)
    held = set(re.findall(r"^([0-9a-f]+)!", listing, re.M))
    assert held == {first, second}, listing

    # requeue ALL: released, and each message attempted again at once.
    result = relay.ctl("queue", "requeue", "ALL")
    assert result.stderr == "4 messages requeued\n", result
    assert "!" not in "".join(re.findall(r"^[0-9a-f]+.", queue_list(relay), re.M))
    for qid in (first, second, other, mixed):
        wait_until(lambda qid=qid: "  attempts:         2\n" in relay.ctl("queue", "show", qid).stdout,
                   f"the second attempt of {qid}")

    result = relay.ctl("queue", "delete", "--domain", "other.test")
    assert result.stderr == ("1 message deleted\n"
                             "1 message for other.test left alone: "
                             "they also have recipients elsewhere\n"), result
    listing = queue_list(relay)
    assert other not in listing and mixed in listing, listing

    assert relay.ctl("queue", "hold", "--domain", "nowhere.test").stderr == "0 messages held\n"
    result = relay.ctl("queue", "delete", "ALL")
    assert result.stderr == "3 messages deleted\n", result
    assert queue_list(relay) == "Mail queue is empty\n"
    assert relay.ctl("queue", "delete", "ALL").stderr == "0 messages deleted\n"


def test_requeue_releases_a_held_message_durably(stokend_factory, down_port):
    overrides = dict(routes={"remote.test": f"smtp:[127.0.0.1]:{down_port}"},
                     queue={"first_retry": "1h"}, control_socket=CONTROL_SOCKET)
    relay = stokend_factory(**overrides)
    qid = submit(relay, "later@remote.test", "requeue me")
    wait_until(lambda: listing_with(relay, "Connection refused"), "the first deferral")
    relay.ctl("queue", "hold", qid)
    result = relay.ctl("queue", "requeue", qid)
    assert result.returncode == 0 and result.stderr == f"{qid} requeued\n"
    details = wait_until(lambda: (lambda d: d if "  attempts:         2\n" in d else None)(
        relay.ctl("queue", "show", qid).stdout), "the attempt the requeue asked for")
    assert "state:              queued\n" in details, details
    # The release is durable: after a restart the message is still not held.
    assert relay.terminate() == 0
    again = stokend_factory(users={}, directory=relay.dir, **overrides)
    assert "state:              queued\n" in again.ctl("queue", "show", qid).stdout


@pytest.mark.parametrize("args", [
    ("queue", "flush", UNKNOWN_ID),
    ("queue", "show", UNKNOWN_ID),
    ("queue", "hold", UNKNOWN_ID),
    ("queue", "release", UNKNOWN_ID),
    ("queue", "delete", UNKNOWN_ID),
    ("queue", "requeue", UNKNOWN_ID),
])
def test_unknown_id_fails(control_mta, args):
    result = control_mta.ctl(*args, check=False)
    assert result.returncode == 1, result
    assert result.stderr == f"stokenctl: {UNKNOWN_ID}: no such message\n"
    assert result.stdout == ""


@pytest.mark.parametrize("args", [
    ("queue",),
    ("queue", "mailq"),
    ("queue", "list", "extra"),
    ("queue", "show"),
    ("queue", "hold", "NOT-AN-ID"),
    ("queue", "delete", "../spool"),
    ("queue", "flush", "abc", "def"),
    ("queue", "delete", "ALL", "--domain", "remote.test"),
    ("queue", "requeue", "--domain", "not a domain"),
    ("queue", "show", "ALL"),
    ("queue", "list", "--domain", "remote.test"),
    ("user", "list", "--domain", "remote.test"),
])
def test_malformed_commands_are_usage_errors(control_mta, args):
    result = control_mta.ctl(*args, check=False)
    assert result.returncode == 2, result
    assert "usage: stokenctl" in result.stderr


def test_a_usage_error_names_the_mistake_and_only_its_command(control_mta):
    result = control_mta.ctl("queue", "show", "NOSUCHID", check=False)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == ("stokenctl: 'NOSUCHID' is not a queue ID "
                        "(lowercase hex digits, as in queue list)"), result.stderr
    assert lines[1].startswith("usage: stokenctl [--config FILE] queue "), result.stderr
    assert all(" queue " in line for line in lines[1:-1]), result.stderr
    assert lines[-1] == "(stokenctl --help describes every command)"
    assert "commands:" not in result.stderr


def test_empty_queue_and_private_socket(control_mta):
    assert queue_list(control_mta) == "Mail queue is empty\n"
    path = control_mta.dir / CONTROL_SOCKET
    mode = path.lstat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600, oct(mode)


def test_without_a_running_daemon(stokend_factory):
    mta = stokend_factory(control_socket=CONTROL_SOCKET)
    assert (mta.dir / CONTROL_SOCKET).exists()
    assert mta.terminate() == 0
    assert not (mta.dir / CONTROL_SOCKET).exists(), "the socket must go when the daemon stops"
    result = mta.ctl("queue", "list", check=False)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (f"stokenctl: cannot connect to stokend at {CONTROL_SOCKET}: "
                             f"No such file or directory — is the daemon running?\n")
