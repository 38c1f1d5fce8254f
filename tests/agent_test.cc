// The agent under real programs: an operator unlocks once, and `openssl` run as another
// user, with no PIN, no vault access and no key in its memory, signs and does mutual TLS
// by URI; the per-entry policy, lock, TTL, faults, systemd's interfaces and the audit log.
// Loopback only; each test has its own vault, agent, socket and port.
#include <fcntl.h>
#include <grp.h>
#include <json/json.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

#include "agent_client_support.h"
#include "agent_support.h"

namespace cvtest {
namespace {

using namespace std::chrono_literals;

std::vector<Json::Value> audit_lines(const std::string& text) {
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

class AgentSigning : public AgentTest {
 protected:
  void SetUp() override {
    AgentTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    issue("api", 100);
    data_ = run_dir_ / "data";
    write_file(data_, "the data a program signs\n", 0644);
    auto der = vault().certificate_der("api");
    ASSERT_TRUE(der) << why(der);
    cert_ = run_dir_ / "api.crt";
    write_file(cert_, der_to_pem(*der), 0644);
  }

  void allow_client() {
    auto r = cv({"access", "api", "allow", "--uid", std::to_string(client_uid_)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  // `openssl pkeyutl -sign` as the client user; the signature, checked against the
  // certificate's public key with plain OpenSSL.
  RunResult sign_as_client(const std::string& uri = "certvault:api") {
    const fs::path sig = out_ / "sig";
    fs::remove(sig);
    auto r = client_openssl("pkeyutl", {"-sign", "-inkey", uri, "-rawin", "-digest", "sha256",
                                        "-in", data_.string(), "-out", sig.string()});
    if (r.exit_code == 0) {
      auto check = run({"env", "OPENSSL_CONF=/dev/null", "openssl", "pkeyutl", "-verify", "-certin",
                        "-inkey", cert_.string(), "-rawin", "-digest", "sha256", "-in",
                        data_.string(), "-sigfile", sig.string()});
      EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
    }
    return r;
  }

  fs::path data_, cert_;
};

TEST_F(AgentSigning, AnotherUserSignsByUriWithNoPinOnceUnlocked) {
  start_agent();
  allow_client();
  unlock();
  auto r = sign_as_client();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // The client could not have read the vault itself.
  auto peek = run(as_client({"ls", dir_.string()}));
  EXPECT_NE(peek.exit_code, 0);
}

TEST_F(AgentSigning, LockedVaultTellsTheProgramToUnlockNotToGiveAPin) {
  start_agent();
  allow_client();
  auto r = sign_as_client();
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "vault 'ops' is locked; run certvault unlock")) << r.err;
  EXPECT_FALSE(contains(r.err, "PIN")) << r.err;
}

TEST_F(AgentSigning, UidNotInThePolicyIsRefusedNamingTheEntryAndTheRule) {
  start_agent();
  unlock();
  auto r = sign_as_client();
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "refuses uid " + std::to_string(client_uid_) + " the key 'api'"))
      << r.err;
  EXPECT_TRUE(contains(r.err, "no rule allows uid " + std::to_string(client_uid_))) << r.err;
  // A deny rule wins over an allow rule for the same peer, and says so.
  ASSERT_EQ(cv({"access", "api", "allow", "--gid", kAgentGroup}).exit_code, 0);
  ASSERT_EQ(cv({"access", "api", "deny", "--uid", std::to_string(client_uid_)}).exit_code, 0);
  auto denied = sign_as_client();
  EXPECT_NE(denied.exit_code, 0);
  EXPECT_TRUE(contains(denied.err, "deny uid " + std::to_string(client_uid_))) << denied.err;
  bool refused_in_audit = false;
  for (const auto& e : audit_lines(audit_log()))
    refused_in_audit |= e["result"].asString() == "refused" &&
                        e["peer"]["uid"].asUInt() == client_uid_ &&
                        e["nickname"].asString() == "api";
  EXPECT_TRUE(refused_in_audit) << audit_log();
}

// A systemd unit is what the peer's cgroup says (sd_pid_get_unit). CI machines do not
// boot systemd, so the test puts the client into a cgroup named like a service itself, in
// every hierarchy systemd reads (the unified one, and the named v1 one of a hybrid setup).
class UnitCgroup {
 public:
  explicit UnitCgroup(const std::string& unit) {
    for (const char* root :
         {"/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup"}) {
      const fs::path dir = fs::path(root) / "system.slice" / unit;
      std::error_code ec;
      if (!fs::exists(fs::path(root) / "cgroup.procs", ec)) continue;
      if (fs::create_directories(dir, ec) || fs::exists(dir / "cgroup.procs", ec))
        dirs_.push_back(dir);
    }
  }
  ~UnitCgroup() {
    for (const auto& d : dirs_) ::rmdir(d.c_str());
  }
  bool usable() const { return !dirs_.empty(); }
  // `argv`, started inside the cgroup.
  std::vector<std::string> wrap(const std::vector<std::string>& argv) const {
    std::string join;
    for (const auto& d : dirs_) join += "echo $$ > '" + (d / "cgroup.procs").string() + "'; ";
    std::vector<std::string> out = {"sh", "-c", join + "exec \"$@\"", "sh"};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }

