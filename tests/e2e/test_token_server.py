"""The Token Server: LHLO, AUTH STOKEN, RCPT STOKEN= / MYSTOKEN=, synchronous delivery.

Proves that LHLO is answered only on the submission role (502 5.5.1 on the MX
port), announces ENHANCEDSTATUSCODES, AUTH STOKEN and STOKEN under TLS and
only STARTTLS before it (MAIL then gets 530 5.7.0), while no EHLO reply ever
lists STOKEN; that AUTH STOKEN
takes base64(recipient NUL token) and the draft's literal backslash-zero
spelling, refuses a bad token with 535 5.7.8 after a delay, and needs TLS
(538 5.7.11); that MAIL FROM must be the token's remote address (553 5.7.1);
that RCPT needs a valid STOKEN for a local user (550 5.7.1 without one or for
another domain, 550 5.1.1 for a user deleted since the token was issued, 550
5.7.30 for a tampered, foreign, expired or revoked token, a permanent token not
in the store, or a token presented for an address that is no user); that after
DATA (or BDAT LAST) each accepted recipient gets one reply in RCPT order:
2.1.13 with a permanent token for a temporary token (and for a permanent token
due for renewal), else 2.1.12, each with the Maildir unique name as delivery
id; that the message is in the Maildir when the reply comes, with "with
LMTPSA" in its Received field, never went through the queue, and no token
appears in the log; that a MYSTOKEN for the reverse pair lands in the local
user's wallet and one with a wrong hash is ignored; that the STOKEN parameter
outside a token transaction and SYNC on MX get 555 5.5.4; and that swaks
delivers with a token (the EHLO + MAIL ... SYNC variant: swaks cannot send
AUTH STOKEN) and sees STOKEN in its LHLO.
"""

import base64
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from smtpwire import SMTPWire
from storedmail import check_stored
from tokenwire import (PERM_VALIDITY, deliver, genstoken, login, make_token, message,
                       pair_hash, parse_delivery, parse_token, revstoken, tamper_created,
                       tamper_secret, tls_connect, token_session)

ALICE = "alice@example.test"
BOB = "bob@example.test"
REMOTE = "bob@remote.example"
SWAKS = shutil.which("swaks")
STORED_IN_QUEUE = re.compile(r"queue: \S+ stored:", re.M)


def new_mail_now(mta, address: str) -> list[Path]:
    """The files in the user's new/ folder now, without waiting for the queue:
    a token delivery's reply comes after the mailstore committed."""
    new = mta.maildir(address) / "new"
    return sorted(p for p in new.iterdir() if p.is_file()) if new.is_dir() else []


def maildir_file(mta, address: str, delivery_id: str) -> bytes:
    """The message a reply's delivery id names, read at once."""
    names = [p.name for p in new_mail_now(mta, address)]
    matching = [n for n in names if n.split(",")[0] == delivery_id]
    assert len(matching) == 1, (
        f"delivery id {delivery_id!r} names no file in {address}'s new/: {names}")
    return (mta.maildir(address) / "new" / matching[0]).read_bytes()


def queue_stores(mta) -> int:
    return len(STORED_IN_QUEUE.findall(mta.log()))


def check_delivered(mta, delivery, address: str, original: bytes,
                    protocol: str = "LMTPSA") -> bytes:
    """The reply names the address and the Maildir file it wrote (the unique
    part of the name, before ",S=size"); that file holds the message as sent
    below a Received field "with LMTPSA" (after LHLO; rfcdraft §8.5 gives the
    SYNC variant ESMTPSA after AUTH STOKEN, ESMTPS without)."""
    assert delivery.address == address, str(delivery)
    stored = maildir_file(mta, address, delivery.delivery_id)
    received = check_stored(stored, original, protocol)
    assert b"by mx.example.test (stokend)" in received, received
    return stored


# --- LHLO and EHLO -----------------------------------------------------------------

def test_lhlo_before_tls_offers_starttls_but_no_stoken(mta):
    with SMTPWire(mta.submission_port) as conn:
        reply = conn.command("LHLO remote-client.remote.example")
        assert reply.code == 250, str(reply)
        text = "\n".join(reply.lines).upper()
        assert "STARTTLS" in text and "STOKEN" not in text, str(reply)
        reply = conn.command(f"MAIL FROM:<{REMOTE}>")
        assert (reply.code, reply.enhanced) == (530, "5.7.0"), str(reply)
        reply = conn.command("AUTH STOKEN " + "eA==")
        assert (reply.code, reply.enhanced) == (538, "5.7.11"), str(reply)
        assert conn.command("NOOP").code == 250


