"""A full configuration reload (daemon/reload.h), by SIGHUP and by
`stokenctl reload`: a changed limit, route and users file are in force for
new sessions and the queue's next attempt, while a session opened before the
reload keeps the limits it started with (the users are one live directory: a
removed user is refused there too); a configuration that fails its check is
refused with FILE:LINE:COL and the one in force stays; a setting that needs
a restart is named and the rest is applied."""

import os
import re
import signal

import pytest

from peers import PeerSet, queue_id, submit, wait_for_log, wait_until
from smtpwire import SMTPWire
from stokend_daemon import to_yaml

USERS = {
    "alice@example.test": "Alice-pw-4711",
    "bob@example.test": "Bob-pw-0815",
    "carol@example.test": "Carol-pw-1234",
}
MESSAGE = b"Subject: reload\r\n\r\nbody\r\n"


def rewrite_config(mta, **changes) -> None:
    """Writes the daemon's configuration file again with changes merged in
    (top-level keys replace, maps merge one level down)."""
    config = dict(mta.config)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    mta.config = config
    mta.config_path.write_text(to_yaml(config))


OUTCOME = re.compile(r"(configuration reloaded|reload refused)")


def reload_by(mta, trigger: str):
    """Reloads by SIGHUP or `stokenctl reload` and waits for the log line
    of its outcome; returns stokenctl's result (None for SIGHUP)."""
    before = len(OUTCOME.findall(mta.log()))
    result = None
    if trigger == "SIGHUP":
        os.kill(mta.proc.pid, signal.SIGHUP)
    else:
        result = mta.ctl("reload", check=False)
    wait_until(lambda: len(OUTCOME.findall(mta.log())) > before, 10.0,
               what="the reload's log line")
    return result


def open_mx_transaction(mta) -> SMTPWire:
    conn = SMTPWire(mta.mx_port)
    assert conn.ehlo().code == 250
    assert conn.command("MAIL FROM:<someone@remote.test>").code == 250
    return conn


@pytest.mark.parametrize("trigger", ["SIGHUP", "stokenctl"])
def test_new_sessions_take_a_new_limit_and_users_while_an_open_one_keeps_its_limit(
        stokend_factory, trigger):
    mta = stokend_factory(users=USERS, limits={"max_recipients": 2})
    held = open_mx_transaction(mta)  # opened before the reload

    rewrite_config(mta, limits={"max_recipients": 1})
    mta.ctl("user", "del", "carol@example.test")
    result = reload_by(mta, trigger)
    wait_for_log(mta, rf"{'SIGHUP' if trigger == 'SIGHUP' else 'stokenctl reload'}: configuration "
                      r"reloaded from \S+stokend\.yaml.*, 2 local users")
    if result is not None:
        assert result.returncode == 0, result.stderr
        assert result.stdout == "reloaded\n", result.stdout

    # A new session: the new limit.
    with open_mx_transaction(mta) as fresh:
        assert fresh.command("RCPT TO:<alice@example.test>").code == 250
        reply = fresh.command("RCPT TO:<bob@example.test>")
        assert (reply.code, reply.enhanced) == (452, "4.5.3"), str(reply)
        fresh.command("QUIT")

    # The session opened before: its limit of 2 stays; the removed user is
    # gone for it too (one live users directory).
    reply = held.command("RCPT TO:<carol@example.test>")
    assert (reply.code, reply.enhanced) == (550, "5.1.1"), str(reply)
    assert held.command("RCPT TO:<alice@example.test>").code == 250
    assert held.command("RCPT TO:<bob@example.test>").code == 250, \
        "the session opened before the reload lost its max_recipients"
    assert held.data(MESSAGE).code == 250
    held.command("QUIT")
    held.close()
    assert len(mta.messages("bob@example.test")) == 1
    assert mta.running()


