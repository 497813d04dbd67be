"""Token deliveries and Dovecot: its protocol variant and its LMTP mailstore.

Proves that the variant of Dovecot's COI plugin works without AUTH: after
STARTTLS, EHLO and "MAIL FROM:<remote> SYNC", RCPT with STOKEN= gets per-
recipient replies after DATA (2.1.13 for a temporary token, 2.1.12 for a
permanent one, in RCPT order), while SYNC before TLS gets 530 5.7.0, SYNC with
a value 501 5.5.4, a RCPT without STOKEN 550 5.7.1 and a token for another
sender 550 5.7.30. And that with the local domain routed to a private Dovecot
over LMTP (TCP or unix socket) a token delivery answers 2.1.13 / 2.1.12 with
Dovecot's own delivery id and the message is in the user's Dovecot Maildir,
with stokend's Received field ("with ESMTPS": the SYNC variant without AUTH
STOKEN, rfcdraft §8.5), once; while Dovecot is down the
recipient gets 451 4.x.x, nothing is queued or delivered later, the token
stays usable, and no permanent token is issued for the failed delivery.
"""

import re
import time
import uuid

import pytest

from peers import PeerSet, queue_daemon
from smtpwire import SMTPWire
from storedmail import check_stored
from tokenwire import (genstoken, message, pair_hash, parse_token, tamper_secret, tls_connect,
                       token_session)

ALICE = "alice@example.test"
BOB = "bob@example.test"
REMOTE = "bob@remote.example"
HELO = "remote-client.remote.example"
STORED_IN_QUEUE = re.compile(r"queue: \S+ stored:", re.M)


@pytest.fixture
def peers():
    with PeerSet() as peer_set:
        yield peer_set


def sync_session(mta):
    """Dovecot's variant: STARTTLS, EHLO, no AUTH."""
    conn = tls_connect(mta.submission_port, ehlo_name=HELO)
    assert conn.ehlo(HELO).code == 250
    return conn


def sync_deliver(mta, sender, recipients, original):
    with sync_session(mta) as conn:
        reply = conn.mail(sender, sync=True)
        assert (reply.code, reply.enhanced) == (250, "2.1.0"), str(reply)
        for address, token in recipients:
            reply = conn.rcpt(address, token)
            assert (reply.code, reply.enhanced) == (250, "2.1.5"), f"RCPT {address}: {reply}"
        replies = conn.data_per_recipient(original, len(recipients))
        assert conn.command("QUIT").code == 221
    return replies


def maildir_file(mta, address, delivery):
    """The message the delivery id names: the Maildir unique name before ",S=size"."""
    new = mta.maildir(address) / "new"
    names = [p.name for p in new.iterdir()] if new.is_dir() else []
    matching = [n for n in names if n.split(",")[0] == delivery.delivery_id]
    assert len(matching) == 1, f"{delivery}: no such file in {address}'s Maildir: {names}"
    return (new / matching[0]).read_bytes()


# --- EHLO + MAIL ... SYNC -------------------------------------------------------------

def test_sync_variant_temporary_then_permanent(mta):
    temporary = genstoken(mta, ALICE, "TEMP", REMOTE)
    before = len(STORED_IN_QUEUE.findall(mta.log()))
    first = message("sync-1")
    [delivery] = sync_deliver(mta, REMOTE, [(ALICE, temporary)], first)
    assert (delivery.code, delivery.enhanced, delivery.address) == (250, "2.1.13", ALICE), str(delivery)
    permanent = parse_token(delivery.permanent_token)
    assert permanent.hash == pair_hash(REMOTE, ALICE)
    check_stored(maildir_file(mta, ALICE, delivery), first, "ESMTPS")

    second = message("sync-2")
    [again] = sync_deliver(mta, REMOTE, [(ALICE, permanent.text)], second)
    assert (again.code, again.enhanced, again.address) == (250, "2.1.12", ALICE), str(again)
    check_stored(maildir_file(mta, ALICE, again), second, "ESMTPS")
    assert len(STORED_IN_QUEUE.findall(mta.log())) == before, "a SYNC delivery must not be queued"


