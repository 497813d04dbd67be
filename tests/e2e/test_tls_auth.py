"""STARTTLS, implicit TLS and AUTH.

Proves that STARTTLS is offered before TLS and not after; that AUTH PLAIN LOGIN
is offered on submission only under TLS and never on the MX role; that commands
pipelined behind STARTTLS are discarded (no reply to them, before or after the
handshake); that implicit TLS works on the submissions port; that AUTH PLAIN
and LOGIN succeed with the stokenctl password and fail with 535 5.7.8 otherwise;
that AUTH before TLS gets 538 5.7.11, AUTH on MX 503 5.5.1, MAIL without AUTH on
submission 530 5.7.0; that repeated failures end in 421 4.7.0 and a closed
connection; and that the Received field says ESMTPS under TLS and ESMTPSA when
authenticated.
"""

import base64
import smtplib
import time

import pytest

from smtpwire import SMTPProtocolError, SMTPWire, client_tls_context
from storedmail import check_stored

ALICE = "alice@example.test"
BOB = "bob@example.test"
SENDER = "sender@example.org"

MESSAGE = (b"From: Alice <alice@example.test>\r\n"
           b"To: Bob <bob@example.test>\r\n"
           b"Subject: tls and auth\r\n"
           b"\r\n"
           b"Hello Bob.\r\n.dot line\r\n")

MAX_AUTH_FAILURES = 3


@pytest.fixture(scope="module")
def mta(module_stokend_factory):
    return module_stokend_factory(
        limits={"max_auth_failures": MAX_AUTH_FAILURES},
        timeouts={"auth_failure_base_delay": "100ms", "auth_failure_max_delay": "400ms"})


def tls_session(port: int) -> SMTPWire:
    conn = SMTPWire(port)
    conn.ehlo()
    conn.starttls()
    return conn


def test_submission_ehlo_before_and_after_starttls(mta):
    with SMTPWire(mta.submission_port) as conn:
        assert conn.greeting.code == 220
        before = conn.ehlo().keywords()
        assert "STARTTLS" in before
        assert "AUTH" not in before, "AUTH must not be offered before TLS"
        reply = conn.command("STARTTLS")
        assert (reply.code, reply.enhanced) == (220, "2.0.0"), str(reply)
        conn.tls_handshake()
        assert conn.sock.version() in ("TLSv1.2", "TLSv1.3")
        after = conn.ehlo().keywords()
        assert "STARTTLS" not in after, "STARTTLS must not be offered twice"
        assert "AUTH" in after
        mechanisms = after["AUTH"].upper().split()
        assert "PLAIN" in mechanisms and "LOGIN" in mechanisms
        reply = conn.command("STARTTLS")
        assert (reply.code, reply.enhanced) == (503, "5.5.1"), str(reply)


def test_mx_never_offers_auth(mta):
    with SMTPWire(mta.mx_port) as conn:
        assert "AUTH" not in conn.ehlo().keywords()
        conn.starttls()
        keywords = conn.ehlo().keywords()
        assert "AUTH" not in keywords and "STARTTLS" not in keywords
        reply = conn.auth_plain(ALICE, mta.users[ALICE])
        assert (reply.code, reply.enhanced) == (503, "5.5.1"), str(reply)


def test_starttls_with_argument(mta):
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        reply = conn.command("STARTTLS now")
        assert (reply.code, reply.enhanced) == (501, "5.5.4"), str(reply)
        assert conn.command("NOOP").code == 250


@pytest.mark.parametrize("role", ["mx", "submission"])
def test_starttls_command_injection_is_discarded(mta, role):
    port = mta.mx_port if role == "mx" else mta.submission_port
    with SMTPWire(port) as conn:
        conn.ehlo()
        conn.send(b"STARTTLS\r\nNOOP\r\n")  # one write: NOOP sits in the buffer
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (220, "2.0.0"), str(reply)
        assert conn.pending(0.3) == b"", "plaintext reply to the injected NOOP"
        conn.tls_handshake()
        assert conn.pending(0.5) == b"", "reply to the injected NOOP after the handshake"
        conn.send(b"EHLO client.example.org\r\n")
        first = conn.read_reply()
        assert first.code == 250 and first.lines[0].startswith("mx.example.test"), (
            f"first reply after TLS is not the EHLO reply: {first}")
        assert len(first.lines) > 1, f"not an EHLO reply: {first}"
        assert conn.pending(0.3) == b""
        assert conn.command("NOOP").code == 250


