"""A raw-socket SMTP client for tests that need to control the exact bytes.

smtplib hides what goes over the wire (it fixes line endings, dot-stuffs, and
reads replies lazily). The tests for pipelining, BDAT, smuggling and STARTTLS
injection need to send precise byte sequences in one write and to check that
no unexpected reply arrives, so they use SMTPWire instead.

Every socket has a timeout; every read is bounded.
"""

from __future__ import annotations

import base64
import re
import socket
import ssl
import time
from dataclasses import dataclass, field

CRLF = b"\r\n"
DEFAULT_TIMEOUT = 10.0

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s|$)")


def client_tls_context() -> ssl.SSLContext:
    """A TLS client context that accepts the daemon's self-signed certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@dataclass
class Reply:
    """One (possibly multi-line) SMTP reply."""

    code: int
    lines: list[str] = field(default_factory=list)  # text after "NNN-" / "NNN "
    raw: bytes = b""

    @property
    def enhanced(self) -> str:
        """The RFC 3463 enhanced status code of the first line, or ""."""
        match = _ENHANCED.match(self.lines[0]) if self.lines else None
        return ".".join(match.groups()) if match else ""

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def keywords(self) -> dict[str, str]:
        """EHLO extensions: first word of each line after the first, uppercased,
        mapped to the rest of the line."""
        result = {}
        for line in self.lines[1:]:
            word, _, rest = line.partition(" ")
            result[word.upper()] = rest
        return result

    def __str__(self) -> str:
        return self.raw.decode("utf-8", "replace").rstrip("\r\n")


class SMTPProtocolError(AssertionError):
    """The server sent something that is not a well-formed reply, or nothing."""


class SMTPWire:
    """A blocking SMTP client over a plain or TLS socket, with a read buffer."""

    def __init__(self, port: int, *, implicit_tls: bool = False,
                 timeout: float = DEFAULT_TIMEOUT, read_greeting: bool = True,
                 source: str | None = None):
        """source: the loopback address to connect from (127.0.0.x)."""
        self.port = port
        self.timeout = timeout
        self.buffer = b""
        self.eof = False
        self.sock: socket.socket = socket.create_connection(
            ("127.0.0.1", port), timeout=timeout,
            source_address=(source, 0) if source else None)
        self.sock.settimeout(timeout)
        self.tls = False
        if implicit_tls:
            self._wrap_tls()
        self.greeting = self.read_reply() if read_greeting else None

    # --- connection ---------------------------------------------------------

    def tls_handshake(self) -> None:
        """Starts TLS on the connection (after a STARTTLS 220)."""
        self._wrap_tls()

    def _wrap_tls(self) -> None:
        self.sock = client_tls_context().wrap_socket(self.sock, server_hostname="mx.example.test")
        self.sock.settimeout(self.timeout)
        self.tls = True

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "SMTPWire":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- raw I/O --------------------------------------------------------------

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _receive(self, timeout: float) -> bytes:
        """One recv() with a deadline. Returns b"" on EOF; raises socket.timeout."""
        if self.eof:
            return b""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            chunk = self.sock.recv(65536)
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError, BrokenPipeError):
            chunk = b""
        except ssl.SSLError as error:
            # A peer that closes without close_notify shows up as an SSL error
            # on some OpenSSL versions.
            if "EOF" in str(error) or "UNEXPECTED_EOF" in str(error):
                chunk = b""
            else:
                raise
        finally:
            try:
                self.sock.settimeout(self.timeout)
            except OSError:
                pass
        if not chunk:
            self.eof = True
        return chunk

    def read_line(self, timeout: float | None = None) -> bytes:
        """One line including its CRLF. Raises SMTPProtocolError on EOF or timeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SMTPProtocolError(
                    f"no complete reply line within the timeout; buffered {self.buffer!r}")
            try:
                chunk = self._receive(remaining)
            except (socket.timeout, TimeoutError):
                raise SMTPProtocolError(
                    f"no complete reply line within the timeout; buffered {self.buffer!r}") from None
            if not chunk:
                raise SMTPProtocolError(f"connection closed; buffered {self.buffer!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"

    def read_reply(self, timeout: float | None = None) -> Reply:
        """One complete reply (all continuation lines)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        lines: list[str] = []
        raw = b""
        code = None
        while True:
            line = self.read_line(max(deadline - time.monotonic(), 0.001))
            raw += line
            if not line.endswith(CRLF):
                raise SMTPProtocolError(f"reply line not ending with CRLF: {line!r}")
            text = line[:-2].decode("utf-8", "replace")
            if len(text) < 3 or not text[:3].isdigit() or (len(text) > 3 and text[3] not in " -"):
                raise SMTPProtocolError(f"malformed reply line {line!r}")
            this_code = int(text[:3])
            if code is not None and this_code != code:
                raise SMTPProtocolError(f"reply code changed inside a multi-line reply: {raw!r}")
            code = this_code
            lines.append(text[4:])
            if len(text) == 3 or text[3] == " ":
                return Reply(code, lines, raw)

    def read_replies(self, count: int, timeout: float | None = None) -> list[Reply]:
        return [self.read_reply(timeout) for _ in range(count)]

    def pending(self, wait: float = 0.5) -> bytes:
        """Whatever the server sends within `wait` seconds (without consuming it).
        Used to prove that no unexpected reply arrives."""
        deadline = time.monotonic() + wait
        while not self.eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                chunk = self._receive(remaining)
            except (socket.timeout, TimeoutError):
                break
            if not chunk:
                break
            self.buffer += chunk
        return self.buffer

    def wait_for_eof(self, timeout: float) -> bytes:
        """Reads until the server closes the connection; returns what it sent
        meanwhile. Raises SMTPProtocolError if the connection stays open."""
        deadline = time.monotonic() + timeout
        received = b""
        while not self.eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SMTPProtocolError(
                    f"connection still open after {timeout}s; received {received!r}")
            try:
                chunk = self._receive(remaining)
            except (socket.timeout, TimeoutError):
                continue
            received += chunk
        data, self.buffer = self.buffer + received, b""
        return data

    # --- commands -------------------------------------------------------------

    def command(self, line: str | bytes, timeout: float | None = None) -> Reply:
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + CRLF)
        return self.read_reply(timeout)

    def ehlo(self, name: str = "client.example.org") -> Reply:
        return self.command(f"EHLO {name}")

    def starttls(self) -> Reply:
        """STARTTLS plus the handshake. Fails if the server sent anything after
        its 220 before the handshake."""
        reply = self.command("STARTTLS")
        if reply.code != 220:
            raise SMTPProtocolError(f"STARTTLS refused: {reply}")
        leftover = self.pending(0.2)
        if leftover:
            raise SMTPProtocolError(f"plaintext data after the STARTTLS 220: {leftover!r}")
        self._wrap_tls()
        return reply

    def auth_plain(self, user: str, password: str) -> Reply:
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return self.command(f"AUTH PLAIN {token}")

    def auth_login(self, user: str, password: str) -> Reply:
        reply = self.command("AUTH LOGIN")
        if reply.code != 334:
            return reply
        reply = self.command(base64.b64encode(user.encode()).decode())
        if reply.code != 334:
            return reply
        return self.command(base64.b64encode(password.encode()).decode())

    def data(self, message: bytes, timeout: float | None = None) -> Reply:
        """Sends DATA, the dot-stuffed message and the terminating dot; returns
        the final reply (the 354 must come first)."""
        reply = self.command("DATA")
        if reply.code != 354:
            raise SMTPProtocolError(f"DATA refused: {reply}")
        self.send(dot_stuff(message) + b".\r\n")
        return self.read_reply(timeout)

    def transaction(self, sender: str, recipients: list[str], message: bytes) -> Reply:
        """MAIL, RCPT..., DATA, one at a time, each of which must succeed.
        Returns the reply after the message."""
        reply = self.command(f"MAIL FROM:<{sender}>")
        if reply.code != 250:
            raise SMTPProtocolError(f"MAIL refused: {reply}")
        for recipient in recipients:
            reply = self.command(f"RCPT TO:<{recipient}>")
            if reply.code != 250:
                raise SMTPProtocolError(f"RCPT {recipient} refused: {reply}")
        return self.data(message)


def dot_stuff(message: bytes) -> bytes:
    """RFC 5321 §4.5.2 transparency; also makes sure the message ends with CRLF."""
    if not message.endswith(CRLF):
        message += CRLF
    lines = message.split(CRLF)
    return CRLF.join(b"." + line if line.startswith(b".") else line for line in lines)
