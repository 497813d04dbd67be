// See storage.h.
#include "daemon/storage.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "mta/defaults.h"
#include "mta/store/maildir_cleanup.h"
#include "mta/store/maildir_permissions.h"
#include "queue/queue_defaults.h"

namespace stokend::wiring {

queue::SpoolOptions spool_options(const Config& config) {
  queue::SpoolOptions options;
  options.directory = config.spool_directory;
  options.segment_size = config.queue.segment_size;
  options.compaction_threshold = config.queue.compaction_threshold;
  return options;
}

std::optional<queue::RecoveryReport> recover_spool(const Config& config, queue::Spool& spool) {
  auto recovery = spool.open();
  if (recovery.error) {
    spdlog::critical("spool {}: {} failed: {}", config.spool_directory.string(),
                     recovery.error_step, recovery.error.message());
    return std::nullopt;
  }
  spdlog::info(
      "spool {}: {} messages recovered ({} segments, {} torn tails, {} quarantined, {} lost to "
      "damage)",
      config.spool_directory.string(), recovery.messages.size(), recovery.segments_read,
      recovery.torn_tails_discarded, recovery.files_quarantined, recovery.messages_lost);
  return recovery;
}

queue::QueueSettings queue_settings(const Config& config) {
  using std::chrono::duration_cast;
  using std::chrono::seconds;
  queue::QueueSettings settings;
  settings.retry.first_retry = duration_cast<seconds>(config.queue.first_retry);
  settings.retry.max_retry_interval = duration_cast<seconds>(config.queue.max_retry_interval);
  settings.retry.lifetime = duration_cast<seconds>(config.queue.lifetime);
  settings.retry.delay_warning_after = duration_cast<seconds>(config.queue.delay_warning_after);
  settings.retry.backoff_factor = config.queue.backoff_factor;
  settings.retry.jitter = config.queue.jitter;
  settings.max_concurrent_deliveries = config.queue.max_concurrent_deliveries;
  settings.reporting_host = config.hostname;
  return settings;
}

std::unique_ptr<queue::FreeSpaceMonitor> watch_spool_space(const Config& config) {
  return std::make_unique<queue::FreeSpaceMonitor>(
      config.spool_directory,
      config.queue.min_free_space.value_or(
          queue::defaults::min_free_space(config.limits.max_message_size)),
      queue::defaults::free_space_refresh);
}

void remove_maildir_leftovers_at_start(const Config& config) {
  store::remove_maildir_tmp_files_at_start(config.maildir_root, defaults::maildir_tmp_max_age);
}

std::function<void()> maildir_tmp_cleanup(const Config& config) {
  return [root = config.maildir_root] {
    store::remove_stale_maildir_tmp_files(root, defaults::maildir_tmp_max_age);
  };
}

std::unique_ptr<store::MaildirStore> build_mailstore(const Config& config) {
  std::string error;
  const auto permissions = store::maildir_permissions_of(config, error);
  if (!permissions) {
    spdlog::critical("{}", error);
    return nullptr;
  }
  return std::make_unique<store::MaildirStore>(config.maildir_root, config.hostname, *permissions);
}

}  // namespace stokend::wiring