def test_a_new_route_is_used_by_the_queue_for_its_next_attempt(stokend_factory):
    with PeerSet() as peers:
        sink = peers.sink()
        # remote.test goes by MX, and DNS (loopback, nobody there) fails: deferred.
        mta = stokend_factory(users=USERS, log_level="debug",
                              queue={"first_retry": "1h"})
        reply = submit(mta, "alice@example.test", USERS["alice@example.test"],
                       ["friend@remote.test"], MESSAGE)
        qid = queue_id(reply)
        wait_for_log(mta, rf"queue: {qid} to=<friend@remote.test> deferred")
        assert sink.messages() == []

        rewrite_config(mta, routes={"remote.test": sink.route})
        result = mta.ctl("reload", check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "reloaded\n"
        mta.ctl("queue", "flush", qid)
        received = sink.wait_for_messages(1)
        assert [args.split()[0] for args in received[0].rcpt_args] == ["<friend@remote.test>"], \
            received[0].rcpt_args
        wait_for_log(mta, rf"queue: {qid} to=<friend@remote.test> delivered")


@pytest.mark.parametrize("trigger", ["SIGHUP", "stokenctl"])
def test_a_broken_configuration_is_refused_and_the_one_in_force_stays(stokend_factory, trigger):
    mta = stokend_factory(users=USERS, limits={"max_recipients": 2})
    good = mta.config_path.read_text()
    broken = good.replace("max_recipients: 2", "max_recipients: lots")
    assert broken != good
    mta.config_path.write_text(broken)
    line = broken.splitlines().index("  max_recipients: lots") + 1

    where = rf"{re.escape(str(mta.config_path))}:{line}:\d+: limits\.max_recipients: expected a positive integer"
    if trigger == "SIGHUP":
        reload_by(mta, trigger)
        wait_for_log(mta, rf"SIGHUP: reload refused: {where}")
    else:
        # stokenctl reads the same file first: it refuses without asking the
        # daemon (whose control socket the broken file may not even name).
        result = mta.ctl("reload", check=False)
        assert result.returncode == 1
        assert re.search(where, result.stderr), result.stderr
        assert "reload refused" in result.stderr, result.stderr
        assert result.stdout == ""

    # The limit in force is still 2, in a new session.
    with open_mx_transaction(mta) as conn:
        assert conn.command("RCPT TO:<alice@example.test>").code == 250
        assert conn.command("RCPT TO:<bob@example.test>").code == 250
        conn.command("QUIT")
    assert mta.running()


def test_a_broken_users_file_is_refused_by_the_daemon(stokend_factory):
    """The daemon's own refusal, reported through stokenctl: the
    configuration is fine, the users file it names is not."""
    mta = stokend_factory(users=USERS, limits={"max_recipients": 2})
    rewrite_config(mta, limits={"max_recipients": 1})
    users_file = mta.dir / "var" / "users"
    users_file.write_text(users_file.read_text() + "this line has no password hash\n")

    result = mta.ctl("reload", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"reload refused: users file: \S*users:\d+", result.stderr), result.stderr
    wait_for_log(mta, r"stokenctl reload: reload refused, the configuration in force stays: "
                      r"users file: ")
    with open_mx_transaction(mta) as conn:
        assert conn.command("RCPT TO:<alice@example.test>").code == 250
        assert conn.command("RCPT TO:<bob@example.test>").code == 250, \
            "a refused reload changed max_recipients"
        conn.command("QUIT")


def test_settings_that_need_a_restart_are_named_and_the_rest_applies(stokend_factory):
    mta = stokend_factory(users=USERS, limits={"max_recipients": 2})
    listeners = [dict(listener) for listener in mta.config["listeners"]]
    old_port = listeners[0]["port"]
    listeners[0]["port"] = old_port + 1 if old_port < 65535 else old_port - 1
    rewrite_config(mta, listeners=listeners, worker_threads=2, limits={"max_recipients": 1})

    result = mta.ctl("reload", check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ("reloaded\n"
                             "needs a restart (running values kept): listeners, worker_threads\n")
    wait_for_log(mta, r"stokenctl reload: changed settings that need a restart keep their running "
                      r"values: listeners, worker_threads$")
    # Still on the old port, with the new limit.
    with open_mx_transaction(mta) as conn:
        assert conn.command("RCPT TO:<alice@example.test>").code == 250
        assert conn.command("RCPT TO:<bob@example.test>").code == 452
        conn.command("QUIT")


def test_stokenctl_reload_without_a_daemon_fails(stokend_factory):
    mta = stokend_factory(users=USERS)
    assert mta.terminate() == 0
    result = mta.ctl("reload", check=False)
    assert result.returncode == 1
    assert "reload not done" in result.stderr, result.stderr
