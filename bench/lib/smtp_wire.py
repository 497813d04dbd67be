"""A small SMTP/LMTP client for latency benchmarks: every command is sent and
read by hand, so the moment a reply arrives is known exactly.

  Wire.tcp(host, port) / Wire.unix(path)   a plain connection
  wire.starttls(context, server_name)      STARTTLS after EHLO
  Wire.tcp(..., tls_context=..., server_name=...)   implicit TLS
  wire.auth_plain(user, password)
"""

import base64
import socket


class ProtocolError(RuntimeError):
    pass


class Wire:
    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    @classmethod
    def tcp(cls, host, port, timeout=30, tls_context=None, server_name=None):
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls_context is not None:
            sock = tls_context.wrap_socket(sock, server_hostname=server_name)
        return cls(sock)

    @classmethod
    def unix(cls, path, timeout=30):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(path)
        return cls(sock)

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        """One reply, possibly multi-line: (code, lines) with the code as
        an int and the lines as text, CRLF removed."""
        lines = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ProtocolError("connection closed" +
                                        (f" after: {lines[-1]}" if lines else ""))
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            text = line.decode("utf-8", "replace")
            lines.append(text)
            if len(line) < 4 or line[3:4] != b"-":
                try:
                    return int(line[:3]), lines
                except ValueError:
                    raise ProtocolError(f"not a reply: {text}") from None

    def expect(self, code, what=""):
        got, lines = self.reply()
        if got != code:
            raise ProtocolError(f"{what or 'reply'}: expected {code}, got: "
                                f"{' / '.join(lines)}")
        return lines

    def command(self, line, code):
        self.send(line.encode() + b"\r\n")
        return self.expect(code, line.split(" ", 1)[0])

    def greeting(self):
        return self.expect(220, "greeting")

    def ehlo(self, name, lmtp=False):
        verb = "LHLO" if lmtp else "EHLO"
        return self.command(f"{verb} {name}", 250)

    def starttls(self, context, server_name):
        self.command("STARTTLS", 220)
        if self.buffer:
            raise ProtocolError("data after the STARTTLS reply")
        self.sock = context.wrap_socket(self.sock, server_hostname=server_name)

    def auth_plain(self, user, password):
        blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return self.command(f"AUTH PLAIN {blob}", 235)

    def close(self):
        try:
            self.send(b"QUIT\r\n")
            self.reply()
        except (OSError, ProtocolError):
            pass
        try:
            self.sock.close()
        except OSError:
            pass
