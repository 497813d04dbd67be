// Spool benchmark: fills a spool with queued 1 KB messages through the
// group-committed write path, then times the start-up scan that rebuilds the
// queue from it (goal: 1,000,000 messages in under 5 s with a cold page
// cache).
//
// Built with the tests (CMake target queue_scan, beside token_verify):
//
//   build/queue_scan [messages] [folder] [concurrent requests]
//
// Defaults: 100000 messages in a fresh temporary folder ("-"), removed
// afterwards, 256 requests outstanding. A given folder is kept; if it
// already holds a spool, it is only scanned. A third of the messages
// also get a state record, as deferred mail does. Reports store throughput, group-commit batch
// sizes and fdatasync count, and the scan time three times: the first with a cold page cache
// (the benchmark syncs and drops the caches when it may, i.e. as root, as after a machine
// restart, and says so when it may not), then twice warm (as after a daemon restart).
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

#include "queue/spool.h"
#include "tests/support/manual_event_loop.h"

namespace {

using namespace stokend;
using namespace stokend::queue;
using Seconds = std::chrono::duration<double>;

std::string message_body(std::size_t index) {
  std::string body =
      "Received: from client.example (client.example [192.0.2.1])\r\n"
      "\tby mx.example.org with ESMTP id " +
      std::to_string(index) +
      "\r\n"
      "From: sender@example.net\r\nTo: rcpt@example.org\r\n"
      "Subject: benchmark message " +
      std::to_string(index) +
      "\r\n"
      "Message-ID: <" +
      std::to_string(index) + "@example.net>\r\n\r\n";
  while (body.size() < 1022) body += "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNO\r\n";
  body.resize(1022);
  body += "\r\n";
  return body;
}

// Empties the page cache so that the next scan reads from the disk. Only
// root may; false otherwise.
bool drop_page_cache() {
  ::sync();
  std::FILE* control = std::fopen("/proc/sys/vm/drop_caches", "w");
  if (!control) return false;
  const bool written = std::fputs("3\n", control) >= 0;
  return std::fclose(control) == 0 && written;
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t count = argc > 1 ? std::stoul(argv[1]) : 100000;
  std::filesystem::path folder;
  bool remove_folder = false;
  if (argc > 2 && std::string_view(argv[2]) != "-") {
    folder = argv[2];
  } else {
    std::string pattern = (std::filesystem::temp_directory_path() / "queue-scan-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) return 1;
    folder = pattern;
    remove_folder = true;
  }
  spdlog::set_level(spdlog::level::warn);

  ManualEventLoop loop(std::chrono::system_clock::now());
  SpoolOptions options;
  options.directory = folder;
  const bool scan_only = std::filesystem::exists(folder / "segments");
  if (!scan_only) {
    Spool spool(loop, options);
    if (spool.open().error) return 1;
    // Up to `window` requests outstanding at once, like that many SMTP
    // sessions waiting for their 250.
    const std::size_t window = argc > 3 ? std::max<std::size_t>(1, std::stoul(argv[3])) : 256;
    std::size_t submitted = 0;
    std::size_t completed = 0;
    std::size_t failed = 0;
    const auto start = std::chrono::steady_clock::now();
    while (completed < count) {
      while (submitted < count && submitted - completed < window) {
        QueuedMessage message;
        message.id = spool.new_message_id();
        message.envelope.sender = "sender@example.net";
        message.envelope.recipients = {"rcpt@example.org"};
        message.arrival = loop.now();
        message.data = std::make_shared<const std::string>(message_body(submitted));
        message.size = message.data->size();
        const bool deferred = submitted % 3 == 0;
        spool.store(message, [&, id = message.id, deferred](std::error_code error) {
          if (error) ++failed;
          if (!deferred || error) {
            ++completed;
            return;
          }
          MessageState state;
          state.recipients.resize(1);
          state.recipients[0].attempts = 1;
          state.recipients[0].last_reply = "451 4.7.1 Greylisted, try again later";
          state.recipients[0].next_attempt = loop.now() + std::chrono::minutes(5);
          spool.record_state(id, state, [&](std::error_code error) {
            if (error) ++failed;
            ++completed;
          });
        });
        ++submitted;
      }
      loop.run_until([&] {
        return completed >= count || submitted - completed < std::max<std::size_t>(1, window / 2);
      });
    }
    const double fill = Seconds(std::chrono::steady_clock::now() - start).count();
    const Spool::Statistics statistics = spool.statistics();
    std::printf("stored %zu messages (%zu failed) in %.2f s: %.0f messages/s\n", count, failed,
                fill, count / fill);
    std::printf(
        "group commit: %zu requests in %zu batches (%.1f per batch, largest %zu), "
        "%zu fdatasync calls\n",
        statistics.requests, statistics.batches,
        static_cast<double>(statistics.requests) / statistics.batches, statistics.largest_batch,
        statistics.data_syncs);
    std::printf("spool: %zu segments, %.1f MB\n", statistics.segments,
                statistics.bytes / 1048576.0);
  }

  for (int round = 1; round <= 3; ++round) {
    const char* cache = "warm";
    if (round == 1) cache = drop_page_cache() ? "cold" : "warm (cannot drop the page cache)";
    ManualEventLoop fresh(std::chrono::system_clock::now());
    Spool spool(fresh, options);
    const auto start = std::chrono::steady_clock::now();
    RecoveryReport report = spool.open();
    const double scan = Seconds(std::chrono::steady_clock::now() - start).count();
    std::printf("scan %d, page cache %s: %zu messages, %zu records, %zu segments in %.3f s\n",
                round, cache, report.messages.size(), report.records_read, report.segments_read,
                scan);
  }
  if (remove_folder) std::filesystem::remove_all(folder);
  return 0;
}
