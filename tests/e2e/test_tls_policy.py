"""Per-domain outbound TLS policy (tls_policies: may, require, verify).

Proves that a domain whose policy is `require` is never delivered in
plaintext: towards smtp-sink, which offers no STARTTLS, the message stays
queued with a reply that names the policy, while a domain without a policy
routed to the same sink is delivered at once; that `require` towards a second
stokend acting as the domain's MX (STARTTLS with its self-signed certificate)
delivers over TLS (the receiving side's Received header says ESMTPS); that
`verify` towards the same peer without a trusted CA is refused, the reply
saying the certificate did not verify; and that with the peer's certificate as
`delivery.tls_policy_ca_file` the same `verify` delivery succeeds (for a fixed
smtp:[ip]:port next hop the name checked is the recipient domain).
"""

from __future__ import annotations

import re

import pytest

from peers import PeerSet, outcomes, queue_daemon, queue_id, submit, wait_for_log, wait_removed
from stokend_daemon import USERS, Stokend

ALICE = "alice@example.test"
ALICE_PW = USERS[ALICE]
FRIEND = "friend@partner.test"
FRIEND_PW = "Friend-pw-2024"
# The first attempt happens at once; a retry within the test would only add noise.
NO_RETRY = {"first_retry": "1h", "max_retry_interval": "2h"}


@pytest.fixture
def peers():
    with PeerSet() as peer_set:
        yield peer_set


def message(marker: str, to: str) -> bytes:
    return (f"From: Alice <{ALICE}>\r\n"
            f"To: <{to}>\r\n"
            f"Subject: tls policy {marker}\r\n"
            f"Message-ID: <{marker}@example.test>\r\n"
            f"\r\n"
            f"Marker {marker}.\r\n").encode()


def receiver(factory) -> Stokend:
    """A second stokend acting as partner.test's MX: STARTTLS on its MX port
    with a self-signed certificate generated for the name partner.test."""
    return factory(hostname="partner.test", local_domains=["partner.test"],
                   users={FRIEND: FRIEND_PW})


def sender(factory, peer: Stokend, policy: str, **overrides) -> Stokend:
    return queue_daemon(factory, routes={"partner.test": f"smtp:[127.0.0.1]:{peer.mx_port}"},
                        tls_policies={"partner.test": policy}, queue=NO_RETRY, **overrides)


def test_require_without_starttls_stays_queued(stokend_factory, peers):
    sink = peers.sink()
    mta = queue_daemon(stokend_factory,
                       routes={"bank.test": sink.route, "plain.test": sink.route},
                       tls_policies={"bank.test": "require"}, queue=NO_RETRY)
    held = queue_id(submit(mta, ALICE, ALICE_PW, ["money@bank.test"], message("held", "bank")))
    sent = queue_id(submit(mta, ALICE, ALICE_PW, ["someone@plain.test"], message("sent", "plain")))

    # The domain without a policy goes out in plaintext, as before.
    wait_removed(mta, sent)
    delivered = sink.wait_for_messages(1)
    assert any(b"Marker sent." in m.data for m in delivered)

    # The one with `require` is deferred, never sent, and says why.
    line = wait_for_log(mta, rf"queue: {held} to=<money@bank\.test> deferred after 1 attempts: "
                             rf"(.*)$")
    reply = line.group(1)
    assert re.match(r"4\d\d 4\.7\.4 TLS required by policy \(require\) for bank\.test: ", reply), reply
    assert "not offered" in reply, reply
    assert mta.settle(0.3) is False, "the message must stay queued"
    assert not any(b"Marker held." in m.data for m in sink.messages())
    listing = mta.ctl("queue", "list").stdout
    assert held in listing and "money@bank.test" in listing, listing
    assert "TLS required by policy (require) for bank.test" in listing, listing


def test_require_towards_a_starttls_peer_delivers_over_tls(stokend_factory):
    peer = receiver(stokend_factory)
    mta = sender(stokend_factory, peer, "require")
    qid = queue_id(submit(mta, ALICE, ALICE_PW, [FRIEND], message("tls-ok", FRIEND)))
    log = wait_removed(mta, qid)
    assert outcomes(log, qid)[-1][1] == "delivered", outcomes(log, qid)
    mail = peer.messages(FRIEND)
    assert len(mail) == 1 and b"Marker tls-ok." in mail[0]
    # The receiving side's own Received header comes first (RFC 5321 §4.4).
    headers = mail[0].split(b"\r\n\r\n", 1)[0].decode()
    received = headers.split("\r\nReceived:")[0] if headers.startswith("Received:") else ""
    assert "by partner.test" in received and "with ESMTPS" in received, headers


def test_verify_with_an_untrusted_certificate_is_refused(stokend_factory):
    peer = receiver(stokend_factory)
    mta = sender(stokend_factory, peer, "verify")
    qid = queue_id(submit(mta, ALICE, ALICE_PW, [FRIEND], message("untrusted", FRIEND)))
    line = wait_for_log(mta, rf"queue: {qid} to=<friend@partner\.test> deferred after 1 attempts: "
                             rf"(.*)$")
    reply = line.group(1)
    assert re.match(r"4\d\d 4\.7\.5 TLS required by policy \(verify\) for partner\.test: ", reply), \
        reply
    assert "certificate verification failed" in reply, reply
    assert mta.settle(0.3) is False
    assert peer.messages(FRIEND) == []


def test_verify_with_the_peer_certificate_as_ca_file_delivers(stokend_factory):
    peer = receiver(stokend_factory)
    ca_file = peer.dir / "var" / "tls" / "cert.pem"
    assert ca_file.is_file()
    mta = sender(stokend_factory, peer, "verify", delivery={"tls_policy_ca_file": str(ca_file)})
    qid = queue_id(submit(mta, ALICE, ALICE_PW, [FRIEND], message("verified", FRIEND)))
    log = wait_removed(mta, qid)
    assert outcomes(log, qid)[-1][1] == "delivered", outcomes(log, qid)
    mail = peer.messages(FRIEND)
    assert len(mail) == 1 and b"Marker verified." in mail[0]