@pytest.mark.parametrize("tls", [False, True])
def test_lhlo_on_mx_is_refused(mta, tls):
    with SMTPWire(mta.mx_port) as conn:
        if tls:
            conn.ehlo()
            conn.starttls()
        reply = conn.command("LHLO remote-client.remote.example")
        assert (reply.code, reply.enhanced) == (502, "5.5.1"), str(reply)
        reply = conn.command(f"MAIL FROM:<{REMOTE}> SYNC")
        assert (reply.code, reply.enhanced) == (503, "5.5.1"), f"LHLO must not count as a greeting: {reply}"


@pytest.mark.parametrize("implicit_tls", [False, True])
def test_lhlo_under_tls_announces_stoken(mta, implicit_tls):
    port = mta.submissions_port if implicit_tls else mta.submission_port
    with tls_connect(port, implicit_tls=implicit_tls) as conn:
        reply = conn.lhlo()
        assert reply.code == 250 and reply.lines[0].startswith("mx.example.test"), str(reply)
        keywords = reply.keywords()
        assert "ENHANCEDSTATUSCODES" in keywords, str(reply)
        assert "STOKEN" in keywords, str(reply)
        assert "STOKEN" in keywords.get("AUTH", "").upper().split(), f"AUTH STOKEN not offered: {reply}"
        assert "STARTTLS" not in keywords


def test_ehlo_never_announces_stoken(mta):
    def no_stoken(reply):
        assert reply.code == 250, str(reply)
        assert "STOKEN" not in reply.keywords(), f"EHLO announced STOKEN: {reply}"
        assert "STOKEN" not in reply.keywords().get("AUTH", "").upper().split(), str(reply)

    for port in (mta.mx_port, mta.submission_port):
        with SMTPWire(port) as conn:
            no_stoken(conn.ehlo())
            conn.starttls()
            no_stoken(conn.ehlo())
    with SMTPWire(mta.submissions_port, implicit_tls=True) as conn:
        no_stoken(conn.ehlo())
    with login(mta, ALICE) as conn:
        no_stoken(conn.ehlo())
    token = genstoken(mta, ALICE, "TEMP", REMOTE)
    with token_session(mta, ALICE, token) as conn:
        no_stoken(conn.ehlo())
        # LHLO again in the token session: STOKEN, but no more AUTH.
        keywords = conn.lhlo().keywords()
        assert "STOKEN" in keywords and "AUTH" not in keywords, keywords


# --- AUTH STOKEN -------------------------------------------------------------------

@pytest.mark.parametrize("spelling", ["nul", "backslash-zero", "two-steps", "implicit-tls"])
def test_auth_stoken_succeeds(mta, spelling):
    token = genstoken(mta, ALICE, "TEMP", REMOTE)
    implicit = spelling == "implicit-tls"
    port = mta.submissions_port if implicit else mta.submission_port
    with tls_connect(port, implicit_tls=implicit) as conn:
        assert conn.lhlo().code == 250
        reply = conn.auth_stoken(ALICE, token, literal_backslash_zero=spelling == "backslash-zero",
                                 two_steps=spelling == "two-steps")
        assert (reply.code, reply.enhanced) == (235, "2.7.0"), str(reply)
        reply = conn.auth_stoken(ALICE, token)
        assert (reply.code, reply.enhanced) == (503, "5.5.1"), f"second AUTH: {reply}"
        assert conn.mail(REMOTE).code == 250


@pytest.mark.parametrize("case", ["tampered-secret", "tampered-created", "garbage", "unknown-user",
                                  "remote-recipient"])
