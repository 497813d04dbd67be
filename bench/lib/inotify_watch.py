"""The moment a file appears in a folder, from inotify (through ctypes).

A Maildir delivery is complete when the message file appears in new/: the
mailstore writes it into tmp/, fsyncs it and renames it (or links it) into
new/. A watch for IN_MOVED_TO | IN_CREATE on new/ sees exactly that step.
The descriptor is non-blocking; `wait` polls it and stamps each event with time.monotonic_ns() as soon as the
kernel hands it over, so no polling interval blurs the figure.
"""

import ctypes
import ctypes.util
import errno
import os
import select
import struct
import time

IN_CREATE = 0x00000100
IN_MOVED_TO = 0x00000080
IN_Q_OVERFLOW = 0x00004000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000

_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]


class Arrival:
    """One file that appeared: its name, its folder and when (ns, monotonic)."""

    __slots__ = ("name", "directory", "at_ns")

    def __init__(self, name, directory, at_ns):
        self.name = name
        self.directory = directory
        self.at_ns = at_ns

    @property
    def path(self):
        return os.path.join(self.directory, self.name)


class FolderWatch:
    """inotify on one or more folders for files moved or created in them."""

    def __init__(self):
        fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            e = ctypes.get_errno()
            raise OSError(e, f"inotify_init1: {os.strerror(e)}")
        self.fd = fd
        self._folders = {}  # watch descriptor -> folder
        self._pending = []  # arrivals read but not yet handed out
        self._poll = select.poll()
        self._poll.register(self.fd, select.POLLIN)

    def add(self, directory):
        wd = _libc.inotify_add_watch(self.fd, os.fsencode(directory),
                                     IN_MOVED_TO | IN_CREATE)
        if wd < 0:
            e = ctypes.get_errno()
            raise OSError(e, f"inotify_add_watch {directory}: {os.strerror(e)}")
        self._folders[wd] = directory

    def _read(self):
        """Reads what the kernel has; returns the arrivals, stamped."""
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        now = time.monotonic_ns()
        arrivals, offset = [], 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size
            name = data[offset:offset + length].rstrip(b"\0").decode(
                "utf-8", "replace")
            offset += length
            if mask & IN_Q_OVERFLOW:
                raise RuntimeError("inotify queue overflow: events lost")
            if wd in self._folders and name:
                arrivals.append(Arrival(name, self._folders[wd], now))
        return arrivals

    def drain(self):
        """Everything that arrived until now, without waiting."""
        self._pending.extend(self._read())
        out, self._pending = self._pending, []
        return out

    def wait(self, timeout):
        """Waits up to timeout seconds for the next arrival. Returns it, or
        None on timeout."""
        deadline = time.monotonic() + timeout
        while not self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if self._poll.poll(max(1, int(left * 1000) + 1)):
                self._pending.extend(self._read())
        return self._pending.pop(0)

    def close(self):
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError as e:
                if e.errno != errno.EBADF:
                    raise
            self.fd = None
