// What the client-recipe tests share (docs/pkcs11.md, "Client recipes"): a user to log in
// as over SSH, a throwaway sshd and nginx on free loopback ports run as the test's
// children, an OpenSSL configuration that loads the provider, and waiting (bounded) for a
// server to listen.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support.h"
#include "tls_server.h"

namespace cvtest {

using namespace std::chrono_literals;

inline constexpr const char* kLoginUser = "cvtest-login";

// A user to log in as through the test sshd: a shell (/bin/sh), no home and no password
// ('*', which sshd does not take for a locked account), made once per machine like
// client_user(). Empty when not root.
inline std::optional<uid_t> login_user() {
  if (::geteuid() != 0) return std::nullopt;
  const int lock = ::open("/tmp/cvtest-useradd.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  ::flock(lock, LOCK_EX);
  if (!::getpwnam(kLoginUser))
    run({"useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell",
         "/bin/sh", "--password", "*", kLoginUser});
  ::close(lock);
  const passwd* pw = ::getpwnam(kLoginUser);
  if (!pw) return std::nullopt;
  return pw->pw_uid;
}

// Whether something accepts connections on 127.0.0.1:`port`.
inline bool listens(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// Waits at most 10 s for `port` to listen while `child` runs. False when the child ended
// or time ran out.
inline bool await_listening(ChildGuard& child, int port) {
  for (int i = 0; i < 500; ++i) {
    if (listens(port)) return true;
    if (child.exited_within(0ms)) return false;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

// A throwaway OpenSSH server on a free loopback port (`sshd -D -e -f CONFIG`), with its own
// host key and configuration in `dir` (which the login user must be able to reach), that
// admits only kLoginUser, by public key only, with the keys in `authorized_keys`.
class Sshd {
 public:
  static std::optional<Sshd> start(const fs::path& dir, const std::string& authorized_keys) {
    Sshd s;
    s.dir_ = dir;
    s.log_ = dir / "sshd.log";
    const fs::path host_key = dir / "host_key";
    auto made =
        run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "host", "-f", host_key.string()});
    if (made.exit_code != 0) {
      ADD_FAILURE() << "ssh-keygen: " << made.err;
      return std::nullopt;
    }
    write_file(dir / "authorized_keys", authorized_keys, 0644);
    // sshd (as root) wants its privilege separation directory, which Debian's unit makes.
    if (!fs::exists("/run/sshd")) ::mkdir("/run/sshd", 0755);
    for (int attempt = 0; attempt < 5; ++attempt) {
      s.port_ = free_loopback_port();
      // StrictModes no: the keys file lives in a temporary directory, under /tmp.
      write_file(dir / "sshd_config",
                 "ListenAddress 127.0.0.1:" + std::to_string(s.port_) + "\nHostKey " +
                     host_key.string() + "\nPidFile none\nAuthorizedKeysFile " +
                     (dir / "authorized_keys").string() +
                     "\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
                     "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nAllowUsers " +
                     kLoginUser + "\nLogLevel VERBOSE\n",
                 0644);
      s.child_ = ChildGuard(
          spawn_logged({"/usr/sbin/sshd", "-D", "-e", "-f", (dir / "sshd_config").string()},
                       dir / "sshd.out", s.log_));
      if (await_listening(s.child_, s.port_)) {
        write_file(
            dir / "known_hosts",
            "[127.0.0.1]:" + std::to_string(s.port_) + " " + read_file(host_key.string() + ".pub"),
            0644);
        return s;
      }
      s.child_.kill();
    }
    ADD_FAILURE() << "sshd did not start: " << read_file(s.log_);
    return std::nullopt;
  }

  int port() const { return port_; }
  std::string log() const { return read_file(log_); }

  // `ssh` logging in as kLoginUser and running `id -un`, with the options every test gives
  // (this server's host key only, no password or keyboard prompts, bounded connect) and
  // `options` (-o PKCS11Provider=...).
  std::vector<std::string> ssh(const std::vector<std::string>& options) const {
    std::vector<std::string> argv = {"ssh",
                                     "-F",
                                     "/dev/null",
                                     "-p",
                                     std::to_string(port_),
                                     "-o",
                                     "UserKnownHostsFile=" + (dir_ / "known_hosts").string(),
                                     "-o",
                                     "StrictHostKeyChecking=yes",
                                     "-o",
                                     "PasswordAuthentication=no",
                                     "-o",
                                     "KbdInteractiveAuthentication=no",
                                     "-o",
                                     "ConnectTimeout=10"};
    argv.insert(argv.end(), options.begin(), options.end());
    argv.push_back(std::string(kLoginUser) + "@127.0.0.1");
    argv.push_back("echo logged in as $(id -un)");
    return argv;
  }

 private:
  Sshd() = default;
  fs::path dir_, log_;
  int port_ = 0;
  ChildGuard child_;
};

// nginx as the test's child (`nginx -p PREFIX -c CONF -e LOG -g 'daemon off;'`), its pid
// file, logs and temporary directories under `prefix`, which whoever runs it must own.
// `http_servers(ports)` gives the server blocks of its http section for `port_count` free
// loopback ports; start() waits (bounded) until every port listens. `launcher` runs nginx
// (`env OPENSSL_CONF=...`, another user).
class Nginx {
 public:
  static std::optional<Nginx> start(
      const fs::path& prefix, int port_count,
      const std::function<std::string(const std::vector<int>&)>& http_servers,
      const std::vector<std::string>& launcher) {
    Nginx n;
    n.prefix_ = prefix;
    const std::string p = prefix.string();
    for (int attempt = 0; attempt < 5; ++attempt) {
      n.ports_.clear();
      for (int i = 0; i < port_count; ++i) n.ports_.push_back(free_loopback_port());
      std::string conf = "pid " + p + "/nginx.pid;\nworker_processes 1;\n" +
                         "events { worker_connections 64; }\nhttp {\n  access_log off;\n";
      for (const char* t : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"})
        conf += std::string("  ") + t + "_temp_path " + p + "/" + t + ";\n";
      conf += http_servers(n.ports_) + "}\n";
      write_file(prefix / "nginx.conf", conf, 0644);
      std::vector<std::string> argv = launcher;
      for (const std::string& a : {std::string("/usr/sbin/nginx"), std::string("-p"), p,
                                   std::string("-c"), p + "/nginx.conf", std::string("-e"),
                                   p + "/error.log", std::string("-g"), std::string("daemon off;")})
        argv.push_back(a);
      n.child_ = ChildGuard(spawn_logged(argv, prefix / "nginx.out", prefix / "nginx.err"));
      bool all = true;
      for (int port : n.ports_) all = all && await_listening(n.child_, port);
      if (all) return n;
      n.stop();
    }
    ADD_FAILURE() << "nginx did not start: " << n.log();
    return std::nullopt;
  }

  Nginx(Nginx&&) = default;
  Nginx& operator=(Nginx&& other) noexcept {
    if (this != &other) {
      stop();
      prefix_ = std::move(other.prefix_);
      ports_ = std::move(other.ports_);
      child_ = std::move(other.child_);
    }
    return *this;
  }
  ~Nginx() { stop(); }

  // SIGTERM, so that the master ends its workers (after a SIGKILL they would keep running,
  // and listening); SIGKILL only if it has not ended within 10 s.
  void stop() {
    if (child_.pid() <= 0) return;
    ::kill(child_.pid(), SIGTERM);
    if (!child_.exited_within(10s)) child_.kill();
  }

  int port(size_t i) const { return ports_.at(i); }
  std::string log() const {
    auto text = [](const fs::path& f) { return fs::exists(f) ? read_file(f) : std::string(); };
    return text(prefix_ / "nginx.err") + text(prefix_ / "error.log");
  }

 private:
  Nginx() = default;
  fs::path prefix_;
  std::vector<int> ports_;
  ChildGuard child_;
};

// An openssl.cnf that loads `default`, then certvault from `provider_dir` with the lines
// of its section in `certvault_lines` (pin-source = ..., agent-socket = ...).
inline std::string provider_openssl_cnf(const fs::path& provider_dir,
                                        const std::string& certvault_lines) {
  return "openssl_conf = openssl_init\n[openssl_init]\nproviders = provider_sect\n"
         "[provider_sect]\ndefault = default_sect\ncertvault = certvault_sect\n"
         "[default_sect]\nactivate = 1\n[certvault_sect]\nmodule = " +
         (provider_dir / "certvault.so").string() + "\n" + certvault_lines + "activate = 1\n";
}

}  // namespace cvtest
