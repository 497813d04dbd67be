"""Start, stop and restart.

Proves that SIGTERM makes the daemon tell open sessions 421 4.3.2 and exit 0
promptly, with the mail it acknowledged still in the Maildir; and that a
restart on the same directory keeps the self-signed certificate generated on
the first start (made out to the configured host name), the users and the mail
already delivered.
"""

import signal
import ssl
import subprocess
import time

from smtpwire import SMTPWire
from storedmail import check_stored

ALICE = "alice@example.test"
SENDER = "sender@example.org"
MESSAGE = b"Subject: before shutdown\r\n\r\nstill here\r\n"


def server_certificate(port: int) -> bytes:
    with SMTPWire(port, implicit_tls=True) as conn:
        der = conn.sock.getpeercert(binary_form=True)
        conn.command("QUIT")
    assert der
    return der


def test_sigterm_closes_sessions_and_exits_zero(stokend_factory):
    mta = stokend_factory()
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        reply = conn.transaction(SENDER, [ALICE], MESSAGE)
        assert reply.code == 250, str(reply)
        idle = SMTPWire(mta.mx_port)
        idle.ehlo()
        started = time.monotonic()
        code = mta.terminate()
        assert code == 0, f"exit status {code}\n{mta.log_tail()}"
        assert time.monotonic() - started < 10
        for session in (conn, idle):
            data = session.wait_for_eof(5)
            if data:
                assert data.startswith(b"421 4.3.2 "), data
        idle.close()
    stored = mta.messages(ALICE)
    assert len(stored) == 1
    check_stored(stored[0], MESSAGE, "ESMTP")
    assert mta.tmp_files(ALICE) == []


def test_sigterm_sends_shutdown_reply(stokend_factory):
    mta = stokend_factory()
    conn = SMTPWire(mta.mx_port)
    conn.ehlo()
    mta.proc.send_signal(signal.SIGTERM)
    reply = conn.read_reply(timeout=10)
    assert (reply.code, reply.enhanced) == (421, "4.3.2"), str(reply)
    conn.wait_for_eof(5)
    conn.close()
    assert mta.terminate() == 0


def test_restart_keeps_certificate_and_mail(stokend_factory):
    first = stokend_factory()
    certificate = server_certificate(first.submissions_port)
    with SMTPWire(first.mx_port) as conn:
        conn.ehlo()
        assert conn.transaction(SENDER, [ALICE], MESSAGE).code == 250
    assert first.terminate() == 0
    second = stokend_factory(users={}, directory=first.dir)
    assert server_certificate(second.submissions_port) == certificate, \
        "the generated certificate changed across a restart"
    assert len(second.messages(ALICE)) == 1
    # The users survive too.
    with SMTPWire(second.submissions_port, implicit_tls=True) as conn:
        conn.ehlo()
        assert conn.auth_plain(ALICE, first.users[ALICE]).code == 235


def test_generated_certificate_names_the_host(mta, tmp_path):
    pem = ssl.DER_cert_to_PEM_cert(server_certificate(mta.submissions_port))
    (tmp_path / "server.pem").write_text(pem)
    result = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "server.pem"), "-noout",
                             "-subject", "-ext", "subjectAltName"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "mx.example.test" in result.stdout, result.stdout
