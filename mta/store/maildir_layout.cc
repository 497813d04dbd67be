// See maildir_layout.h.
#include "mta/store/maildir_layout.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>

#include "common/ascii.h"
#include "message/address.h"

namespace stokend::store {
namespace {

// Maildir++: an empty file of this name marks a subfolder, so that delivery
// agents do not treat it as a mailbox of its own.
constexpr const char* subfolder_marker_name = "maildirfolder";

}  // namespace

bool is_safe_path_component(std::string_view component) {
  return !component.empty() && component.front() != '.' &&
         component.find('/') == std::string_view::npos &&
         component.find('\0') == std::string_view::npos;
}

std::optional<std::filesystem::path> mailbox_of_address(const std::filesystem::path& root,
                                                        std::string_view address) {
  const std::size_t at = address.rfind('@');
  if (at == std::string_view::npos) return std::nullopt;
  const std::string local_part = ascii_lowercase(address.substr(0, at));
  const std::string domain = ascii_lowercase(address.substr(at + 1));
  if (!is_safe_path_component(local_part) || !is_safe_path_component(domain)) return std::nullopt;
  return root / domain / local_part;
}

std::string sanitise_hostname_for_file_names(std::string_view hostname) {
  if (hostname.empty()) return "localhost";
  std::string result;
  for (char c : hostname) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '/' || c == ':' || c == '\\' || byte <= ' ' || byte == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\%03o", static_cast<unsigned>(byte));
      result += escaped;
    } else {
      result += c;
    }
  }
  return result;
}

std::string unique_maildir_file_name(std::string_view host, std::size_t size) {
  static std::atomic<unsigned long long> counter{0};
  const auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  const auto microseconds =
      std::chrono::duration_cast<std::chrono::microseconds>(since_epoch - seconds);
  return std::to_string(seconds.count()) + ".M" + std::to_string(microseconds.count()) + "P" +
         std::to_string(::getpid()) + "Q" + std::to_string(++counter) + "." + std::string(host) +
         ",S=" + std::to_string(size);
}

std::string delivery_tmp_file_name(std::string_view final_name) {
  return std::string(delivery_tmp_file_prefix) + std::string(final_name);
}

bool is_delivery_tmp_file_name(std::string_view name) {
  return name.size() > delivery_tmp_file_prefix.size() &&
         name.starts_with(delivery_tmp_file_prefix);
}

std::error_code make_maildir(const std::filesystem::path& maildir,
                             const MaildirPermissions& permissions) {
  for (const char* part : {"tmp", "new", "cur"}) {
    if (std::error_code error = durable::make_directories(maildir / part, permissions.folders)) {
      return error;
    }
  }
  return {};
}

durable::WriteResult make_subfolder_marker(const std::filesystem::path& maildir,
                                           const MaildirPermissions& permissions) {
  const std::filesystem::path marker = maildir / subfolder_marker_name;
  std::error_code error;
  if (std::filesystem::exists(marker, error)) return {};
  static std::atomic<unsigned long long> counter{0};
  std::filesystem::path temporary = marker;
  temporary += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(++counter);
  const std::string_view nothing[] = {""};
  return durable::write_file(temporary, marker, nothing, 0600, permissions.files);
}

FolderResult make_subfolder(const std::filesystem::path& mailbox, std::string_view folder_name,
                            const MaildirPermissions& permissions) {
  if (std::error_code error = make_maildir(mailbox, permissions)) {
    return FolderResult{error, "mkdir"};
  }
  const std::filesystem::path folder = mailbox / folder_name;
  if (std::error_code error = make_maildir(folder, permissions)) {
    return FolderResult{error, "mkdir"};
  }
  if (auto marker = make_subfolder_marker(folder, permissions); !marker) {
    return FolderResult{marker.error, marker.step + " " + subfolder_marker_name};
  }
  return {};
}

}  // namespace stokend::store
