"""Protocol strictness: NUL octets, repeated recipients, AUTH line length,
and the with-protocol of the Received field under SMTPUTF8.

Proves, with the exact probes a raw client can send, that
- a NUL octet in a command line gets 500 5.5.2 and the line is never executed
  (NOOP a<NUL>b, EHLO foo<NUL>bar: the name never reaches a Received field);
- a NUL octet in DATA or BDAT content refuses the message with 554 5.6.0 at
  its end, stores nothing (Maildir and spool), and the session goes on; the
  same in a token transaction, once per recipient (RFC 2033 §4.2);
- with nul_octets: strip the message is accepted and stored without NULs;
- 1,000 identical pipelined RCPTs: 100 (max_recipients) get 250, the rest
  452 4.5.3, and the message is delivered once;
- an AUTH line of exactly 12288 octets is read and judged (501, 535), one
  octet more gets 500 5.5.6, as does an overlong SASL response; the overlong line is
  drained whole and the session then authenticates normally;
- the Received field says UTF8SMTP, UTF8SMTPS, UTF8SMTPSA or UTF8LMTPSA when
  MAIL carried SMTPUTF8 (RFC 6531 §3.7.3), and ESMTP... without it.
Every refusal leaves a log line.
"""

import base64

import pytest

from smtpwire import SMTPWire, dot_stuff
from storedmail import check_stored, received_field
from tokenwire import genstoken, token_session

ALICE = "alice@example.test"
SENDER = "sender@example.org"
REMOTE = "bob@remote.example"
AUTH_LIMIT = 12288


@pytest.fixture(scope="module")
def mta(module_stokend_factory):
    # A short AUTH failure delay: one test expects a 535.
    return module_stokend_factory(
        timeouts={"auth_failure_base_delay": "100ms", "auth_failure_max_delay": "200ms"})


@pytest.fixture(scope="module")
def stripping(module_stokend_factory):
    return module_stokend_factory(nul_octets="strip")


def begin(conn, mail_parameters: str = ""):
    assert conn.ehlo().code == 250
    assert conn.command(f"MAIL FROM:<{SENDER}>{mail_parameters}").code == 250
    assert conn.command(f"RCPT TO:<{ALICE}>").code == 250


def bdat(conn, chunk: bytes, last: bool = False):
    conn.send(f"BDAT {len(chunk)}{' LAST' if last else ''}\r\n".encode() + chunk)
    return conn.read_reply()


def nothing_stored(daemon, marker: bytes) -> None:
    assert daemon.all_mail_files() == []
    assert daemon.files_containing(marker) == [], "the refused message reached the disk"


# --- NUL in command lines -------------------------------------------------------------


@pytest.mark.parametrize("line", [b"NOOP a\0b", b"EHLO foo\0bar", b"MAIL FROM:<a\0b@example.org>",
                                  b"\0"])
def test_nul_in_a_command_line_gets_500(mta, line):
    with SMTPWire(mta.mx_port) as conn:
        conn.send(line + b"\r\n")
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (500, "5.5.2"), str(reply)
        assert "NUL" in reply.text
        assert conn.pending(0.3) == b"", "more than one reply to one line"
        reply = conn.command("NOOP")
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
    assert "NUL octet in a command line" in mta.log()


def test_refused_ehlo_name_never_reaches_received(mta):
    with SMTPWire(mta.mx_port) as conn:
        assert conn.command(b"EHLO foo\0bar").code == 500
        # The refused EHLO did not count: MAIL still needs one.
        assert conn.command(f"MAIL FROM:<{SENDER}>").code == 503
        conn.ehlo("clean.example.org")
        assert conn.transaction(SENDER, [ALICE], b"Subject: nul ehlo\r\n\r\nbody\r\n").code == 250
    assert mta.settle()
    stored = mta.messages(ALICE)
    assert len(stored) == 1
    received = received_field(stored[0])
    assert b"from clean.example.org" in received, received
    assert b"foo" not in received and b"?" not in received, received


# --- NUL in message content -----------------------------------------------------------

