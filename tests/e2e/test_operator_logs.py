"""Logs that operators' tools read: pflogsumm and fail2ban's postfix filter.

Proves that stokend's own log, in Postfix's shape (README "Logs"), is read by
Debian's pflogsumm (--syslog-name=stokend) and fail2ban-regex (the stock
filter.d/postfix.conf with _daemon=stokend/\\w+) unpatched, with exactly the
counts of a known scenario: messages received, delivered (into the Maildir,
to an SMTP next hop, and the bounce notification), deferred (a next hop that
answers 4xx), bounced (5xx), recipients rejected at RCPT, and AUTH failures.
Also: log_syslog sends the same lines to a syslog socket as RFC 3164
datagrams, facility mail, each with its service's program name; under the
systemd journal (JOURNAL_STREAM) standard error carries them without a time
stamp of its own, the severity as <N>; a client that leaves without QUIT is
smtpd's "lost connection after CMD", which mode=ddos matches; and no password
appears anywhere.
"""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from peers import PeerSet, queue_daemon, queue_id, send_mx, submit, wait_for_log, wait_until
from smtpwire import SMTPWire
from stokend_daemon import USERS

pytestmark = pytest.mark.once

ALICE = "alice@example.test"
ALICE_PW = USERS[ALICE]
WRONG_PW = "Not-Alice-pw-0000"
PFLOGSUMM = Path("/usr/sbin/pflogsumm")
FAIL2BAN_REGEX = shutil.which("fail2ban-regex")
# The jail setting README "Logs" documents: the stock filter, stokend's names.
FAIL2BAN_DAEMON = r"_daemon=stokend/\w+"


@pytest.fixture
def peers():
    with PeerSet() as peer_set:
        yield peer_set


def message(marker: str, to: str) -> bytes:
    return (f"From: <{ALICE}>\r\nTo: <{to}>\r\nSubject: {marker}\r\n"
            f"Message-ID: <{marker}@example.test>\r\n\r\nbody of {marker}\r\n").encode()


def refused_recipients(daemon, recipients: list[str]) -> list[str]:
    """One MX session: MAIL, then RCPT for each recipient; returns the replies."""
    with SMTPWire(daemon.mx_port) as conn:
        assert conn.ehlo("client.remote.test").code == 250
        assert conn.command("MAIL FROM:<carol@remote.test>").code == 250
        replies = [str(conn.command(f"RCPT TO:<{rcpt}>")) for rcpt in recipients]
        conn.command("QUIT")
    return replies


def failed_login(daemon, mechanism: str) -> str:
    with SMTPWire(daemon.submission_port) as conn:
        assert conn.ehlo("client.example.test").code == 250
        conn.starttls()
        assert conn.ehlo("client.example.test").code == 250
        login = conn.auth_plain if mechanism == "PLAIN" else conn.auth_login
        reply = login(ALICE, WRONG_PW)
        conn.command("QUIT")
    return str(reply)


def grand_totals(report: str) -> dict[str, int]:
    """The "Grand Totals" counts of a pflogsumm report: received, delivered,
    deferred, bounced, rejected, ..."""
    section = report.split("Grand Totals", 1)[1].split("bytes received", 1)[0]
    counts = {}
    for number, unit, what in re.findall(r"^\s*(\d+)([km]?)\s+([a-z][a-z ]*?)(?:\s+\(.*\))?$",
                                         section, re.M):
        assert unit == "", f"pflogsumm scaled a count: {number}{unit} {what}"
        counts[what.strip()] = int(number)
    return counts


