#!/usr/bin/python3
"""A private Postfix instance, started and stopped by a benchmark.

Everything lives in one folder of the caller's choosing: the configuration
(main.cf, master.cf), the queue, the data directory, the log (maillog) and,
in mailbox mode, the Maildir tree. Postfix listens on 127.0.0.1 only, on the
given high port, and never looks anything up in DNS.

Three modes:

  mailbox  final delivery: mail for alice@example.test goes through the
           virtual(8) delivery agent into DIR/mail/example.test/alice/
           (a Maildir, fsynced by Postfix). The closest peer to stokend's
           built-in Maildir delivery.
  relay    everything from 127.0.0.0/8 is relayed to [127.0.0.1]:RELAY_PORT.
  custom   neither: the caller gives the routing (transport_maps,
           virtual_transport...) in extra_main. As a module only.

extra_master adds lines to master.cf (further smtpd listeners with their
own -o overrides, say); they are written as given.

Postfix's own syncing (queue files fsynced before the 250, Maildir files
fsynced before the delivery is logged) is left at its default, which is on.

Used as a module (PostfixPeer) or from the command line:

  postfix_peer.py start --dir DIR --port PORT [--mode mailbox|relay]
                        [--relay-port PORT] [--process-limit N]
                        [--set name=value ...]
  postfix_peer.py stop --dir DIR
  postfix_peer.py pids --dir DIR
"""

import argparse
import os
import pwd
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the tree
from common import wait_for_port  # noqa: E402

MASTER_CF_DIST = "/usr/share/postfix/master.cf.dist"
POSTFIX = "/usr/sbin/postfix"
MAILBOX_USER = "alice@example.test"
MAILBOX_DOMAIN = "example.test"
NOBODY_ID = 65534


