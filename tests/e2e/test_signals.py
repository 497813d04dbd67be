"""The signals an operator's tools send a running daemon (daemon/operator_signals.h):
none of HUP, USR1, USR2 and PIPE stops it; SIGHUP, like `stokenctl reload`,
puts a certificate renewed on disk in use without dropping a connection and
refuses a renewal whose key does not match; SIGUSR1 reopens the log file
after logrotate moved it."""

import os
import re
import shutil
import signal
import stat
import ssl
import time

import pytest

from peers import private_ca, wait_for_log
from smtpwire import SMTPWire


def served_certificate(port: int) -> bytes:
    """The DER certificate the daemon presents after STARTTLS on port."""
    with SMTPWire(port) as conn:
        conn.ehlo()
        conn.starttls()
        certificate = conn.sock.getpeercert(binary_form=True)
        conn.command("QUIT")
    return certificate


def der_of(pem_file) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem_file.read_text())


def test_operator_signals_do_not_stop_the_daemon(stokend_factory):
    mta = stokend_factory()
    for number in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGPIPE):
        os.kill(mta.proc.pid, number)
        time.sleep(0.2)
        assert mta.running(), f"stokend stopped on {signal.Signals(number).name}:\n{mta.log_tail()}"
    wait_for_log(mta, r"signal 12 ignored$")
    with SMTPWire(mta.mx_port) as conn:
        assert conn.ehlo().code == 250
        conn.command("QUIT")
    assert mta.terminate() == 0, mta.log_tail()


def reload_by(mta, trigger: str):
    """SIGHUP or `stokenctl reload`; returns stokenctl's result (None for SIGHUP)."""
    if trigger == "SIGHUP":
        os.kill(mta.proc.pid, signal.SIGHUP)
        return None
    return mta.ctl("reload", check=False)


@pytest.mark.parametrize("trigger", ["SIGHUP", "stokenctl reload"])
def test_a_reload_puts_a_renewed_certificate_in_use_without_dropping_a_connection(
        stokend_factory, tmp_path, trigger):
    _, issued = private_ca(tmp_path / "ca", ["mx.example.test", "renewed.example.test"])
    first_pem, first_key = issued["mx.example.test"]
    renewed_pem, renewed_key = issued["renewed.example.test"]
    live_pem, live_key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(first_pem, live_pem)
    shutil.copy(first_key, live_key)
    mta = stokend_factory(tls={"certificate": str(live_pem), "private_key": str(live_key)})
    assert served_certificate(mta.mx_port) == der_of(first_pem)

    # A client in TLS with the old certificate, mid-session, across the reload.
    held = SMTPWire(mta.submission_port)
    held.ehlo()
    held.starttls()
    assert held.ehlo().code == 250

    # A renewal that is broken (key of another certificate) is refused.
    shutil.copy(renewed_pem, live_pem)
    refusal = (r"\S+stokend\.yaml:\d+:\d+: tls\.private_key: the key in '\S+live\.key' does "
               r"not belong to the certificate in '\S+live\.pem'")
    result = reload_by(mta, trigger)
    if result is None:
        wait_for_log(mta, rf"SIGHUP: reload refused: {refusal}$")
    else:  # stokenctl runs the same check on the file before it asks the daemon
        assert result.returncode == 1
        assert re.search(rf"^{refusal}$", result.stderr, re.M), result.stderr
        assert "reload refused" in result.stderr, result.stderr
    assert served_certificate(mta.mx_port) == der_of(first_pem)

    shutil.copy(renewed_key, live_key)
    result = reload_by(mta, trigger)
    wait_for_log(mta, rf"{trigger}: configuration reloaded from .*TLS certificate and key read again")
    if result is not None:
        assert (result.returncode, result.stdout) == (0, "reloaded\n"), result.stderr
    assert served_certificate(mta.mx_port) == der_of(renewed_pem)
    assert served_certificate(mta.submission_port) == der_of(renewed_pem)

    assert held.command("NOOP").code == 250, "the connection in TLS was dropped by the reload"
    held.command("QUIT")
    held.close()
    assert mta.running()


def wait_for_text(path, predicate, what: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        if predicate(text):
            return text
        assert time.monotonic() < deadline, f"{path.name}: no {what}"
        time.sleep(0.05)


def session_starts(text: str) -> int:
    return len(re.findall(r" session \S+ start: ", text))


def test_usr1_reopens_the_log_file_after_logrotate_moved_it(stokend_factory):
    mta = stokend_factory(log_file="var/log/stokend.log")
    log_file = mta.dir / "var" / "log" / "stokend.log"
    time.sleep(0.3)  # the start-up probes' session lines
    started = session_starts(wait_for_text(log_file, lambda t: "stokend ready" in t, "ready line"))

    assert stat.S_IMODE(log_file.stat().st_mode) == 0o640, oct(log_file.stat().st_mode)
    rotated = log_file.with_name("stokend.log.1")
    log_file.rename(rotated)  # what logrotate does, before it signals
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        conn.command("QUIT")
    # Until the signal, lines still go to the moved file.
    wait_for_text(rotated, lambda t: session_starts(t) == started + 1, "session line")
    assert not log_file.exists()

    os.kill(mta.proc.pid, signal.SIGUSR1)
    wait_for_text(log_file, lambda t: "SIGUSR1: log file reopened" in t, "reopen line")
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        conn.command("QUIT")
    wait_for_text(log_file, lambda t: session_starts(t) == 1, "session line")
    assert session_starts(rotated.read_text()) == started + 1
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o640, oct(log_file.stat().st_mode)
    assert mta.terminate() == 0
    assert "stokend stopped" in log_file.read_text()
