"""Delivery over the MX port into the built-in Maildir store.

Proves that a message accepted with 250 is in the recipient's Maildir new/
folder, byte for byte as sent (dot-unstuffed, 8-bit intact), preceded by a
Received field that says `with ESMTP`; that each recipient gets exactly one
copy; that unknown local users are refused with 550 5.1.1 and get nothing; that
pipelined commands are answered in order; that the command sequence is
enforced; and that tmp/ is empty after every delivery.
"""

import smtplib

from smtpwire import SMTPWire, dot_stuff
from storedmail import check_stored

ALICE = "alice@example.test"
BOB = "bob@example.test"
SENDER = "sender@example.org"

MESSAGE = (
    b"From: Sender <sender@example.org>\r\n"
    b"To: Alice <alice@example.test>\r\n"
    b"Subject: delivery test\r\n"
    b"Message-ID: <delivery-1@example.org>\r\n"
    b"\r\n"
    b"First line.\r\n"
    b".\r\n"
    b"..\r\n"
    b".leading dot\r\n"
    b"...three dots\r\n"
    b" . space dot\r\n"
    b"8-bit: \xc3\xa9t\xc3\xa9 \xe2\x82\xac\r\n"
    b"\r\n"
    b"Last line.\r\n"
)


def test_greeting_and_ehlo_on_mx(mta):
    with SMTPWire(mta.mx_port) as conn:
        assert conn.greeting.code == 220
        assert conn.greeting.lines[0].startswith("mx.example.test ")
        reply = conn.ehlo()
        assert reply.code == 250
        assert reply.lines[0].split()[0] == "mx.example.test"
        keywords = reply.keywords()
        for keyword in ("PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
                        "CHUNKING", "STARTTLS", "SIZE"):
            assert keyword in keywords, f"EHLO does not announce {keyword}: {reply}"
        assert keywords["SIZE"] == str(35 * 1024 * 1024)
        assert "AUTH" not in keywords, f"the MX role must not offer AUTH: {reply}"
        assert conn.command("QUIT").code == 221


def test_smtplib_delivery_is_byte_exact(mta):
    with smtplib.SMTP("127.0.0.1", mta.mx_port, local_hostname="client.example.org", timeout=10) as s:
        refused = s.sendmail(SENDER, [ALICE], MESSAGE)
        assert refused == {}
    stored = mta.messages(ALICE)
    assert len(stored) == 1
    received = check_stored(stored[0], MESSAGE, "ESMTP")
    assert b"by mx.example.test" in received
    assert b"for <alice@example.test>" in received
    assert mta.messages(BOB) == []
    assert mta.tmp_files(ALICE) == []


def test_unknown_user_is_refused(mta):
    with smtplib.SMTP("127.0.0.1", mta.mx_port, local_hostname="client.example.org", timeout=10) as s:
        s.ehlo()
        assert s.mail(SENDER)[0] == 250
        code, text = s.rcpt("nobody@example.test")
        assert code == 550
        assert text.startswith(b"5.1.1"), text
        code, text = s.docmd("DATA")
        assert 500 <= code < 600, "DATA without any accepted recipient must fail"
    assert mta.all_mail_files() == []


def test_each_recipient_gets_one_copy(mta):
    with smtplib.SMTP("127.0.0.1", mta.mx_port, local_hostname="client.example.org", timeout=10) as s:
        refused = s.sendmail(SENDER, [ALICE, "nobody@example.test", BOB], MESSAGE)
        assert set(refused) == {"nobody@example.test"}
        assert refused["nobody@example.test"][0] == 550
        assert refused["nobody@example.test"][1].startswith(b"5.1.1")
    for user in (ALICE, BOB):
        stored = mta.messages(user)
        assert len(stored) == 1, f"{user} has {len(stored)} messages"
        check_stored(stored[0], MESSAGE, "ESMTP")
        assert mta.tmp_files(user) == []
    assert len(mta.all_mail_files()) == 2


def test_recipient_case_is_ignored(mta):
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
        reply = conn.command("RCPT TO:<Alice@EXAMPLE.Test>")
        assert (reply.code, reply.enhanced) == (250, "2.1.5"), str(reply)
        reply = conn.data(MESSAGE)
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
    assert len(mta.messages(ALICE)) == 1


def test_null_sender_is_accepted(mta):
    """Bounces (MAIL FROM:<>) must be deliverable."""
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        reply = conn.command("MAIL FROM:<>")
        assert (reply.code, reply.enhanced) == (250, "2.1.0"), str(reply)
        assert conn.command(f"RCPT TO:<{ALICE}>").code == 250
        assert conn.data(MESSAGE).code == 250
    stored = mta.messages(ALICE)
    assert len(stored) == 1
    check_stored(stored[0], MESSAGE, "ESMTP")


def test_raw_dot_unstuffing(mta):
    wire_body = (b"Subject: dots\r\n\r\n"
                 b"..hidden\r\n"
                 b"...\r\n"
                 b"x.\r\n"
                 b".\r\n")  # the terminator
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        conn.command(f"MAIL FROM:<{SENDER}>")
        conn.command(f"RCPT TO:<{ALICE}>")
        assert conn.command("DATA").code == 354
        conn.send(wire_body)
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
    stored = mta.messages(ALICE)
    assert len(stored) == 1
    check_stored(stored[0], b"Subject: dots\r\n\r\n.hidden\r\n..\r\nx.\r\n", "ESMTP")


