"""User administration with stokenctl, picked up by the running daemon.

Proves that `stokenctl user list` shows the users added, that a user added
while the daemon runs can receive mail and log in within a few seconds without a
restart, that a deleted user is refused with 550 5.1.1 afterwards, and that
stokenctl refuses bad input with a non-zero exit and without changing the file.
"""

import time

import pytest

from smtpwire import SMTPWire
from storedmail import check_stored

ALICE = "alice@example.test"
BOB = "bob@example.test"
CAROL = "carol@example.test"
SENDER = "sender@example.org"
PICKUP_TIMEOUT = 5.0


def rcpt_reply(mta, recipient: str):
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
        return conn.command(f"RCPT TO:<{recipient}>")


def wait_for_rcpt(mta, recipient: str, code: int) -> float:
    started = time.monotonic()
    while True:
        reply = rcpt_reply(mta, recipient)
        if reply.code == code:
            return time.monotonic() - started
        if time.monotonic() - started > PICKUP_TIMEOUT:
            pytest.fail(f"RCPT {recipient} still answers {reply} after {PICKUP_TIMEOUT}s")
        time.sleep(0.2)


def test_user_list(mta):
    result = mta.ctl("user", "list")
    assert ALICE in result.stdout and BOB in result.stdout, result.stdout
    assert "Alice-pw" not in result.stdout, "user list must not show passwords"


def test_user_added_while_running(stokend_factory):
    mta = stokend_factory()
    reply = rcpt_reply(mta, CAROL)
    assert (reply.code, reply.enhanced) == (550, "5.1.1"), str(reply)
    mta.add_user(CAROL, "Carol-pw-1234")
    took = wait_for_rcpt(mta, CAROL, 250)
    assert took < 3.0, f"the new user was picked up only after {took:.1f}s"
    message = b"Subject: welcome carol\r\n\r\nhello\r\n"
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        reply = conn.transaction(SENDER, [CAROL], message)
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
    stored = mta.messages(CAROL)
    assert len(stored) == 1
    check_stored(stored[0], message, "ESMTP")
    # The new password works for submission.
    with SMTPWire(mta.submissions_port, implicit_tls=True) as conn:
        conn.ehlo()
        reply = conn.auth_plain(CAROL, "Carol-pw-1234")
        assert (reply.code, reply.enhanced) == (235, "2.7.0"), str(reply)


def test_user_deleted_while_running(stokend_factory):
    mta = stokend_factory()
    assert rcpt_reply(mta, BOB).code == 250
    mta.ctl("user", "del", BOB)
    assert BOB not in mta.ctl("user", "list").stdout
    wait_for_rcpt(mta, BOB, 550)
    reply = rcpt_reply(mta, BOB)
    assert (reply.code, reply.enhanced) == (550, "5.1.1"), str(reply)
    with SMTPWire(mta.submissions_port, implicit_tls=True) as conn:
        conn.ehlo()
        reply = conn.auth_plain(BOB, mta.users[BOB])
        assert (reply.code, reply.enhanced) == (535, "5.7.8"), str(reply)
    # alice is unaffected.
    assert rcpt_reply(mta, ALICE).code == 250


@pytest.mark.parametrize("args", [
    ("user", "add", "not-an-address"),
    ("user", "set", ALICE, "coi-filter", "sometimes"),
    ("user", "set", "nobody@example.test", "coi-filter", "active"),
    ("user", "del", "nobody@example.test"),
    ("user", "frobnicate"),
])
def test_stokenctl_refuses_bad_input(mta, args):
    users_file = mta.dir / mta.config["users_file"]
    before = users_file.read_bytes()
    result = mta.ctl(*args, password="Some-pw-1", check=False)
    assert result.returncode != 0, f"stokenctl {' '.join(args)} succeeded:\n{result.stdout}"
    assert (result.stderr + result.stdout).strip(), "no error message"
    assert users_file.read_bytes() == before
