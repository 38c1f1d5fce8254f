#include "agent_client.h"

#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <sodium.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>

#include "vault.h"

namespace certvault::agent {
namespace {

namespace fs = std::filesystem;

bool socket_exists(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

std::unexpected<Error> agent_gone(const fs::path& socket, std::string_view what) {
  return fail(Code::kIo, "the certvault agent at " + socket.string() + " " + std::string(what) +
                             "; check that certvault agent is running (certvault status)");
}

// Sends all of `bytes`, waiting at most `timeout_ms` each time the socket is full.
bool send_all(int fd, std::span<const uint8_t> bytes, int timeout_ms) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, timeout_ms) <= 0) return false;
      continue;
    }
    return false;
  }
  return true;
}

// How long a signature's answer is looked for before the client sleeps on it (see
// read_some): a little longer than signatures have been taking, when that is at most
// kMaxSpinUs; the shortest look otherwise (a slow key, or an agent slowed by load: looking
// longer would take the cores it needs).
constexpr int64_t kMinSpinUs = 60;
constexpr int64_t kMaxSpinUs = 1000;

// getpid() without a system call on every request (some virtual machines charge about 1 us
// for one, a twentieth of an ECDSA signature): the pid is kept in a page the kernel wipes in
// a child after fork() (MADV_WIPEONFORK, Linux 4.14), however the child was made (fork(),
// _Fork(), clone()), so a child finds zero there and asks the kernel once. The page stays
// for the life of the process (one page per load of the library); where it cannot be had,
// every call asks the kernel.
pid_t current_pid() {
  static std::atomic<pid_t>* const page = []() -> std::atomic<pid_t>* {
    const auto size = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    if (::madvise(p, size, MADV_WIPEONFORK) != 0) {
      ::munmap(p, size);
      return nullptr;
    }
    return new (p) std::atomic<pid_t>(0);
  }();
  if (!page) return ::getpid();
  pid_t pid = page->load(std::memory_order_relaxed);
  if (pid == 0) {
    pid = ::getpid();
    page->store(pid, std::memory_order_relaxed);
  }
  return pid;
}

enum class ReadResult { kOk, kClosedBeforeAnyByte, kFailed };

ReadResult read_all(int fd, uint8_t* out, size_t size, int timeout_ms, bool first) {
  size_t got = 0;
  while (got < size) {
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return ReadResult::kFailed;
    ssize_t n = ::recv(fd, out + got, size - got, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n == 0 && got == 0 && first) return ReadResult::kClosedBeforeAnyByte;
    if (n <= 0) return ReadResult::kFailed;
    got += static_cast<size_t>(n);
  }
  return ReadResult::kOk;
}

// One wait, then whatever has arrived (at least one byte, at most `size`).
ReadResult read_some(int fd, uint8_t* out, size_t size, int timeout_ms, int64_t spin_us,
                     size_t& got) {
  got = 0;
  // A signature comes back within tens of microseconds (ECDSA) to a few hundred (RSA):
  // asking again for that long costs less than sleeping and being woken (on a virtual
  // machine a wake-up costs more than the ECDSA signature itself). Then the wait blocks as
  // usual.
  const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us);
  while (spin_us > 0 && std::chrono::steady_clock::now() < spin_until) {
    ssize_t n = ::recv(fd, out, size, MSG_DONTWAIT);
    if (n > 0) {
      got = static_cast<size_t>(n);
      return ReadResult::kOk;
    }
    if (n == 0) return ReadResult::kClosedBeforeAnyByte;
    if (errno != EAGAIN && errno != EINTR) return ReadResult::kFailed;
    ::sched_yield();  // a thread that has work on this core (the agent's) goes first
  }
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return ReadResult::kFailed;
    ssize_t n = ::recv(fd, out, size, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n == 0) return ReadResult::kClosedBeforeAnyByte;
    if (n < 0) return ReadResult::kFailed;
    got = static_cast<size_t>(n);
    return ReadResult::kOk;
  }
}

}  // namespace

fs::path user_socket() {
  if (const char* x = ::secure_getenv("XDG_RUNTIME_DIR"); x && *x == '/')
    return fs::path(x) / "certvault" / "agent.sock";
  return fs::path("/run/user") / std::to_string(::geteuid()) / "certvault" / "agent.sock";
}

std::string vault_path_for_agent(const fs::path& dir) {
  std::error_code ec;
  const fs::path p = fs::weakly_canonical(fs::absolute(dir, ec), ec);
  return ec ? dir.string() : p.string();
}

