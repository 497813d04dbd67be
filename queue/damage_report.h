// Damage reports: what the spool found damaged at start, for forensics.
//
// When recovery quarantines a damaged segment it writes, next to it in
// quarantine/, "<quarantined file name>.damage": one line per damaged
// stretch of the file (or per record that can still be told apart in it),
// saying where it is, what could still be read there, unverified, and what
// became of it. `stokenctl queue damaged` lists them.
//
// Line format (fields separated by one space, in this order, the bracketed
// ones present only when readable):
//   segment=<name> file=<quarantined name> offset=<n> length=<n>
//   record=<message|state|removal|header|unknown> [id=<id>] [sender=<addr>]
//   [recipients=<addr>,<addr>...] [recipients_incomplete=yes] outcome=<outcome>
// Values are escaped: every byte outside '!'..'~', and '%', ',' and '=', is
// written as %XX (upper-case hex). An empty sender (the null reverse-path)
// is "sender=".
//
// Contract: format_damage_line() writes one line (no newline) that
// parse_damage_line() reads back to the same fields; parse_damage_line()
// never throws and returns nothing for any line not of this form.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stokend::queue {

inline constexpr std::string_view damage_report_suffix = ".damage";

// What became of a damaged record.
enum class DamageOutcome {
  lost,           // a message record with no intact copy: the message is lost
  recovered,      // a message record, but an intact copy of it was read
  removed,        // a message record of a message removed later anyway
  earlier_state,  // a state record: the message's earlier state is used
  removal_lost,   // a removal record: the message is back with its last state
  not_needed,     // a state or removal of a message no longer queued
  header,         // the segment header: the records behind it were read anyway
  unreadable,     // nothing readable: whatever was there is lost
};

struct DamagedRecord {
  std::string segment;  // the segment's file name
  std::string file;     // its name in quarantine/ (empty while not moved there)
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  std::string record;  // message, state, removal, header or unknown
  std::string id;      // empty when unreadable
  std::optional<std::string> sender;
  std::vector<std::string> recipients;
  bool recipients_incomplete = false;
  DamageOutcome outcome = DamageOutcome::unreadable;
};

std::string_view outcome_name(DamageOutcome outcome);
std::string format_damage_line(const DamagedRecord& damaged);
std::optional<DamagedRecord> parse_damage_line(std::string_view line);
// One readable sentence for the log and stokenctl, e.g. "message 0123... from
// <a@example.org> to <b@example.net> at offset 120 of 0000000000000002.seg
// (310 bytes): lost".
std::string describe(const DamagedRecord& damaged);

}  // namespace stokend::queue
