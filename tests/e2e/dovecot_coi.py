"""Dovecot with its COI plugin, the other implementation of the Submission
Token extension, as a private test peer.

- build_plugin(): runs tests/interop/build-dovecot-coi once per stokend build
  (the built modules are kept beside the stokend binary and reused while the
  plugin's source and the patch are unchanged); skips the calling test with
  the script's one-line reason when it cannot build.
- DovecotCoi: a standalone Dovecot on loopback ports with the submission and
  LMTP services, the plugins submission_coi and lmtp_coi loaded, passwd-file
  users whose homes hold a Maildir, submission on a plain port (AUTH PLAIN
  allowed on loopback) and an implicit-TLS port (certificate of a private
  CA), its default relay pointed at a given SMTP port and the plugin's remote
  Token Server (coi_token_server_*, settings the test patch adds) at a given
  implicit-TLS port.
- dovecot_token(): a token as the plugin mints it (coi_token_append and
  coi_secret_append: SHA3-256 of the token up to "secret:" followed by the
  secret text), so the plugin's Token Server gets tokens only it can verify.

Every wait is bounded; the peer is stopped by its pid (Peer.stop).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from peers import DOVECOT, NOBODY_GID, NOBODY_UID, PEER_START_TIMEOUT, Peer, free_port, require
from smtpwire import SMTPWire
from stokend_daemon import STOKEND
from tokenwire import b64_unpadded, pair_hash

REPOSITORY = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPOSITORY / "tests" / "interop" / "build-dovecot-coi"
PLUGIN_BUILD_TIMEOUT = 900.0

# The plugin's secrets (plugin settings coi_token_temp_secrets and
# coi_token_perm_secrets: space-separated texts, the first one mints).
TEMP_SECRET = "dovecot-temp-secret-1"
PERM_SECRET = "dovecot-perm-secret-1"
PERM_VALIDITY = 365 * 24 * 3600  # COI_PERM_TOKEN_VALIDITY_SECS


def build_plugin() -> Path:
    """The folder with the built modules (for mail_plugin_dir), or a skip
    with the build script's reason."""
    out = Path(os.environ.get("STOKEND_DOVECOT_COI_BUILD", STOKEND.parent / "dovecot-coi"))
    result = subprocess.run([str(BUILD_SCRIPT), str(out)], capture_output=True, text=True,
                            timeout=PLUGIN_BUILD_TIMEOUT)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no reason given"])[-1]
        pytest.skip(f"Dovecot's COI plugin cannot be built here: {reason}")
    return Path(result.stdout.strip().splitlines()[-1])


def dovecot_token(remote: str, local: str, secret: str = TEMP_SECRET, *,
                  validity: int = 7 * 24 * 3600, created: int | None = None) -> str:
    """A token for (remote -> local) in the plugin's construction."""
    created = int(time.time()) if created is None else created
    prefix = f"1-created:{created}-validity:{validity}-hash:{pair_hash(remote, local)}-secret:"
    return prefix + b64_unpadded(hashlib.sha3_256(prefix.encode() + secret.encode()).digest())


