// Unit tests for the COI/Contacts folder mirror (mta/store/contacts_folder_sync.h)
// and the Maildir folder reading and replacing under it
// (mta/store/contacts_folder.h), in a temporary Maildir root with the
// in-memory FakeTokenStore; and for the mbox format of contacts export
// (message/mbox.h).
#include "mta/store/contacts_folder_sync.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "message/mbox.h"
#include "mta/store/contacts_folder.h"
#include "mta/store/maildir_layout.h"
#include "tests/support/coi_contacts_fixture.h"
#include "tokens/coi_contact_message.h"

using namespace stokend;
using namespace stokend::testing;
using tokens::IssuedToken;
using tokens::WalletToken;
namespace fs = std::filesystem;

namespace {

// A mirror over a FakeTokenStore in a temporary Maildir root; every address
// in a.test is a Maildir user, everyone else is not.
struct SyncFixture {
  TemporaryDirectory root;
  tokens::FakeTokenStore* fake = nullptr;
  std::int64_t clock = contacts_now;
  std::unique_ptr<store::ContactsFolderSync> sync = make();

  std::unique_ptr<store::ContactsFolderSync> make() {
    auto inner = std::make_unique<tokens::FakeTokenStore>();
    fake = inner.get();
    return std::make_unique<store::ContactsFolderSync>(
        std::move(inner),
        [this](std::string_view address) -> std::optional<fs::path> {
          if (!address.ends_with("@a.test")) return std::nullopt;
          return store::mailbox_of_address(root.path(), address);
        },
        "mx.a.test", [this] { return clock; });
  }

  fs::path folder(const std::string& user = alice) const {
    return *store::mailbox_of_address(root.path(), user) / store::contacts_folder_name;
  }

  // The files in cur/ and new/ of the user's contacts folder.
  std::vector<fs::path> files(const std::string& user = alice) const {
    std::vector<fs::path> found;
    for (const char* part : {"cur", "new"}) {
      std::error_code error;
      for (const auto& entry : fs::directory_iterator(folder(user) / part, error)) {
        found.push_back(entry.path());
      }
    }
    std::sort(found.begin(), found.end());
    return found;
  }

  tokens::ContactMessage only_contact(const std::string& user = alice) const {
    const auto present = files(user);
    REQUIRE(present.size() == 1);
    const auto parsed = tokens::parse_contact_message(read_whole_file(present[0]));
    REQUIRE(parsed.contact);
    return *parsed.contact;
  }

  WalletToken wallet_token(const std::string& remote, std::int64_t created,
                           std::int64_t validity = 7 * contacts_day) const {
    const std::string hash = out_hash(alice, remote);
    return WalletToken{alice, remote,  foreign_token(hash, created, validity),
                       hash,  created, created + validity,
                       false, "header"};
  }

  IssuedToken issued_token(const std::string& remote, std::int64_t created) const {
    return IssuedToken{"1-created:" + std::to_string(created) + "-validity:31536000-hash:" +
                           tokens::base64_unpadded(tokens::pair_hash(remote, alice)) +
                           "-keyid:p1-secret:AAAA",
                       alice,
                       remote,
                       tokens::base64_unpadded(tokens::pair_hash(remote, alice)),
                       created,
                       created + 365 * contacts_day};
  }
};

}  // namespace

TEST_CASE("a wallet token creates the contact in COI/Contacts, durably named and seen",
          "[contacts_folder]") {
  SyncFixture fixture;
  const WalletToken token = fixture.wallet_token(bob, contacts_now);
  CHECK(fixture.sync->put_wallet(token));

  CHECK(fs::is_regular_file(fixture.folder() / "maildirfolder"));
  CHECK(fs::is_empty(fixture.folder() / "tmp"));
  const auto present = fixture.files();
  REQUIRE(present.size() == 1);
  const std::string name = present[0].filename().string();
  CHECK(present[0].parent_path().filename() == "cur");
  CHECK(name.ends_with(":2,S"));
  CHECK(name.find(".mx.a.test,S=" + std::to_string(fs::file_size(present[0])) + ":2,S") !=
        std::string::npos);

  const tokens::ContactMessage contact = fixture.only_contact();
  CHECK(contact.from_hashes == std::vector<std::string>{tokens::coi_from_hash_hex(bob)});
  CHECK(contact.tokens_out == std::vector<std::string>{token.token});
  CHECK(contact.tokens_in.empty());
  CHECK(contact.user == alice);
  CHECK(contact.addresses == std::vector<std::string>{bob});
  // The store call itself is the inner store's.
  CHECK(fixture.fake->find_wallet(alice, bob)->token == token.token);
}

