"""A small Token Server for testing `stokenctl stoken check`: correct by
default, wrong in one chosen way (fault=...), so each check can be shown to
catch the fault it is meant for.

It listens on 127.0.0.1 with STARTTLS (so what it says before TLS can be
seen), serves the submission side after EHLO (AUTH PLAIN, GENSTOKEN,
REVSTOKEN) and the token side after LHLO (AUTH STOKEN, MAIL, RCPT with
STOKEN=, DATA with one LMTP reply), and stores messages in a Maildir.
Tokens are random strings it remembers with their pair; a temporary token
gets a 2.1.13 and a permanent one in return.

Forms (rfcdraft/ Appendix D):
  lhlo                 the draft's form: STOKEN and AUTH STOKEN after LHLO
  sync-only            Dovecot's plugin's form: LHLO refused, STOKEN listed
                       after EHLO, MAIL ... SYNC without AUTH, tokens checked
                       at RCPT

Faults:
  none                 behaves as the draft says
  accepts-tampered     takes a token with one character changed (AUTH STOKEN, RCPT)
  stoken-before-tls    the plaintext LHLO reply lists STOKEN
  replies-before-commit the 2.1.1x reply goes out before the file is stored
  ignores-revocation   REVSTOKEN answers 250 and revokes nothing
  garbage              answers every line with text that is no SMTP reply
  hang                 accepts the connection and never says anything
  drop                 drops the connection in the middle of the LHLO reply
"""

from __future__ import annotations

import base64
import secrets
import socket
import ssl
import threading
import time
from pathlib import Path

FORMS = ("lhlo", "sync-only")
FAULTS = ("none", "accepts-tampered", "stoken-before-tls", "replies-before-commit",
          "ignores-revocation", "garbage", "hang", "drop")


class FaultyTokenServer:
    def __init__(self, certificate: Path, key: Path, maildir: Path, user: str, password: str,
                 fault: str = "none", form: str = "lhlo") -> None:
        assert fault in FAULTS, fault
        assert form in FORMS, form
        self.fault = fault
        self.form = form
        self.maildir = maildir
        for sub in ("new", "cur", "tmp"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        self.user, self.password = user, password
        self.tokens: dict[str, tuple[str, str, str]] = {}  # token -> (kind, remote, local)
        self.lock = threading.Lock()
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(certificate), str(key))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopping = False
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def close(self) -> None:
        self.stopping = True
        self.listener.close()
        for thread in self.threads:
            thread.join(5)

    # --- connections ---------------------------------------------------------

    def _accept(self) -> None:
        while not self.stopping:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            connection.settimeout(10)
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            Conversation(self, connection).run()
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                connection.close()
            except OSError:
                pass

    # --- tokens --------------------------------------------------------------

    def mint(self, kind: str, remote: str, local: str) -> str:
        token = f"1-faulty-{kind.lower()}-{secrets.token_urlsafe(48)}"
        with self.lock:
            self.tokens[token] = (kind, remote.lower(), local.lower())
        return token

    def find(self, token: str) -> tuple[str, str, str] | None:
        with self.lock:
            found = self.tokens.get(token)
            if found is None and self.fault == "accepts-tampered":
                for known, pair in self.tokens.items():
                    if len(known) == len(token) and sum(a != b for a, b in zip(known, token)) == 1:
                        return pair
            return found

    def revoke(self, remote: str, local: str) -> None:
        if self.fault == "ignores-revocation":
            return
        with self.lock:
            for token in [t for t, (_, r, l) in self.tokens.items()
                          if (r, l) == (remote.lower(), local.lower())]:
                del self.tokens[token]

    def store(self, data: bytes) -> str:
        name = f"{time.time_ns()}.{secrets.token_hex(4)}.faulty"
        (self.maildir / "tmp" / name).write_bytes(data)
        (self.maildir / "tmp" / name).rename(self.maildir / "new" / name)
        return name


def address_of(argument: str) -> str:
    start, end = argument.find("<"), argument.find(">")
    return argument[start + 1:end] if 0 <= start < end else ""


