"""Configured limits and timeouts.

Proves that SIZE is announced with the configured value and enforced both on
MAIL SIZE= and on the data actually sent (552 5.3.4, nothing half-written in
tmp/ or new/); that the recipient limit answers 452 4.5.3 and the accepted
recipients still get the message; that the error limit ends the session with
421 4.7.0; that idle, command and data timeouts end the session with 421 4.4.2
(and a silent TLS client is dropped); and that the per-address and total
connection limits answer 421 4.7.0 / 421 4.3.2 and free their slots again.
"""

import time

import pytest

from smtpwire import SMTPProtocolError, SMTPWire
from storedmail import check_stored

ALICE = "alice@example.test"
BOB = "bob@example.test"
CAROL = "carol@example.test"
SENDER = "sender@example.org"

SIZE_LIMIT = 10 * 1024
ERROR_LIMIT = 3
MAX_RECIPIENTS = 2


@pytest.fixture(scope="module")
def tight(module_stokend_factory):
    users = {ALICE: "Alice-pw-4711", BOB: "Bob-pw-0815", CAROL: "Carol-pw-1234"}
    return module_stokend_factory(
        users=users,
        limits={"max_message_size": "10K", "error_limit": ERROR_LIMIT,
                "max_recipients": MAX_RECIPIENTS})


@pytest.fixture(scope="module")
def impatient(module_stokend_factory):
    return module_stokend_factory(
        timeouts={"idle": "1s", "command": "1s", "data": "1s", "tls_handshake": "1s"})


def body_of_size(size: int) -> bytes:
    line = b"0123456789" * 9 + b"abcdefgh\r\n"  # 100 octets
    head = b"Subject: size test\r\n\r\n"
    count = (size - len(head)) // len(line) + 1
    return head + line * count


# --- SIZE --------------------------------------------------------------------

def test_size_is_announced(tight):
    with SMTPWire(tight.mx_port) as conn:
        keywords = conn.ehlo().keywords()
        assert keywords.get("SIZE") == str(SIZE_LIMIT), keywords


def test_mail_size_parameter_over_limit(tight):
    with SMTPWire(tight.mx_port) as conn:
        conn.ehlo()
        reply = conn.command(f"MAIL FROM:<{SENDER}> SIZE={SIZE_LIMIT + 1}")
        assert (reply.code, reply.enhanced) == (552, "5.3.4"), str(reply)
        reply = conn.command(f"MAIL FROM:<{SENDER}> SIZE={SIZE_LIMIT // 2}")
        assert (reply.code, reply.enhanced) == (250, "2.1.0"), str(reply)


def test_data_over_limit_is_refused_and_nothing_half_written(tight):
    small = body_of_size(2000)
    big = body_of_size(2 * SIZE_LIMIT)
    with SMTPWire(tight.mx_port) as conn:
        conn.ehlo()
        reply = conn.transaction(SENDER, [ALICE], small)
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
        reply = conn.transaction(SENDER, [ALICE], big)
        assert (reply.code, reply.enhanced) == (552, "5.3.4"), str(reply)
        assert conn.pending(0.3) == b""
        assert conn.command("NOOP").code == 250
    stored = tight.messages(ALICE)
    assert len(stored) == 1, "the refused message was stored"
    check_stored(stored[0], small, "ESMTP")
    assert tight.tmp_files(ALICE) == [], "leftover in tmp/"
    assert len(tight.all_mail_files()) == 1


def test_bdat_over_limit(tight):
    big = body_of_size(2 * SIZE_LIMIT)
    with SMTPWire(tight.mx_port) as conn:
        conn.ehlo()
        assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
        assert conn.command(f"RCPT TO:<{ALICE}>").code == 250
        conn.send(f"BDAT {len(big)} LAST\r\n".encode() + big)
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (552, "5.3.4"), str(reply)
        assert conn.command("NOOP").code == 250
    assert tight.all_mail_files() == []


# --- recipients ----------------------------------------------------------------

def test_too_many_recipients(tight):
    message = b"Subject: recipients\r\n\r\nhello\r\n"
    with SMTPWire(tight.mx_port) as conn:
        conn.ehlo()
        assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
        assert conn.command(f"RCPT TO:<{ALICE}>").code == 250
        assert conn.command(f"RCPT TO:<{BOB}>").code == 250
        reply = conn.command(f"RCPT TO:<{CAROL}>")
        assert (reply.code, reply.enhanced) == (452, "4.5.3"), str(reply)
        reply = conn.data(message)
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
    assert len(tight.messages(ALICE)) == 1
    assert len(tight.messages(BOB)) == 1
    assert tight.messages(CAROL) == []


# --- error limit -----------------------------------------------------------------