TEST_CASE("each token change rewrites the one contact message; no change, no rewrite",
          "[contacts_folder]") {
  SyncFixture fixture;
  const WalletToken out = fixture.wallet_token(bob, contacts_now);
  fixture.sync->put_wallet(out);
  const fs::path first = fixture.files().at(0);

  const IssuedToken in = fixture.issued_token(bob, contacts_now);
  fixture.sync->add_issued(in);
  auto present = fixture.files();
  REQUIRE(present.size() == 1);
  CHECK(present[0] != first);  // a new message, the old one gone
  tokens::ContactMessage contact = fixture.only_contact();
  CHECK(contact.tokens_in == std::vector<std::string>{in.token});
  CHECK(contact.tokens_out == std::vector<std::string>{out.token});

  // In step already: the same file stays.
  CHECK(fixture.sync->sync_contact(alice, bob).empty());
  CHECK(fixture.files() == present);

  // A newer wallet token replaces the old one in the message.
  const WalletToken newer = fixture.wallet_token(bob, contacts_now + 60);
  fixture.sync->put_wallet(newer);
  CHECK(fixture.only_contact().tokens_out == std::vector<std::string>{newer.token});

  // An older one is refused by the store and changes nothing.
  present = fixture.files();
  CHECK_FALSE(fixture.sync->put_wallet(fixture.wallet_token(bob, contacts_now - 60)));
  CHECK(fixture.files() == present);

  // Another contact gets its own message.
  fixture.sync->put_wallet(fixture.wallet_token("carol@c.test", contacts_now));
  CHECK(fixture.files().size() == 2);
}

TEST_CASE("deleted tokens leave the message, and a message of ours with none left goes",
          "[contacts_folder]") {
  SyncFixture fixture;
  const WalletToken out = fixture.wallet_token(bob, contacts_now);
  const IssuedToken in = fixture.issued_token(bob, contacts_now);
  fixture.sync->put_wallet(out);
  fixture.sync->add_issued(in);

  CHECK(fixture.sync->delete_wallet(alice, bob, out.token));
  tokens::ContactMessage contact = fixture.only_contact();
  CHECK(contact.tokens_out.empty());
  CHECK(contact.tokens_in == std::vector<std::string>{in.token});

  CHECK(fixture.sync->delete_issued(in.pair_hash) == 1);  // REVSTOKEN deletes the pair's rows
  CHECK(fixture.files().empty());
}

TEST_CASE("a contact a client wrote keeps its body, fields and flags; only tokens change",
          "[contacts_folder]") {
  SyncFixture fixture;
  REQUIRE(store::make_subfolder(*store::mailbox_of_address(fixture.root.path(), alice),
                                store::contacts_folder_name));
  const std::string body = "<p class=\"p-name\">Bob Builder</p>\n";
  const std::string client =
      "From: <alice@a.test>\nChat-Content: contact\nCOI-Blocked: yes\nCOI-From-Hash: " +
      tokens::coi_from_hash_hex(bob) +
      "\nCOI-From-Hash: " + tokens::coi_from_hash_hex("bob@work.test") +
      "\nCOI-TokenOut: stale-token\n\n" + body;
  const fs::path client_file = fixture.folder() / "cur" / "1700000000.M1P1.client,S=10:2,FS";
  write_whole_file(client_file, client);

  const WalletToken out = fixture.wallet_token(bob, contacts_now);
  fixture.sync->put_wallet(out);
  auto present = fixture.files();
  REQUIRE(present.size() == 1);
  CHECK_FALSE(fs::exists(client_file));
  CHECK(present[0].filename().string().ends_with(":2,FS"));
  const std::string text = read_whole_file(present[0]);
  CHECK(text.ends_with("\n\n" + body));
  const tokens::ContactMessage contact = fixture.only_contact();
  CHECK(contact.blocked);
  CHECK(contact.tokens_out == std::vector<std::string>{out.token});
  CHECK(contact.from_hashes ==
        std::vector<std::string>{tokens::coi_from_hash_hex(bob),
                                 tokens::coi_from_hash_hex("bob@work.test")});

  // A token for the contact's other address joins the same message.
  const std::string work_hash = out_hash(alice, "bob@work.test");
  const WalletToken work{alice,     "bob@work.test", foreign_token(work_hash, contacts_now),
                         work_hash, contacts_now,    contacts_now + contacts_day,
                         false,     "header"};
  fixture.sync->put_wallet(work);
  CHECK(fixture.only_contact().tokens_out.size() == 2);

  // With no tokens left the client's contact stays, without token fields.
  fixture.sync->delete_wallet(alice, bob, out.token);
  fixture.sync->delete_wallet(alice, "bob@work.test", work.token);
  const tokens::ContactMessage left = fixture.only_contact();
  CHECK(left.tokens_out.empty());
  CHECK(left.blocked);
  CHECK(read_whole_file(fixture.files().at(0)).ends_with("\n\n" + body));
}