def fail2ban_matches(log_path: Path, mode: str) -> tuple[int, int]:
    """(lines, matched) of fail2ban-regex with the stock postfix filter."""
    result = subprocess.run(
        [FAIL2BAN_REGEX, str(log_path), f"postfix[mode={mode}, {FAIL2BAN_DAEMON}]"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(r"^Lines: (\d+) lines, \d+ ignored, (\d+) matched", result.stdout, re.M)
    assert found, result.stdout
    return int(found.group(1)), int(found.group(2))


def test_pflogsumm_and_fail2ban_count_the_scenario(stokend_factory, peers):
    if not PFLOGSUMM.exists() or not FAIL2BAN_REGEX:
        pytest.skip("pflogsumm or fail2ban-regex is not installed")
    accepting = peers.sink()
    deferring = peers.sink(soft=("RCPT",), soft_reply="451 4.3.0 try again later")
    bouncing = peers.sink(hard=("RCPT",), hard_reply="550 5.1.1 no such user here")
    # One attempt per message within the test: the deferral is counted once.
    mta = queue_daemon(stokend_factory,
                       routes={"ok.test": accepting.route, "soft.test": deferring.route,
                               "hard.test": bouncing.route},
                       queue={"first_retry": "1h", "max_retry_interval": "1h"})

    # Received: 4 (one on the MX port, three submitted).
    local = queue_id(send_mx(mta, "carol@remote.test", [ALICE], message("local", ALICE)))
    sent = queue_id(submit(mta, ALICE, ALICE_PW, ["bob@ok.test"], message("sent", "bob@ok.test")))
    deferred = queue_id(submit(mta, ALICE, ALICE_PW, ["x@soft.test"],
                               message("deferred", "x@soft.test")))
    bounced = queue_id(submit(mta, ALICE, ALICE_PW, ["y@hard.test"],
                              message("bounced", "y@hard.test")))
    # Rejected at RCPT: 3 (two unknown users, one relay attempt).
    replies = refused_recipients(mta, ["nobody@example.test", "someone@elsewhere.test"])
    replies += refused_recipients(mta, ["nobody2@example.test"])
    assert [r[:3] for r in replies] == ["550"] * 3, replies
    # AUTH failures: 2.
    assert failed_login(mta, "PLAIN").startswith("535"), "PLAIN with a wrong password"
    assert failed_login(mta, "LOGIN").startswith("535"), "LOGIN with a wrong password"
    # A client that leaves without QUIT.
    with SMTPWire(mta.mx_port) as conn:
        assert conn.ehlo("client.remote.test").code == 250
    wait_for_log(mta, r"stokend/smtpd\[\d+\]: lost connection after EHLO from "
                      r"unknown\[127\.0\.0\.1\]$")

    wait_for_log(mta, rf"stokend/local\[\d+\]: {local}: to=<{re.escape(ALICE)}>, relay=local, "
                      rf"delay=[\d.]+, delays=[\d.]+/[\d.]+/0/[\d.]+, dsn=2\.0\.0, status=sent ")
    wait_for_log(mta, rf"stokend/smtp\[\d+\]: {sent}: to=<bob@ok\.test>, "
                      rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:{accepting.port}, .* status=sent ")
    wait_for_log(mta, rf"stokend/smtp\[\d+\]: {deferred}: to=<x@soft\.test>, .*dsn=4\.3\.0, "
                      rf"status=deferred \(451 4\.3\.0 try again later\)")
    wait_for_log(mta, rf"stokend/smtp\[\d+\]: {bounced}: to=<y@hard\.test>, .*dsn=5\.1\.1, "
                      rf"status=bounced \(550 5\.1\.1 no such user here\)")
    notice = wait_for_log(mta, rf"stokend/bounce\[\d+\]: {bounced}: sender non-delivery "
                               rf"notification: (\S+)$").group(1)
    wait_for_log(mta, rf"stokend/qmgr\[\d+\]: {notice}: removed$")
    for qid in (local, sent, bounced):
        wait_for_log(mta, rf"stokend/qmgr\[\d+\]: {qid}: removed$")
    log = mta.log()
    # Each message's lines share its queue id, in Postfix's order.
    for qid, sender in ((local, "carol@remote.test"), (sent, ALICE)):
        positions = [log.index(f": {qid}: client=unknown[127.0.0.1]"),
                     log.index(f": {qid}: message-id=<"),
                     log.index(f": {qid}: from=<{sender}>, size="),
                     log.index(f": {qid}: to=<"), log.index(f": {qid}: removed")]
        assert positions == sorted(positions), f"{qid}: lines out of order"
    assert f": {sent}: client=unknown[127.0.0.1], sasl_method=PLAIN, sasl_username={ALICE}" in log
    assert re.search(r"stokend/smtpd\[\d+\]: NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: "
                     r"550 5\.1\.1 <nobody@example\.test>: Recipient address rejected: user "
                     r"unknown; from=<carol@remote\.test> to=<nobody@example\.test> proto=ESMTP "
                     r"helo=<client\.remote\.test>$", log, re.M), "the unknown-user reject line"
    assert re.search(r"stokend/smtpd\[\d+\]: warning: unknown\[127\.0\.0\.1\]: SASL LOGIN "
                     r"authentication failed: ", log), "the LOGIN failure line"
    assert WRONG_PW not in log and ALICE_PW not in log

    report = subprocess.run([str(PFLOGSUMM), "--syslog-name=stokend", str(mta.log_path)],
                            capture_output=True, text=True, timeout=120, check=True).stdout
    counts = grand_totals(report)
    expected = {"received": 4,
                # The Maildir, the SMTP next hop, and the notification to alice.
                "delivered": 3,
                "deferred": 1, "bounced": 1, "rejected": 3}
    assert {k: counts.get(k) for k in expected} == expected, report

    assert fail2ban_matches(mta.log_path, "normal")[1] == 3, "each RCPT rejection, nothing else"
    assert fail2ban_matches(mta.log_path, "auth")[1] == 2, "each AUTH failure, nothing else"
    # mode=ddos: every client that left without QUIT (the harness's readiness
    # probes among them), except after DATA, as the filter says.
    left = re.findall(r"stokend/smtpd\[\d+\]: lost connection after (?!DATA)[A-Z]+ from ", log)
    assert len(left) >= 1
    assert fail2ban_matches(mta.log_path, "ddos")[1] == len(left)


def test_log_syslog_sends_postfix_shaped_datagrams(stokend_factory):
    folder = Path(tempfile.mkdtemp(prefix="syslog-"))
    path = folder / "log"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.settimeout(0.2)
    received: list[str] = []
    stop = threading.Event()

    def drain() -> None:
        # Read all along, as a syslog daemon does: the daemon's start-up
        # lines must not wait for the test.
        while not stop.is_set():
            try:
                received.append(listener.recv(65536).decode(errors="replace"))
            except (socket.timeout, BlockingIOError):
                continue

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        mta = stokend_factory(log_syslog=True, log_syslog_socket=str(path))
        assert failed_login(mta, "PLAIN").startswith("535")
        pid = mta.proc.pid

        def seen(pattern: str) -> bool:
            return any(re.fullmatch(pattern, line) for line in list(received))

        # facility mail (2): info is <22>, warning <20>; RFC 3164 time stamp.
        stamp = r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d"
        wait_until(lambda: seen(rf"<22>{stamp} stokend/smtpd\[{pid}\]: "
                                rf"connect from unknown\[127\.0\.0\.1\]"), 10, what="connect line")
        wait_until(lambda: seen(rf"<20>{stamp} stokend/smtpd\[{pid}\]: warning: "
                                rf"unknown\[127\.0\.0\.1\]: SASL PLAIN authentication failed: .*"),
                   10, what="SASL failure line")
        assert seen(rf"<22>{stamp} stokend\[{pid}\]: .*"), "plain stokend lines too"
        assert not any(WRONG_PW in line for line in received)
        # Syslog alone: standard error does not carry the same lines again.
        assert "connect from" not in mta.log()
    finally:
        stop.set()
        reader.join(timeout=5)
        listener.close()
        shutil.rmtree(folder, ignore_errors=True)


def test_journal_lines_have_no_time_stamp_of_their_own(stokend_factory, tmp_path, monkeypatch):
    # Standard error is "the journal" when JOURNAL_STREAM names its device and
    # inode (systemd.exec(5)): here, the file the test daemon's stderr goes to.
    directory = tmp_path / "journal"
    directory.mkdir()
    (directory / "stokend.log").touch()
    status = os.stat(directory / "stokend.log")
    monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino}")
    mta = stokend_factory(directory=directory)
    assert failed_login(mta, "LOGIN").startswith("535")
    pid = mta.proc.pid
    wait_for_log(mta, rf"^<6>stokend/smtpd\[{pid}\]: connect from unknown\[127\.0\.0\.1\]$")
    wait_for_log(mta, rf"^<4>stokend/smtpd\[{pid}\]: warning: unknown\[127\.0\.0\.1\]: SASL "
                      rf"LOGIN authentication failed: ")
    assert not re.search(r"^\d{4}-\d\d-\d\dT", mta.log(), re.M), "a time stamp in journal lines"
