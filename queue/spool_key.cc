// The spool's checksum key: see spool_key.h.
#include "queue/spool_key.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <string_view>

#include "common/durable_file.h"
#include "common/unique_fd.h"

namespace stokend::queue {
namespace {

std::error_code last_error() { return {errno, std::system_category()}; }

// Whether a segment holds a keyed (version 2 or 3) record near its start: the header, or,
// when that is damaged, one of the first records behind it.
bool has_keyed_records(const std::filesystem::path& segment) {
  constexpr std::size_t probe_size = 64 * 1024;
  UniqueFd file(::open(segment.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file) return false;
  std::string bytes(probe_size, '\0');
  const ssize_t count = ::pread(file.get(), bytes.data(), bytes.size(), 0);
  if (count <= 0) return false;
  bytes.resize(static_cast<std::size_t>(count));
  for (const std::uint8_t version : {record::hashed_format_version, record::format_version}) {
    std::string keyed_start(record::magic);
    keyed_start.push_back(static_cast<char>(version));
    if (bytes.find(keyed_start) != std::string::npos) return true;
  }
  return false;
}

SpoolKeyResult failure(std::error_code error, std::string problem) {
  SpoolKeyResult result;
  result.error = error;
  result.problem = std::move(problem);
  return result;
}

}  // namespace

SpoolKeyResult load_or_create_spool_key(const std::filesystem::path& spool_directory,
                                        const std::vector<std::filesystem::path>& segments) {
  const std::filesystem::path path = spool_directory / spool_key_file_name;
  UniqueFd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (file) {
    record::ChecksumKey key;
    struct stat status {};
    if (::fstat(file.get(), &status) != 0) return failure(last_error(), "stat " + path.string());
    ssize_t count = 0;
    do {
      count = ::pread(file.get(), key.bytes.data(), key.bytes.size(), 0);
    } while (count < 0 && errno == EINTR);
    if (count < 0) return failure(last_error(), "read " + path.string());
    if (status.st_size != static_cast<off_t>(key.bytes.size()) ||
        count != static_cast<ssize_t>(key.bytes.size())) {
      return failure(std::make_error_code(std::errc::illegal_byte_sequence),
                     path.string() + " is " + std::to_string(status.st_size) + " bytes, not " +
                         std::to_string(key.bytes.size()) +
                         ": restore it from a backup (the spool's records cannot be verified "
                         "without it)");
    }
    SpoolKeyResult result;
    result.key = key;
    return result;
  }
  if (errno != ENOENT) return failure(last_error(), "open " + path.string());
  for (const std::filesystem::path& segment : segments) {
    if (has_keyed_records(segment)) {
      return failure(std::make_error_code(std::errc::no_such_file_or_directory),
                     path.string() + " is missing but " + segment.filename().string() +
                         " was written with it: restore it from a backup (a new key would "
                         "leave every queued message unverifiable)");
    }
  }
  record::ChecksumKey key;
  randombytes_buf(key.bytes.data(), key.bytes.size());
  std::filesystem::path temporary = path;
  temporary += ".tmp";
  std::error_code ignored;
  std::filesystem::remove(temporary, ignored);  // left by a start that crashed while making it
  const std::string_view parts[] = {
      std::string_view(reinterpret_cast<const char*>(key.bytes.data()), key.bytes.size())};
  if (auto written = durable::write_file(temporary, path, parts, 0600); !written) {
    return failure(written.error, written.step + " " + path.string());
  }
  SpoolKeyResult result;
  result.key = key;
  return result;
}

}  // namespace stokend::queue
