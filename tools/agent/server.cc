#include "server.h"

#include <pthread.h>
#include <sched.h>
#include <sodium.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <asio.hpp>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>
#include <thread>

#include "uid_limit.h"

namespace certvault::agent {
namespace {

namespace fs = std::filesystem;
using asio::local::stream_protocol;

constexpr auto kBodyDeadline = std::chrono::seconds(10);  // a started frame must complete
constexpr auto kSpinAfterReply = std::chrono::microseconds(50);

std::unexpected<Error> io_fail(const std::string& what) {
  return fail(Code::kIo, what + ": " + std::strerror(errno));
}

// A directory where another user could replace the socket is refused.
Result<void> check_parent(const fs::path& dir) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return io_fail("cannot read " + dir.string());
  if (!S_ISDIR(st.st_mode))
    return fail(Code::kBadPermissions, dir.string() + " is not a directory");
  if ((st.st_uid != ::geteuid() && st.st_uid != 0) || (st.st_mode & (S_IWGRP | S_IWOTH)))
    return fail(Code::kBadPermissions,
                "the agent socket's directory " + dir.string() +
                    " can be written by another user; give --socket in a directory only you "
                    "(or root) can write, such as $XDG_RUNTIME_DIR/certvault");
  return {};
}

// The core this loop's thread stays on; -1 when the agent does not keep its loops on cores.
thread_local int loop_core = -1;
// The cores the agent was given, before each loop was kept to one.
cpu_set_t given_cores;

// An unlock answered on a loop kept to one core runs with every core the agent was given:
// the thread that unlock starts to hash the manifest beside Argon2id (vault format 6) starts
// with the cores of the thread that makes it, and would otherwise share Argon2id's.
class Unpinned {
 public:
  Unpinned() {
    if (loop_core >= 0)
      widened_ = ::pthread_setaffinity_np(::pthread_self(), sizeof given_cores, &given_cores) == 0;
  }
  ~Unpinned() {
    if (!widened_) return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(loop_core, &one);
    ::pthread_setaffinity_np(::pthread_self(), sizeof one, &one);
  }
  Unpinned(const Unpinned&) = delete;
  Unpinned& operator=(const Unpinned&) = delete;

