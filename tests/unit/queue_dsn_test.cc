// Unit tests for delivery status notifications (queue/dsn.h).
#include <catch2/catch.hpp>
#include <string>

#include "queue/dsn.h"

using namespace stokend;
using namespace stokend::queue;

namespace {

const TimePoint arrival = TimePoint(std::chrono::seconds(1'800'000'000));

DsnReport sample_report() {
  DsnReport report;
  report.reporting_host = "mx.example.org";
  report.message_id = "0001@mx.example.org";
  report.created = arrival + std::chrono::hours(1);
  report.original_sender = "alice@example.org";
  report.original_envelope_id = "id 1+x";
  report.arrival = arrival;
  report.original_message =
      "Received: from a by b\r\nSubject: Lunch\r\nFrom: alice@example.org\r\n\r\nThe body "
      "stays out.\r\n";
  DsnRecipient failed;
  failed.address = "bob@example.net";
  failed.action = DsnAction::failed;
  failed.status = "5.1.1";
  failed.diagnostic = "550 5.1.1 <bob@example.net>: Recipient address rejected";
  failed.last_attempt = arrival + std::chrono::minutes(1);
  report.recipients.push_back(failed);
  return report;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t found = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
    ++found;
  }
  return found;
}

bool only_crlf_line_endings(const std::string& text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) return false;
    if (text[i] == '\r' && (i + 1 == text.size() || text[i + 1] != '\n')) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("dsn status comes from the reply's enhanced code when it fits", "[queue]") {
  CHECK(dsn_status(RecipientStatus::failed, "550 5.1.1 no such user") == "5.1.1");
  CHECK(dsn_status(RecipientStatus::failed, "550-5.7.26 unauthenticated") == "5.7.26");
  CHECK(dsn_status(RecipientStatus::failed, "550 no such user") == "5.0.0");
  CHECK(dsn_status(RecipientStatus::failed, "451 4.7.1 later") == "5.0.0");  // wrong class
  CHECK(dsn_status(RecipientStatus::failed, "") == "5.0.0");
  CHECK(dsn_status(RecipientStatus::failed, "550 5.1.1x") == "5.0.0");
  CHECK(dsn_status(RecipientStatus::expired, "451 4.4.1 no answer") == "4.4.1");
  CHECK(dsn_status(RecipientStatus::expired, "connect: Connection refused") == "4.4.7");
  CHECK(dsn_status(RecipientStatus::pending, "421 4.3.2 busy") == "4.3.2");
  CHECK(dsn_status(RecipientStatus::pending, "") == "4.0.0");
}

TEST_CASE("dsn is a multipart/report with the RFC 3464 fields", "[queue]") {
  const std::string dsn = build_delivery_status_notification(sample_report());
  INFO(dsn);
  CHECK(only_crlf_line_endings(dsn));
  CHECK(dsn.find("From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n") == 0);
  CHECK(dsn.find("\r\nTo: <alice@example.org>\r\n") != std::string::npos);
  CHECK(dsn.find("\r\nSubject: Undelivered Mail Returned to Sender\r\n") != std::string::npos);
  CHECK(dsn.find("\r\nMessage-ID: <0001@mx.example.org>\r\n") != std::string::npos);
  CHECK(dsn.find("\r\nAuto-Submitted: auto-replied\r\n") != std::string::npos);
  CHECK(dsn.find("\r\nMIME-Version: 1.0\r\n") != std::string::npos);
  CHECK(dsn.find("Content-Type: multipart/report; report-type=delivery-status;") !=
        std::string::npos);
  CHECK(dsn.find("Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; "
                 "mx.example.org\r\n") != std::string::npos);
  CHECK(dsn.find("\r\nOriginal-Envelope-Id: id+201+2Bx\r\n") != std::string::npos);
  CHECK(dsn.find("\r\nArrival-Date: ") != std::string::npos);
  CHECK(dsn.find("\r\n\r\nFinal-Recipient: rfc822; bob@example.net\r\nAction: failed\r\n"
                 "Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 <bob@example.net>:") !=
        std::string::npos);
  CHECK(dsn.find("\r\nLast-Attempt-Date: ") != std::string::npos);
  CHECK(dsn.find("Content-Type: text/rfc822-headers\r\n\r\nReceived: from a by b\r\nSubject: "
                 "Lunch\r\n") != std::string::npos);
  CHECK(dsn.find("The body stays out") == std::string::npos);
  CHECK(dsn.find("Will-Retry-Until") == std::string::npos);
  // Three parts and a closing delimiter.
  const std::size_t boundary_start = dsn.find("boundary=\"") + 10;
  const std::string boundary =
      dsn.substr(boundary_start, dsn.find('"', boundary_start) - boundary_start);
  CHECK(count(dsn, "\r\n--" + boundary + "\r\n") == 3);
  CHECK(dsn.ends_with("\r\n--" + boundary + "--\r\n"));
}

TEST_CASE("dsn delay warning says delayed and until when it retries", "[queue]") {
  DsnReport report = sample_report();
  report.recipients[0].action = DsnAction::delayed;
  report.recipients[0].status = "4.4.1";
  report.recipients[0].diagnostic = "connect to mx.example.net: Connection refused";
  report.recipients[0].will_retry_until = arrival + std::chrono::hours(120);
  const std::string dsn = build_delivery_status_notification(report);
  CHECK(dsn.find("Subject: Delayed Mail (still being retried)") != std::string::npos);
  CHECK(dsn.find("\r\nAction: delayed\r\nStatus: 4.4.1\r\n") != std::string::npos);
  CHECK(dsn.find("\r\nDiagnostic-Code: X-Stokend; connect to mx.example.net:") !=
        std::string::npos);
  CHECK(dsn.find("\r\nWill-Retry-Until: ") != std::string::npos);
}

TEST_CASE("dsn cleans and folds hostile replies", "[queue]") {
  DsnReport report = sample_report();
  report.recipients[0].diagnostic = "550 5.7.1 evil\r\nBcc: victim@example.com\r\n\r\n--" +
                                    std::string(3000, 'A') + " " + std::string(200, 'b') +
                                    " \x01\xff tail";
  const std::string dsn = build_delivery_status_notification(report);
  CHECK(only_crlf_line_endings(dsn));
  CHECK(dsn.find("\r\nBcc:") == std::string::npos);
  for (std::size_t start = 0, end; (end = dsn.find("\r\n", start)) != std::string::npos;
       start = end + 2) {
    CHECK(end - start <= 998);  // RFC 5322 §2.1.1
  }
}

TEST_CASE("dsn uses the RFC 6533 types for internationalised addresses", "[queue]") {
  DsnReport report = sample_report();
  report.recipients[0].address = "jöran@exämple.se";
  const std::string dsn = build_delivery_status_notification(report);
  CHECK(dsn.find("Content-Type: message/global-delivery-status") != std::string::npos);
  CHECK(dsn.find("Final-Recipient: utf-8; jöran@exämple.se") != std::string::npos);
  CHECK(dsn.find("charset=utf-8") != std::string::npos);
}

TEST_CASE("dsn is never sent to a null sender nor about a notification", "[queue]") {
  QueuedMessage message;
  message.envelope.sender = "alice@example.org";
  CHECK(may_notify(message));
  message.envelope.sender.clear();
  CHECK_FALSE(may_notify(message));
  message.envelope.sender = "alice@example.org";
  message.bounce = true;
  CHECK_FALSE(may_notify(message));
}

TEST_CASE("dsn: a success report names the ORCPT and carries the headers", "[queue][dsn]") {
  DsnReport report = sample_report();
  report.full_message = true;  // RET=FULL applies to failure reports only
  report.recipients[0].action = DsnAction::delivered;
  report.recipients[0].status = "2.0.0";
  report.recipients[0].diagnostic = "250 2.0.0 Saved 1234.M1.host";
  report.recipients[0].original_type = "rfc822";
  report.recipients[0].original_address = "Bob+Sales@example.net";
  DsnRecipient relayed;
  relayed.address = "carol@example.com";
  relayed.action = DsnAction::relayed;
  relayed.status = "2.0.0";
  relayed.diagnostic = "250 2.0.0 Ok: queued as 4F2";
  report.recipients.push_back(relayed);
  const std::string dsn = build_delivery_status_notification(report);
  INFO(dsn);
  CHECK(dsn.find("Subject: Successful Mail Delivery Report\r\n") != std::string::npos);
  CHECK(dsn.find("\r\nOriginal-Recipient: rfc822; Bob+Sales@example.net\r\n"
                 "Final-Recipient: rfc822; bob@example.net\r\nAction: delivered\r\n"
                 "Status: 2.0.0\r\n") != std::string::npos);
  CHECK(dsn.find("\r\nFinal-Recipient: rfc822; carol@example.com\r\nAction: relayed\r\n") !=
        std::string::npos);
  CHECK(dsn.find("relayed to a system that does not report delivery") != std::string::npos);
  CHECK(dsn.find("Content-Type: text/rfc822-headers") != std::string::npos);
  CHECK(dsn.find("The body stays out.") == std::string::npos);
  CHECK(only_crlf_line_endings(dsn));
}

TEST_CASE("dsn: RET=FULL returns the whole message in a failure report", "[queue][dsn]") {
  DsnReport report = sample_report();
  report.full_message = true;
  const std::string dsn = build_delivery_status_notification(report);
  INFO(dsn);
  CHECK(dsn.find("Content-Type: message/rfc822\r\n\r\nReceived: from a by b\r\n") !=
        std::string::npos);
  CHECK(dsn.find("The body stays out.") != std::string::npos);
  CHECK(dsn.find("text/rfc822-headers") == std::string::npos);
  CHECK(dsn.find("(headers only)") == std::string::npos);

  report.full_message = false;
  const std::string headers_only = build_delivery_status_notification(report);
  CHECK(headers_only.find("The body stays out.") == std::string::npos);
  CHECK(headers_only.find("Content-Type: text/rfc822-headers\r\n") != std::string::npos);
  CHECK(headers_only.find("Original-Recipient") == std::string::npos);
}