 private:
  std::vector<fs::path> dirs_;
};

TEST_F(AgentSigning, UnitRuleAdmitsTheServiceAndAnExeRuleRefusesTheProgram) {
  const std::string unit = "cvtest-" + std::to_string(::getpid()) + ".service";
  UnitCgroup cgroup(unit);
  if (!cgroup.usable()) GTEST_SKIP() << "no writable cgroup hierarchy to place a client in";
  start_agent();
  unlock();
  ASSERT_EQ(cv({"access", "api", "allow", "--unit", unit}).exit_code, 0);
  const fs::path sig = out_ / "sig";
  const std::vector<std::string> openssl = {"openssl",
                                            "pkeyutl",
                                            "-sign",
                                            "-provider-path",
                                            (run_dir_ / "ossl-modules").string(),
                                            "-provider",
                                            "certvault",
                                            "-provider",
                                            "default",
                                            "-inkey",
                                            "certvault:api",
                                            "-rawin",
                                            "-digest",
                                            "sha256",
                                            "-in",
                                            data_.string(),
                                            "-out",
                                            sig.string()};
  auto outside = run(as_client(openssl), {}, 60s);
  EXPECT_NE(outside.exit_code, 0);
  EXPECT_TRUE(contains(outside.err, "no rule allows uid")) << outside.err;
  auto inside = run(cgroup.wrap(as_client(openssl)), {}, 60s);
  ASSERT_EQ(inside.exit_code, 0) << inside.err;
  EXPECT_TRUE(contains(audit_log(), "\"unit\":\"" + unit + "\"")) << audit_log();
  // The agent runs as root, so it reads the program of another user's process.
  ASSERT_EQ(cv({"access", "api", "deny", "--exe", "/usr/bin/openssl"}).exit_code, 0);
  auto denied = run(cgroup.wrap(as_client(openssl)), {}, 60s);
  EXPECT_NE(denied.exit_code, 0);
  EXPECT_TRUE(contains(denied.err, "deny exe /usr/bin/openssl")) << denied.err;
}

TEST_F(AgentSigning, GroupRuleAdmitsItsMembers) {
  start_agent();
  ASSERT_EQ(cv({"access", "api", "allow", "--gid", kAgentGroup}).exit_code, 0);
  unlock();
  auto r = sign_as_client();
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(AgentSigning, AfterLockNothingSigns) {
  start_agent();
  allow_client();
  unlock();
  ASSERT_EQ(sign_as_client().exit_code, 0);
  auto locked = cv({"lock"}, false);
  ASSERT_EQ(locked.exit_code, 0) << locked.err;
  auto r = sign_as_client();
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "is locked; run certvault unlock")) << r.err;
}

TEST_F(AgentSigning, AfterTheTtlNothingSigns) {
  start_agent();
  allow_client();
  unlock();
  ASSERT_EQ(sign_as_client().exit_code, 0);
  // A new TTL, given again with the PIN, counts from now: a short one, after the first
  // signature, so that a slow (sanitizer) build cannot outlast it before the signature.
  unlock({"--ttl", "1s"});
  std::this_thread::sleep_for(2500ms);
  auto r = sign_as_client();
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "is locked")) << r.err;
  auto status = cv({"status", "--json"}, false);
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_FALSE(parse_json(status.out)["vaults"][0]["unlocked"].asBool()) << status.out;
}