 private:
  bool widened_ = false;
};

// One connection. Requests are read and answered on the loop's thread with plain
// non-blocking calls: a request that is already there (the common case for a program that
// signs in a loop) costs one recv and one send, with no trip through the reactor; Asio
// waits only when there is nothing to read, or a long answer does not fit the socket.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(stream_protocol::socket socket, Agent& agent, PeerInfo peer, UidLimit::Slot slot,
          std::atomic<size_t>& on_loop)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        agent_(agent),
        peer_(std::move(peer)),
        slot_(std::move(slot)),
        on_loop_(on_loop) {
    ++agent_.connections;
    ++on_loop_;
  }
  ~Session() {
    wipe_all();
    agent_.disconnected(conn_);
    --agent_.connections;
    --on_loop_;
  }

  void start() { pump(false); }
  asio::any_io_executor executor() { return socket_.get_executor(); }

 private:
  // Enough for a signature request; an idle connection that never sent one holds none.
  static constexpr size_t kInitialBuffer = 512;
  static constexpr int kRequestsPerTurn = 4;  // then the loop's other connections go first

  enum class Read { kGot, kNothing, kClosed };

  // Answers every complete request there is, reading as long as bytes come, then waits.
  // `answered`: a reply just went out, so the next request is probably on its way.
  void pump(bool answered) {
    for (int turn = 0; turn < kRequestsPerTurn;) {
      if (closed_) return;
      if (auto size = complete_frame()) {
        if (!*size) return close();  // oversized or malformed: this connection only
        ++turn;
        if (!answer(*size)) return;  // the rest of the answer is being written
        answered = true;
        continue;
      }
      switch (read_more()) {
        case Read::kGot:
          continue;
        case Read::kClosed:
          return close();
        case Read::kNothing:
          if (answered && await_next()) {
            answered = false;
            continue;
          }
          if (closed_) return;
          return wait();
      }
    }
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->pump(true); });
  }

  // The size of the first request in the buffer when all of it is there: nullopt while
  // it is incomplete, 0 when its header is out of bounds.
  std::optional<size_t> complete_frame() {
    if (have_ < kHeaderSize) return std::nullopt;
    auto length = body_length(std::span<const uint8_t, kHeaderSize>(in_.data(), kHeaderSize));
    if (!length) return size_t{0};
    const size_t size = kHeaderSize + *length;
    if (in_.size() < size) grow(size);
    if (have_ < size) return std::nullopt;
    return size;
  }

  Read read_more() {
    // complete_frame() has made room for the whole of a started frame: the buffer is full
    // only before the first read, or when it holds complete frames still to answer.
    if (in_.empty()) grow(kInitialBuffer);
    if (have_ == in_.size()) return Read::kClosed;  // cannot be: see above
    for (;;) {
      const ssize_t n =
          ::recv(socket_.native_handle(), in_.data() + have_, in_.size() - have_, MSG_DONTWAIT);
      if (n > 0) {
        have_ += static_cast<size_t>(n);
        return Read::kGot;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Read::kNothing;
      return Read::kClosed;
    }
  }

  // A program that signs in a loop sends its next request within microseconds: looking
  // for it that long costs less than sleeping in epoll and being woken (which on a virtual
  // machine costs more than an ECDSA signature). Bounded: other connections of this loop
  // wait at most kRequestsPerTurn answers and looks.
  // The look adapts as halt-polling does: halved each time the next request did not come
  // within it (a program that signs now and then: a TLS client, once per handshake), whole
  // again when one came within it, or that soon after the agent stopped looking.
  bool await_next() {
    const auto start = std::chrono::steady_clock::now();
    const auto until = start + spin_;
    while (std::chrono::steady_clock::now() < until) {
      ::sched_yield();  // another connection's work, or a client, goes first
      switch (read_more()) {
        case Read::kGot:
          spin_ = kSpinAfterReply;
          return true;
        case Read::kClosed:
          close();
          return false;
        case Read::kNothing:
          break;
      }
    }
    spin_ /= 2;
    if (spin_ < kSpinAfterReply / 8) spin_ = {};
    idle_since_ = start;
    return false;
  }

  void wait() {
    // A started request must be complete within the deadline: half a message, then
    // silence, ends the connection. An idle connection between requests may stay.
    if (have_ > 0 && !deadline_armed_) {
      deadline_armed_ = true;
      timer_.expires_after(kBodyDeadline);
      timer_.async_wait([self = shared_from_this(), armed = ++deadlines_](std::error_code ec) {
        if (!ec && self->deadline_armed_ && armed == self->deadlines_) self->close();
      });
    }
    socket_.async_wait(
        stream_protocol::socket::wait_read, [self = shared_from_this()](std::error_code ec) {
          if (ec) return;
          if (std::chrono::steady_clock::now() - self->idle_since_ <= kSpinAfterReply)
            self->spin_ = kSpinAfterReply;
          self->pump(false);
        });
  }

  // Answers the request at the front of the buffer; false when the connection is closing
  // or the answer is still being written.
  bool answer(size_t size) {
    if (deadline_armed_) {
      deadline_armed_ = false;
      timer_.cancel();
    }
    const std::span<const uint8_t> body(in_.data() + kHeaderSize, size - kHeaderSize);
    auto message = decode(body);
    if (!message) {
      // Said once (a client of another version learns why), then this connection ends.
      consume(size);
      reply_.emplace(error_frame(message.error()));
      closing_ = true;
      return send_reply();
    }
    {
      std::optional<Unpinned> wide;
      if (message->type == Type::kUnlock || message->type == Type::kCheckPin) wide.emplace();
      reply_.emplace(agent_.handle(*message, peer_, conn_));
    }
    consume(size);  // an unlock request held a PIN
    if (message->type == Type::kSign && reply_->type() == Type::kOk && loop_core >= 0)
      reply_->add_u64(Tag::kCore, static_cast<uint64_t>(loop_core));
    if (!reply_->fits())
      reply_.emplace(error_frame(ErrorCode::kIo, "the answer would exceed the protocol's limit"));
    return send_reply();
  }

  // Sends what the socket takes now and hands the rest to Asio.
  bool send_reply() {
    auto bytes = reply_->bytes();
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ::send(socket_.native_handle(), bytes.data() + sent, bytes.size() - sent,
                               MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        asio::async_write(socket_, asio::buffer(bytes.data() + sent, bytes.size() - sent),
                          [self = shared_from_this()](std::error_code ec, size_t) {
                            self->reply_.reset();
                            if (ec || self->closing_) return self->close();
                            self->pump(true);
                          });
        return false;
      } else {
        close();
        return false;
      }
    }
    reply_.reset();
    if (closing_) close();
    return !closing_;
  }

  // Drops the request at the front of the buffer, wiping it.
  void consume(size_t size) {
    sodium_memzero(in_.data(), size);
    if (have_ > size) {
      std::memmove(in_.data(), in_.data() + size, have_ - size);
      sodium_memzero(in_.data() + (have_ - size), size);
    }
    have_ -= size;
    if (have_ == 0 && in_.size() > kInitialBuffer) {
      in_.resize(kInitialBuffer);  // what was there is wiped already
      in_.shrink_to_fit();
    }
  }

  // A larger buffer; the old one is wiped before it is freed (it may hold a PIN).
  void grow(size_t size) {
    std::vector<uint8_t> bigger(size);
    if (have_ > 0) std::memcpy(bigger.data(), in_.data(), have_);
    wipe_all();
    in_.swap(bigger);
  }

  void wipe_all() {
    if (!in_.empty()) sodium_memzero(in_.data(), in_.size());
  }

  void close() {
    closed_ = true;
    std::error_code ignored;
    timer_.cancel();
    socket_.close(ignored);
  }

  stream_protocol::socket socket_;
  asio::steady_timer timer_;
  Agent& agent_;
  PeerInfo peer_;
  UidLimit::Slot slot_;           // this connection's place among its uid's
  std::atomic<size_t>& on_loop_;  // the sessions of this session's loop
  ConnState conn_;
  std::vector<uint8_t> in_;  // what has been read and not yet answered
  size_t have_ = 0;
  bool deadline_armed_ = false;
  uint64_t deadlines_ = 0;  // which deadline is the armed one
  bool closing_ = false;    // the answer being sent is the last
  bool closed_ = false;
  std::chrono::microseconds spin_ = kSpinAfterReply;    // how long await_next() looks
  std::chrono::steady_clock::time_point idle_since_{};  // the last answer's look began
  std::optional<Frame> reply_;
};