def test_error_limit_closes_the_session(tight):
    with SMTPWire(tight.mx_port) as conn:
        conn.ehlo()
        replies = []
        for i in range(ERROR_LIMIT + 1):
            if conn.pending(0.1):
                replies.append(conn.read_reply())
                break
            try:
                reply = conn.command(f"BOGUS{i}")
            except (SMTPProtocolError, OSError) as error:
                pytest.fail(f"connection ended without a 421 after {replies}: {error}")
            replies.append(reply)
            if reply.code == 421:
                break
        codes = [(r.code, r.enhanced) for r in replies]
        assert codes[-1] == (421, "4.7.0"), f"no 421 after {len(codes)} bad commands: {codes}"
        assert all(c == (500, "5.5.1") for c in codes[:-1]), codes
        assert ERROR_LIMIT - 1 <= len(codes) - 1 <= ERROR_LIMIT, codes
        conn.wait_for_eof(5)


def test_errors_below_the_limit_are_tolerated(tight):
    with SMTPWire(tight.mx_port) as conn:
        conn.ehlo()
        for i in range(ERROR_LIMIT - 1):
            assert conn.command(f"BOGUS{i}").code == 500
        reply = conn.transaction(SENDER, [ALICE], b"Subject: still fine\r\n\r\nok\r\n")
        assert reply.code == 250, str(reply)
    assert len(tight.messages(ALICE)) == 1


# --- timeouts --------------------------------------------------------------------

def expect_timeout_close(conn: SMTPWire, started: float, lower: float = 0.5, upper: float = 6.0):
    reply = conn.read_reply(timeout=upper)
    elapsed = time.monotonic() - started
    assert (reply.code, reply.enhanced) == (421, "4.4.2"), str(reply)
    assert elapsed >= lower, f"timed out too early ({elapsed:.2f}s)"
    conn.wait_for_eof(3)


def test_idle_timeout(impatient):
    with SMTPWire(impatient.mx_port) as conn:
        started = time.monotonic()
        expect_timeout_close(conn, started)


def test_idle_timeout_after_ehlo_on_submission(impatient):
    with SMTPWire(impatient.submission_port) as conn:
        conn.ehlo()
        started = time.monotonic()
        expect_timeout_close(conn, started)


def test_activity_keeps_the_session_alive(impatient):
    with SMTPWire(impatient.mx_port) as conn:
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            assert conn.command("NOOP").code == 250
            time.sleep(0.4)


def test_command_timeout_on_partial_line(impatient):
    with SMTPWire(impatient.mx_port) as conn:
        conn.ehlo()
        conn.send(b"NOO")
        started = time.monotonic()
        expect_timeout_close(conn, started)


def test_data_timeout(impatient):
    with SMTPWire(impatient.mx_port) as conn:
        conn.ehlo()
        assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
        assert conn.command(f"RCPT TO:<{ALICE}>").code == 250
        assert conn.command("DATA").code == 354
        conn.send(b"Subject: stalled\r\n\r\nhalf a mess")
        started = time.monotonic()
        expect_timeout_close(conn, started)
    assert impatient.all_mail_files() == []


def test_tls_handshake_timeout(impatient):
    """A client that connects to the implicit TLS port and never says hello is dropped."""
    with SMTPWire(impatient.submissions_port, read_greeting=False) as conn:
        started = time.monotonic()
        data = conn.wait_for_eof(6)
        assert not data.startswith(b"220")
        assert time.monotonic() - started >= 0.5


# --- connection limits -------------------------------------------------------------

def open_sessions(port: int, count: int) -> list[SMTPWire]:
    sessions = []
    for _ in range(count):
        conn = SMTPWire(port)
        sessions.append(conn)
        assert conn.greeting.code == 220, str(conn.greeting)
    return sessions


def test_connections_per_address(stokend_factory):
    mta = stokend_factory(limits={"max_connections_per_ip": 3})
    time.sleep(0.3)
    sessions = open_sessions(mta.mx_port, 3)
    try:
        with SMTPWire(mta.submission_port) as fourth:
            assert (fourth.greeting.code, fourth.greeting.enhanced) == (421, "4.7.0"), str(fourth.greeting)
            fourth.wait_for_eof(5)
        # The first three still work.
        for conn in sessions:
            assert conn.command("NOOP").code == 250
        # A slot that closes is free again.
        assert sessions[0].command("QUIT").code == 221
        sessions[0].wait_for_eof(5)
        sessions[0].close()
        time.sleep(0.3)
        with SMTPWire(mta.mx_port) as again:
            assert again.greeting.code == 220, str(again.greeting)
    finally:
        for conn in sessions:
            conn.close()


def test_total_connections(stokend_factory):
    mta = stokend_factory(limits={"max_connections": 3, "max_connections_per_ip": 50})
    time.sleep(0.3)
    sessions = open_sessions(mta.mx_port, 3)
    try:
        with SMTPWire(mta.submission_port) as fourth:
            assert (fourth.greeting.code, fourth.greeting.enhanced) == (421, "4.3.2"), str(fourth.greeting)
            fourth.wait_for_eof(5)
        sessions[1].close()
        time.sleep(0.3)
        with SMTPWire(mta.mx_port) as again:
            assert again.greeting.code == 220, str(again.greeting)
    finally:
        for conn in sessions:
            conn.close()