def test_auth_stoken_refuses_bad_credentials(mta, case):
    token = genstoken(mta, ALICE, "TEMP", REMOTE)
    recipient = ALICE
    if case == "tampered-secret":
        token = tamper_secret(token)
    elif case == "tampered-created":
        token = tamper_created(token)
    elif case == "garbage":
        token = "abcdefg"
    elif case == "unknown-user":
        recipient = "nobody@example.test"
    elif case == "remote-recipient":
        recipient = REMOTE
    with tls_connect(mta.submission_port) as conn:
        assert conn.lhlo().code == 250
        started = time.monotonic()
        reply = conn.auth_stoken(recipient, token)
        elapsed = time.monotonic() - started
        assert (reply.code, reply.enhanced) == (535, "5.7.8"), str(reply)
        assert elapsed >= 0.5, f"535 after {elapsed:.3f}s: a failed AUTH STOKEN must be delayed"
        reply = conn.mail(REMOTE)
        assert (reply.code, reply.enhanced) == (530, "5.7.0"), f"MAIL after a failed AUTH: {reply}"


def test_auth_stoken_malformed_response(mta):
    with tls_connect(mta.submission_port) as conn:
        assert conn.lhlo().code == 250
        for response in ("not*base64", "YWxpY2U="):  # the second: "alice", no separator
            reply = conn.command(f"AUTH STOKEN {response}")
            assert reply.code == 501, f"{response}: {reply}"


def test_auth_stoken_before_tls(mta):
    token = genstoken(mta, ALICE, "TEMP", REMOTE)
    with SMTPWire(mta.submission_port) as conn:
        conn.ehlo()
        response = base64.b64encode(f"{ALICE}\0{token}".encode()).decode()
        reply = conn.command(f"AUTH STOKEN {response}")
        assert (reply.code, reply.enhanced) == (538, "5.7.11"), str(reply)
        reply = conn.command(f"MAIL FROM:<{REMOTE}>")
        assert (reply.code, reply.enhanced) == (530, "5.7.0"), str(reply)


def test_mail_after_lhlo_needs_auth(mta):
    with tls_connect(mta.submission_port) as conn:
        assert conn.lhlo().code == 250
        reply = conn.mail(REMOTE)
        assert (reply.code, reply.enhanced) == (530, "5.7.0"), str(reply)


# --- MAIL and RCPT in a token session ----------------------------------------------

def test_mail_from_must_be_the_tokens_remote_address(mta):
    token = genstoken(mta, ALICE, "TEMP", REMOTE)
    with token_session(mta, ALICE, token) as conn:
        for sender in ("carol@remote.example", ALICE, "bob@other.example", ""):
            reply = conn.command(f"MAIL FROM:<{sender}>")
            assert (reply.code, reply.enhanced) == (553, "5.7.1"), f"MAIL FROM:<{sender}>: {reply}"
        # The same address in another case is the same pair.
        reply = conn.mail("Bob@REMOTE.example")
        assert (reply.code, reply.enhanced) == (250, "2.1.0"), str(reply)


def test_token_of_another_local_user_cannot_send(mta):
    """AUTH STOKEN names bob but presents alice's token: whatever AUTH says,
    no transaction can follow."""
    token = genstoken(mta, ALICE, "TEMP", REMOTE)
    with tls_connect(mta.submission_port) as conn:
        assert conn.lhlo().code == 250
        reply = conn.auth_stoken(BOB, token)
        assert reply.code in (235, 535), str(reply)
        reply = conn.mail(REMOTE)
        assert reply.code in (530, 553), f"MAIL with a token for someone else: {reply}"


def test_mail_without_lhlo_or_sync_in_token_session(mta):
    token = genstoken(mta, ALICE, "TEMP", REMOTE)
    with token_session(mta, ALICE, token) as conn:
        assert conn.ehlo().code == 250
        reply = conn.mail(REMOTE)
        assert (reply.code, reply.enhanced) == (503, "5.5.1"), str(reply)
        # With SYNC the transaction is a token transaction again.
        reply = conn.mail(REMOTE, sync=True)
        assert (reply.code, reply.enhanced) == (250, "2.1.0"), str(reply)
        marker = uuid.uuid4().hex
        assert conn.rcpt(ALICE, token).code == 250
        [delivery] = conn.data_per_recipient(message(marker), 1)
        assert delivery.enhanced == "2.1.13", str(delivery)
        # EHLO, AUTH STOKEN and SYNC: the variant's ESMTPSA.
        check_delivered(mta, delivery, ALICE, message(marker), protocol="ESMTPSA")


