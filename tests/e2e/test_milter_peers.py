"""Milters with the real filters Postfix users run: rspamd's proxy worker in
milter mode, and OpenDKIM signing submitted mail. Each is started privately
by this module on loopback (rspamd with the private configuration of
bench/lib/rspamd_peer.py and a private dnsmasq as its only resolver;
OpenDKIM with a configuration and a key made here by opendkim-genkey).

Proves that rspamd refuses the GTUBE test message with its own 5xx reply and
adds its headers to a clean one; and that a message submitted with AUTH
comes out signed by OpenDKIM, after rspamd's headers were added, and the
signature verifies against the public key opendkim-genkey published (checked
with python3-dkim, the key given as the TXT record a resolver would return).
What is checked here is the third-party filters' verdict, so these tests run
once, in the normal build.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from peers import Dnsmasq, wait_until
from ports import free_port
from smtpwire import SMTPWire
from stokend_daemon import USERS

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "lib"))

pytestmark = pytest.mark.once

ALICE = "alice@example.test"
BOB = "bob@example.test"
WAIT = 20.0
# rspamd scans its first messages before its hyperscan database is built,
# with the slower PCRE rules.
SCAN_TIMEOUT = 90.0
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
SELECTOR = "stokendtest"


def message(subject: str, body: str) -> bytes:
    return (f"From: Alice <{ALICE}>\r\nTo: <{BOB}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@example.test>\r\nDate: Mon, 7 Dec 2026 12:00:00 +0000\r\n"
            f"\r\n{body}\r\n").encode()


def stored(mta, marker: bytes) -> bytes | None:
    found: list[bytes] = []

    def arrived() -> bool:
        found[:] = [m for m in mta.messages(BOB) if marker in m]
        return bool(found)

    wait_until(arrived, WAIT, what=f"a message with {marker!r} in bob's Maildir")
    return found[0]


@pytest.fixture(scope="module")
def rspamd(tmp_path_factory):
    if not shutil.which("rspamd"):
        pytest.skip("rspamd is not installed (apt-get install rspamd)")
    try:
        pwd.getpwnam("_rspamd")
    except KeyError:
        pytest.skip("the _rspamd user is missing (comes with the rspamd package)")
    from rspamd_peer import RspamdPeer
    dns = Dnsmasq(mx=[], hosts=[("dns.example.test", "127.0.0.1")])
    peer = RspamdPeer(tmp_path_factory.mktemp("rspamd"), dns.servers)
    try:
        # GTUBE is a plain rule: no need to wait for the hyperscan database.
        peer.start(timeout=300, hyperscan_timeout=0)
        yield peer
    finally:
        peer.stop()
        dns.stop()


@pytest.fixture(scope="module")
def opendkim(tmp_path_factory):
    binary = shutil.which("opendkim") or "/usr/sbin/opendkim"
    genkey = shutil.which("opendkim-genkey") or "/usr/sbin/opendkim-genkey"
    if not (os.access(binary, os.X_OK) and os.access(genkey, os.X_OK)):
        pytest.skip("opendkim is not installed (apt-get install opendkim opendkim-tools)")
    folder = tmp_path_factory.mktemp("opendkim")
    subprocess.run([genkey, "-b", "2048", "-d", "example.test", "-s", SELECTOR, "-D", str(folder)],
                   check=True, capture_output=True, timeout=60)
    port = free_port()
    config = folder / "opendkim.conf"
    config.write_text(
        f"Mode s\n"
        f"Socket inet:{port}@127.0.0.1\n"
        f"Domain example.test\n"
        f"Selector {SELECTOR}\n"
        f"KeyFile {folder / (SELECTOR + '.private')}\n"
        f"Canonicalization relaxed/simple\n"
        f"PidFile {folder / 'opendkim.pid'}\n"
        f"Syslog no\n"
        f"RequireSafeKeys false\n"
        f"InternalHosts 127.0.0.1\n")
    out = open(folder / "opendkim.out", "wb")
    proc = subprocess.Popen([binary, "-f", "-x", str(config)], stdout=out, stderr=out,
                            stdin=subprocess.DEVNULL)
    try:
        def listening() -> bool:
            assert proc.poll() is None, (folder / "opendkim.out").read_text()
            try:
                import socket
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return True
            except OSError:
                return False
        wait_until(listening, 20.0, what="opendkim listening")
        record = (folder / f"{SELECTOR}.txt").read_text()
        yield {"address": f"inet:127.0.0.1:{port}", "record": record}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


@pytest.fixture(scope="module")
def mta(module_stokend_factory, rspamd, opendkim):
    return module_stokend_factory(milters=[
        {"name": "rspamd", "address": rspamd.milter, "roles": ["mx", "submission"],
         "command_timeout": "90s"},
        {"name": "opendkim", "address": opendkim["address"], "roles": ["submission"]},
    ])


def test_rspamd_rejects_gtube_with_its_own_reply(mta):
    with SMTPWire(mta.mx_port, timeout=SCAN_TIMEOUT) as conn:
        conn.ehlo("client.example.org")
        reply = conn.transaction("sender@example.org", [BOB], message("gtube", GTUBE))
        conn.command("QUIT")
    # rspamd's own words: its GTUBE rule's message, or the proxy's
    # reject_message for spam found otherwise.
    assert reply.code == 554 and reply.enhanced == "5.7.1", reply
    assert "Gtube pattern" in reply.text or "Spam message rejected" in reply.text, reply
    assert "milter-reject" in mta.log() and "milter=rspamd" in mta.log()


def test_rspamd_adds_its_headers_to_a_clean_message(mta):
    with SMTPWire(mta.mx_port, timeout=SCAN_TIMEOUT) as conn:
        conn.ehlo("client.example.org")
        reply = conn.transaction("sender@example.org", [BOB],
                                 message("clean-mx", "An ordinary note."))
        conn.command("QUIT")
    assert reply.code == 250, reply
    mail = stored(mta, b"Subject: clean-mx")
    head = mail.split(b"\r\n\r\n")[0]
    assert b"X-Spamd-Result:" in head and b"X-Rspamd-Queue-Id:" in head, head


def _txt_record(record: str) -> bytes:
    """The TXT data of opendkim-genkey's zone file line: its quoted strings joined."""
    parts = []
    inside = False
    current = ""
    for char in record:
        if char == '"':
            if inside:
                parts.append(current)
                current = ""
            inside = not inside
        elif inside:
            current += char
    return "".join(parts).encode()


