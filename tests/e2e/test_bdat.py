"""BDAT (CHUNKING, RFC 3030).

Proves that chunks are stored as the exact concatenation of their bytes (no dot
processing, a lone "." line does not end anything), that a CRLF split across a
chunk boundary is a line ending and not a bare CR plus a bare LF, that both
`BDAT n LAST` and a closing `BDAT 0 LAST` finish the message, that pipelined
chunks are answered in order, and that a bare CR across a boundary or a
malformed BDAT is refused without storing anything (and, since the chunk
size is unknown, ends the session).
"""

import pytest

from smtpwire import SMTPWire
from storedmail import check_stored

ALICE = "alice@example.test"
SENDER = "sender@example.org"


def start_transaction(conn):
    assert "CHUNKING" in conn.ehlo().keywords()
    assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
    assert conn.command(f"RCPT TO:<{ALICE}>").code == 250


def bdat(conn, chunk: bytes, last: bool = False):
    conn.send(f"BDAT {len(chunk)}{' LAST' if last else ''}\r\n".encode() + chunk)
    return conn.read_reply()


CHUNKS = [
    b"From: sender@example.org\r\nTo: alice@example.test\r\nSubject: chunks\r\n\r\nline one\r",
    b"\n.\r\n..two dots stay two\r\n",
    b".leading dot stays\r\nlast line\r\n",
]


def test_bdat_chunks_then_last(mta):
    with SMTPWire(mta.mx_port) as conn:
        start_transaction(conn)
        for chunk in CHUNKS[:-1]:
            reply = bdat(conn, chunk)
            assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
        reply = bdat(conn, CHUNKS[-1], last=True)
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
        assert conn.command("NOOP").code == 250
    stored = mta.messages(ALICE)
    assert len(stored) == 1
    check_stored(stored[0], b"".join(CHUNKS), "ESMTP")
    assert mta.tmp_files(ALICE) == []


def test_bdat_zero_last(mta):
    with SMTPWire(mta.mx_port) as conn:
        start_transaction(conn)
        for chunk in CHUNKS:
            reply = bdat(conn, chunk)
            assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
        reply = bdat(conn, b"", last=True)
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
    stored = mta.messages(ALICE)
    assert len(stored) == 1
    check_stored(stored[0], b"".join(CHUNKS), "ESMTP")


def test_bdat_pipelined_in_one_write(mta):
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        payload = f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{ALICE}>\r\n".encode()
        for i, chunk in enumerate(CHUNKS):
            last = " LAST" if i == len(CHUNKS) - 1 else ""
            payload += f"BDAT {len(chunk)}{last}\r\n".encode() + chunk
        payload += b"NOOP\r\n"
        conn.send(payload)
        got = [(r.code, r.enhanced) for r in conn.read_replies(6)]
        assert got == [(250, "2.1.0"), (250, "2.1.5"), (250, "2.0.0"), (250, "2.0.0"),
                       (250, "2.0.0"), (250, "2.0.0")]
        assert conn.pending(0.3) == b""
    stored = mta.messages(ALICE)
    assert len(stored) == 1
    check_stored(stored[0], b"".join(CHUNKS), "ESMTP")


def test_bdat_bare_cr_across_chunks_is_refused(mta):
    with SMTPWire(mta.mx_port) as conn:
        start_transaction(conn)
        reply = bdat(conn, b"Subject: bare cr\r\n\r\nbody\r")
        assert reply.code in (250, 550), str(reply)
        if reply.code == 250:
            reply = bdat(conn, b"x\r\n", last=True)
        assert (reply.code, reply.enhanced) == (550, "5.5.2"), str(reply)
        assert conn.pending(0.3) == b""
        assert conn.command("NOOP").code == 250
    assert mta.all_mail_files() == []


def test_bdat_bare_lf_is_refused(mta):
    with SMTPWire(mta.mx_port) as conn:
        start_transaction(conn)
        reply = bdat(conn, b"Subject: bare lf\r\n\r\nbody\n.\nmore\r\n", last=True)
        assert (reply.code, reply.enhanced) == (550, "5.5.2"), str(reply)
        assert conn.command("NOOP").code == 250
    assert mta.all_mail_files() == []


@pytest.mark.parametrize("argument", ["ten", "10 FIRST", "-1", ""])
def test_bdat_syntax_error(mta, argument):
    """Without a valid size the server cannot know where the chunk ends, so it
    refuses and closes rather than read chunk bytes as commands."""
    with SMTPWire(mta.mx_port) as conn:
        start_transaction(conn)
        conn.send(f"BDAT {argument}\r\nMAIL FROM:<evil@x>\r\n".encode())
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (501, "5.5.4"), str(reply)
        rest = conn.wait_for_eof(5)
        assert rest == b"", f"reply after the BDAT syntax error: {rest!r}"
    assert mta.all_mail_files() == []


def test_bdat_before_rcpt_is_out_of_sequence(mta):
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
        reply = bdat(conn, b"Subject: x\r\n\r\ny\r\n", last=True)
        # RFC 5321 §3.3 allows 503 (out of sequence) or 554 (no valid recipients).
        assert reply.code in (503, 554) and reply.enhanced == "5.5.1", str(reply)
        assert conn.command("NOOP").code == 250
    assert mta.all_mail_files() == []
