"""A private Dovecot for benchmarks: LMTP only, on a loopback TCP port and a
unix socket, Maildir under its own folder, users from a passwd-file (the
login is the local part: auth_username_format = %Ln). Runs as root with the
users' homes owned by nobody, as Debian's Dovecot expects."""

import os
import shutil
import subprocess
import time

from common import free_port, stop_process, wait_for_port

NOBODY_UID = 65534
NOBODY_GID = 65534


def dovecot_binary():
    for path in ("/usr/sbin/dovecot", shutil.which("dovecot") or ""):
        if path and os.access(path, os.X_OK):
            return path
    raise RuntimeError("dovecot not found: apt-get install dovecot-core dovecot-lmtpd")


class DovecotPeer:
    def __init__(self, directory, users=("alice",)):
        self.dir = os.path.abspath(directory)
        self.users = list(users)
        self.port = free_port()
        self.base_dir = os.path.join(self.dir, "run")
        self.homes = os.path.join(self.dir, "home")
        self.log_path = os.path.join(self.dir, "dovecot.log")
        self.config = os.path.join(self.dir, "dovecot.conf")
        self.proc = None

    @property
    def socket_path(self):
        return os.path.join(self.base_dir, "lmtp")

    @property
    def unix_route(self):
        return f"lmtp:unix:{self.socket_path}"

    def maildir_new(self, user):
        return os.path.join(self.homes, user, "Maildir", "new")

    def create_maildir(self, user):
        """Creates the user's Maildir (cur, new, tmp) before the first
        delivery, owned by the user, so new/ can be watched from the start."""
        maildir = os.path.dirname(self.maildir_new(user))
        for path in (maildir, *(os.path.join(maildir, d) for d in ("cur", "new", "tmp"))):
            os.makedirs(path, exist_ok=True)
            os.chown(path, NOBODY_UID, NOBODY_GID)
            os.chmod(path, 0o700)
        return self.maildir_new(user)

    def count_delivered(self, user):
        try:
            return len(os.listdir(self.maildir_new(user)))
        except FileNotFoundError:
            return 0

    def start(self, timeout=30):
        state_dir = os.path.join(self.dir, "state")
        for path in (self.dir, self.base_dir, state_dir, self.homes):
            os.makedirs(path, exist_ok=True)
        os.chmod(self.dir, 0o755)
        os.chmod(self.homes, 0o755)
        passwd_lines = []
        for user in self.users:
            home = os.path.join(self.homes, user)
            os.makedirs(home, exist_ok=True)
            os.chown(home, NOBODY_UID, NOBODY_GID)
            passwd_lines.append(
                f"{user}:{{PLAIN}}unused:{NOBODY_UID}:{NOBODY_GID}::{home}::")
        passwd = os.path.join(self.dir, "passwd")
        with open(passwd, "w") as f:
            f.write("\n".join(passwd_lines) + "\n")
        with open(self.config, "w") as f:
            f.write(f"""\
base_dir = {self.base_dir}
state_dir = {state_dir}
instance_name = dovecot-bench-{os.getpid()}
log_path = {self.log_path}
protocols = lmtp
listen = 127.0.0.1
ssl = no
mail_location = maildir:~/Maildir
first_valid_uid = 1
first_valid_gid = 1
auth_username_format = %Ln
passdb {{
  driver = passwd-file
  args = {passwd}
}}
userdb {{
  driver = passwd-file
  args = {passwd}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.port}
  }}
}}
""")
        self.proc = subprocess.Popen([dovecot_binary(), "-F", "-c", self.config],
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        if not wait_for_port(self.port, timeout,
                             alive=lambda: self.proc.poll() is None):
            self.stop()
            raise RuntimeError(f"dovecot did not listen on {self.port}")
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.socket_path):
            if time.monotonic() > deadline:
                raise RuntimeError("dovecot's LMTP socket did not appear")
            time.sleep(0.05)

    def stop(self, timeout=15):
        stop_process(self.proc, timeout)
