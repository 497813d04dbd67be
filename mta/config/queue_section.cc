// Reader of the queue section: retry schedule, concurrency and spool
// settings (defaults in queue/queue_defaults.h). See config_reader.h.
#include <charconv>
#include <limits>

#include "mta/config/config_reader.h"

namespace stokend::config_reading {

void ConfigReader::read_queue(const Field& field, QueueConfig& queue) {
  // A plain decimal number (2, 1.5, 0.25) from minimum to maximum, the
  // maximum itself included or not. No exponent, inf or nan: what the
  // operator reads back should look like what it means.
  constexpr double unbounded = std::numeric_limits<double>::max();
  auto number = [this](double& target, double minimum, double maximum, bool maximum_allowed,
                       std::string_view range) {
    return [this, &target, minimum, maximum, maximum_allowed, range](const Field& key_field) {
      const std::string text = key_field.value.IsScalar() ? key_field.value.Scalar() : "";
      double value = 0;
      const auto [end, status] =
          std::from_chars(text.data(), text.data() + text.size(), value, std::chars_format::fixed);
      // Written so that a nan fails every comparison and is refused.
      const bool in_range =
          value >= minimum && (value < maximum || (maximum_allowed && value == maximum));
      if (text.empty() || status != std::errc() || end != text.data() + text.size() || !in_range) {
        error_at(key_field.value_mark(), key_field.setting + ": expected a number " +
                                             std::string(range) + ", got " +
                                             describe(key_field.value));
        return;
      }
      target = value;
    };
  };
  // Spool segments (queue/spool.h). Below 1M a segment holds only a few
  // messages, and every new one costs a file creation, an fsync and a folder
  // fsync on the writer thread that every acceptance waits for. Above 1G a
  // sealed segment keeps its space until its last needed record is gone or
  // it falls under the compaction threshold, so up to that much disk stays
  // taken by messages long delivered, and a compaction copies up to
  // compaction_threshold of it in one batch, stalling acceptance meanwhile.
  bool delay_warning_given = false;
  auto delay_warning = [&, reader = duration_into(queue.delay_warning_after, true)](
                           const Field& key_field) {
    if (delay_warning_given) {
      error_at(key_field.value_mark(),
               key_field.setting +
                   ": delay_warning_time and delay_warning_after name the same setting; give one");
      return;
    }
    delay_warning_given = true;
    reader(key_field);
  };
  constexpr std::size_t min_segment_size = std::size_t{1} << 20;
  constexpr std::size_t max_segment_size = std::size_t{1} << 30;
  read_map(field.value, field.setting, field.value_mark(),
           {{"first_retry", duration_into(queue.first_retry, false)},
            {"max_retry_interval", duration_into(queue.max_retry_interval, false)},
            {"lifetime", duration_into(queue.lifetime, false)},
            // Postfix's name, and the older one: the same setting, given once.
            {"delay_warning_time", delay_warning},
            {"delay_warning_after", delay_warning},
            {"max_concurrent_deliveries",
             [&](const Field& key_field) {
               if (const auto number = read_positive_integer(key_field)) {
                 queue.max_concurrent_deliveries = static_cast<std::size_t>(*number);
               }
             }},
            {"backoff_factor",
             number(queue.backoff_factor, 1.0, unbounded, true, "of at least 1 (e.g. 2 or 1.5)")},
            // The scheduler shortens an interval by up to this fraction of it
            // (queue/scheduler.h); it clamps to 0 .. 1, so refuse what it would
            // silently change.
            {"jitter", number(queue.jitter, 0.0, 1.0, true, "from 0 to 1 (e.g. 0.2)")},
            {"segment_size",
             [&](const Field& key_field) {
               const auto size = read_size(key_field);
               if (!size) return;
               if (*size < min_segment_size || *size > max_segment_size) {
                 error_at(key_field.value_mark(), key_field.setting +
                                                      ": must be from 1M to 1G, got " +
                                                      describe(key_field.value));
                 return;
               }
               queue.segment_size = *size;
             }},
            // 1 would compact segments whose records are all still needed:
            // the copies fill a segment that is compacted again, forever.
            {"compaction_threshold", number(queue.compaction_threshold, 0.0, 1.0, false,
                                            "from 0 up to, not including, 1 (e.g. 0.25)")},
            // 0 switches the reserve off (Postfix's queue_minfree = 0).
            {"min_free_space", [&](const Field& key_field) {
               if (key_field.value.IsScalar() && key_field.value.Scalar() == "0") {
                 queue.min_free_space = 0;
               } else if (const auto size = read_size(key_field)) {
                 queue.min_free_space = *size;
               }
             }}});
  if (queue.max_retry_interval < queue.first_retry) {
    error_at(field.value_mark(), field.setting + ": max_retry_interval (" +
                                     format_duration(queue.max_retry_interval) +
                                     ") must not be shorter than first_retry (" +
                                     format_duration(queue.first_retry) + ")");
  }
}

}  // namespace stokend::config_reading