def refusal_case(mta, case):
    """(recipient, stoken) for a RCPT that must be refused, and the reply."""
    alice_token = genstoken(mta, ALICE, "TEMP", REMOTE)
    if case == "no-stoken":
        return ALICE, None, (550, "5.7.1")
    if case == "remote-domain":
        return "carol@remote.example", alice_token, (550, "5.7.1")
    if case == "unknown-user":
        # The token is checked first, so that a token holder cannot probe
        # which addresses exist: no token can be valid for a non-user.
        return "nobody@example.test", alice_token, (550, "5.7.30")
    if case == "tampered-secret":
        return ALICE, tamper_secret(alice_token), (550, "5.7.30")
    if case == "tampered-created":
        return ALICE, tamper_created(alice_token, +1), (550, "5.7.30")
    if case == "other-recipients-token":
        return BOB, alice_token, (550, "5.7.30")
    if case == "token-for-another-remote":
        return ALICE, genstoken(mta, ALICE, "TEMP", "carol@remote.example"), (550, "5.7.30")
    if case == "malformed":
        return ALICE, "s6xW15h9Dh", (550, "5.7.30")
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["no-stoken", "remote-domain", "unknown-user", "tampered-secret",
                                  "tampered-created", "other-recipients-token",
                                  "token-for-another-remote", "malformed"])
def test_rcpt_refusals(mta, case):
    recipient, stoken, expected = refusal_case(mta, case)
    good = genstoken(mta, ALICE, "TEMP", REMOTE)
    before = queue_stores(mta)
    with token_session(mta, ALICE, good) as conn:
        assert conn.mail(REMOTE).code == 250
        reply = conn.rcpt(recipient, stoken)
        assert (reply.code, reply.enhanced) == expected, f"{case}: {reply}"
        # The refused recipient gets no reply after DATA; the valid one does.
        assert conn.rcpt(ALICE, good).code == 250
        marker = uuid.uuid4().hex
        [delivery] = conn.data_per_recipient(message(marker), 1)
        assert delivery.enhanced == "2.1.13", str(delivery)
    check_delivered(mta, delivery, ALICE, message(marker))
    assert new_mail_now(mta, BOB) == []
    assert queue_stores(mta) == before


def test_rcpt_user_deleted_after_the_token(mta):
    """A valid token for a user who no longer exists: 550 5.1.1."""
    carol = "carol@example.test"
    mta.add_user(carol, "Carol-pw-1234")
    mta.users[carol] = "Carol-pw-1234"
    time.sleep(1.1)  # the daemon looks at the users file at most once a second
    try:
        carol_token = genstoken(mta, carol, "TEMP", REMOTE)
    finally:
        mta.ctl("user", "del", carol)
        del mta.users[carol]
    time.sleep(1.1)  # the daemon looks at the users file at most once a second
    alice_token = genstoken(mta, ALICE, "TEMP", REMOTE)
    with token_session(mta, ALICE, alice_token) as conn:
        assert conn.mail(REMOTE).code == 250
        reply = conn.rcpt(carol, carol_token)
        assert (reply.code, reply.enhanced) == (550, "5.1.1"), str(reply)
    with tls_connect(mta.submission_port) as conn:
        conn.lhlo()
        reply = conn.auth_stoken(carol, carol_token)
        assert (reply.code, reply.enhanced) == (535, "5.7.8"), str(reply)
    assert new_mail_now(mta, carol) == []


def test_rcpt_duplicate_recipient(mta):
    token = genstoken(mta, ALICE, "TEMP", REMOTE)
    with token_session(mta, ALICE, token) as conn:
        assert conn.mail(REMOTE).code == 250
        assert conn.rcpt(ALICE, token).code == 250
        reply = conn.rcpt(ALICE.upper(), token)
        assert reply.code >= 500, f"a repeated recipient must not be answered twice: {reply}"
        replies = conn.data_per_recipient(message("dup"), 1)
        assert replies[0].enhanced == "2.1.13"
    assert len(new_mail_now(mta, ALICE)) == 1


def test_data_without_recipients(mta):
    token = genstoken(mta, ALICE, "TEMP", REMOTE)
    with token_session(mta, ALICE, token) as conn:
        assert conn.mail(REMOTE).code == 250
        assert conn.rcpt(ALICE, tamper_secret(token)).code == 550
        reply = conn.command("DATA")
        assert (reply.code, reply.enhanced) == (554, "5.5.1"), str(reply)


