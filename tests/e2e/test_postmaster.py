"""RCPT TO:<Postmaster> without a domain (RFC 5321 §4.1.1.3).

Proves that the domain-less postmaster address is accepted on the MX role and
delivered to postmaster of the primary local domain when that user exists,
that it is refused as an unknown user (never as relaying) when it does not,
and that a source route in front of it is still refused as a relay trick.
"""

from smtpwire import SMTPWire

SENDER = "sender@example.org"


def test_postmaster_without_domain_is_delivered(stokend_factory):
    mta = stokend_factory(users={"postmaster@example.test": "pm-password"})
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
        reply = conn.command("RCPT TO:<Postmaster>")
        assert (reply.code, reply.enhanced) == (250, "2.1.5")
        assert conn.command("DATA").code == 354
        conn.send(b"Subject: to the postmaster\r\n\r\npostmaster-marker\r\n.\r\n")
        assert conn.read_reply().code == 250
    stored = mta.messages("postmaster@example.test")
    assert len(stored) == 1
    assert b"postmaster-marker" in stored[0]


def test_postmaster_without_user_is_unknown_not_relay(stokend_factory):
    mta = stokend_factory(users={})
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
        reply = conn.command("RCPT TO:<postmaster>")
        assert (reply.code, reply.enhanced) == (550, "5.1.1")


def test_source_routed_postmaster_is_refused(stokend_factory):
    mta = stokend_factory(users={"postmaster@example.test": "pm-password"})
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
        reply = conn.command("RCPT TO:<@relay.example.org:postmaster@example.test>")
        assert (reply.code, reply.enhanced) == (550, "5.7.1")