def test_starttls_resets_the_session(mta):
    """RFC 3207 §4.2: after TLS the server forgets everything, including EHLO
    and a transaction started before."""
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
        conn.starttls()
        reply = conn.command(f"RCPT TO:<{ALICE}>")
        assert (reply.code, reply.enhanced) == (503, "5.5.1"), f"transaction survived STARTTLS: {reply}"
        reply = conn.command(f"MAIL FROM:<{SENDER}>")
        assert (reply.code, reply.enhanced) == (503, "5.5.1"), f"EHLO survived STARTTLS: {reply}"
        conn.ehlo()
        assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250


def test_starttls_mx_delivery_says_esmtps(mta):
    with tls_session(mta.mx_port) as conn:
        conn.ehlo()
        reply = conn.transaction(SENDER, [ALICE], MESSAGE)
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
    stored = mta.messages(ALICE)
    assert len(stored) == 1
    check_stored(stored[0], MESSAGE, "ESMTPS")


def test_implicit_tls_submissions(mta):
    with SMTPWire(mta.submissions_port, implicit_tls=True) as conn:
        assert conn.greeting.code == 220
        assert conn.greeting.lines[0].startswith("mx.example.test")
        keywords = conn.ehlo().keywords()
        assert "AUTH" in keywords and "STARTTLS" not in keywords
        reply = conn.command("STARTTLS")
        # TLS is already active (503), and STARTTLS is not offered here (502).
        assert reply.code in (502, 503) and reply.enhanced == "5.5.1", str(reply)
        reply = conn.auth_plain(ALICE, mta.users[ALICE])
        assert (reply.code, reply.enhanced) == (235, "2.7.0"), str(reply)
        reply = conn.transaction(ALICE, [BOB], MESSAGE)
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
    stored = mta.messages(BOB)
    assert len(stored) == 1
    check_stored(stored[0], MESSAGE, "ESMTPSA")


def test_implicit_tls_port_does_not_speak_plaintext(mta):
    """A plaintext client on the implicit TLS port gets no SMTP greeting."""
    with SMTPWire(mta.submissions_port, read_greeting=False, timeout=3) as conn:
        assert not conn.pending(0.5).startswith(b"220")


def test_smtplib_starttls_login_plain(mta):
    with smtplib.SMTP("127.0.0.1", mta.submission_port, local_hostname="client.example.org",
                      timeout=10) as s:
        s.starttls(context=client_tls_context())
        s.ehlo()
        s.user, s.password = ALICE, mta.users[ALICE]
        code, text = s.auth("PLAIN", s.auth_plain, initial_response_ok=True)
        assert code == 235 and text.startswith(b"2.7.0"), text
        assert s.sendmail(ALICE, [BOB], MESSAGE) == {}
    stored = mta.messages(BOB)
    assert len(stored) == 1
    check_stored(stored[0], MESSAGE, "ESMTPSA")


def test_smtplib_implicit_tls_login_login(mta):
    with smtplib.SMTP_SSL("127.0.0.1", mta.submissions_port, local_hostname="client.example.org",
                          timeout=10, context=client_tls_context()) as s:
        s.ehlo()
        s.user, s.password = BOB, mta.users[BOB]
        code, text = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
        assert code == 235 and text.startswith(b"2.7.0"), text
        assert s.sendmail(BOB, [ALICE], MESSAGE) == {}
    stored = mta.messages(ALICE)
    assert len(stored) == 1
    check_stored(stored[0], MESSAGE, "ESMTPSA")


def test_auth_login_raw(mta):
    with tls_session(mta.submission_port) as conn:
        conn.ehlo()
        reply = conn.command("AUTH LOGIN")
        assert reply.code == 334, str(reply)
        reply = conn.command(base64.b64encode(ALICE.encode()).decode())
        assert reply.code == 334, str(reply)
        reply = conn.command(base64.b64encode(mta.users[ALICE].encode()).decode())
        assert (reply.code, reply.enhanced) == (235, "2.7.0"), str(reply)
        reply = conn.command("AUTH PLAIN " + base64.b64encode(b"\0x\0y").decode())
        assert reply.code == 503, f"second AUTH must be refused: {reply}"


def test_auth_plain_without_initial_response(mta):
    with tls_session(mta.submission_port) as conn:
        conn.ehlo()
        reply = conn.command("AUTH PLAIN")
        assert reply.code == 334, str(reply)
        token = base64.b64encode(f"\0{ALICE}\0{mta.users[ALICE]}".encode()).decode()
        reply = conn.command(token)
        assert (reply.code, reply.enhanced) == (235, "2.7.0"), str(reply)