class DovecotCoi(Peer):
    """Dovecot's submission and LMTP services with the COI plugin. users:
    login names (the domain is stripped by the userdb); passwords are
    "pw-" + login."""

    name = "dovecot-coi"

    def __init__(self, modules: Path, *, domain: str, users: tuple[str, ...],
                 relay_port: int, token_server: tuple[str, int], certificate: tuple[Path, Path],
                 ca_file: Path) -> None:
        require(DOVECOT)
        for service in ("submission", "lmtp"):
            if not Path("/usr/lib/dovecot", service).exists():
                pytest.skip(f"Dovecot's {service} service is not installed "
                            f"(dovecot-{'submissiond' if service == 'submission' else 'lmtpd'})")
        super().__init__()
        os.chmod(self.folder, 0o755)
        self.domain = domain
        self.submission_port = free_port()
        self.submissions_port = free_port()
        self.lmtp_port = free_port()
        self.base_dir = self.folder / "run"
        homes = self.folder / "home"
        for path in (self.base_dir, self.folder / "state", homes):
            path.mkdir()
        os.chmod(homes, 0o755)
        self.homes: dict[str, Path] = {}
        passwd = []
        for user in users:
            home = homes / user
            # The plugin expects COI/Contacts to exist (the IMAP side creates
            # it when a client enables COI): lmtp-coi dereferences the
            # unopened mailbox otherwise.
            for sub in ("cur", "new", "tmp"):
                (home / "Maildir" / ".COI.Contacts" / sub).mkdir(parents=True)
            for path in [home, *home.rglob("*")]:
                os.chown(path, NOBODY_UID, NOBODY_GID)
            self.homes[user] = home
            passwd.append(f"{user}:{{PLAIN}}pw-{user}:{NOBODY_UID}:{NOBODY_GID}::{home}::")
        (self.folder / "passwd").write_text("\n".join(passwd) + "\n")
        self.log_path = self.folder / "dovecot.log"
        self.config_path = self.folder / "dovecot.conf"
        cert, key = certificate
        host, port = token_server
        # The submission process (uid nobody) reads the CA file when it
        # connects: a copy it can read, outside the tests' private folders.
        readable_ca = self.folder / "ca.pem"
        readable_ca.write_bytes(Path(ca_file).read_bytes())
        os.chmod(readable_ca, 0o644)
        self.config_path.write_text(f"""\
base_dir = {self.base_dir}
state_dir = {self.folder / "state"}
instance_name = dovecot-coi-{self.folder.name}
log_path = {self.log_path}
protocols = lmtp submission
listen = 127.0.0.1
hostname = mx.{domain}
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_client_ca_file = {readable_ca}
disable_plaintext_auth = no
mail_location = maildir:~/Maildir
mail_attribute_dict = file:%h/dovecot-attributes
mail_plugin_dir = {modules}
first_valid_uid = 1
first_valid_gid = 1
auth_username_format = %Ln
recipient_delimiter =
submission_relay_host = 127.0.0.1
submission_relay_port = {relay_port}
passdb {{
  driver = passwd-file
  args = {self.folder / "passwd"}
}}
userdb {{
  driver = passwd-file
  args = {self.folder / "passwd"}
}}
service auth {{
  # submission-coi looks recipients up in the passdb as the mail user.
  unix_listener auth-userdb {{
    mode = 0666
    user = nobody
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
}}
service submission-login {{
  inet_listener submission {{
    address = 127.0.0.1
    port = {self.submission_port}
  }}
  inet_listener submissions {{
    address = 127.0.0.1
    port = {self.submissions_port}
    ssl = yes
  }}
}}
protocol submission {{
  mail_plugins = $mail_plugins submission_coi
}}
protocol lmtp {{
  mail_plugins = $mail_plugins lmtp_coi
}}
plugin {{
  coi_token_temp_secrets = {TEMP_SECRET}
  coi_token_perm_secrets = {PERM_SECRET}
  coi_token_server_host = {host}
  coi_token_server_ip = 127.0.0.1
  coi_token_server_port = {port}
  coi_token_server_ssl = smtps
}}
""")
        self._spawn([str(DOVECOT), "-F", "-c", str(self.config_path)])
        self._wait_ready()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + PEER_START_TIMEOUT
        while True:
            self._check_alive()
            try:
                if (self.base_dir / "lmtp").exists():
                    with SMTPWire(self.submission_port, timeout=2.0) as conn:
                        assert conn.greeting.code == 220, str(conn.greeting)
                        conn.command("QUIT")
                    return
            except (OSError, AssertionError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"Dovecot did not start:\n{self.output()}\n{self.log()}")
            time.sleep(0.05)

    def maildir(self, user: str, folder: str = "") -> Path:
        return self.homes[user] / "Maildir" / folder

    def messages(self, user: str, folder: str = "") -> list[bytes]:
        base = self.maildir(user, folder)
        return [p.read_bytes() for sub in ("new", "cur") if (base / sub).is_dir()
                for p in sorted((base / sub).iterdir()) if p.is_file()]

    def contacts(self, user: str) -> list[bytes]:
        """The contact storage messages in the user's COI/Contacts."""
        return self.messages(user, ".COI.Contacts")

    def close(self) -> None:
        self.stop()
        self.remove_folder()