def test_submitted_mail_is_signed_and_verifies(mta, rspamd, opendkim):
    try:
        import dkim
    except ImportError:
        pytest.skip("python3-dkim is not installed")
    with SMTPWire(mta.submission_port, timeout=SCAN_TIMEOUT) as conn:
        conn.ehlo()
        conn.starttls()
        conn.ehlo()
        assert conn.auth_plain(ALICE, USERS[ALICE]).code == 235
        scans = len(rspamd.scans())
        reply = conn.transaction(ALICE, [BOB], message("signed", "Signed by OpenDKIM."))
    assert reply.code == 250, reply
    mail = stored(mta, b"Subject: signed")
    head = mail.split(b"\r\n\r\n")[0]
    assert b"DKIM-Signature:" in head and b"d=example.test" in head, head
    # rspamd scanned it first (it adds no headers to authenticated mail:
    # milter_headers' skip_authenticated).
    wait_until(lambda: len(rspamd.scans()) > scans, WAIT, what="rspamd's scan log line")
    key = _txt_record(opendkim["record"])

    def dns(name, timeout=5):
        return key if name.decode().rstrip(".") == f"{SELECTOR}._domainkey.example.test" else None

    # The Maildir copy starts with our Return-Path/Delivered-To lines, added
    # after signing and not signed; dkim.verify() ignores unsigned fields.
    assert dkim.verify(mail, dnsfunc=dns), "the DKIM signature does not verify"
    # Tampering breaks it: the test would notice a signature that verifies anything.
    assert not dkim.verify(mail.replace(b"Signed by OpenDKIM.", b"Changed."), dnsfunc=dns)