def test_sync_variant_two_recipients(mta):
    sender = "sync-two@remote.example"
    bob_token = genstoken(mta, BOB, "TEMP", sender)
    alice_token = genstoken(mta, ALICE, "PERM", sender)
    original = message("sync-two", to=f"{BOB}, {ALICE}", sender=sender)
    replies = sync_deliver(mta, sender, [(BOB, bob_token), (ALICE, alice_token)], original)
    assert [(d.enhanced, d.address) for d in replies] == [("2.1.13", BOB), ("2.1.12", ALICE)], (
        [str(d) for d in replies])
    for delivery, user in zip(replies, (BOB, ALICE)):
        check_stored(maildir_file(mta, user, delivery), original, "ESMTPS")


def test_sync_variant_refusals(mta):
    token = genstoken(mta, ALICE, "TEMP", REMOTE)
    with SMTPWire(mta.submission_port) as conn:  # before TLS
        conn.ehlo(HELO)
        reply = conn.command(f"MAIL FROM:<{REMOTE}> SYNC")
        assert (reply.code, reply.enhanced) == (530, "5.7.0"), str(reply)
    with sync_session(mta) as conn:
        reply = conn.command(f"MAIL FROM:<{REMOTE}> SYNC=yes")
        assert (reply.code, reply.enhanced) == (501, "5.5.4"), str(reply)
        reply = conn.mail(REMOTE)  # no SYNC, no AUTH: ordinary submission rules
        assert (reply.code, reply.enhanced) == (530, "5.7.0"), str(reply)
        assert conn.mail(REMOTE, sync=True).code == 250
        reply = conn.rcpt(ALICE)
        assert (reply.code, reply.enhanced) == (550, "5.7.1"), f"RCPT without STOKEN: {reply}"
        reply = conn.rcpt("carol@remote.example", token)
        assert (reply.code, reply.enhanced) == (550, "5.7.1"), f"relay in a SYNC transaction: {reply}"
        reply = conn.rcpt(ALICE, tamper_secret(token))
        assert (reply.code, reply.enhanced) == (550, "5.7.30"), str(reply)
        reply = conn.command("DATA")
        assert (reply.code, reply.enhanced) == (554, "5.5.1"), str(reply)
    with sync_session(mta) as conn:
        # The token is alice's for bob@remote.example; this sender is someone else.
        assert conn.mail("mallory@remote.example", sync=True).code == 250
        reply = conn.rcpt(ALICE, token)
        assert (reply.code, reply.enhanced) == (550, "5.7.30"), f"token used by another sender: {reply}"
    assert mta.all_mail_files() == []


# --- Dovecot as the mailstore ---------------------------------------------------------------

def token_session_delivery(mta, recipient, token, original, sender=REMOTE):
    """LHLO + AUTH STOKEN + one recipient; returns the reply after DATA."""
    with token_session(mta, recipient, token, lhlo_name=HELO) as conn:
        assert conn.mail(sender).code == 250
        reply = conn.rcpt(recipient, token)
        assert (reply.code, reply.enhanced) == (250, "2.1.5"), str(reply)
        [delivery] = conn.data_per_recipient(original, 1)
        conn.command("QUIT")
    return delivery


