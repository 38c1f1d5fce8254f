#include "raw_io.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace certvault::raw {
namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

Result<void> write_all(int fd, std::span<const uint8_t> data, const std::filesystem::path& path,
                       bool sync = true) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(Code::kIo, "cannot write " + path.string() + ": " + errno_text(errno));
    done += static_cast<size_t>(n);
  }
  if (sync && ::fsync(fd) != 0)
    return fail(Code::kIo, "cannot flush " + path.string() + ": " + errno_text(errno));
  return {};
}

}  // namespace

std::string errno_text(int err) {
  return std::strerror(err);
}

std::unexpected<Error> loose(const std::filesystem::path& path, const struct stat& st) {
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  const char* fix = S_ISDIR(st.st_mode) ? "0700" : "0600";
  return fail(Code::kBadPermissions, path.string() + " has mode " + mode +
                                         " (others may read or write it); run chmod " + fix + " " +
                                         path.string() + " if it is really yours");
}

template <typename Out>
Result<Stamp> read_into(const std::filesystem::path& path, Out& out, bool private_only = false) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)};
  struct stat st {};
  if (f.fd < 0 || ::fstat(f.fd, &st) != 0) {
    int err = errno;
    return fail(err == ENOENT ? Code::kNotFound : Code::kIo,
                "cannot read " + path.string() + ": " + errno_text(err));
  }
  if (private_only && (st.st_mode & 077)) return loose(path, st);
  out.resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  for (;;) {
    if (done == out.size()) out.resize(out.size() + 4096);  // the file grew meanwhile
    ssize_t n = ::read(f.fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(Code::kIo, "cannot read " + path.string() + ": " + errno_text(errno));
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return Stamp{st.st_ino, static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
               static_cast<int64_t>(st.st_size)};
}

Result<Bytes> read_file(const std::filesystem::path& path) {
  Bytes out;
  CV_CHECK(read_into(path, out));
  return out;
}

Result<Bytes> read_private(const std::filesystem::path& path) {
  Bytes out;
  CV_CHECK(read_into(path, out, /*private_only=*/true));
  return out;
}

Result<std::pair<std::string, Stamp>> read_stamped(const std::filesystem::path& path) {
  std::string out;
  CV_TRY(stamp, read_into(path, out));
  return std::pair{std::move(out), stamp};
}

Result<void> fsync_dir(const std::filesystem::path& dir) {
  Fd f{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (f.fd < 0 || ::fsync(f.fd) != 0)
    return fail(Code::kIo, "cannot flush directory " + dir.string() + ": " + errno_text(errno));
  return {};
}

Result<void> write_new(const std::filesystem::path& path, std::span<const uint8_t> data,
                       bool sync) {
  Fd f{::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)};
  if (f.fd < 0) {
    int err = errno;
    return fail(err == EEXIST ? Code::kExists : Code::kIo,
                "cannot create " + path.string() + ": " + errno_text(err));
  }
  return write_all(f.fd, data, path, sync);
}

Result<void> sync_files(const std::filesystem::path& dir,
                        const std::vector<std::filesystem::path>& paths) {
  constexpr size_t kOneByOne = 8;  // beyond this, one syncfs beats many fsyncs
  if (paths.size() > kOneByOne) {
    Fd d{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (d.fd < 0 || ::syncfs(d.fd) != 0)
      return fail(Code::kIo, "cannot flush " + dir.string() + ": " + errno_text(errno));
    return {};
  }
  for (const auto& p : paths) {
    Fd f{::open(p.c_str(), O_RDONLY | O_CLOEXEC)};
    if (f.fd < 0 || ::fsync(f.fd) != 0)
      return fail(Code::kIo, "cannot flush " + p.string() + ": " + errno_text(errno));
  }
  return {};
}

Result<void> write_atomic(const std::filesystem::path& path, std::span<const uint8_t> data) {
  CV_CHECK(replace_file(path, data));
  return fsync_dir(path.parent_path());
}

Result<void> replace_file(const std::filesystem::path& path, std::span<const uint8_t> data) {
  auto tmp = path;
  tmp += ".tmp";
  ::unlink(tmp.c_str());  // left by a writer that died; we hold the writer lock
  CV_CHECK(write_new(tmp, data));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return fail(Code::kIo, "cannot replace " + path.string() + ": " + errno_text(err));
  }
  return {};
}

Result<void> make_private_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  if (dir.has_parent_path()) std::filesystem::create_directories(dir.parent_path(), ec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return fail(Code::kIo, "cannot create directory " + dir.string() + ": " + errno_text(errno));
  return {};
}

Result<void> check_private(const std::filesystem::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    int err = errno;
    return fail(err == ENOENT ? Code::kNotFound : Code::kIo,
                "cannot inspect " + path.string() + ": " + errno_text(err));
  }
  if (S_ISLNK(st.st_mode))
    return fail(Code::kBadPermissions,
                path.string() + " is a symbolic link; a vault holds only its own files");
  if (st.st_uid != ::geteuid())
    return fail(Code::kBadPermissions,
                path.string() + " belongs to another user; run as its owner");
  if (st.st_mode & 077) return loose(path, st);
  return {};
}

Result<uid_t> owner_of(const std::filesystem::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    int err = errno;
    return fail(err == ENOENT ? Code::kNotFound : Code::kIo,
                "cannot inspect " + path.string() + ": " + errno_text(err));
  }
  return st.st_uid;
}

Stamp stamp(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {st.st_ino, static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
          static_cast<int64_t>(st.st_size)};
}

Result<WriterLock> WriterLock::acquire(const std::filesystem::path& dir) {
  auto path = dir / "lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return fail(Code::kIo, "cannot open " + path.string() + ": " + errno_text(errno));
  while (::flock(fd, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    int err = errno;
    ::close(fd);
    return fail(Code::kIo, "cannot lock " + path.string() + ": " + errno_text(err));
  }
  return WriterLock(fd);
}

WriterLock::WriterLock(WriterLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

WriterLock::~WriterLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

}  // namespace certvault::raw
