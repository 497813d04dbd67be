"""A scripted milter for the end-to-end tests: a small server speaking the
Sendmail milter protocol (version 6) on a loopback port, written for the tests.

Each connection negotiates (answering SMFIC_OPTNEG with the actions and steps
set on the peer), records everything the MTA sends — the commands in order,
the macros, CONNECT/HELO/MAIL/RCPT arguments, the headers and the body — into
a `Conversation`, and answers each command from `peer.script`:

    peer.script = {"eob": [add_header("X-Scanned", "yes"), CONTINUE]}

maps a stage ("connect", "helo", "mail", "rcpt", "data", "header", "eoh",
"body", "eob") to the packets to answer with; a stage without an entry gets
SMFIR_CONTINUE. Special entries: HANG (never answer), GARBAGE (bytes that are
no milter packet), CLOSE (close the connection), PROGRESS_FOREVER
(SMFIR_PROGRESS every 0.3 s, never a verdict). The peer is shared by a test
module; each test sets its script and reads `peer.conversations`.
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field

STAGES = {b"C": "connect", b"H": "helo", b"M": "mail", b"R": "rcpt", b"T": "data",
          b"L": "header", b"N": "eoh", b"B": "body", b"E": "eob"}

HANG = object()
GARBAGE = object()
CLOSE = object()
PROGRESS_FOREVER = object()


def packet(code: bytes, data: bytes = b"") -> bytes:
    return struct.pack(">I", len(data) + 1) + code + data


CONTINUE = packet(b"c")
ACCEPT = packet(b"a")
REJECT = packet(b"r")
TEMPFAIL = packet(b"t")
DISCARD = packet(b"d")
PROGRESS = packet(b"p")
SKIP = packet(b"s")


def reply_code(text: str) -> bytes:
    return packet(b"y", text.encode() + b"\0")


def add_header(name: str, value: str) -> bytes:
    return packet(b"h", name.encode() + b"\0" + value.encode() + b"\0")


def insert_header(index: int, name: str, value: str) -> bytes:
    return packet(b"i", struct.pack(">I", index) + name.encode() + b"\0" + value.encode() + b"\0")


def change_header(index: int, name: str, value: str) -> bytes:
    return packet(b"m", struct.pack(">I", index) + name.encode() + b"\0" + value.encode() + b"\0")


def replace_body(body: bytes) -> bytes:
    return packet(b"b", body)


def add_recipient(address: str) -> bytes:
    return packet(b"+", f"<{address}>".encode() + b"\0")


def delete_recipient(address: str) -> bytes:
    return packet(b"-", f"<{address}>".encode() + b"\0")


def change_sender(address: str) -> bytes:
    return packet(b"e", f"<{address}>".encode() + b"\0")


def quarantine(reason: str) -> bytes:
    return packet(b"q", reason.encode() + b"\0")


ALL_ACTIONS = 0x1FF


@dataclass
class Conversation:
    commands: list[str] = field(default_factory=list)
    macros: dict[str, str] = field(default_factory=dict)
    connect: tuple[str, str, int, str] | None = None  # host name, family, port, address
    helo: str = ""
    mail: list[str] = field(default_factory=list)
    rcpt: list[str] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    offered: tuple[int, int, int] | None = None  # version, actions, steps
    quit: bool = False


def _strings(data: bytes) -> list[str]:
    return [part.decode("utf-8", "replace") for part in data.split(b"\0")[:-1]]


class ScriptedMilter:
    def __init__(self, actions: int = ALL_ACTIONS, steps: int = 0):
        self.actions = actions
        self.steps = steps
        self.script: dict[str, list] = {}
        self.conversations: list[Conversation] = []
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self.port = self._server.getsockname()[1]
        self._stopping = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"inet:127.0.0.1:{self.port}"

    def reset(self, script: dict | None = None, actions: int = ALL_ACTIONS, steps: int = 0):
        with self._lock:
            self.script = {stage: list(replies) for stage, replies in (script or {}).items()}
            self.actions = actions
            self.steps = steps
            self.conversations = []

    def stop(self) -> None:
        self._stopping = True
        try:
            self._server.close()
        except OSError:
            pass

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    @staticmethod
    def _read(connection: socket.socket, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = connection.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def _serve(self, connection: socket.socket) -> None:
        conversation = Conversation()
        with self._lock:
            self.conversations.append(conversation)
            actions, steps = self.actions, self.steps
        connection.settimeout(30)
        try:
            while True:
                head = self._read(connection, 4)
                if head is None:
                    return
                (length,) = struct.unpack(">I", head)
                payload = self._read(connection, length)
                if payload is None:
                    return
                code, data = payload[:1], payload[1:]
                if code == b"O":
                    conversation.offered = struct.unpack(">III", data[:12])
                    connection.sendall(packet(b"O", struct.pack(">III", 6, actions, steps)))
                    continue
                if code == b"Q":
                    conversation.quit = True
                    return
                if code == b"D":
                    parts = _strings(data[1:])
                    for name, value in zip(parts[0::2], parts[1::2]):
                        conversation.macros[name] = value
                    continue
                if code == b"A":
                    conversation.commands.append("abort")
                    continue
                stage = STAGES.get(code)
                if stage is None:
                    return
                conversation.commands.append(stage)
                self._record(conversation, stage, data)
                with self._lock:
                    replies = self.script.get(stage)
                    # A stage met several times (rcpt, header, body; or by
                    # several connections, one per message and milter)
                    # answers from its list until one entry is left, which
                    # then repeats.
                    reply = None if not replies else \
                        replies.pop(0) if len(replies) > 1 else replies[0]
                if reply is None:
                    connection.sendall(CONTINUE)
                    continue
                if isinstance(reply, list):
                    items = reply
                else:
                    items = [reply]
                for item in items:
                    if item is HANG:
                        threading.Event().wait(60)
                        return
                    if item is CLOSE:
                        return
                    if item is PROGRESS_FOREVER:
                        for _ in range(100):
                            connection.sendall(PROGRESS)
                            threading.Event().wait(0.3)
                        return
                    if item is GARBAGE:
                        connection.sendall(b"\x00\x00\x00\x03zz!")
                        continue
                    connection.sendall(item)
        except OSError:
            return
        finally:
            connection.close()

    @staticmethod
    def _record(conversation: Conversation, stage: str, data: bytes) -> None:
        if stage == "connect":
            host, rest = data.split(b"\0", 1)
            family = rest[:1].decode()
            port = struct.unpack(">H", rest[1:3])[0] if family in "46" else 0
            address = rest[3:].rstrip(b"\0").decode() if family in "46" else ""
            conversation.connect = (host.decode(), family, port, address)
        elif stage == "helo":
            conversation.helo = _strings(data)[0]
        elif stage == "mail":
            conversation.mail = _strings(data)
        elif stage == "rcpt":
            conversation.rcpt.append(_strings(data)[0])
        elif stage == "header":
            name, value = _strings(data)
            conversation.headers.append((name, value))
        elif stage == "body":
            conversation.body += data