class Conversation:
    def __init__(self, server: FaultyTokenServer, connection: socket.socket) -> None:
        self.server = server
        self.socket = connection
        self.buffer = b""
        self.tls = False
        self.lmtp = False
        self.user: str | None = None
        self.pair: tuple[str, str, str] | None = None  # from AUTH STOKEN
        self.sender: str | None = None
        self.recipients: list[tuple[str, tuple[str, str, str]]] = []

    def send(self, text: str) -> None:
        self.socket.sendall(text.encode())

    def read_line(self) -> str | None:
        while b"\r\n" not in self.buffer:
            chunk = self.socket.recv(4096)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def run(self) -> None:
        fault = self.server.fault
        if fault == "hang":
            time.sleep(30)
            return
        self.send("220 tokens.faulty.test ESMTP faulty\r\n")
        while (line := self.read_line()) is not None:
            if fault == "garbage":
                self.send("hello there, this is not SMTP\r\n")
                continue
            verb, _, argument = line.partition(" ")
            handler = getattr(self, "do_" + verb.upper(), None)
            if handler is None:
                self.send("500 5.5.1 Unknown command\r\n")
            elif handler(argument) is False:
                return

    # --- greeting and TLS ----------------------------------------------------

    def do_EHLO(self, argument: str) -> None:
        self.lmtp = False
        lines = ["tokens.faulty.test", "PIPELINING", "ENHANCEDSTATUSCODES"]
        lines.append("AUTH PLAIN" if self.tls else "STARTTLS")
        if self.server.form == "sync-only" and (self.tls or self.server.fault == "stoken-before-tls"):
            lines.append("STOKEN")
        self.reply(250, lines)

    def do_LHLO(self, argument: str) -> bool | None:
        if self.server.form == "sync-only":
            self.send("500 5.5.1 Unknown command\r\n")
            return None
        self.lmtp = True
        if self.server.fault == "drop":
            self.send("250-tokens.faulty.test\r\n250-ENHANCEDSTATUSCODES\r\n")
            return False
        lines = ["tokens.faulty.test", "ENHANCEDSTATUSCODES"]
        if self.tls:
            lines += ["AUTH STOKEN", "STOKEN"]
        else:
            lines.append("STARTTLS")
            if self.server.fault == "stoken-before-tls":
                lines.append("STOKEN")
        self.reply(250, lines)
        return None

    def do_STARTTLS(self, argument: str) -> None:
        self.send("220 2.0.0 Ready to start TLS\r\n")
        self.socket = self.server.context.wrap_socket(self.socket, server_side=True)
        self.buffer = b""
        self.tls = True

    def do_QUIT(self, argument: str) -> bool:
        self.send("221 2.0.0 Bye\r\n")
        return False

    def do_RSET(self, argument: str) -> None:
        self.sender, self.recipients = None, []
        self.send("250 2.0.0 OK\r\n")

    def reply(self, code: int, lines: list[str]) -> None:
        text = "".join(f"{code}-{line}\r\n" for line in lines[:-1])
        self.send(text + f"{code} {lines[-1]}\r\n")

    # --- submission side -----------------------------------------------------

    def do_AUTH(self, argument: str) -> None:
        mechanism, _, response = argument.partition(" ")
        try:
            decoded = base64.b64decode(response, validate=True)
        except ValueError:
            self.send("501 5.5.2 Invalid response\r\n")
            return
        if not self.tls:
            self.send("530 5.7.0 Must issue a STARTTLS command first\r\n")
        elif mechanism.upper() == "PLAIN" and not self.lmtp:
            _, user, password = decoded.split(b"\0", 2)
            if (user.decode(), password.decode()) == (self.server.user, self.server.password):
                self.user = user.decode()
                self.send("235 2.7.0 Authentication successful\r\n")
            else:
                self.send("535 5.7.8 Authentication failed\r\n")
        elif mechanism.upper() == "STOKEN":
            recipient, _, token = decoded.decode("utf-8", "replace").partition("\0")
            pair = self.server.find(token)
            if pair is not None and pair[2] == recipient.lower():
                self.pair = pair
                self.send("235 2.7.0 Authentication successful\r\n")
            else:
                self.send("535 5.7.8 Authentication credentials invalid\r\n")
        else:
            self.send("504 5.5.4 Unrecognized authentication type\r\n")

    def do_GENSTOKEN(self, argument: str) -> None:
        kind, remote, *local = argument.split()
        if self.user is None:
            self.send("530 5.7.0 Authentication required\r\n")
            return
        token = self.server.mint(kind.upper(), remote.strip("<>"), self.user)
        self.send(f"250 2.1.11 {token} Temporary token generated\r\n")

    def do_REVSTOKEN(self, argument: str) -> None:
        if self.user is None:
            self.send("530 5.7.0 Authentication required\r\n")
            return
        remote = argument.split()[0].strip("<>")
        self.server.revoke(remote, self.user)
        self.send("250 2.1.0 All tokens of the pair revoked\r\n")

    # --- token side ----------------------------------------------------------

    def do_MAIL(self, argument: str) -> None:
        sender = address_of(argument)
        sync = "SYNC" in argument.upper().split()[1:]
        if self.pair is None and sync and self.tls and self.server.form == "sync-only":
            # Section 10 without AUTH STOKEN: the pair is checked at RCPT.
            self.sender, self.recipients = sender, []
            self.send("250 2.1.0 OK\r\n")
        elif self.pair is None:
            self.send("530 5.7.0 Authentication required\r\n")
        elif sender.lower() != self.pair[1]:
            self.send("550 5.7.30 Sender does not match the token\r\n")
        else:
            self.sender, self.recipients = sender, []
            self.send("250 2.1.0 OK\r\n")

    def do_RCPT(self, argument: str) -> None:
        recipient = address_of(argument)
        token = next((word[7:] for word in argument.split() if word.upper().startswith("STOKEN=")),
                     None)
        if self.sender is None:
            self.send("503 5.5.1 MAIL first\r\n")
        elif token is None:
            self.send("550 5.7.1 STOKEN required in a token session\r\n")
        elif (pair := self.server.find(token)) is None or pair[1:] != (self.sender.lower(),
                                                                        recipient.lower()):
            self.send("550 5.7.30 Invalid token\r\n")
        else:
            self.recipients.append((recipient, pair))
            self.send("250 2.1.5 OK\r\n")

    def do_DATA(self, argument: str) -> None:
        if not self.recipients:
            self.send("503 5.5.1 No valid recipients\r\n")
            return
        self.send("354 End data with <CR><LF>.<CR><LF>\r\n")
        lines = []
        while (line := self.read_line()) is not None and line != ".":
            lines.append(line[1:] if line.startswith("..") else line)
        data = ("\r\n".join(lines) + "\r\n").encode()
        replies = []
        for recipient, (kind, remote, local) in self.recipients:
            if kind == "TEMP":
                permanent = self.server.mint("PERM", remote, local)
                replies.append(f"250 2.1.13 <{recipient}> {permanent} ID Delivered\r\n")
            else:
                replies.append(f"250 2.1.12 <{recipient}> ID Delivered\r\n")
        if self.server.fault == "replies-before-commit":
            self.send("".join(replies))
            time.sleep(1.0)
            self.server.store(data)
        else:
            self.server.store(data)
            self.send("".join(replies))
        self.sender, self.recipients = None, []