TEST_F(AgentSigning, DisabledEntryIsRefusedAtOnceAndRotationIsSeenWithoutRestart) {
  start_agent();
  allow_client();
  unlock();
  ASSERT_EQ(sign_as_client().exit_code, 0);
  const std::string old_serial = vault().find("api")->current()->serial;
  // Another process rotates: the agent signs with the new key at the next request.
  ASSERT_EQ(cv({"rotate", "api"}).exit_code, 0);
  auto der = vault().certificate_der("api");
  ASSERT_TRUE(der);
  write_file(cert_, der_to_pem(*der), 0644);
  EXPECT_EQ(sign_as_client().exit_code, 0);
  // The superseded generation keeps signing for a program that still holds it.
  auto old = client_openssl("pkey", {"-in", "certvault:api?serial=" + old_serial, "-pubout"});
  EXPECT_EQ(old.exit_code, 0) << old.err;
  ASSERT_EQ(cv({"disable", "api"}).exit_code, 0);
  auto r = sign_as_client();
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "disabled")) << r.err;
}

TEST_F(AgentSigning, EverySignatureIsAuditedOnceWithItsPeer) {
  start_agent();
  allow_client();
  unlock();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(sign_as_client().exit_code, 0);
  int signatures = 0;
  for (const auto& e : audit_lines(audit_log())) {
    if (e["action"].asString() != "sign") continue;
    ++signatures;
    EXPECT_EQ(e["result"].asString(), "ok");
    EXPECT_EQ(e["peer"]["uid"].asUInt(), client_uid_);
    EXPECT_EQ(e["peer"]["exe"].asString(), "/usr/bin/openssl");
    EXPECT_EQ(e["nickname"].asString(), "api");
    EXPECT_EQ(e["generation"].asUInt(), 1u);
    EXPECT_EQ(e["mechanism"].asString(), "ecdsa/sha256");
  }
  EXPECT_EQ(signatures, 3) << audit_log();
  EXPECT_EQ(file_mode(audit_), 0600u);
  EXPECT_FALSE(contains(audit_log(), std::string(kPin)));
  auto listed = cv({"audit", "--audit-log", audit_.string(), "--nickname", "api", "--json"}, false);
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(parse_json(listed.out).size(), 3u) << listed.out;
}

TEST_F(AgentSigning, StatusShowsTheVaultAndWhatItServed) {
  start_agent();
  allow_client();
  unlock({"--ttl", "1h"});
  ASSERT_EQ(sign_as_client().exit_code, 0);
  auto r = cv({"status", "--json"}, false);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json::Value v = parse_json(r.out)["vaults"][0];
  EXPECT_EQ(v["label"].asString(), "ops");
  EXPECT_TRUE(v["unlocked"].asBool());
  EXPECT_TRUE(v["default"].asBool());
  EXPECT_GT(v["ttl_left"].asInt64(), 3500);
  EXPECT_LE(v["ttl_left"].asInt64(), 3600);
  EXPECT_EQ(v["signatures"].asUInt64(), 1u);
  auto text = cv({"status"}, false);
  EXPECT_TRUE(contains(text.out, "unlocked")) << text.out;
}

TEST_F(AgentSigning, WrongPinAtUnlockIsCountedAndSaysSo) {
  start_agent();
  const fs::path wrong = write_secret_file(tmp_ / "wrong", "not-the-pin");
  auto r = run({"env", "CERTVAULT_AGENT_SOCK=" + socket_.string(), cli(), "--vault", dir_.string(),
                "--pin-file", wrong.string(), "unlock"});
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_TRUE(contains(r.err, "wrong PIN")) << r.err;
  EXPECT_EQ(vault().pin_failures(), 1);
}

// --- mutual TLS -----------------------------------------------------------------------

class AgentTls : public AgentSigning {
 protected:
  void SetUp() override {
    AgentSigning::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    server_cert_ = tmp_ / "server.pem";
    server_key_ = tmp_ / "server.key";
    auto made = make_server_cert(server_cert_, server_key_);
    ASSERT_EQ(made.exit_code, 0) << made.err;
    write_file(run_dir_ / "server.pem", read_file(server_cert_), 0644);
  }

  void expect_handshake(const std::string& key, const std::vector<std::string>& server = {}) {
    auto s = TlsServer::start(tmp_.path(), server_cert_, server_key_, vault_ca_, server);
    ASSERT_TRUE(s);
    auto c = client_openssl(
        "s_client",
        {"-connect", "127.0.0.1:" + std::to_string(s->port()), "-cert", "certvault:api", "-key",
         key, "-CAfile", (run_dir_ / "server.pem").string(), "-verify_return_error", "-ign_eof"},
        "GET / HTTP/1.0\r\n\r\n");
    const std::string log = s->log();
    EXPECT_EQ(c.exit_code, 0) << c.out << c.err << "\nserver:\n" << log;
    EXPECT_TRUE(contains(c.out, "Subject: CN=api\n")) << c.out;
    EXPECT_TRUE(contains(log, "depth=0 CN = api\nverify return:1")) << log;
  }