std::string default_vault_for_agent() {
  if (const char* named = ::secure_getenv("CERTVAULT_VAULT"); named && *named)
    return vault_path_for_agent(named);
  const fs::path dir = default_vault_dir();
  std::error_code ec;
  return fs::exists(dir / "manifest", ec) ? vault_path_for_agent(dir) : std::string();
}

fs::path system_socket() {
  return "/run/certvault/agent.sock";
}

// Whether an agent answers there. Only the default places are probed: a socket left by a
// killed agent, or a system agent this user may not reach, means "no agent" and the
// program works in-process; a socket that was named explicitly is used as named.
bool answers(const fs::path& p) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (p.string().size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, p.c_str(), p.string().size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

std::optional<fs::path> find_socket(const std::string& configured) {
  if (!configured.empty())
    return socket_exists(configured) ? std::optional<fs::path>(configured) : std::nullopt;
  // secure_getenv: a setuid program that loads the provider takes no agent from whoever
  // started it.
  if (const char* env = ::secure_getenv("CERTVAULT_AGENT_SOCK"); env && *env)
    return socket_exists(env) ? std::optional<fs::path>(env) : std::nullopt;
  for (const fs::path& p : {user_socket(), system_socket()})
    if (socket_exists(p) && answers(p)) return p;
  return std::nullopt;
}

Reply::~Reply() {
  if (!body.empty()) sodium_memzero(body.data(), body.size());
}

Client::Client(fs::path socket) : socket_(std::move(socket)), pid_(current_pid()) {
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  if (::sched_getaffinity(0, sizeof cpus, &cpus) == 0) cpus_ = std::max(1, CPU_COUNT(&cpus));
}

Client::~Client() {
  // Only this process's connections are closed; a forked child's copies are its own.
  if (pid_ == current_pid())
    for (const auto& c : idle_) ::close(c.fd);
}

namespace {

// The uid of the system instance's user (`certvault`), if this machine has one.
std::optional<uid_t> system_agent_uid() {
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwnam_r("certvault", &pw, buf.data(), buf.size(), &found) != 0 || !found)
    return std::nullopt;
  return pw.pw_uid;
}

// Whoever serves the socket gets what the program sends (a PIN given to C_Login, digests),
// so before sending anything: the agent must run as root, as this program's user, or as
// the system instance's user.
Result<void> check_agent_uid(int fd, const fs::path& socket) {
  ucred peer{};
  socklen_t len = sizeof peer;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0)
    return fail(Code::kIo, "cannot tell which user serves the certvault agent socket " +
                               socket.string() + ": " + std::strerror(errno));
  const uid_t self = ::geteuid();
  if (peer.uid == 0 || peer.uid == self || peer.uid == system_agent_uid()) return {};
  return fail(Code::kBadPermissions,
              "the certvault agent socket " + socket.string() + " is served by uid " +
                  std::to_string(peer.uid) + ", not by root, your uid " + std::to_string(self) +
                  " or the certvault user; nothing was sent to it; name your own agent's "
                  "socket in $CERTVAULT_AGENT_SOCK (or agent-socket)");
}

}  // namespace

Result<int> Client::connect_new() {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string path = socket_.string();
  if (path.size() >= sizeof addr.sun_path)
    return fail(Code::kInvalidInput, "the agent socket path " + path + " is too long");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(Code::kIo, std::string("cannot make a socket: ") + std::strerror(errno));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    ::close(fd);
    return agent_gone(socket_, std::string("does not answer (") + std::strerror(err) + ")");
  }
  if (auto trusted = check_agent_uid(fd, socket_); !trusted) {
    ::close(fd);
    return std::unexpected(trusted.error());
  }
  return fd;
}

void Client::adopt_after_fork() {
  // Only this thread exists in the child: the lock is made anew in place, whatever state a
  // thread of the parent left it in (as pthread_atfork child handlers do).
  new (mu_.get()) std::mutex();
  // The pooled sockets are the parent's conversation: dropping the child's copies leaves
  // the parent's connections open.
  for (const auto& c : idle_) ::close(c.fd);
  idle_.clear();
  in_flight_ = 1;  // the caller's request; the parent's other threads are not here
  pid_ = current_pid();
}

int64_t Client::spin_us() const {
  const int64_t wanted = answer_us_.load(std::memory_order_relaxed) * 5 / 4;
  return wanted > kMaxSpinUs ? kMinSpinUs : std::max(wanted, kMinSpinUs);
}

void Client::took(std::chrono::steady_clock::duration d) {
  // An average over the last few signatures.
  const int64_t us = std::min<int64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(d).count(), 4 * kMaxSpinUs);
  const int64_t old = answer_us_.load(std::memory_order_relaxed);
  answer_us_.store(old == 0 ? us : (3 * old + us) / 4, std::memory_order_relaxed);
}

