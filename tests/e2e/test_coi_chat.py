"""Chat mail and the COI message filter in the built-in Maildir store.

Proves that chat mail (a Chat-Version header, a Message-ID starting with chat$,
or a first References id starting with chat$) for a user whose COI filter is
active lands in .COI.Chats/new and nowhere else; that other mail for that user,
and chat mail for a user whose filter is off, lands in new/; and that switching
the filter with stokenctl takes effect without a restart.
"""

import time

import pytest

from smtpwire import SMTPWire
from storedmail import check_stored

ALICE = "alice@example.test"
BOB = "bob@example.test"
SENDER = "friend@example.org"


@pytest.fixture(scope="module")
def coi(module_stokend_factory):
    return module_stokend_factory(coi_filters={ALICE: "active", BOB: "off"})


def message_with(header_lines: bytes, tag: str) -> bytes:
    return (b"From: friend@example.org\r\n"
            b"To: alice@example.test\r\n"
            + header_lines +
            b"Subject: " + tag.encode() + b"\r\n"
            b"\r\n"
            b"hello " + tag.encode() + b"\r\n")


CHAT_MESSAGES = {
    "chat-version": b"Chat-Version: 1.0\r\nMessage-ID: <m1@example.org>\r\n",
    "message-id": b"Message-ID: <chat$3f9a2b@example.org>\r\n",
    "references": b"Message-ID: <m3@example.org>\r\n"
                  b"References: <chat$group-1@example.org> <m2@example.org>\r\n",
}
NON_CHAT_MESSAGES = {
    "plain": b"Message-ID: <m4@example.org>\r\n",
    "second-reference": b"Message-ID: <m5@example.org>\r\n"
                        b"References: <m2@example.org> <chat$x@example.org>\r\n",
    "chat-version-inside-other-field": b"Message-ID: <m6@example.org>\r\nX-Note: Chat-Version: 1.0\r\n",
}


def deliver(mta, recipient: str, message: bytes) -> None:
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        reply = conn.transaction(SENDER, [recipient], message)
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)


@pytest.mark.parametrize("kind", list(CHAT_MESSAGES))
def test_chat_mail_goes_to_chats_folder(coi, kind):
    message = message_with(CHAT_MESSAGES[kind], kind)
    deliver(coi, ALICE, message)
    chats = coi.messages(ALICE, chats=True)
    assert len(chats) == 1, f"{kind}: {len(chats)} messages in .COI.Chats/new"
    check_stored(chats[0], message, "ESMTP")
    assert coi.messages(ALICE) == [], f"{kind}: chat mail also in new/"
    assert coi.tmp_files(ALICE, chats=True) == []
    assert len(coi.all_mail_files()) == 1


@pytest.mark.parametrize("kind", list(NON_CHAT_MESSAGES))
def test_other_mail_goes_to_inbox(coi, kind):
    message = message_with(NON_CHAT_MESSAGES[kind], kind)
    deliver(coi, ALICE, message)
    inbox = coi.messages(ALICE)
    assert len(inbox) == 1, f"{kind}: {len(inbox)} messages in new/"
    check_stored(inbox[0], message, "ESMTP")
    assert coi.messages(ALICE, chats=True) == []


def test_chat_mail_for_user_with_filter_off(coi):
    message = message_with(CHAT_MESSAGES["chat-version"], "bob-chat")
    deliver(coi, BOB, message)
    inbox = coi.messages(BOB)
    assert len(inbox) == 1
    check_stored(inbox[0], message, "ESMTP")
    assert coi.messages(BOB, chats=True) == []


def test_chat_mail_to_two_users_splits_by_filter(coi):
    message = message_with(CHAT_MESSAGES["message-id"], "both")
    with SMTPWire(coi.mx_port) as conn:
        conn.ehlo()
        reply = conn.transaction(SENDER, [ALICE, BOB], message)
        assert reply.code == 250, str(reply)
    assert len(coi.messages(ALICE, chats=True)) == 1
    assert coi.messages(ALICE) == []
    assert len(coi.messages(BOB)) == 1
    assert coi.messages(BOB, chats=True) == []


def wait_for_folder(mta, user: str, want_chats: bool, timeout: float = 5.0) -> float:
    """Delivers chat mail until it lands where wanted; returns the seconds it took."""
    started = time.monotonic()
    message = message_with(CHAT_MESSAGES["chat-version"], "switch")
    while True:
        mta.clear_mail()
        deliver(mta, user, message)
        if len(mta.messages(user, chats=want_chats)) == 1 and \
                mta.messages(user, chats=not want_chats) == []:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            pytest.fail(f"filter change not picked up within {timeout}s")
        time.sleep(0.25)


def test_filter_switch_without_restart(coi):
    coi.ctl("user", "set", ALICE, "coi-filter", "off")
    try:
        took = wait_for_folder(coi, ALICE, want_chats=False)
        assert took < 3.0, f"took {took:.1f}s"
    finally:
        coi.ctl("user", "set", ALICE, "coi-filter", "active")
    wait_for_folder(coi, ALICE, want_chats=True)
