"""Interoperability with swaks, a real SMTP client.

Proves that swaks delivers through every listener: plain and STARTTLS on MX,
STARTTLS with AUTH LOGIN on submission, implicit TLS with AUTH PLAIN on the
submissions port, and with PIPELINING; that exactly one message arrives each
time with swaks' body intact; and that the Received field names the protocol
(ESMTP, ESMTPS, ESMTPSA) that was really used.
"""

import shutil
import subprocess
import uuid

import pytest

from storedmail import check_stored

SWAKS = shutil.which("swaks") or "/usr/bin/swaks"
ALICE = "alice@example.test"
BOB = "bob@example.test"

pytestmark = pytest.mark.skipif(not shutil.which("swaks"), reason="swaks is not installed")


def swaks(port: int, *args: str, to: str = ALICE, sender: str = "sender@example.org"):
    marker = uuid.uuid4().hex
    command = [SWAKS, "--server", f"127.0.0.1:{port}", "--to", to, "--from", sender,
               "--helo", "client.example.org", "--timeout", "10",
               "--header", f"Subject: swaks {marker}", "--body", f"body {marker}", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"swaks failed ({result.returncode}):\n{result.stdout}{result.stderr}"
    return marker, result.stdout


def the_message(mta, user: str, marker: str) -> bytes:
    stored = mta.messages(user)
    assert len(stored) == 1, f"{user} has {len(stored)} messages"
    message = stored[0]
    assert f"Subject: swaks {marker}\r\n".encode() in message
    assert f"\r\n\r\nbody {marker}\r\n".encode() in message
    assert mta.tmp_files(user) == []
    return message


def original_part(message: bytes) -> bytes:
    """swaks' own message: everything from its Date header on."""
    start = message.find(b"\r\nDate: ")
    assert start > 0, message[:400]
    return message[start + 2:]


def test_swaks_plain_mx(mta):
    marker, _ = swaks(mta.mx_port)
    message = the_message(mta, ALICE, marker)
    check_stored(message, original_part(message), "ESMTP")


def test_swaks_pipelining_mx(mta):
    marker, _ = swaks(mta.mx_port, "--pipeline", to=f"{ALICE},{BOB}")
    for user in (ALICE, BOB):
        message = the_message(mta, user, marker)
        check_stored(message, original_part(message), "ESMTP")


def test_swaks_starttls_mx(mta):
    marker, _ = swaks(mta.mx_port, "--tls")
    message = the_message(mta, ALICE, marker)
    check_stored(message, original_part(message), "ESMTPS")


def test_swaks_starttls_auth_login_submission(mta):
    marker, _ = swaks(mta.submission_port, "--tls", "--auth", "LOGIN",
                      "--auth-user", ALICE, "--auth-password", mta.users[ALICE],
                      to=BOB, sender=ALICE)
    message = the_message(mta, BOB, marker)
    check_stored(message, original_part(message), "ESMTPSA")


def test_swaks_starttls_auth_plain_submission(mta):
    marker, _ = swaks(mta.submission_port, "--tls", "--auth", "PLAIN",
                      "--auth-user", BOB, "--auth-password", mta.users[BOB],
                      to=ALICE, sender=BOB)
    message = the_message(mta, ALICE, marker)
    check_stored(message, original_part(message), "ESMTPSA")


def test_swaks_implicit_tls_auth_plain(mta):
    marker, _ = swaks(mta.submissions_port, "--tlsc", "--auth", "PLAIN",
                      "--auth-user", ALICE, "--auth-password", mta.users[ALICE],
                      to=BOB, sender=ALICE)
    message = the_message(mta, BOB, marker)
    check_stored(message, original_part(message), "ESMTPSA")


def test_swaks_implicit_tls_auth_login(mta):
    marker, _ = swaks(mta.submissions_port, "--tlsc", "--auth", "LOGIN",
                      "--auth-user", BOB, "--auth-password", mta.users[BOB],
                      to=ALICE, sender=BOB)
    message = the_message(mta, ALICE, marker)
    check_stored(message, original_part(message), "ESMTPSA")


def test_swaks_submission_without_auth_is_refused(mta):
    result = subprocess.run(
        [SWAKS, "--server", f"127.0.0.1:{mta.submission_port}", "--tls", "--to", BOB,
         "--from", ALICE, "--helo", "client.example.org", "--timeout", "10"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "530 5.7.0" in result.stdout, result.stdout
    assert mta.all_mail_files() == []