def _read_environ(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def _all_pids():
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


class PostfixPeer:
    def __init__(self, directory, port, mode="mailbox", relay_port=None,
                 process_limit=None, extra_main=None, extra_master=None):
        if mode not in ("mailbox", "relay", "custom"):
            raise ValueError(f"unknown mode {mode!r}")
        if mode == "relay" and not relay_port:
            raise ValueError("relay mode needs relay_port")
        self.dir = os.path.abspath(directory)
        self.port = int(port)
        self.mode = mode
        self.relay_port = relay_port
        self.process_limit = process_limit
        self.extra_main = dict(extra_main or {})
        self.extra_master = list(extra_master or [])
        self.config_dir = os.path.join(self.dir, "etc")
        self.queue_dir = os.path.join(self.dir, "queue")
        self.data_dir = os.path.join(self.dir, "data")
        self.mail_dir = os.path.join(self.dir, "mail")
        self.maillog = os.path.join(self.dir, "maillog")
        self.started = False

    # Where mail for alice@example.test ends up in mailbox mode.
    @property
    def maildir_new(self):
        return os.path.join(self.mail_dir, MAILBOX_DOMAIN, "alice", "new")

    def main_cf(self):
        settings = {
            "compatibility_level": "3.6",
            "config_directory": self.config_dir,
            "queue_directory": self.queue_dir,
            "data_directory": self.data_dir,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "syslog_name": f"postfix-peer-{self.port}",
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.dir,
            "myhostname": "peer.example.test",
            "mydomain": "example.test",
            "myorigin": "$myhostname",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "mydestination": "",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "local_transport": "error:no local delivery",
            "smtp_dns_support_level": "disabled",
            "smtpd_tls_security_level": "none",
            "smtp_tls_security_level": "none",
            "biff": "no",
            "append_dot_mydomain": "no",
            "message_size_limit": "36700160",
            "smtpd_relay_restrictions":
                "permit_mynetworks, reject_unauth_destination",
        }
        if self.mode == "mailbox":
            settings.update({
                "virtual_mailbox_domains": MAILBOX_DOMAIN,
                "virtual_mailbox_base": self.mail_dir,
                # A trailing slash means Maildir.
                "virtual_mailbox_maps":
                    f"inline:{{ {MAILBOX_USER}={MAILBOX_DOMAIN}/alice/ }}",
                "virtual_uid_maps": f"static:{NOBODY_ID}",
                "virtual_gid_maps": f"static:{NOBODY_ID}",
                "virtual_minimum_uid": "100",
                "relayhost": "",
            })
        elif self.mode == "relay":
            settings.update({
                "relayhost": f"[127.0.0.1]:{self.relay_port}",
                "relay_domains": MAILBOX_DOMAIN,
            })
        if self.process_limit:
            settings["default_process_limit"] = str(self.process_limit)
            # anvil's per-client limit (default 50) would refuse the rest.
            settings["smtpd_client_connection_count_limit"] = "0"
        settings.update(self.extra_main)
        return "".join(f"{k} = {v}\n" for k, v in settings.items())

    def master_cf(self):
        out = []
        with open(MASTER_CF_DIST) as f:
            for line in f:
                fields = line.split()
                if line[:1] in ("#", " ", "\t") or len(fields) < 8:
                    out.append(line)
                    continue
                # No chroot: the queue folder has no copies of /etc files.
                if fields[4] in ("y", "-"):
                    fields[4] = "n"
                if fields[0] == "smtp" and fields[1] == "inet":
                    fields[0] = f"127.0.0.1:{self.port}"
                out.append(" ".join(fields[:8]) +
                           ("" if len(fields) == 8
                            else " " + " ".join(fields[8:])) + "\n")
        out.extend(line.rstrip("\n") + "\n" for line in self.extra_master)
        return "".join(out)

    def prepare(self):
        pf = pwd.getpwnam("postfix")
        os.makedirs(self.config_dir, exist_ok=True)
        os.makedirs(self.queue_dir, exist_ok=True)
        os.makedirs(self.data_dir, exist_ok=True)
        os.chown(self.data_dir, pf.pw_uid, pf.pw_gid)
        os.chmod(self.data_dir, 0o700)
        if self.mode == "mailbox":
            os.makedirs(self.mail_dir, exist_ok=True)
            os.chown(self.mail_dir, NOBODY_ID, NOBODY_ID)
        with open(os.path.join(self.config_dir, "main.cf"), "w") as f:
            f.write(self.main_cf())
        with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
            f.write(self.master_cf())
        open(self.maillog, "a").close()

    def _postfix(self, *args, check=True):
        env = dict(os.environ, MAIL_CONFIG=self.config_dir)
        return subprocess.run([POSTFIX, "-c", self.config_dir, *args],
                              env=env, check=check, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=120)

    def master_pid(self):
        try:
            with open(os.path.join(self.queue_dir, "pid", "master.pid")) as f:
                pid = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def pids(self):
        """All live processes of this instance (master and its children).

        Postfix passes MAIL_CONFIG to every process it starts, so the
        environment names the instance exactly.
        """
        marker = b"MAIL_CONFIG=" + self.config_dir.encode()
        found = []
        for pid in _all_pids():
            if pid == os.getpid():
                continue
            if marker in _read_environ(pid):
                found.append(pid)
        master = self.master_pid()
        if master and master not in found:
            found.append(master)
        return sorted(found)

    def start(self, timeout=60):
        self.prepare()
        r = self._postfix("start", check=False)
        if r.returncode != 0:
            raise RuntimeError(f"postfix start failed:\n{r.stdout}\n"
                               f"{self._log_tail()}")
        self.started = True
        if not wait_for_port(self.port, timeout):
            raise RuntimeError(f"postfix does not listen on {self.port}:\n"
                               f"{self._log_tail()}")

    def _log_tail(self, n=20):
        try:
            with open(self.maillog) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout=30):
        """Stops the instance; kills by PID whatever is left of it."""
        if not os.path.isdir(self.config_dir):
            return
        before = self.pids()
        if self.master_pid():
            self._postfix("stop", check=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.master_pid():
            time.sleep(0.1)
        # Leftovers: processes that were ours before the stop, and any that
        # still carry this instance's environment.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            left = sorted(set(p for p in before if _alive(p)) |
                          set(self.pids()))
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            end = time.monotonic() + 5
            while time.monotonic() < end and any(_alive(p) for p in left):
                time.sleep(0.1)
        self.started = False

    def delivered_count(self):
        try:
            return len(os.listdir(self.maildir_new))
        except FileNotFoundError:
            return 0

    def log_lines(self, word):
        try:
            with open(self.maillog, errors="replace") as f:
                return [l for l in f if word in l]
        except OSError:
            return []


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return False


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start")
    s.add_argument("--dir", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--mode", choices=("mailbox", "relay"), default="mailbox")
    s.add_argument("--relay-port", type=int)
    s.add_argument("--process-limit", type=int)
    s.add_argument("--set", action="append", default=[],
                   metavar="NAME=VALUE", help="extra main.cf setting")
    for name in ("stop", "pids"):
        q = sub.add_parser(name)
        q.add_argument("--dir", required=True)
    a = p.parse_args()
    if a.cmd == "start":
        extra = dict(kv.split("=", 1) for kv in a.set)
        peer = PostfixPeer(a.dir, a.port, a.mode, a.relay_port,
                           a.process_limit, extra)
        peer.start()
        print(f"postfix listening on 127.0.0.1:{a.port}, master pid "
              f"{peer.master_pid()}")
    else:
        peer = PostfixPeer(a.dir, 1)
        if a.cmd == "stop":
            peer.stop()
        else:
            print(" ".join(map(str, peer.pids())))


if __name__ == "__main__":
    main()
