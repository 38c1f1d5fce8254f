#include "pin_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

namespace certvault {
namespace {

class Fd {
 public:
  Fd(int fd, bool owned) : fd_(fd), owned_(owned) {}
  ~Fd() {
    if (owned_ && fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
  bool owned_;
};

std::unexpected<Error> too_large(std::string_view what) {
  return fail(Code::kInvalidInput, std::string(what) + " is larger than " +
                                       std::to_string(kMaxSecretBytes) +
                                       " bytes; it must hold only the secret");
}

// --- the terminal --------------------------------------------------------------------

// The terminal state to put back if a signal ends the process mid-prompt.
volatile sig_atomic_t g_tty_fd = -1;
termios g_saved_termios;

constexpr std::array kFatalSignals = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

extern "C" void restore_terminal_and_reraise(int sig) {
  if (g_tty_fd >= 0) tcsetattr(g_tty_fd, TCSANOW, &g_saved_termios);
  signal(sig, SIG_DFL);
  raise(sig);
}

// Echo off for its lifetime. With kRestoreTerminal the terminal is restored on every path,
// signals included, and Ctrl-Z is ignored meanwhile (resuming would continue with echo
// restored).
class EchoOff {
 public:
  EchoOff(int fd, OnSignal on_signal) : fd_(fd), signals_(on_signal == OnSignal::kRestoreTerminal) {
    if (tcgetattr(fd, &saved_) != 0) return;
    if (signals_) {
      g_saved_termios = saved_;
      g_tty_fd = fd;
      struct sigaction action = {};
      action.sa_handler = restore_terminal_and_reraise;
      sigemptyset(&action.sa_mask);
      for (size_t i = 0; i < kFatalSignals.size(); ++i)
        sigaction(kFatalSignals[i], &action, &old_actions_[i]);
      struct sigaction ignore = {};
      ignore.sa_handler = SIG_IGN;
      sigaction(SIGTSTP, &ignore, &old_tstp_);
    }
    termios quiet = saved_;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHOE | ECHOK | ECHONL);
    active_ = tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
    if (!active_) restore();
  }
  ~EchoOff() {
    if (active_) restore();
  }
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;
  bool active() const { return active_; }

 private:
  void restore() {
    tcsetattr(fd_, TCSANOW, &saved_);
    if (!signals_) return;
    g_tty_fd = -1;
    for (size_t i = 0; i < kFatalSignals.size(); ++i)
      sigaction(kFatalSignals[i], &old_actions_[i], nullptr);
    sigaction(SIGTSTP, &old_tstp_, nullptr);
  }

  int fd_;
  bool signals_;
  bool active_ = false;
  termios saved_{};
  std::array<struct sigaction, kFatalSignals.size()> old_actions_{};
  struct sigaction old_tstp_ = {};
};

void write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    text.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

void drop_line_break(SecureBytes& secret) {
  size_t n = secret.size();
  if (n > 0 && secret.data()[n - 1] == '\n') {
    --n;
    if (n > 0 && secret.data()[n - 1] == '\r') --n;
  }
  secret.truncate(n);
}

Result<void> check_pin_length(const SecureBytes& pin, uint32_t min_length, std::string_view noun) {
  if (pin.size() >= min_length) return {};
  return fail(Code::kInvalidInput, std::string(noun) + " is shorter than " +
                                       std::to_string(min_length) +
                                       " characters, the minimum (`certvault policy set "
                                       "--min-pin-length` changes it); choose a longer one");
}

Result<void> check_new_pin(const SecureBytes& pin, std::string_view noun) {
  if (pin.empty()) return fail(Code::kInvalidInput, std::string(noun) + " is empty; choose a PIN");
  const uint8_t last = pin.data()[pin.size() - 1];
  if (last == '\n' || last == '\r')
    return fail(Code::kInvalidInput,
                std::string(noun) +
                    " ends in a line break, which every PIN source drops; choose a PIN "
                    "without one");
  return {};
}

namespace {

// Whether `fd` has an access ACL that lets no one read but its owner and this process's
// user (systemd's credential files; see read_credential_file). The extended attribute is
// the kernel's POSIX ACL: a 4-byte version (2), then 8-byte entries: tag, permissions
// (16 bits each, little-endian) and an id (32 bits).
bool acl_reads_only_owner_and_self(int fd) {
  std::array<uint8_t, 4 + 8 * 32> acl{};
  const ssize_t n = ::fgetxattr(fd, "system.posix_acl_access", acl.data(), acl.size());
  if (n < 4 || (n - 4) % 8 != 0) return false;
  auto u16 = [&](size_t at) { return static_cast<uint16_t>(acl[at] | acl[at + 1] << 8); };
  auto u32 = [&](size_t at) {
    return static_cast<uint32_t>(acl[at] | acl[at + 1] << 8 | acl[at + 2] << 16 |
                                 static_cast<uint32_t>(acl[at + 3]) << 24);
  };
  if (u32(0) != 2) return false;
  constexpr uint16_t kUser = 0x02, kGroupObj = 0x04, kGroup = 0x08, kMask = 0x10, kOther = 0x20;
  for (size_t at = 4; at + 8 <= static_cast<size_t>(n); at += 8) {
    const uint16_t tag = u16(at), perm = u16(at + 2);
    const uint32_t id = u32(at + 4);
    if (perm == 0 || tag == kMask) continue;
    if (tag == kUser && id == ::geteuid() && perm == 4) continue;  // read, for this user
    if (tag == kUser || tag == kGroupObj || tag == kGroup || tag == kOther) return false;
  }
  return true;
}

Result<std::optional<SecureBytes>> read_secret_from(const std::string& path,
                                                    std::string_view what_view,
                                                    bool systemd_credential) {
  const std::string what(what_view);
  const bool from_stdin = path == "-";
  // O_NOFOLLOW: a link could be pointed elsewhere after the check by whoever owns its
  // directory. O_NONBLOCK: a FIFO nobody writes to must not hang the host program.
  Fd fd(from_stdin ? STDIN_FILENO
                   : ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK),
        !from_stdin);
  if (fd.get() < 0) {
    const int err = errno;
    if (err == ELOOP)
      return fail(Code::kBadPermissions,
                  what +
                      " is a symbolic link, and a secret is read only from the file itself; "
                      "name the file it points to (readlink -f " +
                      path + ")");
    return fail(
        err == ENOENT || err == ENOTDIR ? Code::kNotFound : Code::kIo,
        "cannot open " + what + ": " + std::strerror(err) + "; check the path and its permissions");
  }
  if (!from_stdin) {
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
      return fail(Code::kIo, "cannot read " + what + ": " + std::strerror(errno));
    if (!S_ISREG(st.st_mode))
      return fail(Code::kInvalidInput,
                  what + " is not a regular file; write the secret into a file of mode 0600");
    const bool acl_mask_only =
        systemd_credential && (st.st_mode & 077) == 040 && acl_reads_only_owner_and_self(fd.get());
    if ((st.st_mode & 077) && !acl_mask_only) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      return fail(Code::kBadPermissions, what + " can be read or written by other users (mode " +
                                             mode + "); run chmod 600 " + path);
    }
    if (st.st_size > static_cast<off_t>(kMaxSecretBytes + 2)) return too_large(what);
  }
  // One byte more than the largest acceptable content (the secret, CR, LF) tells "too
  // large" apart on stdin, where there is no size to look at.
  SecureBytes buffer(kMaxSecretBytes + 3);
  size_t used = 0;
  while (used < buffer.size()) {
    ssize_t got = ::read(fd.get(), buffer.data() + used, buffer.size() - used);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return fail(Code::kIo, "cannot read " + what + ": " + std::strerror(errno));
    if (got == 0) break;
    used += static_cast<size_t>(got);
  }
  buffer.truncate(used);
  drop_line_break(buffer);
  if (buffer.size() > kMaxSecretBytes) return too_large(what);
  if (buffer.empty()) return std::optional<SecureBytes>();
  return std::optional<SecureBytes>(std::move(buffer));
}

}  // namespace

Result<std::optional<SecureBytes>> read_secret_file(const std::string& path,
                                                    std::string_view what) {
  return read_secret_from(path, what, false);
}

Result<std::optional<SecureBytes>> read_credential_file(const std::string& path,
                                                        std::string_view what) {
  return read_secret_from(path, what, true);
}

Result<std::optional<SecureBytes>> prompt_secret(std::string_view prompt, OnSignal on_signal) {
  Fd tty(::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC), true);
  if (tty.get() < 0) return std::optional<SecureBytes>();
  EchoOff echo_off(tty.get(), on_signal);
  if (!echo_off.active()) return std::optional<SecureBytes>();
  write_all(tty.get(), prompt);
  SecureBytes line(kMaxSecretBytes + 2);
  size_t used = 0;
  for (;;) {
    char c;
    ssize_t n = ::read(tty.get(), &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      write_all(tty.get(), "\n");
      return fail(Code::kIo, std::string("cannot read from the terminal: ") + std::strerror(err));
    }
    if (n == 0 || c == '\n') break;
    if (used == line.size()) {
      write_all(tty.get(), "\n");
      return fail(Code::kInvalidInput, "the answer typed at the terminal is longer than " +
                                           std::to_string(kMaxSecretBytes) + " characters");
    }
    line.data()[used++] = static_cast<uint8_t>(c);
  }
  write_all(tty.get(), "\n");  // the user's Enter was not echoed
  if (used > 0 && line.data()[used - 1] == '\r') --used;
  line.truncate(used);
  return std::optional<SecureBytes>(std::move(line));
}

}  // namespace certvault
