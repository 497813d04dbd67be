"""Recipient verification at the next hop (recipient_probe).

stokend fronts a mailstore it relays to (here a real Dovecot over LMTP) and
has none of its users in its own users file: with the domain listed under
recipient_probe.domains, each RCPT is checked at Dovecot (MAIL FROM:<>,
RCPT, RSET), so an unknown user is refused at once with Dovecot's reason
instead of being accepted and bounced later; a user Dovecot knows is
accepted and delivered; answers are cached, and a next hop that cannot be
asked gives 450 (try later), never an acceptance.
"""

import pytest

from peers import PeerSet, outcomes, queue_daemon, queue_id, wait_removed
from smtpwire import SMTPWire

ALICE = "alice@example.test"


@pytest.fixture
def peers():
    with PeerSet() as peer_set:
        yield peer_set


def rcpt_replies(daemon, recipients: list[str]) -> list:
    with SMTPWire(daemon.mx_port) as conn:
        assert conn.ehlo("client.remote.test").code == 250
        assert conn.command("MAIL FROM:<sender@remote.test>").code == 250
        replies = [conn.command(f"RCPT TO:<{recipient}>") for recipient in recipients]
        conn.command("QUIT")
        return replies


def test_recipients_are_checked_at_the_next_hop(stokend_factory, peers):
    dovecot = peers.dovecot(users=("alice", "bob"))
    daemon = queue_daemon(stokend_factory, users={},
                          routes={"example.test": dovecot.unix_route},
                          recipient_probe={"domains": ["example.test"]})
    known, unknown = rcpt_replies(daemon, [ALICE, "nobody@example.test"])
    assert known.code == 250, str(known)
    assert unknown.code == 550 and unknown.enhanced == "5.1.1", str(unknown)
    assert "undeliverable address" in unknown.text and "550" in unknown.text, str(unknown)

    # Accepted means delivered: the message reaches Dovecot.
    marker = "probe-delivery"
    with SMTPWire(daemon.mx_port) as conn:
        assert conn.ehlo("client.remote.test").code == 250
        reply = conn.transaction("sender@remote.test", [ALICE],
                                 f"Subject: {marker}\r\n\r\n{marker}\r\n".encode())
        conn.command("QUIT")
    qid = queue_id(reply)
    log = wait_removed(daemon, qid)
    assert [(r, o) for r, o, _, _ in outcomes(log, qid)] == [(ALICE, "delivered")]
    assert any(marker.encode() in path.read_bytes() for path in dovecot.all_mail("alice"))


def test_answers_are_cached_and_an_unreachable_next_hop_means_try_later(stokend_factory, peers):
    dovecot = peers.dovecot(users=("alice", "bob"))
    daemon = queue_daemon(stokend_factory, users={},
                          routes={"example.test": dovecot.unix_route},
                          recipient_probe={"domains": ["example.test"], "positive_ttl": "1h",
                                           "negative_ttl": "1h"})
    first = rcpt_replies(daemon, [ALICE, "nobody@example.test"])
    assert [r.code for r in first] == [250, 550]
    dovecot.stop()
    # Dovecot is gone: the cached answers still hold...
    cached = rcpt_replies(daemon, [ALICE, "nobody@example.test"])
    assert [r.code for r in cached] == [250, 550], [str(r) for r in cached]
    # ...and an address never asked about cannot be verified: 450, not 250.
    (unverified,) = rcpt_replies(daemon, ["bob@example.test"])
    assert unverified.code == 450 and unverified.enhanced == "4.1.1", str(unverified)
    assert "unverified address" in unverified.text


def test_users_in_the_users_file_need_no_probe(stokend_factory, peers):
    dovecot = peers.dovecot(users=("alice",))
    daemon = queue_daemon(stokend_factory, users={"carol@example.test": "Carol-pw-1"},
                          routes={"example.test": dovecot.unix_route},
                          recipient_probe={"domains": ["example.test"]})
    dovecot.stop()
    (carol,) = rcpt_replies(daemon, ["carol@example.test"])
    assert carol.code == 250, str(carol)


def test_a_probe_domain_needs_a_next_hop(stokend_factory, tmp_path):
    import subprocess
    from stokend_daemon import STOKEND, Stokend, require_binaries
    require_binaries()
    daemon = Stokend(tmp_path / "d", {"recipient_probe": {"domains": ["example.test", "other.test"]}})
    result = subprocess.run([str(STOKEND), "--check-config", str(daemon.config_path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert ("recipient_probe.domains[0]: 'example.test' has no smtp or lmtp route, so there is "
            "no next hop to ask") in result.stderr + result.stdout
    assert "recipient_probe.domains[1]: 'other.test' is not a local domain" in (
        result.stderr + result.stdout)