class Server {
 public:
  Server(std::vector<std::unique_ptr<asio::io_context>>& loops,
         std::vector<std::atomic<size_t>>& sessions, Agent& agent, Audit& audit, int fd,
         const RunOptions& options)
      : loops_(loops),
        sessions_(sessions),
        io_(*loops.front()),
        acceptor_(io_),
        agent_(agent),
        audit_(audit),
        limits_(options.limits),
        summary_every_(options.summary_every ? options.summary_every->count() : 0),
        per_uid_(::geteuid(), options.limits),
        ticker_(io_),
        signals_(io_, SIGTERM, SIGINT) {
    acceptor_.assign(stream_protocol(), fd);
  }

  void start() {
    accept();
    tick();
    signals_.async_wait([this](std::error_code ec, int signo) {
      if (ec) return;
      sd_notify(0, "STOPPING=1");
      agent_.lock_all(signo == SIGTERM ? "SIGTERM" : "SIGINT");
      audit_.summarise();
      for (auto& loop : loops_) loop->stop();
    });
  }

 private:
  // The loop with the fewest connections takes the next one: two connections open at the
  // same time (a program's two signing threads) are served on two threads. The first loop,
  // which also accepts and handles signals, counts one more.
  size_t quietest_loop() const {
    size_t best = 0;
    size_t fewest = sessions_[0].load() + 1;
    for (size_t i = 1; i < sessions_.size(); ++i)
      if (const size_t n = sessions_[i].load(); n < fewest) best = i, fewest = n;
    return best;
  }

  void accept() {
    const size_t index = quietest_loop();
    acceptor_.async_accept(*loops_[index], [this, index](std::error_code ec,
                                                         stream_protocol::socket socket) {
      if (!ec) {
        if (agent_.connections.load() >= limits_.total) {
          socket.close(ec);
        } else if (auto peer = identify_peer(socket.native_handle())) {
          if (auto slot = per_uid_.take(peer->id.uid, peer->pid)) {
            // Started on the loop that owns the socket: all its work happens on that thread.
            auto session = std::make_shared<Session>(std::move(socket), agent_, std::move(*peer),
                                                     std::move(*slot), sessions_[index]);
            asio::post(session->executor(), [session] { session->start(); });
          } else {
            socket.close(ec);  // that user holds its share: others' connections go on
          }
        }
      } else if (ec == asio::error::operation_aborted) {
        return;
      } else if (ec == asio::error::no_descriptors) {
        // Out of file descriptors: keep serving the connections there are.
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      accept();
    });
  }

  // TTLs are checked every second (and before every request); the journal summary every
  // `summary_every_` seconds (a quarter of an hour unless told otherwise).
  void tick() {
    ticker_.expires_after(std::chrono::seconds(1));
    ticker_.async_wait([this](std::error_code ec) {
      if (ec) return;
      agent_.expire();
      if (summary_every_ > 0 && ++ticks_ % static_cast<uint64_t>(summary_every_) == 0)
        audit_.summarise();
      tick();
    });
  }

  std::vector<std::unique_ptr<asio::io_context>>& loops_;
  std::vector<std::atomic<size_t>>& sessions_;  // connections per loop
  asio::io_context& io_;                        // the first loop: accepting, signals, the ticker
  stream_protocol::acceptor acceptor_;
  Agent& agent_;
  Audit& audit_;
  ConnectionLimits limits_;
  int64_t summary_every_;  // seconds; 0: only at the end
  UidLimit per_uid_;
  asio::steady_timer ticker_;
  asio::signal_set signals_;
  uint64_t ticks_ = 0;
};

}  // namespace

