// See file_stamp.h.
#include "common/file_stamp.h"

#include <sys/stat.h>

namespace stokend {

FileStamp file_stamp(const std::filesystem::path& file) {
  struct stat status {};
  if (::stat(file.c_str(), &status) != 0) return FileStamp{};
  return FileStamp{
      .exists = true,
      .device = static_cast<std::uintmax_t>(status.st_dev),
      .inode = static_cast<std::uintmax_t>(status.st_ino),
      .size = static_cast<std::uintmax_t>(status.st_size),
      .modified_nanoseconds =
          static_cast<std::int64_t>(status.st_mtim.tv_sec) * 1'000'000'000 + status.st_mtim.tv_nsec,
  };
}

}  // namespace stokend
