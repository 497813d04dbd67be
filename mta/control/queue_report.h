// The text stokenctl shows for the queue: a mailq-style listing and the
// details of one message.
//
// Listing, one block per message, like Postfix's mailq:
//   -Queue ID-           --Size-- ----Arrival Time---- -Sender/Recipient-------
//   0189c5f3a2b4c000001!     1234 Tue Mar 10 12:00:00  alice@example.test
//                                    (connect to 127.0.0.1:2525 failed: ...)
//                                                      bob@example.org
//   (blank line)
//   -- 1 message, 1 pending recipient
// The id is marked '!' when held, else '*' while a delivery is running. Only
// pending recipients are listed, each under its last reply. An empty queue
// reads "Mail queue is empty".
//
// Contract: pure functions. Times are shown in the local time zone. Text
// that came from outside (addresses, replies, headers) passes through
// printable(), so a message cannot send control sequences to the
// administrator's terminal.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "queue/queue_manager.h"

namespace stokend::control {

// Replaces control characters (C0 except tab, DEL, and UTF-8 encoded C1)
// with \xNN escapes.
std::string printable(std::string_view text);

std::string listing_time(queue::TimePoint time);  // "Tue Mar 10 12:00:00"
std::string full_time(queue::TimePoint time);     // "2025-03-10 12:00:00 +0100"

std::string listing_heading();
std::string listing_entry(const queue::MessageDetails& message);  // ends with a blank line
std::string listing_summary(std::size_t messages, std::size_t pending_recipients);
std::string empty_queue_text();

std::string message_report(const queue::MessageDetails& message);

// "1 message", "2 messages".
std::string count_of(std::size_t count, std::string_view singular, std::string_view plural);

}  // namespace stokend::control