  fs::path server_cert_, server_key_;
};

TEST_F(AgentTls, AnotherUserDoesMutualTlsByUriOverTls12And13) {
  start_agent();
  allow_client();
  unlock();
  expect_handshake("certvault:api", {"-tls1_3"});
  expect_handshake("certvault:api", {"-tls1_2"});
}

TEST_F(AgentTls, UriPemKeyFileWorksThroughTheAgent) {
  start_agent();
  allow_client();
  unlock();
  const fs::path key_file = run_dir_ / "api.key";
  auto made = cv({"uri", "api", "--pem", "-o", key_file.string()}, false);
  ASSERT_EQ(made.exit_code, 0) << made.err;
  ::chown(key_file.c_str(), client_uid_, client_gid_);
  expect_handshake(key_file.string());
}

TEST_F(AgentTls, RsaKeySignsPssAndPkcs1ThroughTheAgent) {
  issue("rsa", 100, certvault::KeyType::kRsa2048);
  start_agent();
  ASSERT_EQ(cv({"access", "rsa", "allow", "--uid", std::to_string(client_uid_)}).exit_code, 0);
  unlock();
  auto der = vault().certificate_der("rsa");
  ASSERT_TRUE(der);
  const fs::path cert = run_dir_ / "rsa.crt";
  write_file(cert, der_to_pem(*der), 0644);
  for (const std::vector<std::string>& opts :
       {std::vector<std::string>{},
        {"-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", "rsa_pss_saltlen:digest"}}) {
    const fs::path sig = out_ / "rsa.sig";
    std::vector<std::string> args = {"-sign",  "-inkey", "certvault:rsa", "-rawin", "-digest",
                                     "sha256", "-in",    data_.string(),  "-out",   sig.string()};
    args.insert(args.end(), opts.begin(), opts.end());
    auto r = client_openssl("pkeyutl", args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> verify = {"env",          "OPENSSL_CONF=/dev/null",
                                       "openssl",      "pkeyutl",
                                       "-verify",      "-certin",
                                       "-inkey",       cert.string(),
                                       "-rawin",       "-digest",
                                       "sha256",       "-in",
                                       data_.string(), "-sigfile",
                                       sig.string()};
    verify.insert(verify.end(), opts.begin(), opts.end());
    auto check = run(verify);
    EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  }
}

// --- faults -----------------------------------------------------------------------------

int connect_raw(const fs::path& socket) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST_F(AgentSigning, GarbageHalfMessagesAndAThousandIdleConnectionsStopNobody) {
  start_agent();
  allow_client();
  unlock();
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = std::min<rlim_t>(files.rlim_max, 4096);
  ::setrlimit(RLIMIT_NOFILE, &files);
  std::vector<int> held;
  // Garbage: an oversized length, then a frame of an unknown version.
  int garbage = connect_raw(socket_);
  ASSERT_GE(garbage, 0);
  const unsigned char huge[] = {0x7f, 0xff, 0xff, 0xff, 1, 2, 3};
  ASSERT_EQ(::write(garbage, huge, sizeof huge), static_cast<ssize_t>(sizeof huge));
  held.push_back(garbage);
  // Half a message, then silence.
  int half = connect_raw(socket_);
  const unsigned char start[] = {0, 0, 0, 40, 1, 1, 2};
  ASSERT_EQ(::write(half, start, sizeof start), static_cast<ssize_t>(sizeof start));
  held.push_back(half);
  for (int i = 0; i < 1000; ++i) {
    int fd = connect_raw(socket_);
    ASSERT_GE(fd, 0) << "connection " << i;
    held.push_back(fd);
  }
  auto r = sign_as_client();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // The garbage connection was closed by the agent: reading gives end of file.
  char byte = 0;
  timeval tv{5, 0};
  ::setsockopt(garbage, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  // Closed with bytes unread: end of file, or a reset.
  const ssize_t got = ::read(garbage, &byte, 1);
  EXPECT_TRUE(got == 0 || (got < 0 && errno == ECONNRESET)) << got << " " << std::strerror(errno);
  for (int fd : held) ::close(fd);
}

// Can fail: without a cap per uid, the one user's connections take all 8192 the agent
// accepts, and it closes the signing program's connection at once ("did not answer").
TEST_F(AgentSigning, OneUserOpeningMoreConnectionsThanItsShareStopsNoOtherUserFromSigning) {
  const passwd* hog_user = ::getpwnam("nobody");
  const group* agent_group = ::getgrnam(kAgentGroup);
  if (!hog_user || !agent_group) GTEST_SKIP() << "no user 'nobody' to open the connections";
  const uid_t hog_uid = hog_user->pw_uid;
  const gid_t hog_gid = hog_user->pw_gid, socket_gid = agent_group->gr_gid;
  constexpr int kConnections = 8192 + 100;  // more than the agent takes in all
  start_agent();
  allow_client();
  unlock();
  int ready[2], release[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(release, O_CLOEXEC), 0);
  // Another user (in the socket's group) opens connections and holds them until released.
  const pid_t hog = fork_child(120s, [&]() -> std::string {
    ::close(ready[0]);
    ::close(release[1]);
    const rlimit files{kConnections + 100, kConnections + 100};
    const gid_t groups[] = {socket_gid};
    if (::setrlimit(RLIMIT_NOFILE, &files) != 0 || ::setgroups(1, groups) != 0 ||
        ::setresgid(hog_gid, hog_gid, hog_gid) != 0 || ::setresuid(hog_uid, hog_uid, hog_uid) != 0)
      return "cannot become nobody with room for the connections";
    std::vector<int> held;
    for (int i = 0; i < kConnections; ++i) {
      const int fd = connect_raw(socket_);
      if (fd < 0) break;
      held.push_back(fd);
    }
    const std::string opened = std::to_string(held.size()) + "\n";
    if (::write(ready[1], opened.data(), opened.size()) != static_cast<ssize_t>(opened.size()))
      return "cannot report";
    char byte = 0;
    while (::read(release[0], &byte, 1) < 0 && errno == EINTR) {
    }
    for (int fd : held) ::close(fd);
    return "";
  });
  ASSERT_GT(hog, 0) << "fork failed";
  ::close(ready[1]);
  ::close(release[0]);
  struct Release {
    pid_t pid;
    int ready, release;
    ~Release() {
      ::close(release);  // the other user lets go of its connections and ends
      ::close(ready);
      wait_children({pid}, 60s);
    }
  } guard{hog, ready[0], release[1]};

  std::string opened;
  pollfd p{ready[0], POLLIN, 0};
  char byte = 0;
  while (opened.find('\n') == std::string::npos && ::poll(&p, 1, 90'000) == 1 &&
         ::read(ready[0], &byte, 1) == 1)
    opened += byte;
  ASSERT_EQ(opened, std::to_string(kConnections) + "\n") << "the other user's connections";
  // The agent kept 1024 of them; the client user, behind them in the queue, still signs.
  auto r = sign_as_client();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto status = cv({"status", "--json"}, false);
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_LE(parse_json(status.out)["connections"].asUInt(), 1024u + 1) << status.out;
}

TEST_F(AgentSigning, KilledAgentGivesAnErrorAndAClientWorksAgainAfterARestart) {
  start_agent();
  allow_client();
  unlock();
  ASSERT_EQ(sign_as_client().exit_code, 0);
  agent_.kill();
  auto r = sign_as_client();
  EXPECT_FALSE(r.timed_out);
  EXPECT_NE(r.exit_code, 0);
  start_agent();
  unlock();
  EXPECT_EQ(sign_as_client().exit_code, 0);
}

TEST_F(AgentTest, RefusesASocketInADirectoryOthersCanWrite) {
  TempDir open_dir;
  ::chmod(open_dir.path().c_str(), 0777);
  auto r = run({cli(), "agent", "--vault", dir_.string(), "--socket",
                (open_dir / "agent.sock").string(), "--audit-log", (tmp_ / "a.log").string()},
               {}, 30s);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "can be written by another user")) << r.err;
  EXPECT_FALSE(fs::exists(open_dir / "agent.sock"));
}

TEST_F(AgentTest, SecondAgentOnTheSameSocketIsRefused) {
  start_agent();
  auto r = run({cli(), "agent", "--vault", dir_.string(), "--socket", socket_.string(),
                "--audit-log", (tmp_ / "b.log").string()},
               {}, 30s);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "already listens")) << r.err;
}

