"""GENSTOKEN and REVSTOKEN, the token management commands of the submission role.

Proves that a user logged in with AUTH PLAIN or LOGIN under TLS (STARTTLS or
implicit TLS) gets "250 2.1.11 <token> ..." for GENSTOKEN TEMP and PERM, with
or without naming their own address as the local address; that the token is in
the named format (created about now, validity one week / one year, the pair
hash of remote and local, a keyid, a MAC); that PERM twice returns the same
token and TEMP twice two different ones; that the errors are the specified
ones: 530 5.7.0 without AUTH, 502 5.5.1 on the MX port, 501 5.1.7 for someone
else's local address, 501 5.1.3 for a bad remote address, 501 5.5.4 for bad
syntax, 550 5.7.1 in a token session; that REVSTOKEN answers 250 2.1.0 even
when nothing existed, and that after it GENSTOKEN PERM issues a new token (also
within the same second) and the old permanent token no longer opens a token
session.
"""

import time

import pytest

from smtpwire import SMTPWire
from tokenwire import (PERM_VALIDITY, TEMP_VALIDITY, genstoken_token, login, pair_hash,
                       parse_token, tls_connect, token_session)

ALICE = "alice@example.test"
BOB = "bob@example.test"
REMOTE = "bob@remote.example"


def check_token(text: str, remote: str, local: str, validity: int) -> None:
    token = parse_token(text)
    now = time.time()
    assert now - 60 <= token.created <= now + 60, f"created {token.created} is not about now"
    assert token.validity == validity, text
    assert token.hash == pair_hash(remote, local), f"hash of {text} is not the pair {remote}:{local}"
    assert len(token.secret) == 43, f"the MAC should be 32 octets in unpadded base64: {text}"


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_genstoken_temp(mta, mechanism):
    with login(mta, ALICE, mechanism=mechanism) as conn:
        reply = conn.genstoken("TEMP", REMOTE)
        check_token(genstoken_token(reply), REMOTE, ALICE, TEMP_VALIDITY)
        assert conn.command("QUIT").code == 221


def test_genstoken_perm_with_own_local_address(mta):
    remote = "perm-own@remote.example"
    with login(mta, ALICE) as conn:
        first = genstoken_token(conn.genstoken("PERM", remote, ALICE))
        check_token(first, remote, ALICE, PERM_VALIDITY)
        # Angle brackets and another case are the same pair: the same token.
        again = genstoken_token(conn.genstoken("perm", f"<{remote.upper()}>", f"<{ALICE}>"))
        assert again == first
    with login(mta, ALICE) as conn:
        assert genstoken_token(conn.genstoken("PERM", remote)) == first, (
            "GENSTOKEN PERM must return the existing permanent token")
    issued = mta.ctl("token", "list", "issued", ALICE).stdout
    assert sum(first in line for line in issued.splitlines()) == 1, (
        f"the permanent token must be stored once:\n{issued}")


def test_genstoken_temp_twice_gives_valid_tokens(mta):
    with login(mta, BOB, implicit_tls=True) as conn:
        first = genstoken_token(conn.genstoken("TEMP", REMOTE))
        time.sleep(1.1)  # a later created time: a different token
        second = genstoken_token(conn.genstoken("TEMP", REMOTE))
    assert first != second
    for token in (first, second):
        check_token(token, REMOTE, BOB, TEMP_VALIDITY)
        token_session(mta, BOB, token).close()


def test_genstoken_without_auth(mta):
    with tls_connect(mta.submission_port) as conn:
        conn.ehlo()
        reply = conn.genstoken("TEMP", REMOTE)
        assert (reply.code, reply.enhanced) == (530, "5.7.0"), str(reply)
        reply = conn.revstoken(REMOTE)
        assert (reply.code, reply.enhanced) == (530, "5.7.0"), str(reply)
    with SMTPWire(mta.submission_port) as conn:  # nor before TLS
        conn.ehlo()
        reply = conn.command(f"GENSTOKEN TEMP {REMOTE}")
        assert (reply.code, reply.enhanced) == (530, "5.7.0"), str(reply)


@pytest.mark.parametrize("tls", [False, True])
def test_genstoken_on_mx(mta, tls):
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        if tls:
            conn.starttls()
            conn.ehlo()
        for command in (f"GENSTOKEN TEMP {REMOTE}", f"GENSTOKEN PERM {REMOTE} {ALICE}",
                        f"REVSTOKEN {REMOTE}"):
            reply = conn.command(command)
            assert (reply.code, reply.enhanced) == (502, "5.5.1"), f"{command}: {reply}"
        assert conn.command("NOOP").code == 250


