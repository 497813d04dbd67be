#!/usr/bin/python3
"""An SMTP sink that keeps what it receives, for counting deliveries.

Like Postfix's smtp-sink it accepts every transaction, but it records each
message, exactly as received (dot-stuffing undone), before it answers the
250 after DATA: appended to one dump file as a line "LENGTH TIME" (TIME the
wall-clock second it was received, as a decimal fraction) followed by the
message bytes, with one write(2) per message. A reader can thus tell which
messages arrived, when, how often, and whether their content is intact.
The dump is not fsynced: the sink is never the process that is killed.

It speaks just enough ESMTP for a relay's client: EHLO/HELO, MAIL, RCPT,
DATA, RSET, NOOP, QUIT, announcing PIPELINING, 8BITMIME, SMTPUTF8 and
ENHANCEDSTATUSCODES; commands are answered in order, so a pipelining client
is served. Loopback only; one asyncio loop in its own process.

  marker_sink.py --port PORT --dump FILE

Stops on SIGTERM or SIGINT. As a module: MarkerSink(port, dump).start() runs
it as a child process; read_dump(path, offset) parses the dump.
"""

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the tree
from common import stop_process, wait_for_port  # noqa: E402

MAX_LINE = 4096
MAX_MESSAGE = 64 * 1024 * 1024


def read_dump(path, offset=0):
    """The messages appended to a dump from `offset` on, and the offset after
    the last complete one: ([(received_at, bytes)...], end)."""
    messages = []
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return messages, offset
    position = 0
    while True:
        newline = data.find(b"\n", position)
        if newline < 0:
            break
        length, received_at = data[position:newline].split(b" ")
        length = int(length)
        start = newline + 1
        if start + length > len(data):
            break
        messages.append((float(received_at), data[start:start + length]))
        position = start + length
    return messages, offset + position


class MarkerSink:
    """The sink as a child process of a benchmark."""

    def __init__(self, port, dump):
        self.port = int(port)
        self.dump = os.path.abspath(dump)
        self.proc = None

    def start(self, timeout=10):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--port",
             str(self.port), "--dump", self.dump],
            stdin=subprocess.DEVNULL)
        if not wait_for_port(self.port, timeout,
                             alive=lambda: self.proc.poll() is None):
            self.stop()
            raise RuntimeError(f"marker sink did not listen on {self.port}")

    def size(self):
        try:
            return os.path.getsize(self.dump)
        except FileNotFoundError:
            return 0

    def stop(self, timeout=10):
        stop_process(self.proc, timeout)


class Session:
    def __init__(self, reader, writer, dump_fd):
        self.reader = reader
        self.writer = writer
        self.dump_fd = dump_fd

    def reply(self, text):
        self.writer.write(text.encode() + b"\r\n")

    async def run(self):
        self.reply("220 sink.test ESMTP marker sink")
        await self.writer.drain()
        while True:
            line = await self.reader.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"LHLO"):
                self.reply("250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                           "250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES")
            elif verb == b"HELO":
                self.reply("250 sink.test")
            elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                self.reply("250 2.0.0 Ok")
            elif verb == b"DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                await self.writer.drain()
                if not await self.receive():
                    return
            elif verb == b"QUIT":
                self.reply("221 2.0.0 Bye")
                await self.writer.drain()
                return
            else:
                self.reply("502 5.5.2 Command not recognised")
            # Replies to pipelined commands go out together.
            if not self.reader._buffer:  # noqa: SLF001 (asyncio has no peek)
                await self.writer.drain()

    async def receive(self):
        try:
            raw = await self.reader.readuntil(b"\r\n.\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return False
        body = raw[:-3]  # the final ".\r\n" goes; the CRLF before it stays
        if body.startswith(b"."):
            body = body[1:]
        body = body.replace(b"\r\n..", b"\r\n.")
        record = f"{len(body)} {time.time():.6f}\n".encode() + body
        # Recorded before the 250: whatever the relay saw accepted is here.
        written = 0
        while written < len(record):
            written += os.write(self.dump_fd, record[written:])
        self.reply("250 2.0.0 Ok: kept")
        return True


async def serve(port, dump):
    dump_fd = os.open(dump, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    async def handle(reader, writer):
        try:
            await Session(reader, writer, dump_fd).run()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port,
                                        limit=MAX_MESSAGE, backlog=1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    os.close(dump_fd)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dump", required=True)
    a = p.parse_args()
    asyncio.run(serve(a.port, a.dump))


if __name__ == "__main__":
    main()
