"""A smarthost: mail for remote domains relayed through an existing,
authenticated relay (routes: {"*": "smtp:[relay.test]:PORT"} plus
delivery.relay_credentials), as many providers send outbound mail.

The relay is a real Postfix requiring TLS and SASL AUTH before it relays
(smtpd_tls_security_level = encrypt, permit_sasl_authenticated), with
Dovecot's auth service behind it (smtpd_sasl_type = dovecot), as in a
provider's stack; it hands what it accepts to smtp-sink. The relay is named
by a host name that a private dnsmasq resolves, and its certificate, from a
private CA, is checked under the verify policy against that name.

Proves: a message submitted to stokend arrives at the sink through Postfix,
which logged stokend's SASL login; a wrong password leaves the message
deferred in stokend's queue with the relay's refusal (never bounced, never
sent), and after the credentials file is fixed and the configuration
reloaded, the same message goes out; a credentials file that others may read
is refused by --check-config, naming the file and the fix.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from peers import (DOVECOT, NOBODY_GID, NOBODY_UID, PeerSet, Peer, free_port, outcomes,
                   private_ca, queue_daemon, queue_id, require, submit, wait_for_log,
                   wait_removed, wait_until)
from stokend_daemon import STOKEND, USERS, Stokend

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "lib"))
from postfix_peer import PostfixPeer  # noqa: E402

ALICE = "alice@example.test"
ALICE_PW = USERS[ALICE]
RELAY_USER = "relay-user"
RELAY_PW = "Relay-pw-1"
NO_RETRY = {"first_retry": "1h", "max_retry_interval": "2h"}
POSTFIX_START_TIMEOUT = 60.0
DELIVERY_TIMEOUT = 30.0


class DovecotAuth(Peer):
    """Dovecot's auth service alone, on a loopback TCP port: the SASL
    backend Postfix asks (smtpd_sasl_type = dovecot)."""

    name = "dovecot-auth"

    def __init__(self, users: dict[str, str]) -> None:
        require(DOVECOT)
        super().__init__()
        os.chmod(self.folder, 0o755)  # the auth process runs as the dovecot user
        self.port = free_port()
        run, state = self.folder / "run", self.folder / "state"
        run.mkdir()
        state.mkdir()
        passwd = self.folder / "passwd"
        passwd.write_text("".join(f"{user}:{{PLAIN}}{password}::::::\n"
                                  for user, password in users.items()))
        self.log_path = self.folder / "dovecot.log"
        config = self.folder / "dovecot.conf"
        config.write_text(f"""\
