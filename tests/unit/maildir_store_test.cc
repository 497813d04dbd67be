// Unit tests for the built-in Maildir mailstore and the fake mailstore.
#include "mta/store/maildir_store.h"

#include <stdlib.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/fake_mailstore.h"
#include "tests/support/small_file_system.h"
#include "tests/support/temporary_directory.h"

using stokend::testing::names_in;
using stokend::testing::TemporaryDirectory;

namespace fs = std::filesystem;
using namespace stokend;
using namespace stokend::store;
using namespace std::string_literals;

namespace {

// Every file below folder, as paths relative to it.
std::vector<std::string> files_below(const fs::path& folder) {
  std::vector<std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(folder)) {
    if (!entry.is_directory()) files.push_back(fs::relative(entry.path(), folder).string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

const std::string sample_message =
    "Received: from a ([192.0.2.1])\r\n\tby mx.example.org (stokend) with ESMTP id 1;\r\n"
    "\tSun, 22 Nov 2026 12:00:00 +0000\r\n"
    "From: alice@example.net\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nHello\r\n"
    "binary \0\xff bytes\r\n"s;

Recipient bob(bool chat_folder = false) { return Recipient{"bob", "example.org", chat_folder}; }

}  // namespace

TEST_CASE("maildir: a delivery lands in new/ with the exact bytes", "[maildir]") {
  TemporaryDirectory root;
  MaildirStore store(root.path(), "mx.example.org");
  const std::string message = sample_message + "\0tail"s;
  REQUIRE(message.find('\0') < message.find("\xff"));  // NUL and 8-bit bytes survive

  const DeliveryResult result = store.deliver(bob(), message);
  REQUIRE(result.status == DeliveryResult::Status::delivered);
  CHECK(result.detail.empty());

  const fs::path maildir = root.path() / "example.org" / "bob";
  CHECK(store.maildir_of(bob()) == maildir);
  REQUIRE(names_in(maildir / "new") == std::vector<std::string>{result.delivery_id});
  CHECK(stokend::testing::read_whole_file(maildir / "new" / result.delivery_id) == message);
  CHECK(names_in(maildir / "tmp").empty());
  CHECK(names_in(maildir / "cur").empty());
  CHECK(names_in(maildir) == std::vector<std::string>{"cur", "new", "tmp"});

  const std::regex unique_name(R"(\d+\.M\d{1,6}P\d+Q\d+\.mx\.example\.org,S=(\d+))");
  std::smatch match;
  REQUIRE(std::regex_match(result.delivery_id, match, unique_name));
  CHECK(match[1].str() == std::to_string(message.size()));
}

TEST_CASE("maildir: later deliveries reuse the mailbox", "[maildir]") {
  TemporaryDirectory root;
  MaildirStore store(root.path(), "mx.example.org");
  const auto first = store.deliver(bob(), "one\r\n");
  const auto second = store.deliver(bob(), "two\r\n");
  REQUIRE(first.status == DeliveryResult::Status::delivered);
  REQUIRE(second.status == DeliveryResult::Status::delivered);
  CHECK(first.delivery_id != second.delivery_id);
  CHECK(names_in(root.path() / "example.org" / "bob" / "new").size() == 2);
}

TEST_CASE("maildir: chat mail goes to the COI/Chats Maildir++ subfolder", "[maildir]") {
  TemporaryDirectory root;
  MaildirStore store(root.path(), "mx.example.org");

  const DeliveryResult result = store.deliver(bob(true), sample_message);
  REQUIRE(result.status == DeliveryResult::Status::delivered);

  const fs::path mailbox = root.path() / "example.org" / "bob";
  const fs::path chats = mailbox / ".COI.Chats";
  CHECK(store.maildir_of(bob(true)) == chats);
  CHECK(stokend::testing::read_whole_file(chats / "new" / result.delivery_id) == sample_message);
  CHECK(names_in(chats / "tmp").empty());
  CHECK(fs::is_directory(chats / "cur"));
  REQUIRE(fs::is_regular_file(chats / "maildirfolder"));
  CHECK(fs::file_size(chats / "maildirfolder") == 0);
  // The user's own Maildir exists too, empty: nothing went to the inbox.
  for (const char* part : {"tmp", "new", "cur"}) CHECK(names_in(mailbox / part).empty());
  CHECK_FALSE(fs::exists(mailbox / "maildirfolder"));
  CHECK(files_below(root.path()) ==
        std::vector<std::string>{"example.org/bob/.COI.Chats/maildirfolder",
                                 "example.org/bob/.COI.Chats/new/" + result.delivery_id});

  // A second chat delivery keeps the marker and adds one file.
  REQUIRE(store.deliver(bob(true), "again\r\n").status == DeliveryResult::Status::delivered);
  CHECK(names_in(chats / "new").size() == 2);
  CHECK(names_in(chats / "tmp").empty());
}

TEST_CASE("maildir: addresses that could leave the root are refused", "[maildir]") {
  TemporaryDirectory parent;
  const fs::path root = parent.path() / "mail";
  fs::create_directory(root);
  MaildirStore store(root, "mx.example.org");

  const std::vector<Recipient> unsafe = {
      {"..", "example.org", false},
      {".", "example.org", false},
      {"../../etc", "example.org", false},
      {"a/b", "example.org", false},
      {".hidden", "example.org", false},
      {"", "example.org", false},
      {std::string("a\0b", 3), "example.org", false},
      {"bob", "..", false},
      {"bob", ".", false},
      {"bob", "../outside", false},
      {"bob", "example.org/../..", false},
      {"bob", "", false},
      {"bob", std::string("x\0y", 3), false},
      {"..", "..", true},
  };
  for (const Recipient& recipient : unsafe) {
    CAPTURE(recipient.local_part, recipient.domain);
    const DeliveryResult result = store.deliver(recipient, sample_message);
    CHECK(result.status == DeliveryResult::Status::permanent_failure);
    CHECK(result.delivery_id.empty());
    CHECK_FALSE(result.detail.empty());
  }
  CHECK(names_in(root).empty());
  CHECK(names_in(parent.path()) == std::vector<std::string>{"mail"});
}

TEST_CASE("maildir: concurrent deliveries get unique files", "[maildir]") {
  TemporaryDirectory root;
  MaildirStore store(root.path(), "mx.example.org");
  MaildirStore second_store(root.path(), "mx.example.org");  // same process, same host
  constexpr int threads = 8;
  constexpr int per_thread = 25;

  std::mutex ids_mutex;
  std::set<std::string> ids;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        const std::string message =
            "thread " + std::to_string(t) + " message " + std::to_string(i) + "\r\n";
        MaildirStore& which = (t % 2 == 0) ? store : second_store;
        const DeliveryResult result = which.deliver(bob(i % 3 == 0), message);
        std::lock_guard lock(ids_mutex);  // also serialises Catch, which is not thread-safe
        CHECK(result.status == DeliveryResult::Status::delivered);
        ids.insert(result.delivery_id);
      }
    });
  }
  for (auto& worker : workers) worker.join();

  CHECK(ids.size() == static_cast<std::size_t>(threads * per_thread));
  const fs::path mailbox = root.path() / "example.org" / "bob";
  const auto inbox = names_in(mailbox / "new");
  const auto chats = names_in(mailbox / ".COI.Chats" / "new");
  CHECK(inbox.size() + chats.size() == static_cast<std::size_t>(threads * per_thread));
  CHECK(names_in(mailbox / "tmp").empty());
  CHECK(names_in(mailbox / ".COI.Chats" / "tmp").empty());
  for (const auto& name : inbox) {
    CHECK(stokend::testing::read_whole_file(mailbox / "new" / name).rfind("thread ", 0) == 0);
  }
}

