// Reading and writing the files named on the command line. Anything that may hold a
// secret (PIN files, private keys, PKCS#12) is read straight into guarded memory.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "error.h"
#include "secure.h"

namespace certvault::cli {

inline constexpr size_t kMaxMaterialFile = 1u << 20;  // certificates, keys, PKCS#12

// Reads all of `path` ("-" = stdin) with read(2) into guarded memory. `what` names the
// file in messages ("PIN file", "key file").
Result<SecureBytes> read_file_secure(const std::string& path, std::string_view what,
                                     size_t max_size);
// For public data (certificates).
Result<std::string> read_text_file(const std::string& path, std::string_view what);
// Creates `path` (never overwrites) with `mode` and writes `data`; "-" writes to stdout.
Result<void> write_new_file(const std::string& path, std::string_view data, std::string_view what,
                            mode_t mode = 0644);
// Replaces `path` with `data` atomically ("-" writes to stdout): a temporary file in the
// same directory, written, given `mode`, synced, then renamed over `path`. A reader sees
// the old file or the new one, never a part; for files other programs read on a schedule.
// With `owner`, the file is given to that user first (which needs the privilege to).
Result<void> replace_file(const std::string& path, std::string_view data, std::string_view what,
                          mode_t mode = 0644, std::optional<uid_t> owner = std::nullopt);
// Fails when `path` exists, before any work that a later write would waste.
Result<void> check_absent(const std::string& path, std::string_view what);

// An output file created empty before a vault change, so that an unwritable path fails
// before the vault changes; removed again unless written.
class ReservedFile {
 public:
  static Result<ReservedFile> create(const std::string& path, std::string_view what,
                                     mode_t mode = 0644);
  ReservedFile(ReservedFile&& other) noexcept;
  ReservedFile& operator=(ReservedFile&&) = delete;
  ~ReservedFile();
  // Sets aside `bytes` of disk for the file, so that a full disk or quota fails here, before
  // the change, rather than at write(); a file system that cannot set space aside is let be.
  Result<void> reserve(size_t bytes);
  Result<void> write(std::string_view data);

 private:
  ReservedFile(std::string path, std::string what, int fd)
      : path_(std::move(path)), what_(std::move(what)), fd_(fd) {}
  std::string path_, what_;
  int fd_ = -1;
  bool written_ = false;
  bool reserved_ = false;  // longer than its content until write() trims it
};

// A file that programs read while it is renewed (a CRL): written to a temporary file in the
// same directory, flushed, then renamed over `path`, so a reader sees the old file or the
// new one, whole. The temporary file is made at create(), before any vault change, so that
// an unwritable directory fails first; removed again unless write() renames it. "-" is
// stdout.
class ReplacedFile {
 public:
  static Result<ReplacedFile> create(const std::string& path, std::string_view what,
                                     mode_t mode = 0644);
  ReplacedFile(ReplacedFile&& other) noexcept;
  ReplacedFile& operator=(ReplacedFile&&) = delete;
  ~ReplacedFile();
  Result<void> write(std::string_view data);

 private:
  ReplacedFile(std::string path, std::string temp, std::string what, int fd)
      : path_(std::move(path)), temp_(std::move(temp)), what_(std::move(what)), fd_(fd) {}
  std::string path_, temp_, what_;
  int fd_ = -1;
};

}  // namespace certvault::cli