def test_pipelined_transaction_replies_in_order(mta):
    with SMTPWire(mta.mx_port) as conn:
        assert "PIPELINING" in conn.ehlo().keywords()
        conn.send(f"MAIL FROM:<{SENDER}>\r\n"
                  f"RCPT TO:<{ALICE}>\r\n"
                  "RCPT TO:<nobody@example.test>\r\n"
                  f"RCPT TO:<{BOB}>\r\n"
                  "DATA\r\n")
        replies = conn.read_replies(5)
        got = [(r.code, r.enhanced) for r in replies]
        assert got == [(250, "2.1.0"), (250, "2.1.5"), (550, "5.1.1"), (250, "2.1.5"), (354, "")], \
            "\n".join(map(str, replies))
        assert "nobody@example.test" in replies[2].text
        # The message, its terminator and the next commands in one write.
        conn.send(dot_stuff(MESSAGE) + b".\r\nNOOP\r\nQUIT\r\n")
        replies = conn.read_replies(3)
        got = [(r.code, r.enhanced) for r in replies]
        assert got == [(250, "2.0.0"), (250, "2.0.0"), (221, "2.0.0")], "\n".join(map(str, replies))
        assert conn.wait_for_eof(5) == b""
    for user in (ALICE, BOB):
        stored = mta.messages(user)
        assert len(stored) == 1
        check_stored(stored[0], MESSAGE, "ESMTP")


def test_pipelined_second_transaction_after_rset(mta):
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        conn.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{ALICE}>\r\nRSET\r\n"
                  f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{BOB}>\r\nDATA\r\n")
        got = [(r.code, r.enhanced) for r in conn.read_replies(6)]
        assert got == [(250, "2.1.0"), (250, "2.1.5"), (250, "2.0.0"),
                       (250, "2.1.0"), (250, "2.1.5"), (354, "")]
        conn.send(b"Subject: after rset\r\n\r\nbody\r\n.\r\n")
        assert conn.read_reply().code == 250
    assert mta.messages(ALICE) == []
    assert len(mta.messages(BOB)) == 1


def test_command_sequence_is_enforced(mta):
    with SMTPWire(mta.mx_port) as conn:
        reply = conn.command(f"MAIL FROM:<{SENDER}>")
        assert (reply.code, reply.enhanced) == (503, "5.5.1"), f"MAIL before EHLO: {reply}"
        conn.ehlo()
        reply = conn.command(f"RCPT TO:<{ALICE}>")
        assert (reply.code, reply.enhanced) == (503, "5.5.1"), f"RCPT before MAIL: {reply}"
        reply = conn.command("DATA")
        assert (reply.code, reply.enhanced) == (503, "5.5.1"), f"DATA before MAIL: {reply}"
        assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
        reply = conn.command(f"MAIL FROM:<{SENDER}>")
        assert (reply.code, reply.enhanced) == (503, "5.5.1"), f"nested MAIL: {reply}"
        reply = conn.command("DATA")
        # RFC 5321 §3.3 allows 503 (out of sequence) or 554 (no valid recipients).
        assert reply.code in (503, 554) and reply.enhanced == "5.5.1", f"DATA before RCPT: {reply}"
        assert conn.command(f"RCPT TO:<{ALICE}>").code == 250
        reply = conn.command("RSET")
        assert (reply.code, reply.enhanced) == (250, "2.0.0")
        reply = conn.command("DATA")
        assert (reply.code, reply.enhanced) == (503, "5.5.1"), f"DATA after RSET: {reply}"
        # Nothing of the above is a message.
        assert conn.command("QUIT").code == 221
    assert mta.all_mail_files() == []


def test_simple_commands(mta):
    with SMTPWire(mta.mx_port) as conn:
        reply = conn.command("HELO client.example.org")
        assert reply.code == 250 and reply.lines[0].startswith("mx.example.test")
        reply = conn.command("NOOP")
        assert (reply.code, reply.enhanced) == (250, "2.0.0")
        reply = conn.command("VRFY alice")
        assert (reply.code, reply.enhanced) == (252, "2.5.0")
        reply = conn.command("EXPN staff")
        assert (reply.code, reply.enhanced) == (502, "5.5.1")
        reply = conn.command("HELP")
        assert reply.code == 214
        reply = conn.command("FROBNICATE")
        assert (reply.code, reply.enhanced) == (500, "5.5.1")
        reply = conn.command("QUIT")
        assert (reply.code, reply.enhanced) == (221, "2.0.0")
        assert conn.wait_for_eof(5) == b""


def test_bad_addresses_get_specific_replies(mta):
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        reply = conn.command("MAIL FROM:<not an address>")
        assert (reply.code, reply.enhanced) == (501, "5.1.7"), str(reply)
        assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
        reply = conn.command("RCPT TO:<alice@@example.test>")
        assert (reply.code, reply.enhanced) == (501, "5.1.3"), str(reply)
        reply = conn.command("RCPT TO:alice")
        assert reply.code == 501, str(reply)

