#include "server.h"

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
#include <cstring>
#include <thread>

#include "uid_limit.h"

namespace certvault::agent {
namespace {

namespace fs = std::filesystem;
using asio::local::stream_protocol;

constexpr auto kBodyDeadline = std::chrono::seconds(10);  // a started frame must complete
constexpr auto kSpinAfterReply = std::chrono::microseconds(50);
constexpr uint64_t kMaxConnections = 8192;
constexpr int kSummaryEvery = 900;  // seconds between journal summaries

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

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(stream_protocol::socket socket, Agent& agent, PeerInfo peer, UidLimit::Slot slot)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        agent_(agent),
        peer_(std::move(peer)),
        slot_(std::move(slot)) {
    ++agent_.connections;
  }
  ~Session() {
    agent_.disconnected(conn_);
    --agent_.connections;
  }

  void start() { read_header(); }
  asio::any_io_executor executor() { return socket_.get_executor(); }

 private:
  void read_header() {
    asio::async_read(socket_, asio::buffer(header_),
                     [self = shared_from_this()](std::error_code ec, size_t) {
                       if (!ec) self->read_body();
                     });
  }

  void read_body() {
    auto length = body_length(std::span<const uint8_t, kHeaderSize>(header_));
    if (!length) return close();  // oversized or malformed: this connection only
    body_.resize(*length);
    timer_.expires_after(kBodyDeadline);
    timer_.async_wait([self = shared_from_this()](std::error_code ec) {
      if (!ec) self->close();  // half a message, then silence
    });
    asio::async_read(socket_, asio::buffer(body_),
                     [self = shared_from_this()](std::error_code ec, size_t) {
                       self->timer_.cancel();
                       if (!ec) self->answer();
                     });
  }

  void answer() {
    auto message = decode(body_);
    if (!message) {
      // Said once (a client of another version learns why), then this connection ends.
      wipe();
      reply_.emplace(error_frame(message.error()));
      asio::async_write(socket_, asio::buffer(reply_->bytes().data(), reply_->bytes().size()),
                        [self = shared_from_this()](std::error_code, size_t) { self->close(); });
      return;
    }
    reply_.emplace(agent_.handle(*message, peer_, conn_));
    wipe();  // an unlock request held a PIN
    if (!reply_->fits())
      reply_.emplace(error_frame(ErrorCode::kIo, "the answer would exceed the protocol's limit"));
    asio::async_write(socket_, asio::buffer(reply_->bytes().data(), reply_->bytes().size()),
                      [self = shared_from_this()](std::error_code ec, size_t) {
                        self->reply_.reset();
                        if (ec) return;
                        self->await_next();
                        self->read_header();
                      });
  }

  // A program that signs in a loop sends its next request within microseconds: looking
  // for it that long costs less than sleeping in epoll and being woken (which on a virtual
  // machine costs more than an ECDSA signature). Bounded, so other connections of this
  // loop wait at most that long.
  void await_next() {
    const int fd = socket_.native_handle();
    const auto until = std::chrono::steady_clock::now() + kSpinAfterReply;
    char byte = 0;
    while (std::chrono::steady_clock::now() < until) {
      const ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n != -1 || (errno != EAGAIN && errno != EINTR)) return;
      ::sched_yield();  // another connection's work, or a client, goes first
    }
  }

  void wipe() {
    if (!body_.empty()) sodium_memzero(body_.data(), body_.size());
    body_.clear();
    body_.shrink_to_fit();
  }

  void close() {
    std::error_code ignored;
    socket_.close(ignored);
  }

  stream_protocol::socket socket_;
  asio::steady_timer timer_;
  Agent& agent_;
  PeerInfo peer_;
  UidLimit::Slot slot_;  // this connection's place among its uid's
  ConnState conn_;
  std::array<uint8_t, kHeaderSize> header_{};
  std::vector<uint8_t> body_;
  std::optional<Frame> reply_;
};

class Server {
 public:
  Server(std::vector<std::unique_ptr<asio::io_context>>& loops, Agent& agent, Audit& audit, int fd)
      : loops_(loops),
        io_(*loops.front()),
        acceptor_(io_),
        agent_(agent),
        audit_(audit),
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
  void accept() {
    asio::io_context& loop = *loops_[next_++ % loops_.size()];
    acceptor_.async_accept(loop, [this](std::error_code ec, stream_protocol::socket socket) {
      if (!ec) {
        if (agent_.connections.load() >= kMaxConnections) {
          socket.close(ec);
        } else if (auto peer = identify_peer(socket.native_handle())) {
          if (auto slot = per_uid_.take(peer->id.uid, peer->pid)) {
            // Started on the loop that owns the socket: all its work happens on that thread.
            auto session = std::make_shared<Session>(std::move(socket), agent_, std::move(*peer),
                                                     std::move(*slot));
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
  // quarter of an hour.
  void tick() {
    ticker_.expires_after(std::chrono::seconds(1));
    ticker_.async_wait([this](std::error_code ec) {
      if (ec) return;
      agent_.expire();
      if (++ticks_ % kSummaryEvery == 0) audit_.summarise();
      tick();
    });
  }

  std::vector<std::unique_ptr<asio::io_context>>& loops_;
  asio::io_context& io_;  // the first loop: accepting, signals, the ticker
  size_t next_ = 0;
  stream_protocol::acceptor acceptor_;
  Agent& agent_;
  Audit& audit_;
  UidLimit per_uid_{::geteuid()};
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

Result<void> run(Agent& agent, Audit& audit, int listen_fd) {
  // Idle connections cost one descriptor each: take what the hard limit allows.
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
  const unsigned threads = std::clamp(std::thread::hardware_concurrency(), 2u, 16u);
  std::vector<std::unique_ptr<asio::io_context>> loops;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> busy;
  for (unsigned i = 0; i < threads; ++i) {
    loops.push_back(std::make_unique<asio::io_context>(1));
    busy.push_back(asio::make_work_guard(*loops.back()));
  }
  Server server(loops, agent, audit, listen_fd);
  server.start();
  sd_notify(0, "READY=1\nSTATUS=serving");
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back([&loops, i] { loops[i]->run(); });
  loops.front()->run();
  for (auto& t : pool) t.join();
  // Sessions still open end with their loops, before the agent they refer to.
  busy.clear();
  loops.clear();
  return {};
}

}  // namespace certvault::agent
