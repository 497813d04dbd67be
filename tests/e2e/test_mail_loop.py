"""Mail loops end at stokend (RFC 5321 §6.3: counting Received fields).

Proves that a message carrying exactly limits.max_hops (100) Received fields
is accepted and stored (with stokend's own field on top, 101 in all), while
one with a single field more gets 554 5.4.6 at the end of data, naming the
count and the limit, and nothing is stored; that folded Received fields count
once each and a "Received:" inside the body counts for nothing; and that the
session goes on normally after the refusal.
"""

import uuid

from smtpwire import SMTPWire

ALICE = "alice@example.test"
SENDER = "sender@example.org"
LIMIT = 100  # limits.max_hops, the default


def looped(count: int, marker: str, folded: bool = False, body_fields: int = 0) -> bytes:
    hop = (b"Received: from relay.example.org by mx.example.org;\r\n"
           b"\tMon, 7 Dec 2026 12:00:00 +0000\r\n" if folded else
           b"Received: from relay.example.org by mx.example.org; Mon, 7 Dec 2026 12:00:00 +0000\r\n")
    body = b"Received: quoted in the body, not a field\r\n" * body_fields
    return (hop * count + f"Subject: loop {marker}\r\nMessage-ID: <{marker}@example.org>\r\n\r\n"
            .encode() + body + f"Marker {marker}.\r\n".encode())


def send(mta, message: bytes):
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        reply = conn.transaction(SENDER, [ALICE], message)
        after = conn.command("NOOP")
        return reply, after


def stored_with(mta, marker: str) -> list[bytes]:
    return [m for m in mta.messages(ALICE) if f"Marker {marker}.".encode() in m]


def test_at_the_limit_the_message_is_accepted(mta):
    marker = uuid.uuid4().hex
    reply, _ = send(mta, looped(LIMIT, marker, body_fields=3))
    assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
    stored = stored_with(mta, marker)
    assert len(stored) == 1
    header = stored[0].split(b"\r\n\r\n", 1)[0]
    assert header.count(b"\r\nReceived: ") + header.startswith(b"Received: ") == LIMIT + 1


def test_one_hop_more_is_refused_as_a_loop(mta):
    marker = uuid.uuid4().hex
    reply, after = send(mta, looped(LIMIT + 1, marker, folded=True))
    assert (reply.code, reply.enhanced) == (554, "5.4.6"), str(reply)
    assert f"Too many hops: {LIMIT + 1} Received fields, limit {LIMIT} (mail loop)" in str(reply)
    assert after.code == 250, "the session goes on after the refusal"
    assert stored_with(mta, marker) == []
    assert "Received fields, over the limit of 100 (mail loop)" in mta.log()