Result<std::pair<Client::Pooled, bool>> Client::take(bool fresh) {
  if (pid_.load() != current_pid()) adopt_after_fork();
  {
    std::lock_guard lock(*mu_);
    if (fresh) {
      for (const auto& c : idle_) ::close(c.fd);
      idle_.clear();
    }
    if (!idle_.empty()) {
      const Pooled connection = idle_.back();
      idle_.pop_back();
      return std::pair{connection, true};
    }
  }
  CV_TRY(fd, connect_new());
  return std::pair{Pooled{.fd = fd}, false};
}

void Client::give(const Pooled& connection) {
  std::lock_guard lock(*mu_);
  if (pid_ == current_pid() && idle_.size() < 16)
    idle_.push_back(connection);
  else
    ::close(connection.fd);
}

Result<Reply> Client::call(Frame& request, ErrorCode* wire_code, int timeout_ms, bool* sent) {
  if (sent) *sent = false;
  ++in_flight_;
  struct Done {
    std::atomic<int>& n;
    ~Done() { --n; }
  } done{in_flight_};
  if (!request.fits()) return fail(Code::kInvalidInput, "request too large for the agent");
  auto bytes = request.bytes();
  for (int attempt = 0; attempt < 2; ++attempt) {
    CV_TRY(taken, take(attempt > 0));
    auto [connection, reused] = taken;
    const int fd = connection.fd;
    if (!send_all(fd, bytes, timeout_ms)) {
      ::close(fd);
      if (reused) continue;  // a stale pooled connection: the agent restarted
      return agent_gone(socket_, "did not take the request");
    }
    if (sent) *sent = true;
    // Most answers (a signature) come in one piece: the first read takes up to a page, the
    // header and the body with it, so one wait and one read per request.
    uint8_t first[4096];
    size_t got = 0;
    // A request looks for its answer (rather than sleeping until it comes) while there are
    // no more requests than cores (more would only take turns), and not on the core the
    // agent answers this connection on: there the look would hold up the signer (a looking
    // thread gives its core up, but the scheduler gives it back to whichever thread has
    // run least).
    const auto sent_at = std::chrono::steady_clock::now();
    const bool look =
        in_flight_.load() <= cpus_ && (connection.core < 0 || ::sched_getcpu() != connection.core);
    const bool sign = request.type() == Type::kSign;
    auto r = read_some(fd, first, sizeof first, timeout_ms,
                       !look  ? 0
                       : sign ? spin_us()
                              : kMinSpinUs,
                       got);
    if (look && sign && r == ReadResult::kOk) took(std::chrono::steady_clock::now() - sent_at);
    if (r == ReadResult::kClosedBeforeAnyByte && reused) {
      ::close(fd);
      continue;
    }
    if (r == ReadResult::kOk && got < kHeaderSize)
      r = read_all(fd, first + got, kHeaderSize - got, timeout_ms, false);
    if (r != ReadResult::kOk) {
      sodium_memzero(first, sizeof first);
      ::close(fd);
      return agent_gone(socket_, "did not answer");
    }
    got = std::max(got, kHeaderSize);
    auto length = body_length(std::span<const uint8_t, kHeaderSize>(first, kHeaderSize));
    if (!length || got - kHeaderSize > *length) {
      sodium_memzero(first, sizeof first);
      ::close(fd);
      return agent_gone(socket_, "sent a malformed answer");
    }
    Reply reply;
    reply.body.resize(*length);
    std::memcpy(reply.body.data(), first + kHeaderSize, got - kHeaderSize);
    sodium_memzero(first, got);
    const size_t have = got - kHeaderSize;
    if (have < reply.body.size() && read_all(fd, reply.body.data() + have, reply.body.size() - have,
                                             timeout_ms, false) != ReadResult::kOk) {
      ::close(fd);
      return agent_gone(socket_, "broke off its answer");
    }
    auto decoded = decode(reply.body);
    if (!decoded) {
      ::close(fd);
      return agent_gone(socket_, "sent a malformed answer");
    }
    reply.message = std::move(*decoded);
    if (const auto core = reply.message.get_u64(Tag::kCore); core && *core < CPU_SETSIZE)
      connection.core = static_cast<int>(*core);
    give(connection);
    if (reply.message.type == Type::kError) {
      if (wire_code)
        *wire_code = static_cast<ErrorCode>(reply.message.get_u64(Tag::kCode).value_or(0));
      return std::unexpected(error_of(reply.message));
    }
    return reply;
  }
  return agent_gone(socket_, "closed the connection");
}

}  // namespace certvault::agent