NUL_MESSAGE = b"Subject: nul probe\r\n\r\nbefore\0after nul-marker-1\r\nlast line\r\n"


def test_nul_in_data_is_refused_and_nothing_stored(mta):
    with SMTPWire(mta.mx_port) as conn:
        begin(conn)
        assert conn.command("DATA").code == 354
        conn.send(dot_stuff(NUL_MESSAGE) + b".\r\n")
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (554, "5.6.0"), str(reply)
        assert conn.pending(0.3) == b""
        # The transaction is over; the session goes on.
        assert conn.command(f"RCPT TO:<{ALICE}>").code == 503
        assert conn.command("NOOP").code == 250
    assert mta.settle()
    nothing_stored(mta, b"nul-marker-1")
    assert "message refused: NUL octet" in mta.log()


def test_nul_on_a_dot_line_does_not_end_the_data(mta):
    """".<NUL>" is no end of data: the real end comes later, and the pipelined
    command after it is answered as a command, once."""
    with SMTPWire(mta.mx_port) as conn:
        begin(conn)
        assert conn.command("DATA").code == 354
        conn.send(b"Subject: dot nul\r\n\r\nx nul-marker-2\r\n.\0\r\n"
                  b"MAIL FROM:<evil@example.net>\r\n.\r\nNOOP\r\n")
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (554, "5.6.0"), str(reply)
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
        assert conn.pending(0.3) == b""
    assert mta.settle()
    nothing_stored(mta, b"nul-marker-2")


@pytest.mark.parametrize("nul_in_last", [True, False])
def test_nul_in_bdat_is_refused_and_nothing_stored(mta, nul_in_last):
    first = b"Subject: bdat nul\r\n\r\nnul-marker-3 " + (b"" if nul_in_last else b"\0") + b"\r\n"
    last = b"more\r\n" + (b"x\0y\r\n" if nul_in_last else b"")
    with SMTPWire(mta.mx_port) as conn:
        begin(conn)
        reply = bdat(conn, first)
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
        reply = bdat(conn, last, last=True)
        assert (reply.code, reply.enhanced) == (554, "5.6.0"), str(reply)
        assert conn.command("NOOP").code == 250
    assert mta.settle()
    nothing_stored(mta, b"nul-marker-3")


def test_strip_option_stores_the_message_without_nul(stripping):
    with SMTPWire(stripping.mx_port) as conn:
        begin(conn)
        reply = conn.data(NUL_MESSAGE)
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
    assert stripping.settle()
    stored = stripping.messages(ALICE)
    assert len(stored) == 1
    assert b"\0" not in stored[0]
    check_stored(stored[0], NUL_MESSAGE.replace(b"\0", b""), "ESMTP")
    assert "1 NUL octets stripped from the message" in stripping.log()


def test_strip_option_applies_to_bdat(stripping):
    chunks = [b"Subject: bdat strip\r\n\r\na\0b\r", b"\n\0c\0\r\n"]
    with SMTPWire(stripping.mx_port) as conn:
        begin(conn)
        assert bdat(conn, chunks[0]).code == 250
        reply = bdat(conn, chunks[1], last=True)
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
    assert stripping.settle()
    stored = stripping.messages(ALICE)
    assert len(stored) == 1
    check_stored(stored[0], b"Subject: bdat strip\r\n\r\nab\r\nc\r\n", "ESMTP")


def test_nul_in_a_token_transaction_is_refused_per_recipient(mta):
    token = genstoken(mta, ALICE, "TEMP", REMOTE)
    with token_session(mta, ALICE, token) as conn:
        assert conn.mail(REMOTE).code == 250
        assert conn.rcpt(ALICE, token).code == 250
        assert conn.command("DATA").code == 354
        conn.send(b"Subject: token nul nul-marker-4\r\n\r\na\0b\r\n.\r\n")
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (554, "5.6.0"), str(reply)
        assert f"<{ALICE}>" in reply.text
        assert conn.pending(0.3) == b"", "one reply per accepted recipient, no more"
        assert conn.command("NOOP").code == 250
    nothing_stored(mta, b"nul-marker-4")


