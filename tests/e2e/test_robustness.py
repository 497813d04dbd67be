"""Robustness of the input handling and of the store.

Proves that the end of data and dot-stuffing are recognised however the bytes
are split across TCP segments (and a fake end split the same way is still
refused); that a client vanishing in the middle of DATA or BDAT leaves nothing
in tmp/ or new/; that a multi-megabyte message is stored byte for byte; that
concurrent sessions each get their message stored exactly once under a unique
name; and that SMTPUTF8 and 8BITMIME transactions are accepted (Received
says UTF8SMTP for the former).
"""

import smtplib
import threading
import time
import uuid

from smtpwire import SMTPWire
from storedmail import check_stored

ALICE = "alice@example.test"
BOB = "bob@example.test"
SENDER = "sender@example.org"


def open_data(conn, recipient=ALICE):
    conn.ehlo()
    assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
    assert conn.command(f"RCPT TO:<{recipient}>").code == 250
    assert conn.command("DATA").code == 354


def send_in_pieces(conn, pieces):
    for piece in pieces:
        conn.send(piece)
        time.sleep(0.05)


def test_end_of_data_split_across_writes(mta):
    with SMTPWire(mta.mx_port) as conn:
        open_data(conn)
        send_in_pieces(conn, [b"Subject: split\r\n\r\nbody\r", b"\n.", b".x\r", b"\n", b".",
                              b"\r", b"\n"])
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
        assert conn.command("NOOP").code == 250
    stored = mta.messages(ALICE)
    assert len(stored) == 1
    check_stored(stored[0], b"Subject: split\r\n\r\nbody\r\n.x\r\n", "ESMTP")


def test_fake_end_split_across_writes_is_refused(mta):
    with SMTPWire(mta.mx_port) as conn:
        open_data(conn)
        send_in_pieces(conn, [b"Subject: split smuggle\r\n\r\nbody\n", b".", b"\n",
                              b"MAIL FROM:<evil@x>\r\n", b"RCPT TO:<bob@example.test>\r\nDATA\r\n",
                              b"evil\r\n", b".\r\n"])
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (550, "5.5.2"), str(reply)
        assert conn.pending(0.5) == b""
    assert mta.all_mail_files() == []


def test_command_split_across_writes(mta):
    with SMTPWire(mta.mx_port) as conn:
        send_in_pieces(conn, [b"EH", b"LO client.exa", b"mple.org\r", b"\n"])
        reply = conn.read_reply()
        assert reply.code == 250 and reply.lines[0].startswith("mx.example.test"), str(reply)


def test_disconnect_during_data_leaves_nothing(mta):
    conn = SMTPWire(mta.mx_port)
    open_data(conn)
    conn.send(b"Subject: vanishing\r\n\r\n" + b"partial line of a message\r\n" * 2000)
    conn.close()
    conn = SMTPWire(mta.mx_port)
    conn.ehlo()
    conn.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<alice@example.test>\r\nBDAT 100000\r\n")
    conn.read_replies(2)
    conn.send(b"x" * 50000)
    conn.close()
    time.sleep(0.5)
    # The daemon is still there and stored nothing.
    with SMTPWire(mta.mx_port) as check:
        assert check.command("NOOP").code == 250
    assert mta.all_mail_files() == []


def test_large_message_is_stored_exactly(mta):
    line = b"".join(bytes([33 + (i % 90)]) for i in range(998)) + b"\r\n"  # 1000 octets
    message = (b"From: sender@example.org\r\nSubject: large\r\n\r\n"
               + line * 3000 + b".starts with a dot\r\n" + line)
    assert len(message) > 3_000_000
    with smtplib.SMTP("127.0.0.1", mta.mx_port, local_hostname="client.example.org", timeout=30) as s:
        assert s.sendmail(SENDER, [ALICE], message) == {}
    stored = mta.messages(ALICE)
    assert len(stored) == 1
    check_stored(stored[0], message, "ESMTP")


def test_concurrent_sessions(mta):
    sessions, per_session = 10, 5
    markers = [[uuid.uuid4().hex for _ in range(per_session)] for _ in range(sessions)]
    errors = []

    def run(my_markers):
        try:
            with SMTPWire(mta.mx_port, timeout=20) as conn:
                conn.ehlo()
                for marker in my_markers:
                    message = f"Subject: {marker}\r\n\r\nbody {marker}\r\n".encode()
                    reply = conn.transaction(SENDER, [ALICE], message)
                    if reply.code != 250:
                        errors.append(str(reply))
        except Exception as error:  # reported below, in the test's thread
            errors.append(repr(error))

    threads = [threading.Thread(target=run, args=(m,)) for m in markers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads), "sessions did not finish within 60s"
    assert errors == []
    stored = mta.messages(ALICE)
    assert len(stored) == sessions * per_session
    bodies = b"\n".join(stored)
    for marker in (m for group in markers for m in group):
        assert bodies.count(f"body {marker}\r\n".encode()) == 1, marker
    names = [p.name for p in (mta.maildir(ALICE) / "new").iterdir()]
    assert len(set(names)) == len(names)
    assert mta.tmp_files(ALICE) == []


def test_smtputf8_and_8bitmime(mta):
    message = "Subject: UTF-8 \u00fcber alles\r\n\r\nGr\u00fc\u00dfe, \u4f60\u597d\r\n".encode()
    with SMTPWire(mta.mx_port) as conn:
        keywords = conn.ehlo().keywords()
        assert "SMTPUTF8" in keywords and "8BITMIME" in keywords
        reply = conn.command("MAIL FROM:<j\u00fcrgen@b\u00fccher.example> SMTPUTF8 BODY=8BITMIME")
        assert (reply.code, reply.enhanced) == (250, "2.1.0"), str(reply)
        reply = conn.command(f"RCPT TO:<{ALICE}>")
        assert (reply.code, reply.enhanced) == (250, "2.1.5"), str(reply)
        reply = conn.data(message)
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
    stored = mta.messages(ALICE)
    assert len(stored) == 1
    check_stored(stored[0], message, "UTF8SMTP")  # RFC 6531 §3.7.3