// Can fail: a client that does not check whom it talks to sends `certvault unlock`'s PIN
// to an agent another user runs (which then audits the refused unlock of the third uid),
// and reports that agent's refusal instead of its own.
TEST_F(AgentTest, ClientRefusesAnAgentRunByAnotherUserAndSendsItNothing) {
  const passwd* third = ::getpwnam("nobody");
  if (!third) GTEST_SKIP() << "no user 'nobody' to run the client as";
  // The agent runs as the client user, on its own copy of the vault, in a directory it
  // owns; the socket is opened to everyone, so that only the client's check stands between.
  const fs::path home = run_dir_ / "other";
  fs::create_directory(home);
  ASSERT_EQ(run({"cp", "-a", dir_.string(), (home / "vault").string()}).exit_code, 0);
  fs::copy_file(cli(), home / "certvault");
  const std::string owner = std::to_string(client_uid_) + ":" + std::to_string(client_gid_);
  ASSERT_EQ(run({"chown", "-R", owner, home.string()}).exit_code, 0);
  const fs::path pin = run_dir_ / "third-pin";  // the third user's own PIN file
  write_file(pin, "the third user's own PIN", 0600);
  ASSERT_EQ(::chown(pin.c_str(), third->pw_uid, third->pw_gid), 0);
  ::chmod(home.c_str(), 0755);
  ::chmod((home / "certvault").c_str(), 0755);
  socket_ = home / "agent.sock";
  const fs::path other_audit = home / "audit.log";
  agent_ = ChildGuard(
      spawn_logged({"setpriv", "--reuid=" + std::to_string(client_uid_),
                    "--regid=" + std::to_string(client_gid_), "--init-groups",
                    (home / "certvault").string(), "agent", "--vault", (home / "vault").string(),
                    "--socket", socket_.string(), "--audit-log", other_audit.string()},
                   tmp_ / "agent.out", tmp_ / "agent.err"));
  bool up = false;
  for (int i = 0; i < 400 && !up; ++i) {
    up = answers();
    if (!up) std::this_thread::sleep_for(25ms);
  }
  ASSERT_TRUE(up) << read_file(tmp_ / "agent.err");
  ASSERT_EQ(::chmod(socket_.c_str(), 0666), 0);

  auto r =
      run({"setpriv", "--reuid=" + std::to_string(third->pw_uid),
           "--regid=" + std::to_string(third->pw_gid), "--clear-groups", "env", "-i",
           "PATH=/usr/bin:/bin", "HOME=/nonexistent", "CERTVAULT_AGENT_SOCK=" + socket_.string(),
           (home / "certvault").string(), "unlock", "--pin-file", pin.string()},
          {}, 30s);
  EXPECT_FALSE(r.timed_out);
  EXPECT_NE(r.exit_code, 0);
  ASSERT_EQ(r.err_lines().size(), 1u) << r.err;
  EXPECT_TRUE(contains(r.err, "the certvault agent socket " + socket_.string() +
                                  " is served by uid " + std::to_string(client_uid_)))
      << r.err;
  EXPECT_TRUE(contains(r.err, "nothing was sent to it")) << r.err;
  // The agent heard nothing from the third user: no refused unlock in its audit log.
  const std::string heard = fs::exists(other_audit) ? read_file(other_audit) : std::string();
  EXPECT_FALSE(contains(heard, "\"uid\":" + std::to_string(third->pw_uid))) << heard;
}