# --- delivery ------------------------------------------------------------------------

def test_full_story(mta):
    """alice hands bob@remote.example a temporary token; bob's server delivers
    with it and gets a permanent token; the next delivery uses that one."""
    before = queue_stores(mta)
    temporary = genstoken(mta, ALICE, "TEMP", REMOTE)
    first = message("story-1")
    [delivery] = deliver(mta, REMOTE, [(ALICE, temporary)], first)
    assert (delivery.code, delivery.enhanced) == (250, "2.1.13"), str(delivery)
    permanent = parse_token(delivery.permanent_token)
    assert permanent.hash == pair_hash(REMOTE, ALICE)
    assert permanent.validity == PERM_VALIDITY
    assert abs(permanent.created - time.time()) < 60
    check_delivered(mta, delivery, ALICE, first)
    # The permanent token is the pair's: GENSTOKEN PERM by alice returns it.
    assert genstoken(mta, ALICE, "PERM", REMOTE) == permanent.text

    second = message("story-2")
    [again] = deliver(mta, REMOTE, [(ALICE, permanent.text)], second)
    assert (again.code, again.enhanced) == (250, "2.1.12"), str(again)
    assert again.delivery_id != delivery.delivery_id
    check_delivered(mta, again, ALICE, second)
    assert len(new_mail_now(mta, ALICE)) == 2

    # A temporary token may be used again: the same permanent token comes back.
    third = message("story-3")
    [later] = deliver(mta, REMOTE, [(ALICE, temporary)], third)
    assert later.enhanced == "2.1.13" and later.permanent_token == permanent.text, str(later)
    check_delivered(mta, later, ALICE, third)

    assert queue_stores(mta) == before, "a token delivery must not go through the queue"
    assert mta.spool.exists()
    holding = mta.files_containing(b"story-1")
    assert [p.parent for p in holding] == [mta.maildir(ALICE) / "new"], (
        f"the message must be in the Maildir only, not in the spool: {holding}")
    # Tokens are credentials: the log names none of them.
    log = mta.log()
    for token in (temporary, permanent.text, permanent.secret):
        assert token not in log, f"a token is in the log: {token}"


def test_delivery_with_bdat(mta):
    """CHUNKING is announced after LHLO: BDAT LAST ends the message like the
    dot, with one reply per recipient."""
    alice_token = genstoken(mta, ALICE, "TEMP", REMOTE)
    bob_token = genstoken(mta, BOB, "TEMP", REMOTE)
    original = message("bdat", to=f"{ALICE}, {BOB}")
    with token_session(mta, ALICE, alice_token) as conn:
        assert conn.mail(REMOTE).code == 250
        assert conn.rcpt(ALICE, alice_token).code == 250
        assert conn.rcpt(BOB, bob_token).code == 250
        half = len(original) // 2
        conn.send(f"BDAT {half}\r\n".encode() + original[:half])
        reply = conn.read_reply()
        assert reply.code == 250, str(reply)
        rest = original[half:]
        conn.send(f"BDAT {len(rest)} LAST\r\n".encode() + rest)
        replies = [parse_delivery(conn.read_reply()) for _ in range(2)]
        assert conn.pending(0.2) == b""
    assert [(d.enhanced, d.address) for d in replies] == [("2.1.13", ALICE), ("2.1.13", BOB)], (
        [str(d) for d in replies])
    check_delivered(mta, replies[0], ALICE, original)
    check_delivered(mta, replies[1], BOB, original)


def test_two_recipients_reply_in_rcpt_order(mta):
    sender = "carol@remote.example"
    alice_token = genstoken(mta, ALICE, "TEMP", sender)
    bob_permanent = genstoken(mta, BOB, "PERM", sender)
    original = message("two", to=f"{BOB}, {ALICE}", sender=sender)
    before = queue_stores(mta)
    replies = deliver(mta, sender, [(BOB, bob_permanent), (ALICE, alice_token)], original,
                      auth=(ALICE, alice_token))
    assert [(d.code, d.enhanced, d.address) for d in replies] == [
        (250, "2.1.12", BOB), (250, "2.1.13", ALICE)], [str(d) for d in replies]
    for delivery, user in zip(replies, (BOB, ALICE)):
        check_delivered(mta, delivery, user, original)
        assert len(new_mail_now(mta, user)) == 1
    assert parse_token(replies[1].permanent_token).hash == pair_hash(sender, ALICE)
    assert queue_stores(mta) == before


