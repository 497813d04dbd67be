// What identifies one version of a file on disk, for the files stokend
// re-reads when they change (the users file, the aliases map): device,
// inode, size and modification time. Tools replace such files by rename,
// so the inode changes even when size and time do not.
//
// Contract: file_stamp() never throws; a file that cannot be stat()ed gives
// the default stamp (exists false), so a file that disappears counts as a
// change, and so does its return.
#pragma once

#include <cstdint>
#include <filesystem>

namespace stokend {

struct FileStamp {
  bool exists = false;
  std::uintmax_t device = 0;
  std::uintmax_t inode = 0;
  std::uintmax_t size = 0;
  std::int64_t modified_nanoseconds = 0;
  bool operator==(const FileStamp&) const = default;
};

FileStamp file_stamp(const std::filesystem::path& file);

}  // namespace stokend
