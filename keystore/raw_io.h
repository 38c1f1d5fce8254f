// The raw layer: reads and writes bytes, nothing else. No crypto, no format.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "error.h"

namespace certvault::raw {

using Bytes = std::vector<uint8_t>;

Result<Bytes> read_file(const std::filesystem::path& path);
// read_file, refusing a file that group or others may read or write.
Result<Bytes> read_private(const std::filesystem::path& path);
// Replaces `path` atomically: a new file (0600), fsync, rename. The caller fsyncs the
// directory.
Result<void> replace_file(const std::filesystem::path& path, std::span<const uint8_t> data);
// replace_file, then fsync of the directory.
Result<void> write_atomic(const std::filesystem::path& path, std::span<const uint8_t> data);
// Creates `path` (0600) with `data`, failing if it exists; fsyncs the file when `sync`, never
// the directory.
Result<void> write_new(const std::filesystem::path& path, std::span<const uint8_t> data,
                       bool sync = true);
// Flushes the files of `paths` (few) or, for many, the whole file system holding `dir`.
Result<void> sync_files(const std::filesystem::path& dir,
                        const std::vector<std::filesystem::path>& paths);
Result<void> fsync_dir(const std::filesystem::path& dir);
// mkdir 0700 (parents as needed, themselves left to the umask).
Result<void> make_private_dir(const std::filesystem::path& dir);
// Refuses files or directories that group or others may read or write, or that another
// user owns.
Result<void> check_private(const std::filesystem::path& path);
// The uid that owns `path` (lstat).
Result<uid_t> owner_of(const std::filesystem::path& path);

// Identity of a file's current content, cheap to compare: a rename gives a new inode.
struct Stamp {
  ino_t inode = 0;
  int64_t mtime_ns = 0;
  int64_t size = -1;
  bool operator==(const Stamp&) const = default;
};
Stamp stamp(const std::filesystem::path& path);
// The file's bytes and the stamp of exactly those bytes (fstat of the descriptor read).
Result<std::pair<std::string, Stamp>> read_stamped(const std::filesystem::path& path);

// One writer at a time across processes: an exclusive flock on DIR/lock, held for the
// guard's life.
class WriterLock {
 public:
  static Result<WriterLock> acquire(const std::filesystem::path& dir);
  WriterLock(WriterLock&& other) noexcept;
  WriterLock& operator=(WriterLock&&) = delete;
  ~WriterLock();

 private:
  explicit WriterLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

std::string errno_text(int err);

}  // namespace certvault::raw