def test_two_recipients_one_tampered(mta):
    sender = "dave@remote.example"
    alice_token = genstoken(mta, ALICE, "TEMP", sender)
    bob_token = genstoken(mta, BOB, "TEMP", sender)
    original = message("one-tampered", to=f"{ALICE}, {BOB}", sender=sender)
    with token_session(mta, BOB, bob_token) as conn:
        assert conn.mail(sender).code == 250
        reply = conn.rcpt(ALICE, tamper_secret(alice_token))
        assert (reply.code, reply.enhanced) == (550, "5.7.30"), str(reply)
        assert conn.rcpt(BOB, bob_token).code == 250
        replies = conn.data_per_recipient(original, 1)
    assert [(d.enhanced, d.address) for d in replies] == [("2.1.13", BOB)], [str(d) for d in replies]
    check_delivered(mta, replies[0], BOB, original)
    assert new_mail_now(mta, ALICE) == []


def test_revoked_temporary_token(mta):
    """REVSTOKEN in alice's own session while a Remote Client holds a token
    session: its next RCPT with the old token is refused."""
    sender = "erin@remote.example"
    token = genstoken(mta, ALICE, "TEMP", sender)
    with token_session(mta, ALICE, token) as conn:
        revstoken(mta, ALICE, sender)
        assert conn.mail(sender).code == 250
        reply = conn.rcpt(ALICE, token)
        assert (reply.code, reply.enhanced) == (550, "5.7.30"), str(reply)
    with tls_connect(mta.submission_port) as conn:
        conn.lhlo()
        reply = conn.auth_stoken(ALICE, token)
        assert (reply.code, reply.enhanced) == (535, "5.7.8"), str(reply)
    assert new_mail_now(mta, ALICE) == []


def test_revoked_permanent_token(mta):
    sender = "frank@remote.example"
    temporary = genstoken(mta, ALICE, "TEMP", sender)
    [delivery] = deliver(mta, sender, [(ALICE, temporary)], message("before-revoke", sender=sender))
    permanent = delivery.permanent_token
    with token_session(mta, ALICE, permanent) as conn:
        revstoken(mta, ALICE, sender)
        assert conn.mail(sender).code == 250
        reply = conn.rcpt(ALICE, permanent)
        assert (reply.code, reply.enhanced) == (550, "5.7.30"), (
            f"a permanent token no longer in the store: {reply}")
        # The temporary token died with the revocation too.
        reply = conn.rcpt(ALICE, temporary)
        assert (reply.code, reply.enhanced) == (550, "5.7.30"), str(reply)
    assert len(new_mail_now(mta, ALICE)) == 1


def test_mystoken_lands_in_the_wallet(mta):
    """MYSTOKEN for the reverse pair (hash of alice ":" bob@remote.example) is
    stored in alice's wallet; one with a wrong hash is ignored."""
    good = make_token(pair_hash(ALICE, REMOTE), keyid="x")
    temporary = genstoken(mta, ALICE, "TEMP", REMOTE)
    [delivery] = deliver(mta, REMOTE, [(ALICE, temporary, good)], message("mystoken"))
    assert delivery.enhanced == "2.1.13", str(delivery)
    wallet = mta.ctl("token", "list", "wallet", ALICE).stdout
    rows = [line.split() for line in wallet.splitlines() if good in line]
    assert len(rows) == 1, f"MYSTOKEN not in alice's wallet:\n{wallet}"
    assert rows[0][:2] == [ALICE, REMOTE] and "MYSTOKEN" in rows[0], wallet

    sender = "grace@remote.example"
    wrong = make_token(pair_hash(REMOTE, ALICE), keyid="y")  # the forward pair: wrong
    bob_token = genstoken(mta, BOB, "TEMP", sender)
    bad_for_bob = make_token(pair_hash(ALICE, sender), keyid="z")  # alice's pair, not bob's
    replies = deliver(mta, REMOTE, [(ALICE, genstoken(mta, ALICE, "PERM", REMOTE), wrong)],
                      message("mystoken-wrong"))
    assert replies[0].enhanced == "2.1.12", str(replies[0])
    replies = deliver(mta, sender, [(BOB, bob_token, bad_for_bob)], message("mystoken-bob", to=BOB,
                                                                             sender=sender))
    assert replies[0].enhanced == "2.1.13", str(replies[0])
    assert wrong not in mta.ctl("token", "list", "wallet", ALICE).stdout
    bob_wallet = mta.ctl("token", "list", "wallet", BOB).stdout
    assert bad_for_bob not in bob_wallet, bob_wallet