TEST_CASE("maildir: a root that is a regular file gives a temporary failure", "[maildir]") {
  TemporaryDirectory parent;
  const fs::path root = parent.path() / "not-a-folder";
  { std::ofstream(root) << "x"; }
  MaildirStore store(root, "mx.example.org");

  for (bool chat : {false, true}) {
    const DeliveryResult result = store.deliver(bob(chat), sample_message);
    CHECK(result.status == DeliveryResult::Status::temporary_failure);
    CHECK(result.delivery_id.empty());
    CHECK(result.detail.find("mkdir") != std::string::npos);
    CHECK(result.detail.find("Not a directory") != std::string::npos);
  }
  CHECK(names_in(parent.path()) == std::vector<std::string>{"not-a-folder"});
  CHECK(stokend::testing::read_whole_file(root) == "x");
}

TEST_CASE("maildir: a broken mailbox gives a temporary failure and leaves nothing", "[maildir]") {
  TemporaryDirectory root;
  MaildirStore store(root.path(), "mx.example.org");
  const fs::path mailbox = root.path() / "example.org" / "bob";
  fs::create_directories(mailbox / "tmp");
  { std::ofstream(mailbox / "new") << "not a folder"; }

  const DeliveryResult result = store.deliver(bob(), sample_message);
  CHECK(result.status == DeliveryResult::Status::temporary_failure);
  CHECK_FALSE(result.detail.empty());
  CHECK(names_in(mailbox / "tmp").empty());
  CHECK(stokend::testing::read_whole_file(mailbox / "new") == "not a folder");
}

