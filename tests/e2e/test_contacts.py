"""COI contact storage messages: `stokenctl contacts import|export|sync` and
the COI/Contacts folder that follows token changes.

Proves that importing a contact message puts its valid COI-TokenOut into the
user's wallet (`stokenctl token list wallet`) and skips expired, malformed
and foreign-pair tokens with their reasons, without printing tokens; that a
Maildir folder is imported with the COI merge rule (newest TokenOut per
pair); that `contacts export` prints the user's contacts as an mbox that
imports back unchanged; that the user's Maildir folder COI/Contacts
(.COI.Contacts) gets a contact message when a token changes, whether the
change comes from stokenctl (a permanent token, a revocation) or from the
running daemon (a harvested Submission-Token field, a 2.1.13 exchange with
MYSTOKEN); that a domain routed to LMTP gets no folder; and that
tokens.sync_contacts_folder: false turns the folder off.
"""

from __future__ import annotations

import hashlib
import re
import smtplib
import time
import uuid
from pathlib import Path

from tokenwire import PERM_VALIDITY, deliver, genstoken, make_token, pair_hash

ALICE = "alice@example.test"
TEMP_VALIDITY = 7 * 24 * 3600


def from_hash(address: str) -> str:
    """COI-From-Hash: SHA3-256 of the lowercased address, in hex."""
    return hashlib.sha3_256(address.lower().encode()).hexdigest()


def contact_message(user: str, contact: str, *, token_out: list[str] = (),
                    token_in: list[str] = (), extra: list[str] = ()) -> str:
    """A contact storage message as a COI client writes it (h-card body)."""
    lines = [f"From: Alice <{user}>", f"To: {user}", "Subject: Contact",
             "Date: Mon, 4 Dec 2019 17:51:37 +0100", "Chat-Version: 1.0",
             "Chat-Content: contact", f"COI-From-Hash: {from_hash(contact)}",
             *[f"COI-TokenOut: {t}" for t in token_out], *[f"COI-TokenIn: {t}" for t in token_in],
             *extra, "Content-Type: text/html; charset=UTF-8", "",
             '<div class="h-card"><p class="p-name">A Friend</p>',
             f'<a class="u-email" href="mailto:{contact}">{contact}</a></div>', ""]
    return "\r\n".join(lines)


def contacts_folder(daemon, user: str = ALICE) -> Path:
    return daemon.maildir(user) / ".COI.Contacts"


def contact_files(daemon, user: str = ALICE) -> list[Path]:
    folder = contacts_folder(daemon, user)
    return sorted(p for part in ("cur", "new") if (folder / part).is_dir()
                  for p in (folder / part).iterdir())


def contact_text(daemon, contact: str, user: str = ALICE) -> str | None:
    """The text of the one contact message naming contact, or None."""
    found = [p.read_bytes().decode() for p in contact_files(daemon, user)
             if f"COI-From-Hash: {from_hash(contact)}" in p.read_bytes().decode()]
    assert len(found) <= 1, f"{len(found)} messages for {contact}"
    return found[0] if found else None