def test_stoken_outside_a_token_transaction(mta):
    token = genstoken(mta, ALICE, "TEMP", REMOTE)
    with login(mta, ALICE) as conn:
        assert conn.mail(ALICE).code == 250
        reply = conn.rcpt(BOB, token)
        assert (reply.code, reply.enhanced) == (555, "5.5.4"), str(reply)
        reply = conn.rcpt(BOB, mystoken=token)
        assert (reply.code, reply.enhanced) == (555, "5.5.4"), str(reply)
        assert conn.command("RSET").code == 250
        # Nor SYNC for a logged-in user.
        reply = conn.mail(ALICE, sync=True)
        assert (reply.code, reply.enhanced) == (555, "5.5.4"), str(reply)
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        assert conn.command(f"MAIL FROM:<{REMOTE}>").code == 250
        reply = conn.command(f"RCPT TO:<{ALICE}> STOKEN={token}")
        assert (reply.code, reply.enhanced) == (555, "5.5.4"), str(reply)


@pytest.mark.parametrize("tls", [False, True])
def test_sync_on_mx(mta, tls):
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        if tls:
            conn.starttls()
            conn.ehlo()
        reply = conn.command(f"MAIL FROM:<{REMOTE}> SYNC")
        assert (reply.code, reply.enhanced) == (555, "5.5.4"), str(reply)


# --- special configurations ------------------------------------------------------------

@pytest.mark.once  # waits on the clock; the sanitizers see this code in other tests
def test_expired_temporary_token(stokend_factory):
    mta = stokend_factory(tokens={"temporary_validity": "2s"})
    token = genstoken(mta, ALICE, "TEMP", REMOTE)
    assert parse_token(token).validity == 2
    with token_session(mta, ALICE, token) as conn:
        time.sleep(3.1)
        assert conn.mail(REMOTE).code == 250
        reply = conn.rcpt(ALICE, token)
        assert (reply.code, reply.enhanced) == (550, "5.7.30"), f"expired token: {reply}"
    with tls_connect(mta.submission_port) as conn:
        conn.lhlo()
        reply = conn.auth_stoken(ALICE, token)
        assert (reply.code, reply.enhanced) == (535, "5.7.8"), str(reply)
    assert new_mail_now(mta, ALICE) == []
    # A fresh temporary token works.
    [delivery] = deliver(mta, REMOTE, [(ALICE, genstoken(mta, ALICE, "TEMP", REMOTE))],
                         message("fresh"))
    assert delivery.enhanced == "2.1.13", str(delivery)


@pytest.mark.once  # waits on the clock; the sanitizers see this code in other tests
def test_permanent_token_renewal(stokend_factory):
    """A permanent token used with less than renew_before left is renewed: the
    reply is 2.1.13 with a new permanent token, which then gives 2.1.12."""
    mta = stokend_factory(tokens={"permanent_validity": "20s", "renew_before": "18s"})
    old = genstoken(mta, ALICE, "PERM", REMOTE)
    assert parse_token(old).validity == 20
    [fresh] = deliver(mta, REMOTE, [(ALICE, old)], message("renew-0"))
    assert fresh.enhanced == "2.1.12", f"a fresh permanent token needs no renewal: {fresh}"
    time.sleep(2.5)  # now less than 18 s are left
    [renewed] = deliver(mta, REMOTE, [(ALICE, old)], message("renew-1"))
    assert (renewed.code, renewed.enhanced) == (250, "2.1.13"), str(renewed)
    new = parse_token(renewed.permanent_token)
    assert new.text != old and new.created > parse_token(old).created, renewed.permanent_token
    assert new.hash == pair_hash(REMOTE, ALICE) and new.validity == 20
    [after] = deliver(mta, REMOTE, [(ALICE, new.text)], message("renew-2"))
    assert after.enhanced == "2.1.12", str(after)
    # GENSTOKEN PERM now returns the renewed token.
    assert genstoken(mta, ALICE, "PERM", REMOTE) == new.text
    assert len(new_mail_now(mta, ALICE)) == 3