Result<int> listen_socket(const ListenOptions& options) {
  const int passed = sd_listen_fds(1);
  if (passed > 1)
    return fail(Code::kInvalidInput, "systemd passed " + std::to_string(passed) +
                                         " sockets; the agent takes one (ListenStream= once)");
  if (passed == 1) {
    const int fd = SD_LISTEN_FDS_START;
    if (sd_is_socket_unix(fd, SOCK_STREAM, 1, nullptr, 0) <= 0)
      return fail(Code::kInvalidInput,
                  "the socket systemd passed is not a listening Unix stream socket");
    return fd;
  }
  const fs::path& path = options.socket;
  const fs::path dir = path.parent_path();
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) return fail(Code::kIo, "cannot create " + dir.string() + ": " + ec.message());
    ::chmod(dir.c_str(), options.mode == 0600 ? 0700 : 0755);
  }
  CV_CHECK(check_parent(dir));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.string().size() >= sizeof addr.sun_path)
    return fail(Code::kInvalidInput, "the socket path " + path.string() + " is too long");
  std::memcpy(addr.sun_path, path.c_str(), path.string().size() + 1);
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return fail(Code::kExists, path.string() +
                                     " exists and is not a socket; remove it or give "
                                     "another --socket");
    const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool live = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(probe);
    if (live)
      return fail(Code::kExists, "another certvault agent already listens on " + path.string());
    ::unlink(path.c_str());  // left by an agent that was killed
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return io_fail("cannot make a socket");
  const mode_t old = ::umask(0177);  // never reachable by others, even for a moment
  const int bound = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::umask(old);
  if (bound != 0) {
    ::close(fd);
    return io_fail("cannot listen on " + path.string());
  }
  if ((options.group && ::chown(path.c_str(), static_cast<uid_t>(-1), *options.group) != 0) ||
      ::chmod(path.c_str(), options.mode) != 0 || ::listen(fd, 512) != 0) {
    ::close(fd);
    return io_fail("cannot set up the socket " + path.string());
  }
  return fd;
}

Result<void> run(Agent& agent, Audit& audit, int listen_fd, const RunOptions& options) {
  // Idle connections cost one descriptor each: take what the hard limit allows.
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
  // A peer that goes away mid-answer is that connection's end, not the agent's (every send
  // says MSG_NOSIGNAL as well).
  ::signal(SIGPIPE, SIG_IGN);
  // One loop per core the agent may run on (at least two, at most sixteen).
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  const int usable = ::sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 2;
  given_cores = cpus;
  const unsigned threads = std::clamp(static_cast<unsigned>(usable), 2u, 16u);
  std::vector<std::atomic<size_t>> sessions(threads);  // outlives the sessions, in the loops
  std::vector<std::unique_ptr<asio::io_context>> loops;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> busy;
  for (unsigned i = 0; i < threads; ++i) {
    loops.push_back(std::make_unique<asio::io_context>(1));
    busy.push_back(asio::make_work_guard(*loops.back()));
  }
  {
    // The acceptor, the ticker and the signal set go before the loop they belong to.
    Server server(loops, sessions, agent, audit, listen_fd, options);
    server.start();
    sd_notify(0, "READY=1\nSTATUS=serving");
    // Each loop stays on a core of its own. A client looks for its answer giving its core
    // up at once to any thread with work there; with the loops spread this way, a loop
    // always has a core to answer on, and the scheduler never puts two loops on one core
    // while a client looks on the other (two signing threads then did the work of one).
    const bool pin = static_cast<unsigned>(usable) == threads;
    std::vector<int> cores;
    for (int c = 0; pin && c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &cpus)) cores.push_back(c);
    auto serve = [&loops, &cores](unsigned i) {
      if (i < cores.size()) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cores[i], &one);
        if (::pthread_setaffinity_np(::pthread_self(), sizeof one, &one) == 0) loop_core = cores[i];
      }
      loops[i]->run();
    };
    std::vector<std::thread> pool;
    for (unsigned i = 1; i < threads; ++i) pool.emplace_back(serve, i);
    serve(0);
    for (auto& t : pool) t.join();
  }
  // Sessions still open end with their loops, before the agent they refer to.
  busy.clear();
  loops.clear();
  return {};
}

}  // namespace certvault::agent
