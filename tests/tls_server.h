// A TLS server for the mutual-TLS tests: `openssl s_server` on a free loopback port that
// requires a client certificate, and the guard that kills and reaps a child process.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support.h"

namespace cvtest {

using namespace std::chrono_literals;

// A port on 127.0.0.1 that was free a moment ago: bound to port 0, read back, released.
inline int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

// A socket listening on 127.0.0.1:`port` (0: any free port), its port in `bound`; -1 when
// it cannot be had. For the test servers that serve on a loopback port of their own.
inline int listen_loopback(int port, int& bound) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  if (fd >= 0) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  socklen_t size = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, 8) != 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &size) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  bound = ntohs(addr.sin_port);
  return fd;
}

// A child process that is killed (SIGKILL) and reaped when the guard goes away.
class ChildGuard {
 public:
  ChildGuard() = default;
  explicit ChildGuard(pid_t pid) : pid_(pid) {}
  ~ChildGuard() { kill(); }
  ChildGuard(const ChildGuard&) = delete;
  ChildGuard& operator=(const ChildGuard&) = delete;
  ChildGuard(ChildGuard&& other) noexcept
      : pid_(std::exchange(other.pid_, -1)), status_(std::exchange(other.status_, -1)) {}
  ChildGuard& operator=(ChildGuard&& other) noexcept {
    if (this != &other) {
      kill();
      pid_ = std::exchange(other.pid_, -1);
      status_ = std::exchange(other.status_, -1);
    }
    return *this;
  }

  // True once the child has exited (and was reaped), polling for at most `limit`.
  bool exited_within(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (pid_ > 0) {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || (r < 0 && errno != EINTR)) {
        if (r == pid_) status_ = status;
        pid_ = -1;
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(20ms);
    }
    return true;
  }

  pid_t pid() const { return pid_; }

  // The wait status exited_within saw the child end with; -1 until then (and when the
  // guard killed it).
  int status() const { return status_; }

  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

// `openssl s_server -www` on 127.0.0.1 that requires a client certificate issued by
// `client_ca` (-Verify 1 -verify_return_error) and serves one connection; `extra` adds
// options (protocol version, -client_sigalgs, -provider...). `launcher` is what runs
// `openssl` (by default `env OPENSSL_CONF=/dev/null`; a provider test passes its
// environment). Its output goes to files the test reads.
class TlsServer {
 public:
  static std::optional<TlsServer> start(const fs::path& dir, const fs::path& cert,
                                        const fs::path& key, const fs::path& client_ca,
                                        const std::vector<std::string>& extra = {},
                                        const std::vector<std::string>& launcher = {}) {
    std::string last_err;
    for (int attempt = 0; attempt < 5; ++attempt) {
      TlsServer server;
      server.out_ = dir / ("s_server-" + std::to_string(attempt) + ".out");
      server.err_ = dir / ("s_server-" + std::to_string(attempt) + ".err");
      server.port_ = free_loopback_port();
      if (server.port_ == 0) continue;
      std::vector<std::string> argv =
          launcher.empty() ? std::vector<std::string>{"env", "OPENSSL_CONF=/dev/null"} : launcher;
      for (const char* a : {"openssl", "s_server"}) argv.push_back(a);
      // -nameopt oneline: "depth=0 CN = x" in the log on every OpenSSL (3.2 changed the
      // default to utf8,sep_comma_plus_space, "CN=x").
      const std::vector<std::string> options = {"-accept",
                                                "127.0.0.1:" + std::to_string(server.port_),
                                                "-cert",
                                                cert.string(),
                                                "-key",
                                                key.string(),
                                                "-CAfile",
                                                client_ca.string(),
                                                "-Verify",
                                                "1",
                                                "-verify_return_error",
                                                "-www",
                                                "-naccept",
                                                "1",
                                                "-nameopt",
                                                "oneline"};
      argv.insert(argv.end(), options.begin(), options.end());
      argv.insert(argv.end(), extra.begin(), extra.end());
      server.child_ = ChildGuard(spawn_logged(argv, server.out_, server.err_));
      // s_server prints ACCEPT (and flushes) once it listens.
      for (int i = 0; i < 500; ++i) {
        if (read_file(server.out_).find("ACCEPT") != std::string::npos) return server;
        if (server.child_.exited_within(0ms)) break;
        std::this_thread::sleep_for(20ms);
      }
      last_err = read_file(server.err_);
    }
    ADD_FAILURE() << "openssl s_server did not start: " << last_err;
    return std::nullopt;
  }

  int port() const { return port_; }

  // The server's stderr (verification results) and stdout, after it has finished its one
  // connection or, failing that within `wait`, been killed.
  std::string log(std::chrono::milliseconds wait = 5s) {
    if (!child_.exited_within(wait)) child_.kill();
    return read_file(err_) + read_file(out_);
  }

 private:
  TlsServer() = default;
  ChildGuard child_;
  int port_ = 0;
  fs::path out_, err_;
};

}  // namespace cvtest