def test_permanent_token_of_another_instance(stokend_factory):
    """Two daemons share the secrets file but not the token store: a permanent
    token the first issued has a valid MAC at the second, which must still
    refuse it (not in its store)."""
    first = stokend_factory()
    secrets = first.spool / "token-secrets"  # the default: in spool_directory
    assert secrets.is_file(), f"no secrets file at {secrets}: {list(first.dir.rglob('*'))}"
    second = stokend_factory(tokens={"secrets_file": str(secrets)})
    permanent = genstoken(first, ALICE, "PERM", REMOTE)
    temporary = genstoken(first, ALICE, "TEMP", REMOTE)
    # The temporary token is stateless: the second instance takes it.
    with token_session(second, ALICE, temporary) as conn:
        assert conn.mail(REMOTE).code == 250
        reply = conn.rcpt(ALICE, permanent)
        assert (reply.code, reply.enhanced) == (550, "5.7.30"), str(reply)
    with tls_connect(second.submission_port) as conn:
        conn.lhlo()
        reply = conn.auth_stoken(ALICE, permanent)
        assert (reply.code, reply.enhanced) == (535, "5.7.8"), str(reply)


# --- swaks ------------------------------------------------------------------------------

@pytest.mark.skipif(not SWAKS, reason="swaks is not installed")
def test_swaks_token_delivery(mta):
    """swaks knows no AUTH STOKEN and adds no MAIL/RCPT parameters, but its
    addresses go between the brackets verbatim: the EHLO + SYNC variant with
    the parameters written into the addresses (AUTH=<> and MYSTOKEN=<> close
    the bracket swaks appends; the server ignores both)."""
    token = genstoken(mta, ALICE, "TEMP", REMOTE)
    marker = uuid.uuid4().hex
    command = [SWAKS, "--server", f"127.0.0.1:{mta.submission_port}", "--tls",
               "--helo", "remote-client.remote.example", "--timeout", "10",
               "--from", f"{REMOTE}> SYNC AUTH=<",
               "--to", f"{ALICE}> STOKEN={token} MYSTOKEN=<",
               "--header", f"From: {REMOTE}", "--header", f"To: {ALICE}",
               "--header", f"Subject: swaks token {marker}", "--body", f"body {marker}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"swaks failed ({result.returncode}):\n{result.stdout}{result.stderr}"
    match = re.search(r"<~  250 2\.1\.13 <([^>]+)> (\S+) (\S+)", result.stdout)
    assert match, f"no 2.1.13 reply in swaks' output:\n{result.stdout}"
    assert match.group(1) == ALICE
    assert parse_token(match.group(2)).hash == pair_hash(REMOTE, ALICE)
    stored = maildir_file(mta, ALICE, match.group(3))
    assert f"Subject: swaks token {marker}\r\n".encode() in stored
    assert f"\r\n\r\nbody {marker}\r\n".encode() in stored
    assert token.encode() not in stored
    start = stored.find(b"\r\nDate: ")
    # The SYNC variant without AUTH STOKEN (rfcdraft §8.5).
    check_stored(stored, stored[start + 2:], "ESMTPS")


@pytest.mark.skipif(not SWAKS, reason="swaks is not installed")
def test_swaks_lhlo_sees_stoken(mta):
    result = subprocess.run(
        [SWAKS, "--server", f"127.0.0.1:{mta.submissions_port}", "--tlsc", "--protocol", "LMTP",
         "--helo", "remote-client.remote.example", "--timeout", "10", "--to", ALICE,
         "--quit-after", "LHLO"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"swaks failed ({result.returncode}):\n{result.stdout}{result.stderr}"
    assert re.search(r"^ [-~]> LHLO remote-client\.remote\.example$", result.stdout, re.M), result.stdout
    assert re.search(r"^<[-~]  250[ -]STOKEN$", result.stdout, re.M), result.stdout
    assert re.search(r"^<[-~]  250[ -]AUTH STOKEN$", result.stdout, re.M), result.stdout
