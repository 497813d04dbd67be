"""A raw client for the Submission Token extension: the Remote Client side.

TokenWire is an SMTPWire (every read bounded, TLS over Python's ssl) that also
speaks LHLO, AUTH STOKEN, GENSTOKEN / REVSTOKEN, RCPT with STOKEN= and
MYSTOKEN=, and reads the per-recipient replies after DATA (one per accepted
recipient, RFC 2033 §4.2), so the tests see exactly what went over the wire.

Also here: the token text format (DESIGN.md "Token format"), the pair hash,
forging syntactically valid tokens for MYSTOKEN, tampering with a token, and
parsing the 2.1.11 / 2.1.12 / 2.1.13 replies.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from dataclasses import dataclass

from smtpwire import SMTPProtocolError, SMTPWire, dot_stuff

TEMP_VALIDITY = 7 * 24 * 3600    # default validity of a temporary token
PERM_VALIDITY = 365 * 24 * 3600  # default validity of a permanent token

B64 = r"[A-Za-z0-9+/]+"
# The named format stokend emits: 1-created:S-validity:S-hash:B64-keyid:ID-secret:B64
TOKEN = re.compile(rf"^1-created:(?P<created>[1-9]\d*)-validity:(?P<validity>[1-9]\d*)"
                   rf"-hash:(?P<hash>{B64})-keyid:(?P<keyid>[a-z0-9]+)-secret:(?P<secret>{B64})$")


# --- tokens -------------------------------------------------------------------------

def message(marker: str, to: str = "alice@example.test",
            sender: str = "bob@remote.example") -> bytes:
    """A plain test message from sender to `to`, marked with marker; its last
    line starts with a dot, so DATA dot-stuffing is exercised."""
    return (f"From: Remote <{sender}>\r\n"
            f"To: {to}\r\n"
            f"Subject: token delivery {marker}\r\n"
            f"Message-ID: <{marker}@remote.example>\r\n"
            f"\r\n"
            f"Marker {marker}.\r\n"
            f".a line with a leading dot\r\n").encode()


def b64_unpadded(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def pair_hash(remote: str, local: str) -> str:
    """SHA3-256(norm(remote) ":" norm(local)), base64 without padding; norm
    lowercases the address."""
    return b64_unpadded(hashlib.sha3_256(f"{remote.lower()}:{local.lower()}".encode()).digest())


@dataclass
class Token:
    text: str
    created: int
    validity: int
    hash: str
    keyid: str
    secret: str

    @property
    def expires(self) -> int:
        return self.created + self.validity


def parse_token(text: str) -> Token:
    """Parses a token stokend issued; fails the test when it is not in the
    named format with created, validity, hash, keyid and secret."""
    match = TOKEN.match(text)
    assert match, f"not a stokend token: {text!r}"
    return Token(text, int(match["created"]), int(match["validity"]), match["hash"],
                 match["keyid"], match["secret"])


def make_token(hash_b64: str, *, created: int | None = None, validity: int = PERM_VALIDITY,
               keyid: str = "x", secret: bytes = b"remote-client-secret-0123456789ab") -> str:
    """A syntactically valid named-format token as another server would issue
    it (for MYSTOKEN: this server cannot verify its MAC, only its form)."""
    created = int(time.time()) if created is None else created
    return (f"1-created:{created}-validity:{validity}-hash:{hash_b64}-keyid:{keyid}"
            f"-secret:{b64_unpadded(secret)}")


def _flip(char: str) -> str:
    return "B" if char != "B" else "C"


def tamper_secret(token: str) -> str:
    """The token with the first character of its MAC changed (the first
    character always carries six whole bits of the MAC)."""
    head, _, secret = token.rpartition("-secret:")
    return f"{head}-secret:{_flip(secret[0])}{secret[1:]}"


def tamper_created(token: str, delta: int = -1) -> str:
    """The token with its created time moved by delta seconds (still a
    well-formed number), the MAC unchanged."""
    match = re.search(r"created:(\d+)", token)
    assert match, token
    return token.replace(match.group(0), f"created:{int(match.group(1)) + delta}", 1)


# --- replies ------------------------------------------------------------------------

@dataclass
class Delivery:
    """One per-recipient reply after DATA: 250 2.1.12 / 2.1.13, or a failure."""

    reply: object  # smtpwire.Reply
    address: str = ""
    delivery_id: str = ""
    permanent_token: str = ""

    @property
    def code(self) -> int:
        return self.reply.code

    @property
    def enhanced(self) -> str:
        return self.reply.enhanced

    def __str__(self) -> str:
        return str(self.reply)


_DELIVERED_12 = re.compile(r"^2\.1\.12 <([^>]+)> (\S+)(?: .*)?$")
_DELIVERED_13 = re.compile(r"^2\.1\.13 <([^>]+)> (\S+) (\S+)(?: .*)?$")


def parse_delivery(reply) -> Delivery:
    """Splits a per-recipient reply; a 2.1.12 / 2.1.13 must have the draft's
    structure (<addr> [token] delivery-id text)."""
    result = Delivery(reply)
    line = reply.lines[0] if reply.lines else ""
    if reply.enhanced == "2.1.12":
        match = _DELIVERED_12.match(line)
        assert match and len(reply.lines) == 1, f"malformed 2.1.12 reply: {reply}"
        result.address, result.delivery_id = match.groups()
    elif reply.enhanced == "2.1.13":
        match = _DELIVERED_13.match(line)
        assert match and len(reply.lines) == 1, f"malformed 2.1.13 reply: {reply}"
        result.address, result.permanent_token, result.delivery_id = match.groups()
    else:
        match = re.match(r"^\S+ <([^>]+)>", line)
        if match:
            result.address = match.group(1)
    return result


def check_verdicts(out: str) -> dict[str, str]:
    """`stokenctl stoken check` output: check name -> PASS, FAIL or SKIP."""
    return {m.group(2): m.group(1) for m in re.finditer(r"^(PASS|FAIL|SKIP)  (\S+)  ", out, re.M)}


def genstoken_token(reply) -> str:
    """The token from a "250 2.1.11 <token> text" reply."""
    assert (reply.code, reply.enhanced) == (250, "2.1.11"), f"GENSTOKEN failed: {reply}"
    words = reply.lines[0].split()
    assert len(words) >= 2, f"no token in {reply}"
    return words[1]


# --- the client -----------------------------------------------------------------------

class TokenWire(SMTPWire):
    """SMTPWire plus the commands of the Submission Token extension."""

    def lhlo(self, name: str = "remote-client.remote.example"):
        return self.command(f"LHLO {name}")

    def auth_stoken(self, recipient: str, token: str, *, literal_backslash_zero: bool = False,
                    two_steps: bool = False):
        """AUTH STOKEN base64(recipient NUL token); literal_backslash_zero
        writes the draft's spelling, the two characters '\\' '0'; two_steps
        sends the response after a 334 instead of as an initial response."""
        separator = "\\0" if literal_backslash_zero else "\0"
        response = base64.b64encode(f"{recipient}{separator}{token}".encode()).decode()
        if two_steps:
            reply = self.command("AUTH STOKEN")
            if reply.code != 334:
                return reply
            return self.command(response)
        return self.command(f"AUTH STOKEN {response}")

    def genstoken(self, kind: str, remote: str, local: str | None = None):
        return self.command(f"GENSTOKEN {kind} {remote}" + (f" {local}" if local else ""))

    def revstoken(self, remote: str, local: str | None = None):
        return self.command(f"REVSTOKEN {remote}" + (f" {local}" if local else ""))

    def mail(self, sender: str, *, sync: bool = False):
        return self.command(f"MAIL FROM:<{sender}>" + (" SYNC" if sync else ""))

    def rcpt(self, recipient: str, stoken: str | None = None, mystoken: str | None = None):
        line = f"RCPT TO:<{recipient}>"
        if stoken is not None:
            line += f" STOKEN={stoken}"
        if mystoken is not None:
            line += f" MYSTOKEN={mystoken}"
        return self.command(line)

    def data_per_recipient(self, message: bytes, accepted: int,
                           timeout: float | None = None) -> list[Delivery]:
        """DATA, the message, the dot; then one reply per accepted recipient.
        Checks that nothing more arrives."""
        reply = self.command("DATA")
        if reply.code != 354:
            raise SMTPProtocolError(f"DATA refused: {reply}")
        self.send(dot_stuff(message) + b".\r\n")
        replies = [parse_delivery(self.read_reply(timeout)) for _ in range(accepted)]
        extra = self.pending(0.2)
        assert extra == b"", f"more replies after DATA than accepted recipients: {extra!r}"
        return replies


def tls_connect(port: int, *, implicit_tls: bool = False, ehlo_name: str = "client.example.test"
                ) -> TokenWire:
    """A connection under TLS: implicit, or EHLO + STARTTLS (no EHLO after)."""
    conn = TokenWire(port, implicit_tls=implicit_tls)
    assert conn.greeting.code == 220, str(conn.greeting)
    if not implicit_tls:
        assert conn.ehlo(ehlo_name).code == 250
        conn.starttls()
    return conn


def login(daemon, user: str, *, mechanism: str = "PLAIN", implicit_tls: bool = False) -> TokenWire:
    """A submission session under TLS, after EHLO, logged in as user."""
    port = daemon.submissions_port if implicit_tls else daemon.submission_port
    conn = tls_connect(port, implicit_tls=implicit_tls)
    assert conn.ehlo("client.example.test").code == 250
    password = daemon.users[user]
    reply = conn.auth_plain(user, password) if mechanism == "PLAIN" else conn.auth_login(user, password)
    assert (reply.code, reply.enhanced) == (235, "2.7.0"), f"AUTH {mechanism} as {user}: {reply}"
    return conn


def genstoken(daemon, user: str, kind: str, remote: str) -> str:
    """The token that user gets with GENSTOKEN kind remote."""
    with login(daemon, user) as conn:
        token = genstoken_token(conn.genstoken(kind, remote))
        conn.command("QUIT")
    return token


def revstoken(daemon, user: str, remote: str) -> None:
    with login(daemon, user) as conn:
        reply = conn.revstoken(remote)
        assert (reply.code, reply.enhanced) == (250, "2.1.0"), f"REVSTOKEN: {reply}"
        conn.command("QUIT")


def token_session(daemon, recipient: str, token: str, *, implicit_tls: bool = False,
                  lhlo_name: str = "remote-client.remote.example") -> TokenWire:
    """TLS, LHLO, AUTH STOKEN recipient/token (which must succeed)."""
    port = daemon.submissions_port if implicit_tls else daemon.submission_port
    conn = tls_connect(port, implicit_tls=implicit_tls)
    reply = conn.lhlo(lhlo_name)
    assert reply.code == 250, f"LHLO: {reply}"
    reply = conn.auth_stoken(recipient, token)
    assert (reply.code, reply.enhanced) == (235, "2.7.0"), f"AUTH STOKEN: {reply}"
    return conn


def deliver(daemon, sender: str, recipients: list[tuple], message: bytes, *,
            auth: tuple[str, str] | None = None) -> list[Delivery]:
    """One token transaction in a fresh session: TLS, LHLO, AUTH STOKEN
    (auth=(recipient, token); default the first recipient's), MAIL, one RCPT
    per (address, stoken[, mystoken]) (each must get 250 2.1.5), DATA.
    Returns the per-recipient replies."""
    recipient, token = auth or recipients[0][:2]
    with token_session(daemon, recipient, token) as conn:
        reply = conn.mail(sender)
        assert (reply.code, reply.enhanced) == (250, "2.1.0"), f"MAIL: {reply}"
        for address, stoken, *rest in recipients:
            reply = conn.rcpt(address, stoken, rest[0] if rest else None)
            assert (reply.code, reply.enhanced) == (250, "2.1.5"), f"RCPT {address}: {reply}"
        replies = conn.data_per_recipient(message, len(recipients))
        assert conn.command("QUIT").code == 221
    return replies