base_dir = {run}
state_dir = {state}
instance_name = dovecot-{self.folder.name}
log_path = {self.log_path}
protocols = none
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = {passwd}
}}
userdb {{
  driver = static
  args = uid={NOBODY_UID} gid={NOBODY_GID} home=/nonexistent
}}
service auth {{
  inet_listener {{
    address = 127.0.0.1
    port = {self.port}
  }}
}}
""")
        self._spawn([str(DOVECOT), "-F", "-c", str(config)])
        deadline = time.monotonic() + 30
        while True:
            self._check_alive()
            try:
                with socket.create_connection(("127.0.0.1", self.port), 1) as s:
                    s.settimeout(10)
                    if b"DONE" in s.recv(4096):  # the auth handshake: the service is up
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"Dovecot auth did not start:\n{self.output()}")
            time.sleep(0.1)


@pytest.fixture(scope="module")
def relay():
    """Postfix as the authenticated relay for relay.test, Dovecot SASL
    behind it, smtp-sink behind that; a dnsmasq that names the relay."""
    if not Path("/usr/sbin/postfix").exists():
        pytest.skip("Postfix (package postfix) is not installed")
    with PeerSet() as peers:
        sink = peers.sink()
        auth = DovecotAuth({RELAY_USER: RELAY_PW})
        dns = peers.dnsmasq(mx=[], hosts=[("relay.test", "127.0.0.1")])
        folder = Path(tempfile.mkdtemp(prefix="stokend-smarthost-"))
        os.chmod(folder, 0o755)
        ca, issued = private_ca(folder / "tls", ["relay.test"])
        certificate, key = issued["relay.test"]
        port = free_port()
        postfix = PostfixPeer(folder, port, mode="custom", extra_main={
            "myhostname": "relay.test",
            "relayhost": f"[127.0.0.1]:{sink.port}",
            "mynetworks": "127.0.0.0/8",
            # Only an authenticated client may relay, and AUTH only over TLS.
            "smtpd_relay_restrictions": "permit_sasl_authenticated, reject",
            "smtpd_tls_security_level": "encrypt",
            "smtpd_tls_auth_only": "yes",
            "smtpd_tls_cert_file": str(certificate),
            "smtpd_tls_key_file": str(key),
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_type": "dovecot",
            "smtpd_sasl_path": f"inet:127.0.0.1:{auth.port}",
            "smtpd_tls_loglevel": "1",
        })
        try:
            postfix.start(timeout=POSTFIX_START_TIMEOUT)
            yield {"postfix": postfix, "sink": sink, "dns": dns, "ca": ca, "port": port,
                   "auth": auth}
        finally:
            postfix.stop()
            auth.stop()
            auth.remove_folder()
            shutil.rmtree(folder, ignore_errors=True)


def credentials_file(folder: Path, password: str, mode: int = 0o600) -> Path:
    path = folder / "relay_passwd"
    path.write_text(f"# smarthost\n[relay.test]:{0} {RELAY_USER}:{password}\n")
    os.chmod(path, mode)
    return path


def smarthost_daemon(factory, relay, credentials: Path):
    # The port is only known now; the file names the route's next hop.
    credentials.write_text(credentials.read_text().replace(":0 ", f":{relay['port']} "))
    return queue_daemon(
        factory,
        routes={"*": f"smtp:[relay.test]:{relay['port']}"},
        tls_policies={"*": "verify"},
        dns={"servers": relay["dns"].servers},
        delivery={"relay_credentials": str(credentials), "tls_policy_ca_file": str(relay["ca"])},
        queue=NO_RETRY)


def message(marker: str) -> bytes:
    return (f"From: Alice <{ALICE}>\r\nTo: <carol@far.test>\r\nSubject: smarthost {marker}\r\n"
            f"Message-ID: <{marker}@example.test>\r\n\r\nMarker {marker}.\r\n").encode()


def postfix_log(relay) -> str:
    return Path(relay["postfix"].maillog).read_text(errors="replace")


def test_mail_goes_out_through_the_authenticated_relay(stokend_factory, tmp_path, relay):
    mta = smarthost_daemon(stokend_factory, relay, credentials_file(tmp_path, RELAY_PW))
    marker = uuid.uuid4().hex
    qid = queue_id(submit(mta, ALICE, ALICE_PW, ["carol@far.test"], message(marker)))
    log = wait_removed(mta, qid)
    result = outcomes(log, qid)[-1]
    assert result[1] == "delivered", outcomes(log, qid)
    # The relay named in stokend's log is the smarthost, by name and address.
    assert re.search(rf"{qid}: to=<carol@far\.test>, relay=relay\.test\[127\.0\.0\.1\]:"
                     rf"{relay['port']}, .*status=sent", log), log[-2000:]
    arrived = [m for m in relay["sink"].wait_for_messages(1, timeout=DELIVERY_TIMEOUT)
               if f"Marker {marker}.".encode() in m.data]
    assert len(arrived) == 1
    # Postfix accepted it as an authenticated client over TLS.
    wait_until(lambda: f"sasl_username={RELAY_USER}" in postfix_log(relay), DELIVERY_TIMEOUT,
               what="Postfix's log of the SASL login")
    assert re.search(r"TLS connection established from localhost\[127\.0\.0\.1\]",
                     postfix_log(relay)), postfix_log(relay)[-2000:]
    # The password is in no log line of stokend's.
    assert RELAY_PW not in mta.log()


def test_a_wrong_password_defers_until_the_credentials_are_fixed(stokend_factory, tmp_path,
                                                                  relay):
    credentials = credentials_file(tmp_path, "Wrong-pw")
    mta = smarthost_daemon(stokend_factory, relay, credentials)
    marker = uuid.uuid4().hex
    qid = queue_id(submit(mta, ALICE, ALICE_PW, ["carol@far.test"], message(marker)))
    line = wait_for_log(mta, rf"queue: {qid} to=<carol@far\.test> deferred after 1 attempts: (.*)$",
                        timeout=DELIVERY_TIMEOUT)
    reply = line.group(1)
    assert f"SASL authentication as {RELAY_USER} failed at" in reply, reply
    assert re.match(r"4\d\d 4\.7\.8 relay\.test: ", reply), reply
    assert "535 5.7.8" in reply, reply
    assert "Wrong-pw" not in mta.log()
    assert not any(f"Marker {marker}.".encode() in m.data for m in relay["sink"].messages())
    # Fixed file, reload, flush: the same message goes out.
    credentials.write_text(f"[relay.test]:{relay['port']} {RELAY_USER}:{RELAY_PW}\n")
    assert mta.ctl("reload").stdout.strip() == "reloaded"
    mta.ctl("queue", "flush", qid)
    log = wait_removed(mta, qid)
    assert outcomes(log, qid)[-1][1] == "delivered", outcomes(log, qid)
    relay["sink"].wait_for_messages(1, timeout=DELIVERY_TIMEOUT)
    assert any(f"Marker {marker}.".encode() in m.data for m in relay["sink"].messages())


def test_a_credentials_file_others_may_read_is_refused(tmp_path):
    credentials = credentials_file(tmp_path, RELAY_PW, mode=0o644)
    folder = tmp_path / "daemon"
    folder.mkdir()
    unstarted = Stokend(folder, {"routes": {"*": "smtp:[relay.test]:587"},
                                 "delivery": {"relay_credentials": str(credentials)}})
    result = subprocess.run([str(STOKEND), "--check-config", str(unstarted.config_path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert (f"delivery.relay_credentials: {credentials}: mode 0644 lets group or others read it; "
            f"it holds passwords (chmod 600 {credentials})") in result.stderr, result.stderr
    assert RELAY_PW not in result.stderr