def test_auth_failures_get_535(mta):
    with tls_session(mta.submission_port) as conn:
        conn.ehlo()
        reply = conn.auth_plain(ALICE, "wrong password")
        assert (reply.code, reply.enhanced) == (535, "5.7.8"), str(reply)
        reply = conn.auth_login("nobody@example.test", mta.users[ALICE])
        assert (reply.code, reply.enhanced) == (535, "5.7.8"), str(reply)
        reply = conn.command("AUTH PLAIN not*base64!")
        assert 500 <= reply.code < 600, f"malformed initial response: {reply}"
        # The session is not authenticated: MAIL still needs AUTH.
        reply = conn.command(f"MAIL FROM:<{ALICE}>")
        assert (reply.code, reply.enhanced) == (530, "5.7.0"), str(reply)


def test_auth_plain_cannot_impersonate(mta):
    """alice's credentials with bob as authorization identity must not log in."""
    with tls_session(mta.submission_port) as conn:
        conn.ehlo()
        token = base64.b64encode(f"{BOB}\0{ALICE}\0{mta.users[ALICE]}".encode()).decode()
        reply = conn.command(f"AUTH PLAIN {token}")
        assert reply.code != 235 and 500 <= reply.code < 600, str(reply)


def test_auth_cancelled_and_unknown_mechanism(mta):
    with tls_session(mta.submission_port) as conn:
        conn.ehlo()
        assert conn.command("AUTH LOGIN").code == 334
        reply = conn.command("*")
        assert (reply.code, reply.enhanced) == (501, "5.0.0"), str(reply)
        reply = conn.command("AUTH CRAM-MD5")
        assert (reply.code, reply.enhanced) == (504, "5.5.4"), str(reply)
        assert conn.command("NOOP").code == 250


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_before_tls_is_refused(mta, mechanism):
    with SMTPWire(mta.submission_port) as conn:
        conn.ehlo()
        if mechanism == "PLAIN":
            reply = conn.auth_plain(ALICE, mta.users[ALICE])
        else:
            reply = conn.command("AUTH LOGIN")
        assert (reply.code, reply.enhanced) == (538, "5.7.11"), str(reply)
        assert conn.command("NOOP").code == 250


@pytest.mark.parametrize("tls", [False, True])
def test_submission_mail_requires_auth(mta, tls):
    conn = tls_session(mta.submission_port) if tls else SMTPWire(mta.submission_port)
    with conn:
        conn.ehlo()
        reply = conn.command(f"MAIL FROM:<{ALICE}>")
        assert (reply.code, reply.enhanced) == (530, "5.7.0"), str(reply)
        reply = conn.command(f"RCPT TO:<{BOB}>")
        assert 500 <= reply.code < 600, str(reply)
    assert mta.all_mail_files() == []


def test_authenticated_recipients(mta):
    with SMTPWire(mta.submissions_port, implicit_tls=True) as conn:
        conn.ehlo()
        assert conn.auth_plain(ALICE, mta.users[ALICE]).code == 235
        assert conn.command(f"MAIL FROM:<{ALICE}>").code == 250
        # Authenticated users may address other domains: queued for MX delivery.
        reply = conn.command("RCPT TO:<friend@remote.example>")
        assert (reply.code, reply.enhanced) == (250, "2.1.5"), str(reply)
        assert conn.command("RSET").code == 250
        assert conn.command(f"MAIL FROM:<{ALICE}>").code == 250
        reply = conn.command("RCPT TO:<nobody@example.test>")
        assert (reply.code, reply.enhanced) == (550, "5.1.1"), str(reply)
        reply = conn.command(f"RCPT TO:<{BOB}>")
        assert (reply.code, reply.enhanced) == (250, "2.1.5"), str(reply)
        reply = conn.data(MESSAGE)
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
    assert len(mta.messages(BOB)) == 1
    assert len(mta.all_mail_files()) == 1


def test_too_many_auth_failures_close_the_session(mta):
    with tls_session(mta.submission_port) as conn:
        conn.ehlo()
        replies = []
        first_delay = None
        for _ in range(MAX_AUTH_FAILURES + 1):
            if conn.pending(0.05):  # a 421 may arrive without being asked
                replies.append(conn.read_reply())
                break
            started = time.monotonic()
            try:
                reply = conn.auth_plain(ALICE, "wrong password")
            except (SMTPProtocolError, OSError) as error:
                pytest.fail(f"connection ended without a 421 after {replies}: {error}")
            if first_delay is None:
                first_delay = time.monotonic() - started
            replies.append(reply)
            if reply.code == 421:
                break
        codes = [(r.code, r.enhanced) for r in replies]
        assert codes[-1] == (421, "4.7.0"), f"no 421 after repeated failures: {codes}"
        failures = codes[:-1]
        assert all(c == (535, "5.7.8") for c in failures), codes
        assert MAX_AUTH_FAILURES - 1 <= len(failures) <= MAX_AUTH_FAILURES, codes
        assert first_delay >= 0.08, f"AUTH failure answered without delay ({first_delay:.3f}s)"
        conn.wait_for_eof(5)