// --- systemd's interfaces -----------------------------------------------------------------

TEST_F(AgentSigning, SocketActivationAndACredentialUnlockAtStart) {
  // systemd-socket-activate passes the socket as systemd does (LISTEN_FDS, LISTEN_PID);
  // $CREDENTIALS_DIRECTORY holds the PIN as LoadCredentialEncrypted= delivers it.
  const fs::path creds = tmp_ / "credentials";
  fs::create_directory(creds);
  write_file(creds / "certvault-pin", std::string(kPin), 0400);
  allow_client();
  agent_ = ChildGuard(
      spawn_logged({"systemd-socket-activate", "-E", "CREDENTIALS_DIRECTORY=" + creds.string(),
                    "-l", socket_.string(), cli(), "agent", "--system", "--vault", dir_.string(),
                    "--audit-log", audit_.string()},
                   tmp_ / "agent.out", tmp_ / "agent.err"));
  for (int i = 0; i < 200 && !fs::exists(socket_); ++i) std::this_thread::sleep_for(25ms);
  ASSERT_TRUE(fs::exists(socket_)) << read_file(tmp_ / "agent.err");
  ::chmod(socket_.c_str(), 0666);  // systemd's SocketMode=; the policy still decides
  auto r = sign_as_client();
  EXPECT_EQ(r.exit_code, 0) << r.err << read_file(tmp_ / "agent.err");
}

}  // namespace
}  // namespace cvtest