# --- repeated RCPT --------------------------------------------------------------------


def test_repeated_identical_rcpt_counts_toward_max_recipients(mta):
    limit = mta.config["limits"]["max_recipients"]
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
        conn.send(f"RCPT TO:<{ALICE}>\r\n".encode() * 1000)
        replies = conn.read_replies(1000)
        codes = [(r.code, r.enhanced) for r in replies]
        assert codes[:limit] == [(250, "2.1.5")] * limit
        assert codes[limit:] == [(452, "4.5.3")] * (1000 - limit)
        assert conn.pending(0.3) == b""
        reply = conn.data(b"Subject: many rcpt\r\n\r\nonce\r\n")
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
    assert mta.settle()
    assert len(mta.messages(ALICE)) == 1, "a repeated recipient still gets one copy"
    assert "recipient limit of 100 reached" in mta.log()


def test_recipient_count_starts_again_with_the_next_transaction(mta):
    limit = mta.config["limits"]["max_recipients"]
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
        conn.send(f"RCPT TO:<{ALICE}>\r\n".encode() * (limit + 1))
        assert [r.code for r in conn.read_replies(limit + 1)][-2:] == [250, 452]
        assert conn.command("RSET").code == 250
        assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
        assert conn.command(f"RCPT TO:<{ALICE}>").code == 250


# --- AUTH line length -----------------------------------------------------------------


def tls_session(port: int) -> SMTPWire:
    conn = SMTPWire(port)
    conn.ehlo()
    conn.starttls()
    assert "AUTH" in conn.ehlo().keywords()
    return conn


def plain_line(length: int) -> bytes:
    """"AUTH PLAIN <base64>" with CRLF, exactly `length` octets: well-formed
    PLAIN credentials whose password is filler (so wrong)."""
    prefix = b"AUTH PLAIN "
    encoded_length = length - len(prefix) - 2
    assert encoded_length % 4 == 0
    raw_length = encoded_length // 4 * 3
    head = f"\0{ALICE}\0".encode()
    encoded = base64.b64encode(head + b"p" * (raw_length - len(head)))
    line = prefix + encoded + b"\r\n"
    assert len(line) == length
    return line


def test_auth_line_at_the_limit_is_read(mta):
    """12288 octets with CRLF is read as the AUTH command: not base64 of
    PLAIN here (501), and well-formed credentials just under it are checked
    (535), never 500."""
    with tls_session(mta.submission_port) as conn:
        line = b"AUTH PLAIN " + b"A" * (AUTH_LIMIT - len(b"AUTH PLAIN ") - 2) + b"\r\n"
        assert len(line) == AUTH_LIMIT
        conn.send(line)
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (501, "5.5.2"), str(reply)
        conn.send(plain_line(AUTH_LIMIT - (AUTH_LIMIT - len(b"AUTH PLAIN ") - 2) % 4))
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (535, "5.7.8"), str(reply)


def test_auth_line_over_the_limit_gets_500_5_5_6(mta):
    with tls_session(mta.submission_port) as conn:
        conn.send(b"AUTH PLAIN " + b"A" * (AUTH_LIMIT - len(b"AUTH PLAIN ") - 1) + b"\r\n")
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (500, "5.5.6"), str(reply)
        assert "too long" in reply.text
        assert conn.pending(0.3) == b"", "the long line was read as more than one line"
        # Drained whole: text after the limit is not a command (QUIT would close).
        conn.send(b"AUTH PLAIN " + b"A" * 20000 + b" QUIT\r\nNOOP\r\n")
        assert conn.read_reply().enhanced == "5.5.6"
        assert conn.read_reply().code == 250
        reply = conn.auth_plain(ALICE, mta.users[ALICE])
        assert (reply.code, reply.enhanced) == (235, "2.7.0"), str(reply)
    assert "over the AUTH limit of 12288 octets" in mta.log()


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_overlong_sasl_response_gets_500_5_5_6(mta, mechanism):
    with tls_session(mta.submission_port) as conn:
        assert conn.command(f"AUTH {mechanism}").code == 334
        if mechanism == "LOGIN":
            assert conn.command(base64.b64encode(ALICE.encode()).decode()).code == 334
        conn.send(b"A" * (AUTH_LIMIT + 100) + b"\r\nNOOP\r\n")
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (500, "5.5.6"), str(reply)
        # The exchange is over: the next line is a command again.
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
        assert conn.pending(0.3) == b""
        reply = conn.auth_login(ALICE, mta.users[ALICE])
        assert (reply.code, reply.enhanced) == (235, "2.7.0"), str(reply)
    assert "an AUTH response over the AUTH limit" in mta.log()