TEST_CASE("maildir: the hostname is escaped in file names", "[maildir]") {
  TemporaryDirectory root;
  MaildirStore store(root.path(), "odd/host:name");
  const DeliveryResult result = store.deliver(bob(), "x\r\n");
  REQUIRE(result.status == DeliveryResult::Status::delivered);
  CHECK(result.delivery_id.find(".odd\\057host\\072name,S=3") != std::string::npos);
  CHECK(fs::exists(root.path() / "example.org" / "bob" / "new" / result.delivery_id));
}

TEST_CASE("fake mailstore records deliveries and fails on request", "[maildir][fake]") {
  FakeMailstore fake;
  fake.fail_next(2);
  CHECK(fake.deliver(bob(), "a").status == DeliveryResult::Status::temporary_failure);
  CHECK(fake.deliver(bob(), "b").status == DeliveryResult::Status::temporary_failure);
  const DeliveryResult delivered = fake.deliver(bob(true), "c");
  CHECK(delivered.status == DeliveryResult::Status::delivered);
  fake.fail_next(1, DeliveryResult::Status::permanent_failure);
  CHECK(fake.deliver(bob(), "d").status == DeliveryResult::Status::permanent_failure);

  CHECK(fake.attempt_count() == 4);
  REQUIRE(fake.delivery_count() == 1);
  const auto deliveries = fake.deliveries();
  CHECK(deliveries[0].message == "c");
  CHECK(deliveries[0].recipient.chat_folder);
  CHECK(deliveries[0].delivery_id == delivered.delivery_id);
}

TEST_CASE("maildir: a delivery that fails for space leaves nothing and is temporary",
          "[maildir][full_disk]") {
  stokend::testing::SmallFileSystem disk(512);
  if (!disk.mounted()) {
    WARN("skipped: " << disk.why_not());
    return;
  }
  const fs::path root = disk.path() / "mail";
  MaildirStore store(root, "mx.example.org");
  const fs::path maildir = root / "example.org" / "bob";
  REQUIRE(store.deliver(bob(), sample_message).status == DeliveryResult::Status::delivered);
  const std::vector<std::string> before = files_below(maildir);
  REQUIRE(disk.fill());
  const std::string large(64 * 1024, 'x');
  const DeliveryResult failed = store.deliver(bob(), sample_message + large);
  CHECK(failed.status == DeliveryResult::Status::temporary_failure);
  CHECK(failed.detail.find("No space left on device") != std::string::npos);
  // Not half-written: no partial file in new/ or cur/, none left in tmp/.
  CHECK(files_below(maildir) == before);
  CHECK(names_in(maildir / "tmp").empty());
  // Once space returns, the retry delivers it.
  disk.make_room();
  const DeliveryResult retried = store.deliver(bob(), sample_message + large);
  CHECK(retried.status == DeliveryResult::Status::delivered);
  CHECK(names_in(maildir / "new").size() == 2);
}
