#include "files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <utility>

namespace certvault::cli {
namespace {

class Fd {
 public:
  explicit Fd(int fd, bool owned) : fd_(fd), owned_(owned) {}
  ~Fd() {
    if (owned_ && fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Reports a failed close: for a written file it can be the only sign of lost data.
  bool close() {
    bool ok = !owned_ || ::close(fd_) == 0;
    fd_ = -1;
    return ok;
  }

 private:
  int fd_;
  bool owned_;
};

std::string describe(std::string_view what, const std::string& path) {
  return path == "-" ? std::string(what) + " on stdin" : std::string(what) + " '" + path + "'";
}

std::unexpected<Error> os_error(std::string_view verb, std::string_view what,
                                const std::string& path, int err) {
  Code code = (err == ENOENT || err == ENOTDIR) ? Code::kNotFound : Code::kIo;
  return fail(code, "cannot " + std::string(verb) + " " + describe(what, path) + ": " +
                        std::strerror(err) + "; check the path and its permissions");
}

Result<void> write_all(int fd, std::string_view data, std::string_view what,
                       const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return os_error("write", what, path, errno);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

}  // namespace

Result<SecureBytes> read_file_secure(const std::string& path, std::string_view what,
                                     size_t max_size) {
  Fd fd(path == "-" ? STDIN_FILENO : ::open(path.c_str(), O_RDONLY | O_CLOEXEC), path != "-");
  if (fd.get() < 0) return os_error("read", what, path, errno);
  // Grows by copying between guarded buffers, so no plain heap memory sees the bytes.
  SecureBytes buffer(std::min<size_t>(1024, max_size + 1));
  size_t used = 0;
  for (;;) {
    if (used == buffer.size()) {
      if (used > max_size) break;
      SecureBytes bigger(std::min(buffer.size() * 2, max_size + 1));
      std::memcpy(bigger.data(), buffer.data(), used);
      buffer = std::move(bigger);
    }
    ssize_t n = ::read(fd.get(), buffer.data() + used, buffer.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return os_error("read", what, path, errno);
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  if (used > max_size) {
    return fail(Code::kInvalidInput, describe(what, path) + " is larger than " +
                                         std::to_string(max_size) +
                                         " bytes; check that it is the right file");
  }
  buffer.truncate(used);
  return buffer;
}

Result<std::string> read_text_file(const std::string& path, std::string_view what) {
  CV_TRY(bytes, read_file_secure(path, what, kMaxMaterialFile));
  return std::string(bytes.view());
}

Result<void> check_absent(const std::string& path, std::string_view what) {
  struct stat st;
  if (path != "-" && ::lstat(path.c_str(), &st) == 0) {
    return fail(Code::kExists,
                describe(what, path) + " already exists; choose another path or remove the file");
  }
  return {};
}

Result<void> write_new_file(const std::string& path, std::string_view data, std::string_view what,
                            mode_t mode) {
  CV_TRY(file, ReservedFile::create(path, what, mode));
  return file.write(data);
}

Result<void> replace_file(const std::string& path, std::string_view data, std::string_view what,
                          mode_t mode, std::optional<uid_t> owner) {
  if (path == "-") return write_new_file(path, data, what);
  const std::filesystem::path target(path);
  const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : ".";
  // A hidden name without the target's suffix: node_exporter reads only *.prom files.
  std::string temp = (dir / ("." + target.filename().string() + ".XXXXXX")).string();
  Fd fd(::mkostemp(temp.data(), O_CLOEXEC), true);
  if (fd.get() < 0) return os_error("create", what, path, errno);
  bool done = false;
  struct Cleanup {
    const std::string& temp;
    const bool& done;
    ~Cleanup() {
      if (!done) ::unlink(temp.c_str());
    }
  } cleanup{temp, done};
  if (owner && ::fchown(fd.get(), *owner, static_cast<gid_t>(-1)) != 0)
    return os_error("give to uid " + std::to_string(*owner) + " the", what, path, errno);
  if (::fchmod(fd.get(), mode) != 0) return os_error("write", what, path, errno);
  for (std::string_view rest = data; !rest.empty();) {
    ssize_t n = ::write(fd.get(), rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return os_error("write", what, path, errno);
    rest.remove_prefix(static_cast<size_t>(n));
  }
  if (::fsync(fd.get()) != 0 || !fd.close()) return os_error("write", what, path, errno);
  if (::rename(temp.c_str(), path.c_str()) != 0) return os_error("replace", what, path, errno);
  done = true;
  // The rename itself reaches the disk with the directory.
  Fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC), true);
  if (dir_fd.get() >= 0) ::fsync(dir_fd.get());
  return {};
}

Result<ReservedFile> ReservedFile::create(const std::string& path, std::string_view what,
                                          mode_t mode) {
  CV_CHECK(check_absent(path, what));
  int fd = path == "-" ? STDOUT_FILENO
                       : ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return os_error("create", what, path, errno);
  return ReservedFile(path, std::string(what), fd);
}

ReservedFile::ReservedFile(ReservedFile&& other) noexcept
    : path_(std::move(other.path_)),
      what_(std::move(other.what_)),
      fd_(std::exchange(other.fd_, -1)),
      written_(other.written_),
      reserved_(other.reserved_) {}

ReservedFile::~ReservedFile() {
  if (fd_ < 0 || path_ == "-") return;
  ::close(fd_);
  if (!written_) ::unlink(path_.c_str());
}

Result<void> ReservedFile::reserve(size_t bytes) {
  if (path_ == "-") return {};
  const int err = ::posix_fallocate(fd_, 0, static_cast<off_t>(bytes));
  if (err == EOPNOTSUPP || err == EINVAL) return {};
  if (err != 0)
    return fail(Code::kIo, "cannot set space aside for " + describe(what_, path_) + ": " +
                               std::strerror(err) + "; free some space or choose another path");
  reserved_ = true;
  return {};
}

Result<void> ReservedFile::write(std::string_view data) {
  if (path_ == "-") std::fflush(stdout);
  if (reserved_ && ::ftruncate(fd_, static_cast<off_t>(data.size())) != 0)
    return os_error("write", what_, path_, errno);
  CV_CHECK(write_all(fd_, data, what_, path_));
  if (path_ != "-" && ::fsync(fd_) != 0) return os_error("write", what_, path_, errno);
  written_ = true;
  return {};
}

Result<ReplacedFile> ReplacedFile::create(const std::string& path, std::string_view what,
                                          mode_t mode) {
  if (path == "-") return ReplacedFile(path, "", std::string(what), STDOUT_FILENO);
  std::filesystem::path target(path);
  if (target.filename().empty())
    return fail(Code::kInvalidInput,
                describe(what, path) + " names a directory; give a file name in it");
  std::string temp =
      (target.parent_path() / ("." + target.filename().string() + ".XXXXXX")).string();
  int fd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) return os_error("create", what, path, errno);
  if (::fchmod(fd, mode) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(temp.c_str());
    return os_error("create", what, path, err);
  }
  return ReplacedFile(path, std::move(temp), std::string(what), fd);
}

ReplacedFile::ReplacedFile(ReplacedFile&& other) noexcept
    : path_(std::move(other.path_)),
      temp_(std::move(other.temp_)),
      what_(std::move(other.what_)),
      fd_(std::exchange(other.fd_, -1)) {}

ReplacedFile::~ReplacedFile() {
  if (fd_ < 0 || path_ == "-") return;
  ::close(fd_);
  ::unlink(temp_.c_str());
}

Result<void> ReplacedFile::write(std::string_view data) {
  if (path_ == "-") {
    std::fflush(stdout);
    return write_all(fd_, data, what_, path_);
  }
  CV_CHECK(write_all(fd_, data, what_, path_));
  if (::fsync(fd_) != 0) return os_error("write", what_, path_, errno);
  const int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0 || ::rename(temp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp_.c_str());
    return os_error("write", what_, path_, err);
  }
  // The rename itself survives a crash only once the directory is flushed.
  std::string dir = std::filesystem::path(path_).parent_path().string();
  Fd dir_fd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC), true);
  if (dir_fd.get() >= 0) (void)::fsync(dir_fd.get());
  return {};
}

}  // namespace certvault::cli
