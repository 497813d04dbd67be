"""Line length limits (1000 octets including CRLF, RFC 5321 §4.5.3.1).

Proves that a command line of 1001 octets gets one 500 5.5.2 and the rest of
the line is drained (the next command is read cleanly), while 1000 octets is a
normal command; that a DATA or BDAT line over the limit makes the message fail
with 500 5.5.2 after the real end (nothing stored, the session goes on), while a
line of exactly 1000 octets is stored intact.
"""

from smtpwire import SMTPWire
from storedmail import check_stored

ALICE = "alice@example.test"
SENDER = "sender@example.org"
LIMIT = 1000


def padded(prefix: bytes, total: int) -> bytes:
    """prefix + filler, `total` octets long including the final CRLF."""
    return prefix + b"x" * (total - len(prefix) - 2) + b"\r\n"


def begin(conn):
    conn.ehlo()
    assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
    assert conn.command(f"RCPT TO:<{ALICE}>").code == 250


def test_command_line_over_limit(mta):
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        line = padded(b"NOOP ", LIMIT + 1)
        assert len(line) == 1001
        conn.send(line)
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (500, "5.5.2"), str(reply)
        assert conn.pending(0.3) == b"", "more than one reply to one long line"
        reply = conn.command("NOOP")
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)


def test_very_long_command_line_is_drained(mta):
    """A 20000-octet line: one reply, and nothing of it is read as a command."""
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        conn.send(b"NOOP " + b"QUIT\r" * 4000 + b"\r\nNOOP\r\n")
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (500, "5.5.2"), str(reply)
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
        assert conn.pending(0.3) == b""


def test_command_line_at_limit(mta):
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        line = padded(b"NOOP ", LIMIT)
        assert len(line) == 1000
        conn.send(line)
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)


def test_data_line_over_limit(mta):
    with SMTPWire(mta.mx_port) as conn:
        begin(conn)
        assert conn.command("DATA").code == 354
        conn.send(b"Subject: long line\r\n\r\n" + padded(b"y", LIMIT + 1) + b"after\r\n.\r\n")
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (500, "5.5.2"), str(reply)
        assert conn.pending(0.3) == b""
        assert conn.command("NOOP").code == 250
    assert mta.all_mail_files() == []


def test_data_line_over_limit_in_headers(mta):
    with SMTPWire(mta.mx_port) as conn:
        begin(conn)
        assert conn.command("DATA").code == 354
        conn.send(padded(b"Subject: ", 5000) + b"\r\nbody\r\n.\r\n")
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (500, "5.5.2"), str(reply)
    assert mta.all_mail_files() == []


def test_data_line_at_limit(mta):
    message = b"Subject: limit line\r\n\r\n" + padded(b"z", LIMIT) + b"end\r\n"
    with SMTPWire(mta.mx_port) as conn:
        begin(conn)
        reply = conn.data(message)
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
    stored = mta.messages(ALICE)
    assert len(stored) == 1
    check_stored(stored[0], message, "ESMTP")


def test_bdat_line_over_limit_across_chunks(mta):
    first = b"Subject: bdat long\r\n\r\n" + b"w" * 600
    second = b"w" * 400 + b"\r\nend\r\n"  # the line is 1002 octets with its CRLF
    with SMTPWire(mta.mx_port) as conn:
        begin(conn)
        conn.send(f"BDAT {len(first)}\r\n".encode() + first)
        reply = conn.read_reply()
        assert reply.code in (250, 500), str(reply)
        if reply.code == 250:
            conn.send(f"BDAT {len(second)} LAST\r\n".encode() + second)
            reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (500, "5.5.2"), str(reply)
        assert conn.command("NOOP").code == 250
    assert mta.all_mail_files() == []
