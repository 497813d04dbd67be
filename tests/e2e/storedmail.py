"""Checks on messages as the daemon stored them in a Maildir.

A stored message is the message as the client sent it (dot-unstuffed, CRLF
line endings) with trace header fields prepended, the first of which is the
daemon's own Received field.
"""

from __future__ import annotations

import re

CRLF = b"\r\n"


def unfold(field: bytes) -> bytes:
    """RFC 5322 unfolding: CRLF followed by whitespace becomes that whitespace."""
    return re.sub(rb"\r\n(?=[ \t])", b"", field)


def header_fields(prefix: bytes) -> list[bytes]:
    """Splits a block of header fields (each ending with CRLF) into unfolded fields."""
    fields: list[bytes] = []
    for line in prefix.split(CRLF)[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += CRLF + line
        else:
            fields.append(line)
    return [unfold(f) for f in fields]


def check_stored(stored: bytes, original: bytes, protocol: str | None = None) -> bytes:
    """Asserts that `stored` is `original` exactly, preceded only by trace
    header fields starting with Received:, and (when given) that the Received
    field names `with PROTOCOL`. Returns the unfolded Received field."""
    assert stored.startswith(b"Received:"), (
        f"stored message does not begin with a Received: header: {stored[:200]!r}")
    assert stored.endswith(original), (
        "stored message does not end with the message as sent\n"
        f"sent:   {original[-300:]!r}\nstored: {stored[-300:]!r}")
    prefix = stored[: len(stored) - len(original)]
    assert prefix.endswith(CRLF), f"trace fields do not end with CRLF: {prefix!r}"
    assert CRLF + CRLF not in prefix, f"empty line inside the prepended trace fields: {prefix!r}"
    assert prefix.count(b"\n") == prefix.count(CRLF) and prefix.count(b"\r") == prefix.count(CRLF), (
        f"bare CR or LF in the prepended trace fields: {prefix!r}")
    fields = header_fields(prefix)
    for f in fields:
        assert re.match(rb"^[!-9;-~]+:", f), f"prepended line is not a header field: {f!r}"
    received = fields[0]
    if protocol is not None:
        assert re.search(rb"\bwith " + protocol.encode() + rb"\b", received), (
            f"Received field does not say 'with {protocol}': {received!r}")
    return received


def received_field(stored: bytes) -> bytes:
    """The first header field of the stored message, unfolded."""
    end = stored.find(CRLF + CRLF)
    head = stored[: end + 2] if end >= 0 else stored
    return header_fields(head)[0]


def has_bare_line_ending(data: bytes) -> bool:
    return data.count(b"\n") != data.count(CRLF) or data.count(b"\r") != data.count(CRLF)