TEST_CASE("copies of one contact are merged into one, the client's copy first",
          "[contacts_folder]") {
  SyncFixture fixture;
  const WalletToken out = fixture.wallet_token(bob, contacts_now);
  fixture.sync->put_wallet(out);
  const fs::path ours = fixture.files().at(0);
  // A client's copy next to it (as a crash between adding and removing, or
  // a client's own APPEND, would leave), older than ours.
  const fs::path theirs = fixture.folder() / "new" / "1600000000.M1P1.client,S=1";
  write_whole_file(theirs, "To: alice@a.test\nChat-Content: contact\nCOI-From-Hash: " +
                               tokens::coi_from_hash_hex(bob) + "\n\nBob, from the client\n");
  fs::last_write_time(theirs, fs::last_write_time(ours) - std::chrono::hours(1));

  const IssuedToken in = fixture.issued_token(bob, contacts_now);
  fixture.sync->add_issued(in);
  const auto present = fixture.files();
  REQUIRE(present.size() == 1);
  const std::string text = read_whole_file(present[0]);
  CHECK(text.ends_with("\n\nBob, from the client\n"));
  const tokens::ContactMessage contact = fixture.only_contact();
  CHECK(contact.tokens_in == std::vector<std::string>{in.token});
  CHECK(contact.tokens_out == std::vector<std::string>{out.token});
}

TEST_CASE("expired tokens are not written, and remove_expired cleans their messages",
          "[contacts_folder]") {
  SyncFixture fixture;
  fixture.sync->put_wallet(
      fixture.wallet_token(bob, contacts_now - 2 * contacts_day, contacts_day));
  CHECK(fixture.files().empty());  // expired already: nothing to mirror, no folder
  CHECK_FALSE(fs::exists(fixture.folder()));

  fixture.sync->put_wallet(fixture.wallet_token("carol@c.test", contacts_now, contacts_day));
  CHECK(fixture.files().size() == 1);
  fixture.clock = contacts_now + 2 * contacts_day;
  CHECK(fixture.sync->remove_expired(fixture.clock, 0) == 2);
  CHECK(fixture.files().empty());
}

TEST_CASE("users whose mail is not in the built-in Maildir store are left alone",
          "[contacts_folder]") {
  SyncFixture fixture;
  WalletToken token = fixture.wallet_token(bob, contacts_now);
  token.local_address = "dora@lmtp.test";
  CHECK(fixture.sync->put_wallet(token));
  CHECK(fs::is_empty(fixture.root.path()));
  CHECK(fixture.fake->find_wallet("dora@lmtp.test", bob));
}

TEST_CASE("a failing store writes no message; a failing folder fails no store call",
          "[contacts_folder]") {
  SyncFixture fixture;
  fixture.fake->fail_next(1);
  CHECK_THROWS_AS(fixture.sync->put_wallet(fixture.wallet_token(bob, contacts_now)),
                  tokens::TokenStoreError);
  CHECK(fs::is_empty(fixture.root.path()));

  // The user's mailbox is a file: no folder can be made, the token is stored.
  fs::create_directories(fixture.root.path() / "a.test");
  write_whole_file(fixture.root.path() / "a.test" / "alice", "not a folder");
  CHECK(fixture.sync->put_wallet(fixture.wallet_token(bob, contacts_now)));
  CHECK(fixture.fake->find_wallet(alice, bob));
  CHECK_THAT(fixture.sync->sync_contact(alice, bob), Catch::Contains("cannot create"));
}