def check_in_dovecot(dovecot, user: str, original: bytes, count: int = 1,
                     protocol: str = "LMTPSA") -> None:
    files = dovecot.new_mail(user)
    assert len(files) == count, f"{user} has {len(files)} messages in Dovecot, expected {count}"
    matching = [f.read_bytes().replace(b"\r\n", b"\n") for f in files]
    matching = [data for data in matching if data.endswith(original.replace(b"\r\n", b"\n"))]
    assert len(matching) == 1, f"the message is not exactly once in {user}'s Dovecot Maildir"
    data = matching[0]
    start = data.find(f"Received: from {HELO} ".encode())
    assert start >= 0, f"stokend's Received field is missing: {data[:600]!r}"
    check_stored(data[start:].replace(b"\n", b"\r\n"), original, protocol)


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_token_delivery_into_dovecot(stokend_factory, peers, transport):
    dovecot = peers.dovecot()
    route = dovecot.tcp_route if transport == "tcp" else dovecot.unix_route
    mta = queue_daemon(stokend_factory, routes={"example.test": route})
    temporary = genstoken(mta, ALICE, "TEMP", REMOTE)
    first = message(f"dovecot-{transport}-1")
    delivery = token_session_delivery(mta, ALICE, temporary, first)
    assert (delivery.code, delivery.enhanced, delivery.address) == (250, "2.1.13", ALICE), str(delivery)
    assert f"<{delivery.delivery_id}>" in dovecot.log(), (
        f"delivery id {delivery.delivery_id!r} is not Dovecot's:\n{dovecot.log()}")
    # Committed by Dovecot before the reply: no waiting.
    check_in_dovecot(dovecot, "alice", first)
    assert mta.all_mail_files() == [], "the built-in Maildir must not be used for a routed domain"

    second = message(f"dovecot-{transport}-2")
    again = token_session_delivery(mta, ALICE, delivery.permanent_token, second)
    assert (again.code, again.enhanced) == (250, "2.1.12"), str(again)
    assert again.delivery_id != delivery.delivery_id
    assert f"<{again.delivery_id}>" in dovecot.log()
    check_in_dovecot(dovecot, "alice", second, count=2)
    assert dovecot.new_mail("bob") == []
    assert not STORED_IN_QUEUE.search(mta.log()), "a token delivery must not be queued"


def test_token_delivery_two_recipients_into_dovecot(stokend_factory, peers):
    dovecot = peers.dovecot()
    mta = queue_daemon(stokend_factory, routes={"example.test": dovecot.tcp_route})
    sender = "two@remote.example"
    alice_token = genstoken(mta, ALICE, "TEMP", sender)
    bob_token = genstoken(mta, BOB, "TEMP", sender)
    original = message("dovecot-two", to=f"{ALICE}, {BOB}", sender=sender)
    replies = sync_deliver(mta, sender, [(ALICE, alice_token), (BOB, bob_token)], original)
    assert [(d.enhanced, d.address) for d in replies] == [("2.1.13", ALICE), ("2.1.13", BOB)], (
        [str(d) for d in replies])
    for delivery in replies:
        assert f"<{delivery.delivery_id}>" in dovecot.log(), str(delivery)
    # The SYNC variant without AUTH STOKEN: ESMTPS (rfcdraft §8.5).
    check_in_dovecot(dovecot, "alice", original, protocol="ESMTPS")
    check_in_dovecot(dovecot, "bob", original, protocol="ESMTPS")


def test_dovecot_down_gives_451_and_nothing_is_queued(stokend_factory, peers):
    dovecot = peers.dovecot()
    route = dovecot.tcp_route
    dovecot.stop()
    mta = queue_daemon(stokend_factory, routes={"example.test": route},
                       queue={"first_retry": "1s", "max_retry_interval": "1s"})
    temporary = genstoken(mta, ALICE, "TEMP", REMOTE)
    marker = f"dovecot-down-{uuid.uuid4().hex}"
    delivery = token_session_delivery(mta, ALICE, temporary, message(marker))
    assert delivery.code == 451 and delivery.enhanced.startswith("4."), str(delivery)
    assert delivery.address == ALICE, str(delivery)
    assert ALICE in str(delivery)
    assert not STORED_IN_QUEUE.search(mta.log()), "a failed token delivery must not be queued"
    assert mta.files_containing(marker.encode()) == [], "the message must not be kept anywhere"
    # No permanent token was issued for the failed delivery.
    assert "2.1.13" not in str(delivery)

    dovecot.start()
    time.sleep(3)  # several retry intervals: a queued copy would arrive now
    assert dovecot.new_mail("alice") == [], "the failed token delivery was delivered later"
    assert not STORED_IN_QUEUE.search(mta.log())
    # The Remote Client may try again with the same token.
    again = token_session_delivery(mta, ALICE, temporary, message(marker + "-again"))
    assert (again.code, again.enhanced) == (250, "2.1.13"), str(again)
    check_in_dovecot(dovecot, "alice", message(marker + "-again"))
