#include "secret_input.h"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>

#include "files.h"

namespace certvault::cli {
namespace {

constexpr size_t kMaxTyped = 1024;

// The terminal state to put back if a signal ends the process mid-prompt.
volatile sig_atomic_t g_tty_fd = -1;
termios g_saved_termios;

constexpr std::array kFatalSignals = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

extern "C" void restore_terminal_and_reraise(int sig) {
  if (g_tty_fd >= 0) tcsetattr(g_tty_fd, TCSANOW, &g_saved_termios);
  signal(sig, SIG_DFL);
  raise(sig);
}

// Echo off for its lifetime; the terminal is restored on every path, signals included.
// Ctrl-Z is ignored meanwhile: resuming would continue with echo restored.
class EchoOff {
 public:
  explicit EchoOff(int fd) {
    if (tcgetattr(fd, &g_saved_termios) != 0) return;
    g_tty_fd = fd;
    struct sigaction action = {};
    action.sa_handler = restore_terminal_and_reraise;
    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < kFatalSignals.size(); ++i) {
      sigaction(kFatalSignals[i], &action, &old_actions_[i]);
    }
    struct sigaction ignore = {};
    ignore.sa_handler = SIG_IGN;
    sigaction(SIGTSTP, &ignore, &old_tstp_);
    termios quiet = g_saved_termios;
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
    tcsetattr(g_tty_fd, TCSANOW, &g_saved_termios);
    g_tty_fd = -1;
    for (size_t i = 0; i < kFatalSignals.size(); ++i) {
      sigaction(kFatalSignals[i], &old_actions_[i], nullptr);
    }
    sigaction(SIGTSTP, &old_tstp_, nullptr);
  }

  bool active_ = false;
  std::array<struct sigaction, kFatalSignals.size()> old_actions_{};
  struct sigaction old_tstp_ = {};
};

class Tty {
 public:
  Tty() : fd_(::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)) {}
  ~Tty() {
    if (fd_ >= 0) ::close(fd_);
  }
  Tty(const Tty&) = delete;
  Tty& operator=(const Tty&) = delete;
  int fd() const { return fd_; }
  void write_text(std::string_view text) const {
    while (!text.empty()) {
      ssize_t n = ::write(fd_, text.data(), text.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      text.remove_prefix(static_cast<size_t>(n));
    }
  }

 private:
  int fd_;
};

std::unexpected<Error> no_terminal(const SecretSource& source) {
  return fail(Code::kInvalidInput, "cannot ask for the " + std::string(source.noun) +
                                       ": no terminal; pass " + std::string(source.option) +
                                       " FILE (or " + std::string(source.option) +
                                       " - to read it from stdin)");
}

// Reads one line typed with echo off; the line ends at Enter.
Result<SecureBytes> read_line(const Tty& tty, const SecretSource& source) {
  SecureBytes line(kMaxTyped + 1);
  size_t used = 0;
  for (;;) {
    char c;
    ssize_t n = ::read(tty.fd(), &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return fail(Code::kIo, "cannot read the " + std::string(source.noun) +
                                 " from the terminal: " + std::strerror(errno));
    }
    if (n == 0 || c == '\n') break;
    if (used == line.size()) {
      return fail(Code::kInvalidInput, "the " + std::string(source.noun) + " is longer than " +
                                           std::to_string(kMaxTyped) + " characters");
    }
    line.data()[used++] = static_cast<uint8_t>(c);
  }
  if (used > 0 && line.data()[used - 1] == '\r') --used;
  line.truncate(used);
  return line;
}

Result<SecureBytes> prompt(std::string_view text, const SecretSource& source) {
  Tty tty;
  if (tty.fd() < 0) return no_terminal(source);
  EchoOff echo_off(tty.fd());
  if (!echo_off.active()) return no_terminal(source);
  tty.write_text(text);
  auto line = read_line(tty, source);
  tty.write_text("\n");  // the user's Enter was not echoed
  return line;
}

Result<void> confirm(const SecureBytes& first, const SecretSource& source) {
  CV_TRY(second, prompt("Repeat the new PIN: ", source));
  if (!(first == second)) {
    return fail(Code::kInvalidInput,
                "the two PINs differ; run the command again and type the same PIN twice");
  }
  return {};
}

std::unexpected<Error> empty_pin() {
  return fail(Code::kInvalidInput, "the new PIN is empty; choose a PIN of at least one character");
}

void drop_trailing_newline(SecureBytes& bytes) {
  size_t size = bytes.size();
  if (size > 0 && bytes.data()[size - 1] == '\n') --size;
  if (size > 0 && size < bytes.size() && bytes.data()[size - 1] == '\r') --size;
  bytes.truncate(size);
}

}  // namespace

bool have_terminal() {
  return Tty().fd() >= 0;
}

Result<SecureBytes> read_secret(const std::string& file, std::string_view prompt_text,
                                const SecretSource& source) {
  if (file.empty()) return prompt(prompt_text, source);
  CV_TRY(secret, read_file_secure(file, std::string(source.noun) + " file", kMaxSecretFile));
  drop_trailing_newline(secret);
  return secret;
}

Result<SecureBytes> read_new_pin(const std::string& file, const SecretSource& source) {
  if (!file.empty()) {
    CV_TRY(pin, read_secret(file, "", source));
    if (pin.empty()) return empty_pin();
    return pin;
  }
  CV_TRY(pin, prompt("New PIN: ", source));
  if (pin.empty()) return empty_pin();
  CV_CHECK(confirm(pin, source));
  return pin;
}

Result<std::optional<SecureBytes>> prompt_new_pin_or_keep() {
  SecretSource source{"new PIN", "--new-pin-file"};
  CV_TRY(pin, prompt("New PIN (press Enter to keep the current PIN): ", source));
  if (pin.empty()) return std::optional<SecureBytes>();
  CV_CHECK(confirm(pin, source));
  return std::optional<SecureBytes>(std::move(pin));
}

}  // namespace certvault::cli
