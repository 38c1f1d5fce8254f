// What the agent tests share: a vault with its CA, a running `certvault agent` on a socket
// in a directory other users can reach (0660, group certvault, as the system instance has
// it), an unprivileged user in that group to run clients as, and the commands to run
// programs as that user with nothing but the agent's socket in their environment.
#pragma once

#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "provider_support.h"
#include "support.h"
#include "test_vault.h"
#include "tls_server.h"

namespace cvtest {

inline constexpr const char* kClientUser = "cvtest-client";
inline constexpr const char* kAgentGroup = "certvault";

// Creates the `certvault` group and an unprivileged user in it, once per machine; tests
// run in parallel, so creation is serialised by a lock file. Empty when not root.
inline std::optional<std::pair<uid_t, gid_t>> client_user() {
  if (::geteuid() != 0) return std::nullopt;
  const int lock = ::open("/tmp/cvtest-useradd.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  ::flock(lock, LOCK_EX);
  if (!::getgrnam(kAgentGroup)) run({"groupadd", "--system", kAgentGroup});
  if (!::getpwnam(kClientUser))
    run({"useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--groups",
         kAgentGroup, kClientUser});
  ::close(lock);
  const passwd* pw = ::getpwnam(kClientUser);
  if (!pw) return std::nullopt;
  return std::pair{pw->pw_uid, pw->pw_gid};
}

// The system instance's user, `certvault` (packaging/sysusers.d/certvault.conf), made as
// its sysusers.d file would when this machine has none. Empty when not root.
inline std::optional<std::pair<uid_t, gid_t>> system_agent_user() {
  if (!client_user()) return std::nullopt;  // the group first
  const int lock = ::open("/tmp/cvtest-useradd.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  ::flock(lock, LOCK_EX);
  if (!::getpwnam("certvault"))
    run({"useradd", "--system", "--no-create-home", "--home-dir", "/var/lib/certvault", "--shell",
         "/usr/sbin/nologin", "--gid", kAgentGroup, "certvault"});
  ::close(lock);
  const passwd* pw = ::getpwnam("certvault");
  if (!pw) return std::nullopt;
  return std::pair{pw->pw_uid, pw->pw_gid};
}

// `openssl pkeyutl -verify` (plain OpenSSL, no provider) of `sig` over the message in `data`
// with the public key of the certificate `cert` (PEM); `options` as pkeyutl takes them
// (-digest sha256, -pkeyopt ...; none for Ed25519). The run: exit code 0 when it verifies.
inline RunResult verify_signature(const fs::path& cert, const fs::path& data, const fs::path& sig,
                                  const std::vector<std::string>& options = {}) {
  std::vector<std::string> argv = {"env",         "OPENSSL_CONF=/dev/null",
                                   "openssl",     "pkeyutl",
                                   "-verify",     "-certin",
                                   "-inkey",      cert.string(),
                                   "-rawin",      "-in",
                                   data.string(), "-sigfile",
                                   sig.string()};
  argv.insert(argv.end(), options.begin(), options.end());
  return run(argv);
}

// What a program writes to the journal (sd_journal_send), caught by the test: a datagram
// socket of its own, which runner() puts where the journal's socket is
// (/run/systemd/journal/socket) for the program it runs only, in a mount namespace of its
// own (the machine's /run is left alone). Needs root, as the agent tests do.
class JournalCapture {
 public:
  explicit JournalCapture(const fs::path& dir) : dir_(dir / "journal") {
    fs::create_directory(dir_);
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string path = (dir_ / "socket").string();
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    bound_ = fd_ >= 0 && path.size() < sizeof addr.sun_path &&
             ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~JournalCapture() {
    if (fd_ >= 0) ::close(fd_);
  }
  JournalCapture(const JournalCapture&) = delete;
  JournalCapture& operator=(const JournalCapture&) = delete;

  // Whether a program may be run with it: the socket is bound, and a mount namespace can
  // be made.
  bool usable() const { return bound_ && run({"unshare", "--mount", "true"}).exit_code == 0; }

  // What runs a program with its journal here (start_agent's `runner`).
  std::vector<std::string> runner() const {
    return {"unshare",
            "--mount",
            "sh",
            "-c",
            "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal && mount --bind '" +
                dir_.string() + "' /run/systemd/journal && exec \"$@\"",
            "sh"};
  }

  // The MESSAGE of every entry received so far, in order.
  const std::vector<std::string>& messages() {
    std::vector<char> buf(256 * 1024);
    for (int i = 0; i < 100000; ++i) {
      const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
      if (n <= 0) break;
      parse(std::string_view(buf.data(), static_cast<size_t>(n)));
    }
    return messages_;
  }

  // Whether a message received so far contains `text`.
  bool said(std::string_view text) {
    for (const auto& m : messages())
      if (m.find(text) != std::string::npos) return true;
    return false;
  }

  // Every message so far, one a line (for a failure's report).
  std::string all() {
    std::string out;
    for (const auto& m : messages()) out += m + "\n";
    return out;
  }

 private:
  // The journal's native protocol: KEY=VALUE lines, or KEY, a newline, a 64-bit
  // little-endian length, the value and a newline for values that hold a newline.
  void parse(std::string_view d) {
    size_t at = 0;
    while (at < d.size()) {
      const size_t nl = d.find('\n', at);
      if (nl == std::string_view::npos) break;
      const std::string_view line = d.substr(at, nl - at);
      if (const size_t eq = line.find('='); eq != std::string_view::npos) {
        if (line.substr(0, eq) == "MESSAGE") messages_.emplace_back(line.substr(eq + 1));
        at = nl + 1;
        continue;
      }
      if (nl + 9 > d.size()) break;
      uint64_t size = 0;
      for (int b = 7; b >= 0; --b) size = size << 8 | static_cast<uint8_t>(d[nl + 1 + b]);
      if (size > d.size() - (nl + 9)) break;
      if (line == "MESSAGE") messages_.emplace_back(d.substr(nl + 9, size));
      at = nl + 9 + size + 1;
    }
  }

  fs::path dir_;
  int fd_ = -1;
  bool bound_ = false;
  std::vector<std::string> messages_;
};

// What a program tells systemd (sd_notify: READY=1, STATUS=..., STOPPING=1), caught by the
// test: a datagram socket of its own, named to the program in $NOTIFY_SOCKET.
class NotifyCapture {
 public:
  explicit NotifyCapture(const fs::path& dir) : path_(dir / "notify.sock") {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    bound_ = fd_ >= 0 && path_.string().size() < sizeof addr.sun_path &&
             ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~NotifyCapture() {
    if (fd_ >= 0) ::close(fd_);
  }
  NotifyCapture(const NotifyCapture&) = delete;
  NotifyCapture& operator=(const NotifyCapture&) = delete;

  bool usable() const { return bound_; }

  // What runs a program with $NOTIFY_SOCKET naming this socket (start_agent's `runner`).
  std::vector<std::string> runner() const { return {"env", "NOTIFY_SOCKET=" + path_.string()}; }

  // Waits (at most `limit`) for a message holding the line `line` ("READY=1"); every
  // message received on the way is kept. Whether it came.
  bool await(std::string_view line, std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    for (int i = 0; i < 10000; ++i) {
      if (said(line)) return true;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          end - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) != 1) continue;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) messages_.emplace_back(buf, static_cast<size_t>(n));
    }
    return said(line);
  }

  // Whether a message received so far has the line `line`.
  bool said(std::string_view line) const {
    for (const auto& m : messages_) {
      std::string_view rest = m;
      while (!rest.empty()) {
        const size_t nl = rest.find('\n');
        if (rest.substr(0, nl) == line) return true;
        if (nl == std::string_view::npos) break;
        rest.remove_prefix(nl + 1);
      }
    }
    return false;
  }

  // Whether a message received so far has a line starting with `prefix` ("STATUS=").
  bool said_prefix(std::string_view prefix) const {
    for (const auto& m : messages_)
      if (m.starts_with(prefix) || m.find("\n" + std::string(prefix)) != std::string::npos)
        return true;
    return false;
  }

  // Every message so far, one a line (for a failure's report).
  std::string all() const {
    std::string out;
    for (const auto& m : messages_) out += "[" + m + "]\n";
    return out;
  }

 private:
  fs::path path_;
  int fd_ = -1;
  bool bound_ = false;
  std::vector<std::string> messages_;
};

// Audit log lines (JSON, one a line) as JSON values: null for a line that does not parse.
inline std::vector<Json::Value> audit_lines(const std::string& text) {
  std::vector<Json::Value> out;
  size_t at = 0;
  while (at < text.size()) {
    size_t nl = text.find('\n', at);
    if (nl == std::string::npos) nl = text.size();
    out.push_back(parse_json(text.substr(at, nl - at)));
    at = nl + 1;
  }
  return out;
}

class AgentTest : public VaultTest {
 protected:
  void SetUp() override {
    VaultTest::SetUp();
    if (HasFatalFailure()) return;
    auto user = client_user();
    if (!user) GTEST_SKIP() << "the agent tests run clients as another user and need root";
    client_uid_ = user->first;
    client_gid_ = user->second;
    pin_file_ = write_secret_file(tmp_ / "pin", kPin);
    auto ca = vault().ca_certificate_der();
    ASSERT_TRUE(ca) << why(ca);
    vault_ca_ = run_dir_ / "vault-ca.pem";
    write_file(vault_ca_, der_to_pem(*ca), 0644);
    ::chmod(run_dir_.path().c_str(), 0755);  // clients reach the socket; the vault stays 0700
    socket_ = run_dir_ / "agent.sock";
    // The client user may not reach the build tree (a checkout under /root is 0700): it
    // loads copies of the provider and the module from the run directory.
    const fs::path provider = fs::path(kProviderDir) / "certvault.so";
    if (fs::exists(provider)) {
      fs::create_directory(run_dir_ / "ossl-modules");
      fs::copy_file(provider, run_dir_ / "ossl-modules" / "certvault.so");
      ::chmod((run_dir_ / "ossl-modules").c_str(), 0755);
      ::chmod((run_dir_ / "ossl-modules" / "certvault.so").c_str(), 0755);
    }
#ifdef CERTVAULT_PKCS11_MODULE
    module_ = run_dir_ / "libcertvault-pkcs11.so";
    fs::copy_file(CERTVAULT_PKCS11_MODULE, module_);
    ::chmod(module_.c_str(), 0755);
#endif
    // Where programs run as the client user write their output.
    out_ = run_dir_ / "out";
    fs::create_directory(out_);
    ASSERT_EQ(::chown(out_.c_str(), client_uid_, client_gid_), 0);
    audit_ = tmp_ / "audit.log";
  }

  void TearDown() override {
    agent_.kill();
  }

  // Starts the agent serving this test's vault (or `vault`); waits (bounded) for its socket.
  // `runner`: a command that execs the agent (taskset -c N).
  void start_agent(const std::vector<std::string>& extra = {},
                   const std::vector<std::string>& runner = {}, const fs::path& vault = {}) {
    spawn_agent(extra, runner, vault);
    ASSERT_TRUE(await_agent()) << read_file(tmp_ / "agent.err");
  }

  // Starts the agent as start_agent does, without waiting for its socket.
  void spawn_agent(const std::vector<std::string>& extra = {},
                   const std::vector<std::string>& runner = {}, const fs::path& vault = {}) {
    std::vector<std::string> argv = runner;
    argv.push_back(cli());
    argv.push_back("agent");
    if (system_instance_) argv.push_back("--system");
    const fs::path served = vault.empty() ? dir_ : vault;
    for (const std::string& a : {std::string("--vault"), served.string(), std::string("--socket"),
                                 socket_.string(), std::string("--audit-log"), audit_.string()})
      argv.push_back(a);
    argv.insert(argv.end(), extra.begin(), extra.end());
    agent_ = ChildGuard(spawn_logged(argv, tmp_ / "agent.out", tmp_ / "agent.err"));
  }

  // Whether the agent's socket answers within 10 s. A socket left by a killed agent exists
  // before the new one listens: this waits for an answer.
  bool await_agent() const {
    for (int i = 0; i < 400; ++i) {
      if (answers()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return false;
  }

  // Starts an agent run by `uid`:`gid` (`setpriv` with `setpriv_options`) on its own copy
  // of this test's vault and of the CLI, in run_dir_/NAME, which it owns and everyone may
  // reach; its socket is opened to everyone, so that only a client's own check stands
  // between. The directory.
  fs::path start_agent_of(const std::string& name, uid_t uid, gid_t gid,
                          const std::vector<std::string>& setpriv_options,
                          const std::vector<std::string>& agent_options = {}) {
    const fs::path home = run_dir_ / name;
    fs::create_directory(home);
    EXPECT_EQ(run({"cp", "-a", dir_.string(), (home / "vault").string()}).exit_code, 0);
    fs::copy_file(cli(), home / "certvault");
    const std::string owner = std::to_string(uid) + ":" + std::to_string(gid);
    EXPECT_EQ(run({"chown", "-R", owner, home.string()}).exit_code, 0);
    ::chmod(home.c_str(), 0755);
    ::chmod((home / "certvault").c_str(), 0755);
    socket_ = home / "agent.sock";
    std::vector<std::string> argv = {"setpriv", "--reuid=" + std::to_string(uid),
                                     "--regid=" + std::to_string(gid)};
    argv.insert(argv.end(), setpriv_options.begin(), setpriv_options.end());
    argv.push_back((home / "certvault").string());
    argv.push_back("agent");
    argv.insert(argv.end(), agent_options.begin(), agent_options.end());
    for (const std::string& a :
         {std::string("--vault"), (home / "vault").string(), std::string("--socket"),
          socket_.string(), std::string("--audit-log"), (home / "audit.log").string()})
      argv.push_back(a);
    agent_ = ChildGuard(spawn_logged(argv, tmp_ / "agent.out", tmp_ / "agent.err"));
    EXPECT_TRUE(await_agent()) << read_file(tmp_ / "agent.err");
    EXPECT_EQ(::chmod(socket_.c_str(), 0666), 0);
    return home;
  }

  // $CREDENTIALS_DIRECTORY as LoadCredentialEncrypted=certvault-pin:... delivers it: a
  // directory holding `pin` in the file certvault-pin (0400). The directory.
  fs::path write_pin_credential(std::string_view pin) {
    const fs::path creds = tmp_ / "credentials";
    fs::create_directories(creds);
    fs::remove(creds / "certvault-pin");
    write_file(creds / "certvault-pin", pin, 0400);
    return creds;
  }

  bool answers() const {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_.c_str(), sizeof addr.sun_path - 1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
  }

  // The certvault CLI as the vault owner, talking to this test's agent; `vault`: another
  // vault than this test's.
  RunResult cv(const std::vector<std::string>& args, bool with_pin = true,
               const fs::path& vault = {}) {
    std::vector<std::string> argv = {"env", "CERTVAULT_AGENT_SOCK=" + socket_.string(), cli(),
                                     "--vault", (vault.empty() ? dir_ : vault).string()};
    if (with_pin) {
      argv.push_back("--pin-file");
      argv.push_back(pin_file_.string());
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }

  void unlock(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"unlock"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = cv(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  // A program run as the unprivileged client user: no vault, no PIN, only the socket.
  std::vector<std::string> as_client(const std::vector<std::string>& argv) {
    std::vector<std::string> out = {"setpriv",
                                    "--reuid=" + std::to_string(client_uid_),
                                    "--regid=" + std::to_string(client_gid_),
                                    "--init-groups",
                                    "env",
                                    "-i",
                                    "PATH=/usr/bin:/bin",
                                    "HOME=/nonexistent",
                                    "OPENSSL_CONF=/dev/null",
                                    "CERTVAULT_AGENT_SOCK=" + socket_.string()};
#ifdef CERTVAULT_SANITIZER_RUNTIME
    out.push_back(std::string("LD_PRELOAD=") + CERTVAULT_SANITIZER_RUNTIME);
    out.push_back("ASAN_OPTIONS=detect_leaks=0");
#endif
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }

  // `openssl COMMAND` with certvault and default, as the client user; `program`: another
  // openssl binary to run.
  RunResult client_openssl(const std::string& command, const std::vector<std::string>& args,
                           std::string_view input = {}, const std::string& program = "openssl") {
    std::vector<std::string> argv = {
        program,     command,     "-provider-path", (run_dir_ / "ossl-modules").string(),
        "-provider", "certvault", "-provider",      "default"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(as_client(argv), input, std::chrono::seconds(60));
  }

  std::string audit_log() {
    return fs::exists(audit_) ? read_file(audit_) : std::string();
  }

  // The current certificate of `nickname`, as PEM in run_dir_/NICKNAME.crt (everyone may
  // read it); that path, or an empty one (and a failure) when the vault has none.
  fs::path write_certificate(const std::string& nickname) {
    auto der = vault().certificate_der(nickname);
    EXPECT_TRUE(der) << nickname << ": " << why(der);
    if (!der) return {};
    const fs::path cert = run_dir_ / (nickname + ".crt");
    write_file(cert, der_to_pem(*der), 0644);
    return cert;
  }

  // The audit log's events, one per line, as JSON (null for a line that does not parse).
  std::vector<Json::Value> audit_events() {
    return audit_lines(audit_log());
  }

  // How many signatures of `nickname` the audit log records with this result, mechanism
  // ("ecdsa/sha256", "ed25519") and peer uid.
  int audited_signatures(const std::string& nickname, const std::string& mechanism, uid_t uid,
                         bool ok = true) {
    int n = 0;
    for (const auto& e : audit_events())
      n += e["action"].asString() == "sign" && e["nickname"].asString() == nickname &&
           e["mechanism"].asString() == mechanism && e["peer"]["uid"].asUInt() == uid &&
           (e["result"].asString() == "ok") == ok;
    return n;
  }

  // Whether start_agent starts the system instance (`--system`: its socket 0660 and of the
  // group certvault, no TTL by default) or, when false, a user's agent (0600, a TTL of 8 h).
  bool system_instance_ = true;
  TempDir run_dir_;
  fs::path socket_, audit_, pin_file_, vault_ca_, out_;
  fs::path module_;  // the PKCS#11 module, as the client user loads it
  uid_t client_uid_ = 0;
  gid_t client_gid_ = 0;
  ChildGuard agent_;
};

}  // namespace cvtest