TEST_CASE("the folder reader skips links and dot files, and finds renamed files to remove",
          "[contacts_folder]") {
  TemporaryDirectory root;
  const fs::path folder = root.path() / ".COI.Contacts";
  REQUIRE(!store::make_maildir(folder));
  write_whole_file(root.path() / "outside", "secret\n");
  fs::create_symlink(root.path() / "outside", folder / "cur" / "link:2,S");
  write_whole_file(folder / "cur" / ".hidden", "x");
  write_whole_file(folder / "new" / "a", "message a\n");
  write_whole_file(folder / "cur" / "b:2,", "message b\n");

  const store::MaildirRead read = store::read_maildir_messages(folder);
  REQUIRE(read.messages.size() == 2);
  CHECK(read.messages[0].path.filename() == "b:2,");
  CHECK(read.messages[1].text == "message a\n");
  REQUIRE(read.problems.size() == 1);
  CHECK_THAT(read.problems[0], Catch::Contains("link:2,S"));

  // "a" moved from new/ to cur/ by an IMAP server after it was read.
  fs::rename(folder / "new" / "a", folder / "cur" / "a:2,S");
  const store::ReplaceResult replaced =
      store::replace_messages(folder, "host", "new message\n", "S", {folder / "new" / "a"});
  CHECK(replaced.error.empty());
  CHECK(replaced.removed == 1);
  CHECK_FALSE(fs::exists(folder / "cur" / "a:2,S"));
  CHECK(read_whole_file(replaced.added) == "new message\n");
  CHECK(fs::exists(root.path() / "outside"));
  CHECK(store::maildir_flags(replaced.added) == "S");

  // new/ replaced by a link to a folder elsewhere: not read.
  const fs::path elsewhere = root.path() / "elsewhere";
  fs::create_directories(elsewhere);
  write_whole_file(elsewhere / "victim", "not a mailbox file\n");
  fs::remove_all(folder / "new");
  fs::create_directory_symlink(elsewhere, folder / "new");
  const store::MaildirRead linked = store::read_maildir_messages(folder);
  for (const store::MaildirMessage& message : linked.messages) {
    CHECK(message.path.filename() != "victim");
  }
  CHECK_THAT(linked.problems.back(), Catch::Contains("not a folder"));
}

TEST_CASE("folder writers exclude each other through the lock", "[contacts_folder]") {
  TemporaryDirectory root;
  std::string error;
  UniqueFd first = store::lock_folder(root.path(), error);
  REQUIRE(first);
  // A second open file description cannot take it (flock is per open file,
  // so this holds across threads and processes alike).
  UniqueFd second(::open((root.path() / "stokend-contacts.lock").c_str(), O_RDWR | O_CLOEXEC));
  REQUIRE(second);
  CHECK(::flock(second.get(), LOCK_EX | LOCK_NB) != 0);
  first.reset();
  CHECK(::flock(second.get(), LOCK_EX | LOCK_NB) == 0);
}

TEST_CASE("mailbox paths refuse addresses that would leave the root", "[contacts_folder]") {
  const fs::path root = "/srv/mail";
  CHECK(store::mailbox_of_address(root, "Alice@A.Test") == fs::path("/srv/mail/a.test/alice"));
  CHECK_FALSE(store::mailbox_of_address(root, "../x@a.test"));
  CHECK_FALSE(store::mailbox_of_address(root, ".hidden@a.test"));
  CHECK_FALSE(store::mailbox_of_address(root, "a/b@a.test"));
  CHECK_FALSE(store::mailbox_of_address(root, "alice@.."));
  CHECK_FALSE(store::mailbox_of_address(root, "no-at-sign"));
}

TEST_CASE("mbox: messages survive the round trip, From lines quoted", "[mbox]") {
  const std::string first = "Subject: one\r\n\r\nFrom here on\r\n>From quoted\r\nend\r\n";
  const std::string second = "Subject: two\n\nbody\n\n";
  const std::string file = message::mbox_entry("alice@a.test", contacts_now, first) +
                           message::mbox_entry("alice@a.test", contacts_now, second);
  CHECK(file.starts_with("From alice@a.test Wed Nov 18 11:06:40 2026\n"));
  CHECK(file.find("\n>From here on\n>>From quoted\n") != std::string::npos);
  CHECK(message::looks_like_mbox(file));
  CHECK_FALSE(message::looks_like_mbox(first));

  const auto messages = message::split_mbox(file);
  REQUIRE(messages.size() == 2);
  CHECK(messages[0] == "Subject: one\n\nFrom here on\n>From quoted\nend\n");
  CHECK(messages[1] == second);
  CHECK(message::split_mbox("no separator\n").empty());
}
