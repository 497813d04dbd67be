"""Harvesting Submission-Token fields from inbound mail (MX role).

Proves that a token in a Submission-Token field whose pair hash is
SHA3-256(recipient ":" envelope sender) and that has not expired goes into
the recipient's wallet (`stokenctl token list wallet`), that tokens for
another pair, expired ones and garbage are ignored, that the fields are
removed from the stored message by default and kept with
`remove_submission_token_headers: false`, and that a harvested token does not
replace a permanent token the wallet already holds for the pair.
"""

from __future__ import annotations

import smtplib
import time
import uuid

from tokenwire import PERM_VALIDITY, deliver, genstoken, make_token, pair_hash

ALICE = "alice@example.test"
REMOTE = "bob@remote.example"
TEMP_VALIDITY = 7 * 24 * 3600


def send_from_the_internet(daemon, sender: str, recipient: str, extra_headers: list[str]) -> bytes:
    marker = uuid.uuid4().hex
    message = "\r\n".join([f"From: <{sender}>", f"To: <{recipient}>", f"Subject: {marker}",
                           "Chat-Version: 1.0", *extra_headers, "", f"body {marker}", ""])
    with smtplib.SMTP("127.0.0.1", daemon.mx_port, timeout=10) as client:
        client.sendmail(sender, [recipient], message.encode())
    assert daemon.settle(), daemon.log_tail()
    return marker.encode()


def stored_message(daemon, address: str, marker: bytes) -> bytes:
    found = [m for m in daemon.messages(address) + daemon.messages(address, chats=True)
             if marker in m]
    assert len(found) == 1, f"{len(found)} copies of {marker!r}"
    return found[0]


def wallet_rows(daemon, user: str) -> list[list[str]]:
    return [line.split() for line in daemon.ctl("token", "list", "wallet", user).stdout.splitlines()]


def wait_for_wallet(daemon, user: str, token: str, timeout: float = 5.0) -> list[str] | None:
    """The wallet is written on a worker thread after the 250."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for row in wallet_rows(daemon, user):
            if token in row:
                return row
        time.sleep(0.05)
    return None


def test_matching_token_is_harvested_and_the_field_removed(mta):
    token = make_token(pair_hash(ALICE, REMOTE), validity=TEMP_VALIDITY, keyid="t3")
    marker = send_from_the_internet(mta, REMOTE, ALICE, [f"Submission-Token: {token}"])
    row = wait_for_wallet(mta, ALICE, token)
    assert row is not None, mta.ctl("token", "list", "wallet", ALICE).stdout
    assert row[:2] == [ALICE, REMOTE] and "header" in row, row
    stored = stored_message(mta, ALICE, marker)
    assert b"Submission-Token" not in stored and token.encode() not in stored, stored[:600]


def test_tokens_for_other_pairs_expired_or_garbage_are_ignored(mta):
    sender = "carol@remote.example"
    other_pair = make_token(pair_hash(ALICE, "eve@remote.example"), validity=TEMP_VALIDITY)
    reversed_pair = make_token(pair_hash(sender, ALICE), validity=TEMP_VALIDITY)
    expired = make_token(pair_hash(ALICE, sender), created=int(time.time()) - TEMP_VALIDITY - 10,
                         validity=TEMP_VALIDITY)
    send_from_the_internet(mta, sender, ALICE, [
        f"Submission-Token: {other_pair}", f"Submission-Token: {reversed_pair}",
        f"Submission-Token: {expired}", "Submission-Token: garbage"])
    good = make_token(pair_hash(ALICE, sender), validity=TEMP_VALIDITY, keyid="t9")
    send_from_the_internet(mta, sender, ALICE, [f"Submission-Token: {good}"])
    assert wait_for_wallet(mta, ALICE, good) is not None  # the later, good one arrived
    wallet = mta.ctl("token", "list", "wallet", ALICE).stdout
    for ignored in (other_pair, reversed_pair, expired):
        assert ignored not in wallet, wallet


def test_header_token_does_not_replace_a_permanent_one(mta):
    sender = "dave@remote.example"
    # A Remote Client's MYSTOKEN puts a permanent token for (alice, dave) in
    # alice's wallet ...
    permanent = make_token(pair_hash(ALICE, sender), validity=PERM_VALIDITY, keyid="p5")
    temporary = genstoken(mta, ALICE, "TEMP", sender)
    [delivery] = deliver(mta, sender, [(ALICE, temporary, permanent)],
                         f"From: <{sender}>\r\nSubject: x\r\n\r\nhi\r\n".encode())
    assert delivery.enhanced == "2.1.13", str(delivery)
    assert wait_for_wallet(mta, ALICE, permanent) is not None
    # ... and a newer header token from ordinary mail does not push it out.
    header_token = make_token(pair_hash(ALICE, sender), created=int(time.time()) + 5,
                              validity=TEMP_VALIDITY, keyid="t4")
    send_from_the_internet(mta, sender, ALICE, [f"Submission-Token: {header_token}"])
    time.sleep(0.5)
    wallet = mta.ctl("token", "list", "wallet", ALICE).stdout
    assert permanent in wallet and header_token not in wallet, wallet


def test_fields_can_be_kept(stokend_factory):
    daemon = stokend_factory(tokens={"remove_submission_token_headers": False})
    token = make_token(pair_hash(ALICE, REMOTE), validity=TEMP_VALIDITY, keyid="t2")
    marker = send_from_the_internet(daemon, REMOTE, ALICE, [f"Submission-Token: {token}"])
    assert wait_for_wallet(daemon, ALICE, token) is not None
    assert f"Submission-Token: {token}".encode() in stored_message(daemon, ALICE, marker)