@pytest.mark.parametrize("command, expected", [
    (f"GENSTOKEN TEMP {REMOTE} {BOB}", (501, "5.1.7")),           # bob's address, alice logged in
    (f"GENSTOKEN PERM {REMOTE} someone@example.test", (501, "5.1.7")),
    (f"GENSTOKEN TEMP {REMOTE} alice..@example.test", (501, "5.1.7")),
    (f"REVSTOKEN {REMOTE} {BOB}", (501, "5.1.7")),
    ("GENSTOKEN TEMP remoteuser..@example.com", (501, "5.1.3")),  # the draft's example
    ("GENSTOKEN PERM no-at-sign", (501, "5.1.3")),
    ("GENSTOKEN TEMP user@[192.0.2.1]", (501, "5.1.3")),
    ("REVSTOKEN remoteuser..@example.com", (501, "5.1.3")),
    (f"GENSTOKEN {REMOTE}", (501, "5.5.4")),                      # kind missing
    (f"GENSTOKEN SOON {REMOTE}", (501, "5.5.4")),
    ("GENSTOKEN TEMP", (501, "5.5.4")),
    ("GENSTOKEN", (501, "5.5.4")),
    (f"GENSTOKEN TEMP {REMOTE} {ALICE} extra", (501, "5.5.4")),
    ("REVSTOKEN", (501, "5.5.4")),
])
def test_genstoken_errors(mta, command, expected):
    with login(mta, ALICE) as conn:
        reply = conn.command(command)
        assert (reply.code, reply.enhanced) == expected, f"{command}: {reply}"
        # The session goes on: a correct command still works.
        genstoken_token(conn.genstoken("TEMP", REMOTE))


def test_genstoken_in_token_session(mta):
    token = genstoken_token_for(mta, ALICE, "TEMP", REMOTE)
    with token_session(mta, ALICE, token) as conn:
        for command in (f"GENSTOKEN TEMP {REMOTE}", f"GENSTOKEN PERM {REMOTE} {ALICE}",
                        f"REVSTOKEN {REMOTE}"):
            reply = conn.command(command)
            assert (reply.code, reply.enhanced) == (550, "5.7.1"), f"{command}: {reply}"
    # Neither after a plain login followed by LHLO: LHLO makes it a token session.
    with login(mta, ALICE) as conn:
        assert conn.lhlo().code == 250
        reply = conn.genstoken("TEMP", REMOTE)
        assert (reply.code, reply.enhanced) == (550, "5.7.1"), str(reply)


def genstoken_token_for(mta, user, kind, remote):
    with login(mta, user) as conn:
        return genstoken_token(conn.genstoken(kind, remote))


def test_revstoken_when_nothing_exists(mta):
    with login(mta, ALICE) as conn:
        for command in ("REVSTOKEN never-seen@remote.example",
                        f"REVSTOKEN <never-seen@remote.example> <{ALICE}>"):
            reply = conn.command(command)
            assert (reply.code, reply.enhanced) == (250, "2.1.0"), f"{command}: {reply}"


def start_of_a_second() -> None:
    """Waits until a new wall-clock second has just begun, so that the next
    few commands all run within the same second."""
    while time.time() % 1.0 > 0.2:
        time.sleep(0.01)


@pytest.mark.parametrize("same_second", [False, True])
def test_revstoken_replaces_the_permanent_token(mta, same_second):
    """After REVSTOKEN the old permanent token is dead and GENSTOKEN PERM
    issues another one, also when all of it happens within one second (token
    times are whole seconds)."""
    remote = f"revoked-perm-{int(same_second)}@remote.example"
    with login(mta, ALICE) as conn:
        if same_second:
            start_of_a_second()
        old = genstoken_token(conn.genstoken("PERM", remote))
        if not same_second:
            token_session(mta, ALICE, old).close()  # valid before
            time.sleep(1.0)
        reply = conn.revstoken(remote, ALICE)
        assert (reply.code, reply.enhanced) == (250, "2.1.0"), str(reply)
        new = genstoken_token(conn.genstoken("PERM", remote))
    assert new != old, "after REVSTOKEN, GENSTOKEN PERM must not hand out the revoked token again"
    issued = mta.ctl("token", "list", "issued", ALICE).stdout
    assert new in issued and old not in issued, f"the store after REVSTOKEN:\n{issued}"
    check_token(new, remote, ALICE, PERM_VALIDITY)
    token_session(mta, ALICE, new).close()
    with tls_connect(mta.submission_port) as conn:
        conn.lhlo()
        reply = conn.auth_stoken(ALICE, old)
        assert (reply.code, reply.enhanced) == (535, "5.7.8"), (
            f"a revoked permanent token still authenticates: {reply}")


def test_revstoken_kills_temporary_tokens_not_new_ones(mta):
    remote = "revoked-temp@remote.example"
    with login(mta, BOB) as conn:
        old = genstoken_token(conn.genstoken("TEMP", remote))
        reply = conn.revstoken(remote)
        assert (reply.code, reply.enhanced) == (250, "2.1.0"), str(reply)
        # A token minted right after the revocation is valid.
        new = genstoken_token(conn.genstoken("TEMP", remote))
    token_session(mta, BOB, new).close()
    with tls_connect(mta.submission_port) as conn:
        conn.lhlo()
        reply = conn.auth_stoken(BOB, old)
        assert (reply.code, reply.enhanced) == (535, "5.7.8"), (
            f"a revoked temporary token still authenticates: {reply}")


def test_tokens_are_per_user(mta):
    """The same remote address gets different tokens for alice and bob, each
    bound to its own pair."""
    alice_token = genstoken_token_for(mta, ALICE, "PERM", REMOTE)
    bob_token = genstoken_token_for(mta, BOB, "PERM", REMOTE)
    assert alice_token != bob_token
    assert parse_token(alice_token).hash == pair_hash(REMOTE, ALICE)
    assert parse_token(bob_token).hash == pair_hash(REMOTE, BOB)
