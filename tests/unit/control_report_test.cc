// The queue texts stokenctl shows: the mailq-style listing and the details
// of one message.
#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "mta/control/queue_report.h"

using namespace stokend;
using namespace stokend::control;
using namespace std::chrono_literals;
using stokend::queue::MessageDetails;
using stokend::queue::RecipientStatus;
using stokend::queue::TimePoint;

namespace {

const TimePoint arrival = TimePoint(std::chrono::sys_days(std::chrono::year(2025) / 3 / 10));

MessageDetails sample_message() {
  MessageDetails message;
  message.summary.id = "0189c5f3a2b4c0000001";
  message.summary.sender = "alice@example.org";
  message.summary.arrival = arrival;
  message.summary.size = 1234;
  message.summary.recipients = 3;
  message.summary.pending = 2;
  message.summary.next_attempt = arrival + 1h;
  message.recipients = {"bob@example.net", "carol@example.net", "dave@example.net"};
  message.state.recipients.resize(3);
  message.state.recipients[0].attempts = 1;
  message.state.recipients[0].last_attempt = arrival;
  message.state.recipients[0].next_attempt = arrival + 1h;
  message.state.recipients[0].last_reply = "451 4.4.1 connect to 192.0.2.1 failed";
  message.state.recipients[1].status = RecipientStatus::delivered;
  message.state.recipients[1].attempts = 1;
  message.state.recipients[1].last_reply = "250 2.0.0 Ok";
  message.state.recipients[2].next_attempt = arrival;
  message.headers = "From: alice@example.org\r\nSubject: Hello\r\n";
  return message;
}

}  // namespace

TEST_CASE("a listing entry shows the message and its pending recipients", "[control]") {
  const MessageDetails message = sample_message();
  const std::string indent(52, ' ');
  const std::string expected = "0189c5f3a2b4c0000001      1234 " + listing_time(arrival) +
                               std::string(20 - listing_time(arrival).size(), ' ') +
                               " alice@example.org\n" + indent +
                               "(451 4.4.1 connect to 192.0.2.1 failed)\n" + indent +
                               "bob@example.net\n" + indent + "dave@example.net\n\n";
  CHECK(listing_entry(message) == expected);
  // The heading's columns line up with the entries'.
  CHECK(listing_heading().find("-Sender/Recipient-") == 52);
  CHECK(listing_heading().find("--Size--") == 22);
}

TEST_CASE("a listing entry marks held and in-flight messages", "[control]") {
  MessageDetails message = sample_message();
  message.summary.in_flight = true;
  CHECK(listing_entry(message).starts_with("0189c5f3a2b4c0000001* "));
  message.summary.held = true;
  CHECK(listing_entry(message).starts_with("0189c5f3a2b4c0000001! "));
  message.summary.sender.clear();
  CHECK(listing_entry(message).find(" MAILER-DAEMON\n") != std::string::npos);
}

TEST_CASE("listing summary and empty queue read like mailq", "[control]") {
  CHECK(listing_summary(1, 1) == "-- 1 message, 1 pending recipient\n");
  CHECK(listing_summary(3, 0) == "-- 3 messages, 0 pending recipients\n");
  CHECK(empty_queue_text() == "Mail queue is empty\n");
  CHECK(count_of(2, "message", "messages") == "2 messages");
}

TEST_CASE("times are shown in a fixed shape", "[control]") {
  CHECK(listing_time(arrival).size() == 19);  // "Mon Mar 10 00:00:00"
  const std::string full = full_time(arrival);
  REQUIRE(full.size() == 25);  // "2025-03-10 00:00:00 +0000"
  CHECK(full[4] == '-');
  CHECK(full[19] == ' ');
  CHECK((full[20] == '+' || full[20] == '-'));
}

TEST_CASE("a message report holds the envelope, each recipient and the headers", "[control]") {
  const std::string report = message_report(sample_message());
  CHECK(
      report.starts_with("id:                 0189c5f3a2b4c0000001\n"
                         "state:              queued\n"));
  CHECK(report.find("size:               1234 bytes\n") != std::string::npos);
  CHECK(report.find("sender:             alice@example.org\n") != std::string::npos);
  CHECK(report.find("recipients:         3, 2 pending\n") != std::string::npos);
  CHECK(report.find("next attempt:       " + full_time(arrival + 1h) + "\n") != std::string::npos);
  CHECK(report.find("\nrecipient:          bob@example.net\n"
                    "  status:           pending\n"
                    "  attempts:         1\n"
                    "  last attempt:     " +
                    full_time(arrival) +
                    "\n"
                    "  next attempt:     " +
                    full_time(arrival + 1h) +
                    "\n"
                    "  last reply:       451 4.4.1 connect to 192.0.2.1 failed\n") !=
        std::string::npos);
  CHECK(report.find("\nrecipient:          carol@example.net\n"
                    "  status:           delivered\n"
                    "  attempts:         1\n"
                    "  last reply:       250 2.0.0 Ok\n") != std::string::npos);
  CHECK(report.ends_with("\nheader section:\nFrom: alice@example.org\nSubject: Hello\n"));
}

TEST_CASE("a message report says held, null sender and unreadable headers", "[control]") {
  MessageDetails message = sample_message();
  message.summary.held = true;
  message.summary.in_flight = true;
  message.summary.sender.clear();
  message.headers.clear();
  message.state.recipients[2].status = RecipientStatus::failed;
  message.state.recipients[2].failure_reported = true;
  const std::string report = message_report(message);
  CHECK(report.find("state:              held, delivery in progress\n") != std::string::npos);
  CHECK(report.find("sender:             <>\n") != std::string::npos);
  CHECK(report.find("next attempt:       none while held\n") != std::string::npos);
  CHECK(report.find("  status:           failed, reported to the sender\n") != std::string::npos);
  CHECK(report.ends_with("header section:\n(unreadable)\n"));
}

TEST_CASE("text from outside cannot reach the terminal as control characters", "[control]") {
  CHECK(printable("plain text\twith tab") == "plain text\twith tab");
  CHECK(printable("bell\a and \x1b[31mred") == "bell\\x07 and \\x1b[31mred");
  CHECK(printable("line\r\nbreak") == "line\\x0d\\x0abreak");
  CHECK(printable("del\x7f") == "del\\x7f");
  CHECK(printable("csi \xc2\x9b and \xc3\xa9") == "csi \\xc2\\x9b and \xc3\xa9");
  MessageDetails message = sample_message();
  message.headers = "Subject: \x1b]0;owned\a\r\n";
  CHECK(message_report(message).ends_with("Subject: \\x1b]0;owned\\x07\n"));
}