def test_sasl_response_longer_than_a_command_line_is_read(mta):
    """RFC 4954 §4: a response may pass the 1000-octet command limit."""
    with tls_session(mta.submission_port) as conn:
        assert conn.command("AUTH PLAIN").code == 334
        response = base64.b64encode(f"\0{ALICE}\0".encode() + b"p" * 3000)
        assert len(response) > 1000
        reply = conn.command(response)
        assert (reply.code, reply.enhanced) == (535, "5.7.8"), str(reply)


def test_nul_in_a_sasl_response_ends_the_exchange(mta):
    with tls_session(mta.submission_port) as conn:
        assert conn.command("AUTH PLAIN").code == 334
        reply = conn.command(b"AAAA\0AAAA")
        assert (reply.code, reply.enhanced) == (500, "5.5.2"), str(reply)
        assert conn.command("NOOP").code == 250


# --- Received with SMTPUTF8 -----------------------------------------------------------

UTF8_MESSAGE = "Subject: utf8 \u00fcber\r\nFrom: j\u00f6rg@example.org\r\n\r\nbody\r\n".encode()


def stored_received(daemon) -> bytes:
    assert daemon.settle()
    stored = daemon.messages(ALICE)
    assert len(stored) == 1
    return check_stored(stored[0], UTF8_MESSAGE)


@pytest.mark.parametrize("tls,expected", [(False, b"UTF8SMTP"), (True, b"UTF8SMTPS")])
def test_received_says_utf8smtp_on_the_mx(mta, tls, expected):
    with SMTPWire(mta.mx_port) as conn:
        if tls:
            conn.ehlo()
            conn.starttls()
        begin(conn, " SMTPUTF8")
        assert conn.data(UTF8_MESSAGE).code == 250
    assert b" with " + expected + b" id " in stored_received(mta)


def test_received_says_utf8smtpsa_on_submission(mta):
    with tls_session(mta.submission_port) as conn:
        assert conn.auth_plain(ALICE, mta.users[ALICE]).code == 235
        assert conn.command(f"MAIL FROM:<{ALICE}> SMTPUTF8").code == 250
        assert conn.command(f"RCPT TO:<{ALICE}>").code == 250
        assert conn.data(UTF8_MESSAGE).code == 250
    assert b" with UTF8SMTPSA id " in stored_received(mta)


def test_received_without_smtputf8_stays_esmtp(mta):
    with SMTPWire(mta.mx_port) as conn:
        begin(conn)
        assert conn.data(UTF8_MESSAGE).code == 250
    received = stored_received(mta)
    assert b" with ESMTP id " in received and b"UTF8" not in received


def test_received_says_utf8lmtpsa_for_a_token_delivery(mta):
    token = genstoken(mta, ALICE, "TEMP", REMOTE)
    with token_session(mta, ALICE, token) as conn:
        assert conn.command(f"MAIL FROM:<{REMOTE}> SMTPUTF8").code == 250
        assert conn.rcpt(ALICE, token).code == 250
        replies = conn.data_per_recipient(UTF8_MESSAGE, 1)
        assert replies[0].code == 250
    new = sorted((mta.maildir(ALICE) / "new").iterdir())
    assert len(new) == 1
    received = check_stored(new[0].read_bytes(), UTF8_MESSAGE)
    assert b" with UTF8LMTPSA id " in received, received