def wait_for_contact(daemon, contact: str, needle: str, timeout: float = 5.0) -> str:
    """The daemon writes tokens, and the folder, on a worker thread."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = contact_text(daemon, contact)
        if text is not None and needle in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"no contact message for {contact} with {needle[:30]}...: "
                         f"{contact_text(daemon, contact)!r}\n{daemon.log_tail()}")


def wallet(daemon, user: str = ALICE) -> str:
    return daemon.ctl("token", "list", "wallet", user).stdout


def test_import_puts_valid_tokenout_into_the_wallet_and_says_why_others_are_skipped(mta, tmp_path):
    contact = "bob@remote.example"
    good = make_token(pair_hash(ALICE, contact), validity=TEMP_VALIDITY, keyid="t7")
    expired = make_token(pair_hash(ALICE, contact), created=int(time.time()) - TEMP_VALIDITY - 60,
                         validity=TEMP_VALIDITY)
    other_pair = make_token(pair_hash(ALICE, "eve@remote.example"), validity=TEMP_VALIDITY)
    message = tmp_path / "bob.eml"
    message.write_text(contact_message(ALICE, contact,
                                       token_out=[good, expired, other_pair, "garbage"]))

    result = mta.ctl("contacts", "import", str(message))
    assert "contacts import: 1 message read, 1 contact message; 1 token into wallets" in result.stdout
    assert f"imported   {message}: TokenOut 1 ({ALICE} -> {contact}, created" in result.stdout
    assert "skipped    " in result.stdout and "expired 1 minute ago" in result.stdout
    assert "its pair hash belongs to neither" in result.stdout
    assert "not a token in the named format" in result.stdout
    for token in (good, expired, other_pair):
        assert token not in result.stdout + result.stderr

    rows = [line.split() for line in wallet(mta).splitlines()]
    [row] = [r for r in rows if good in r]
    assert row[:4] == [ALICE, contact, "temp", "import"], row
    assert expired not in wallet(mta) and other_pair not in wallet(mta)

    # The same message again changes nothing.
    again = mta.ctl("contacts", "import", str(message))
    assert "0 tokens into wallets" in again.stdout and "already in the wallet" in again.stdout


def test_import_of_a_maildir_folder_keeps_the_newest_tokenout_per_pair(mta, tmp_path):
    contact = "carol@remote.example"
    now = int(time.time())
    older = make_token(pair_hash(ALICE, contact), created=now - 300, validity=TEMP_VALIDITY)
    newer = make_token(pair_hash(ALICE, contact), created=now - 100, validity=TEMP_VALIDITY)
    folder = tmp_path / "Contacts"
    for part in ("cur", "new", "tmp"):
        (folder / part).mkdir(parents=True)
    (folder / "cur" / "1.client:2,S").write_text(contact_message(ALICE, contact, token_out=[newer]))
    (folder / "new" / "2.client").write_text(contact_message(ALICE, contact, token_out=[older]))
    (folder / "new" / "3.client").write_text("Subject: not a contact\r\n\r\nhello\r\n")

    result = mta.ctl("contacts", "import", str(folder))
    assert "3 messages read, 2 contact messages; 1 token into wallets" in result.stdout, result.stdout
    assert "superseded by a newer TokenOut for the same pair" in result.stdout
    assert "new/3.client: message: no Chat-Content field" in result.stdout
    assert newer in wallet(mta) and older not in wallet(mta)


def test_import_refuses_what_is_not_a_user_or_not_there(mta, tmp_path):
    message = tmp_path / "x.eml"
    message.write_text(contact_message("nobody@example.test", "dan@remote.example",
                                       token_out=[make_token(pair_hash("nobody@example.test",
                                                                       "dan@remote.example"))]))
    result = mta.ctl("contacts", "import", str(message))
    assert "nobody@example.test is not a local user" in result.stdout
    assert "0 tokens into wallets" in result.stdout

    missing = mta.ctl("contacts", "import", str(tmp_path / "missing.eml"), check=False)
    assert missing.returncode == 1 and "cannot open" in missing.stderr
    not_maildir = mta.ctl("contacts", "import", str(tmp_path), check=False)
    assert not_maildir.returncode == 1 and "is not a Maildir folder" in not_maildir.stderr
    usage = mta.ctl("contacts", "export", check=False)
    assert usage.returncode == 2 and "usage: contacts export USER" in usage.stderr
    wrong_option = mta.ctl("contacts", "export", ALICE, "--restore-issued", check=False)
    assert wrong_option.returncode == 2


def test_import_takes_the_user_from_the_command_line_when_the_message_names_none(mta, tmp_path):
    contact = "olga@remote.example"
    token = make_token(pair_hash(ALICE, contact), validity=TEMP_VALIDITY, keyid="t6")
    text = contact_message(ALICE, contact, token_out=[token])
    text = "From: Alice\r\n" + text[text.index("Subject:"):]  # no To, no address in From
    message = tmp_path / "olga.eml"
    message.write_bytes(text.encode())

    result = mta.ctl("contacts", "import", str(message))
    assert "no user: neither To nor From holds an address" in result.stdout
    assert token not in wallet(mta)
    result = mta.ctl("contacts", "import", str(message), "--user", ALICE.upper())
    assert "1 token into wallets" in result.stdout, result.stdout
    assert token in wallet(mta)


def test_export_prints_an_mbox_that_imports_back_unchanged(mta, tmp_path):
    contact = "erin@remote.example"
    permanent = mta.ctl("token", "new", "perm", contact, ALICE).stdout.strip()
    out = make_token(pair_hash(ALICE, contact), validity=TEMP_VALIDITY, keyid="t8")
    source = tmp_path / "erin.eml"
    source.write_text(contact_message(ALICE, contact, token_out=[out]))
    mta.ctl("contacts", "import", str(source))

    exported = mta.ctl("contacts", "export", ALICE)
    assert exported.stdout.startswith(f"From {ALICE} ")
    entries = exported.stdout.split(f"\nFrom {ALICE} ")
    [entry] = [e for e in entries if f"COI-From-Hash: {from_hash(contact)}" in e]
    assert "Chat-Content: contact\n" in entry
    assert f"COI-TokenIn: {permanent}\n" in entry
    assert f"COI-TokenOut: {out}\n" in entry
    assert f'href="mailto:{contact}"' in entry
    assert re.search(r"\d+ contacts? of alice@example\.test exported", exported.stderr)

    mbox = tmp_path / "export.mbox"
    mbox.write_text(exported.stdout)
    back = mta.ctl("contacts", "import", str(mbox))
    assert "0 tokens into wallets" in back.stdout and ", 0 skipped" in back.stdout, back.stdout
    assert "valid permanent token, already in the token store" in back.stdout


def test_folder_follows_tokens_changed_with_stokenctl(mta):
    contact = "frank@remote.example"
    permanent = mta.ctl("token", "new", "perm", contact, ALICE).stdout.strip()
    text = contact_text(mta, contact)
    assert text is not None, contact_files(mta)
    assert f"COI-TokenIn: {permanent}\r\n" in text
    assert "Chat-Content: contact\r\n" in text and f"To: <{ALICE}>\r\n" in text
    [path] = [p for p in contact_files(mta) if from_hash(contact) in p.read_bytes().decode()]
    assert path.parent.name == "cur" and path.name.endswith(":2,S")
    assert (contacts_folder(mta) / "maildirfolder").is_file()

    # A second permanent token: the same contact, a new message in place of the old.
    second = mta.ctl("token", "new", "perm", contact, ALICE).stdout.strip()
    text = contact_text(mta, contact)
    assert f"COI-TokenIn: {permanent}\r\n" in text and f"COI-TokenIn: {second}\r\n" in text
    assert not path.exists()

    # Revoked: no tokens left, and the message stokend wrote goes.
    mta.ctl("token", "revoke", contact, ALICE)
    assert contact_text(mta, contact) is None
    assert list((contacts_folder(mta) / "tmp").iterdir()) == []


def test_folder_follows_tokens_the_daemon_harvests_and_exchanges(mta):
    # A Submission-Token field on mail from the Internet (MX role) ...
    sender = "gina@remote.example"
    harvested = make_token(pair_hash(ALICE, sender), validity=TEMP_VALIDITY, keyid="t5")
    message = "\r\n".join([f"From: <{sender}>", f"To: <{ALICE}>", f"Subject: {uuid.uuid4().hex}",
                           "Chat-Version: 1.0", f"Submission-Token: {harvested}", "", "hi", ""])
    with smtplib.SMTP("127.0.0.1", mta.mx_port, timeout=10) as client:
        client.sendmail(sender, [ALICE], message.encode())
    wait_for_contact(mta, sender, f"COI-TokenOut: {harvested}\r\n")

    # ... and a Remote Client's delivery with a temporary token and MYSTOKEN:
    # the 2.1.13 permanent token and the MYSTOKEN reach the folder too.
    remote = "hank@remote.example"
    mystoken = make_token(pair_hash(ALICE, remote), validity=PERM_VALIDITY, keyid="p6")
    temporary = genstoken(mta, ALICE, "TEMP", remote)
    [delivery] = deliver(mta, remote, [(ALICE, temporary, mystoken)],
                         f"From: <{remote}>\r\nSubject: x\r\n\r\nhi\r\n".encode())
    assert delivery.enhanced == "2.1.13", str(delivery)
    text = wait_for_contact(mta, remote, f"COI-TokenOut: {mystoken}\r\n")
    text = wait_for_contact(mta, remote, f"COI-TokenIn: {delivery.permanent_token}\r\n")
    assert temporary not in text  # temporary tokens are stateless: never mirrored
    assert "[permanent token]" not in text
    for token in (harvested, mystoken, delivery.permanent_token):
        assert token not in mta.log()


def test_a_contact_a_client_wrote_keeps_its_data(mta):
    contact = "ivy@remote.example"
    folder = contacts_folder(mta)
    for part in ("cur", "new", "tmp"):
        (folder / part).mkdir(parents=True, exist_ok=True)
    client = folder / "cur" / "1700000000.M1P1.client:2,SF"
    client.write_text(contact_message(ALICE, contact, token_out=["stale-token"],
                                      extra=["COI-Blocked: yes"]))
    permanent = mta.ctl("token", "new", "perm", contact, ALICE).stdout.strip()
    text = contact_text(mta, contact)
    assert not client.exists()
    assert f"COI-TokenIn: {permanent}\r\n" in text
    assert "stale-token" not in text
    assert "COI-Blocked: yes\r\n" in text and '<p class="p-name">A Friend</p>' in text
    [path] = [p for p in contact_files(mta) if from_hash(contact) in p.read_bytes().decode()]
    assert path.name.endswith(":2,SF")

    mta.ctl("token", "revoke", contact, ALICE)
    text = contact_text(mta, contact)  # the client's contact stays, without tokens
    assert text is not None and "COI-Token" not in text and "A Friend" in text


def test_contacts_sync_writes_tokens_that_predate_the_folder(mta):
    contact = "jack@remote.example"
    permanent = mta.ctl("token", "new", "perm", contact, ALICE).stdout.strip()
    for path in contact_files(mta):  # as if the folder had been lost
        path.unlink()
    assert contact_text(mta, contact) is None
    result = mta.ctl("contacts", "sync", ALICE)
    assert "contacts checked" in result.stderr
    assert f"COI-TokenIn: {permanent}\r\n" in contact_text(mta, contact)


def test_domains_routed_to_lmtp_get_no_folder(stokend_factory):
    daemon = stokend_factory(routes={"example.test": "lmtp:[127.0.0.1]:9"})
    permanent = daemon.ctl("token", "new", "perm", "kim@remote.example", ALICE).stdout.strip()
    assert permanent
    assert not contacts_folder(daemon).exists()
    assert "mail not in the built-in Maildir store" in daemon.ctl("contacts", "sync", ALICE).stderr


def test_the_folder_can_be_switched_off(stokend_factory):
    daemon = stokend_factory(tokens={"sync_contacts_folder": False})
    daemon.ctl("token", "new", "perm", "lee@remote.example", ALICE)
    assert not contacts_folder(daemon).exists()
