// OpenVPN 2.6 as a client (`openvpn --tls-client`) presenting a vault certificate to an
// `openvpn --tls-server` on 127.0.0.1 that requires one from the vault CA
// (--verify-client-cert require), over TCP and with no tun device (--dev null): through
// the PKCS#11 module (--pkcs11-providers, --pkcs11-id as --show-pkcs11-ids prints it) and
// through the provider (--providers certvault default, the URI-in-PEM key file as --key).
// In-process the PIN comes through OpenVPN's management interface (the module) or
// --askpass (the provider); through the agent, as another user, there is none.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/un.h>

#include <cstring>

#include "agent_support.h"
#include "client_support.h"
#include "pkcs11_support.h"

namespace cvtest {
namespace {

constexpr const char* kOpenvpn = "/usr/sbin/openvpn";
constexpr const char* kCompleted = "Initialization Sequence Completed";

std::string text_of(const fs::path& file) {
  return fs::exists(file) ? read_file(file) : std::string();
}

// Waits at most `limit` for `needle` to appear in `log` while `child` runs. False when the
// child ended without writing it, or time ran out.
bool await_in_log(ChildGuard& child, const fs::path& log, const std::string& needle,
                  std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (contains(text_of(log), needle)) return true;
    if (child.exited_within(0ms)) return contains(text_of(log), needle);
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

// `openvpn --tls-server` in point-to-point mode (server mode would want a tun or tap
// device) on a free loopback port: its own certificate and key, clients must present a
// certificate from `client_ca`. Its log, written with --log, is what the tests read.
class OpenvpnServer {
 public:
  static std::optional<OpenvpnServer> start(const fs::path& dir, const fs::path& cert,
                                            const fs::path& key, const fs::path& client_ca) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      OpenvpnServer s;
      s.log_ = dir / ("openvpn-server-" + std::to_string(attempt) + ".log");
      s.port_ = free_loopback_port();
      if (s.port_ == 0) continue;
      s.child_ = ChildGuard(spawn_logged({"env",
                                          "OPENSSL_CONF=/dev/null",
                                          kOpenvpn,
                                          "--tls-server",
                                          "--proto",
                                          "tcp-server",
                                          "--local",
                                          "127.0.0.1",
                                          "--lport",
                                          std::to_string(s.port_),
                                          "--dev",
                                          "null",
                                          "--ca",
                                          client_ca.string(),
                                          "--cert",
                                          cert.string(),
                                          "--key",
                                          key.string(),
                                          "--dh",
                                          "none",
                                          "--verify-client-cert",
                                          "require",
                                          "--verb",
                                          "3",
                                          "--log",
                                          s.log_.string()},
                                         dir / "openvpn-server.out", dir / "openvpn-server.err"));
      if (await_in_log(s.child_, s.log_, "Listening for incoming TCP connection", 10s)) return s;
    }
    ADD_FAILURE() << "openvpn --tls-server did not start: " << text_of(dir / "openvpn-server.err");
    return std::nullopt;
  }

  int port() const { return port_; }
  std::string log() const { return text_of(log_); }

  // Waits (bounded) until the server says `needle`.
  bool says(const std::string& needle) { return await_in_log(child_, log_, needle, 60s); }

 private:
  OpenvpnServer() = default;
  ChildGuard child_;
  int port_ = 0;
  fs::path log_;
};

// An `openvpn --tls-client` run by `launcher` to `server`, trusting `server_cert`, with
// the key options in `key_options`; it logs to `dir`/openvpn-client.log and tries to
// connect once (--connect-retry-max 1), so a refused handshake ends it.
class OpenvpnClient {
 public:
  OpenvpnClient(const std::vector<std::string>& launcher, const OpenvpnServer& server,
                const fs::path& server_cert, const std::vector<std::string>& key_options,
                const fs::path& dir)
      : log_(dir / "openvpn-client.log") {
    std::vector<std::string> argv = launcher;
    for (const std::string& a : {std::string(kOpenvpn),
                                 std::string("--tls-client"),
                                 std::string("--proto"),
                                 std::string("tcp-client"),
                                 std::string("--remote"),
                                 std::string("127.0.0.1"),
                                 std::to_string(server.port()),
                                 std::string("--dev"),
                                 std::string("null"),
                                 std::string("--ca"),
                                 server_cert.string(),
                                 std::string("--verify-x509-name"),
                                 std::string("localhost"),
                                 std::string("name"),
                                 std::string("--connect-retry-max"),
                                 std::string("1"),
                                 std::string("--verb"),
                                 std::string("3"),
                                 std::string("--log"),
                                 log_.string()})
      argv.push_back(a);
    argv.insert(argv.end(), key_options.begin(), key_options.end());
    child_ = ChildGuard(spawn_logged(argv, dir / "openvpn-client.out", dir / "openvpn-client.err"));
  }

  // Whether the client completed its initialisation (bounded), as its user sees it.
  bool completes() { return await_in_log(child_, log_, kCompleted, 60s); }
  // Whether the client ended (bounded).
  bool ends() { return child_.exited_within(60s); }
  std::string log() const { return text_of(log_); }

 private:
  fs::path log_;
  ChildGuard child_;
};

// Answers OpenVPN's request for a token PIN on its management socket
// (--management SOCKET unix --management-query-passwords): waits (bounded) for
// ">PASSWORD:Need 'NAME' password" and sends `password "NAME" PIN`. The request line, or
// "" when none came within 60 s.
std::string answer_pin_request(const fs::path& socket, std::string_view pin) {
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket.c_str(), sizeof addr.sun_path - 1);
  int fd = -1;
  while (fd < 0 && std::chrono::steady_clock::now() < deadline) {
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      fd = -1;
      std::this_thread::sleep_for(50ms);
    }
  }
  if (fd < 0) return {};
  std::string received, request;
  while (request.empty() && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[1024];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    received.append(buf, static_cast<size_t>(n));
    const size_t at = received.find(">PASSWORD:Need '");
    const size_t end = at == std::string::npos ? at : received.find('\n', at);
    if (end != std::string::npos) request = received.substr(at, end - at);
  }
  if (!request.empty()) {
    const size_t open = request.find('\''), close = request.find('\'', open + 1);
    const std::string answer = "password \"" + request.substr(open + 1, close - open - 1) + "\" " +
                               std::string(pin) + "\n";
    if (::write(fd, answer.data(), answer.size()) != static_cast<ssize_t>(answer.size()))
      request.clear();
  }
  ::close(fd);
  if (!request.empty() && request.back() == '\r') request.pop_back();
  return request;
}

// The serialized id of the certificate of `nickname` as `openvpn --show-pkcs11-ids
// MODULE` prints it ("Serialized id:  certvault/vault/SERIAL/LABEL/KEYID"), run by
// `launcher`; "" when it lists none.
std::string pkcs11_id(const std::vector<std::string>& launcher, const fs::path& module,
                      const std::string& nickname) {
  std::vector<std::string> argv = launcher;
  argv.push_back(kOpenvpn);
  argv.push_back("--show-pkcs11-ids");
  argv.push_back(module.string());
  auto r = run(argv, {}, 60s);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string dn = "DN:             CN=" + nickname + "\n";
  const size_t at = r.out.find(dn);
  if (at == std::string::npos) return {};
  const std::string label = "Serialized id:  ";
  const size_t id = r.out.find(label, at);
  if (id == std::string::npos) return {};
  const size_t end = r.out.find('\n', id);
  return r.out.substr(id + label.size(), end - id - label.size());
}

// What a user sees when the connection is made: the client completed, and the server
// verified the vault certificate and named its CN.
void expect_connected(OpenvpnClient& client, OpenvpnServer& server) {
  EXPECT_TRUE(client.completes()) << "openvpn client did not connect; its log:\n"
                                  << client.log() << "\nserver:\n"
                                  << server.log();
  EXPECT_TRUE(server.says("VERIFY OK: depth=0, CN=api")) << server.log();
  EXPECT_TRUE(server.says("[api] Peer Connection Initiated with")) << server.log();
}

bool have_openvpn() {
  return fs::exists(kOpenvpn);
}
constexpr const char* kNoOpenvpn = "openvpn is not installed (scripts/install-deps.sh installs it)";

// In-process: the vault of this test, the PIN from the management interface (the module)
// or from --askpass (the provider).
class Openvpn : public VaultTest {
 protected:
  void SetUp() override {
    VaultTest::SetUp();
    if (HasFatalFailure()) return;
    if (!have_openvpn()) GTEST_SKIP() << kNoOpenvpn;
    issue("api", 100);
    pin_ = write_secret_file(tmp_ / "pin", kPin);
    auto ca = vault().ca_certificate_der();
    ASSERT_TRUE(ca) << why(ca);
    write_file(tmp_ / "vault-ca.pem", der_to_pem(*ca));
    auto made = make_server_cert(tmp_ / "server.pem", tmp_ / "server.key");
    ASSERT_EQ(made.exit_code, 0) << made.err;
    // The certvault CLI as the vault's owner.
    auto owner = [&](std::vector<std::string> args) {
      args.insert(args.begin(), {cli(), "--vault", dir_.string(), "--pin-file", pin_.string()});
      return run(args);
    };
    auto cert = owner({"show", "api", "--pem"});
    ASSERT_EQ(cert.exit_code, 0) << cert.err;
    write_file(tmp_ / "api.crt", cert.out, 0644);
    auto uri = owner({"uri", "api", "--pem", "-o", (tmp_ / "api.key").string()});
    ASSERT_EQ(uri.exit_code, 0) << uri.err;
  }

  std::optional<OpenvpnServer> server(const fs::path& client_ca) {
    return OpenvpnServer::start(tmp_.path(), tmp_ / "server.pem", tmp_ / "server.key", client_ca);
  }

  // The provider from the build tree, by name (--providers certvault default).
  std::vector<std::string> provider_launcher() {
    std::vector<std::string> env = provider_env(dir_);
    env.push_back(std::string("OPENSSL_MODULES=") + kProviderDir);
    env.push_back("setsid");  // no controlling terminal to ask on
    return env;
  }

  std::vector<std::string> provider_options(bool askpass) {
    std::vector<std::string> options = {"--providers",
                                        "certvault",
                                        "default",
                                        "--cert",
                                        (tmp_ / "api.crt").string(),
                                        "--key",
                                        (tmp_ / "api.key").string()};
    if (askpass) {
      options.push_back("--askpass");
      options.push_back(pin_.string());
    }
    return options;
  }

  fs::path pin_;
};

TEST_F(Openvpn, Pkcs11IdWithThePinThroughTheManagementInterface) {
  std::vector<std::string> launcher = module_env(dir_);
  const std::string id = pkcs11_id(launcher, kModule, "api");
  ASSERT_FALSE(id.empty()) << "openvpn --show-pkcs11-ids listed no certificate CN=api";
  auto server = this->server(tmp_ / "vault-ca.pem");
  ASSERT_TRUE(server);
  const fs::path management = tmp_ / "management.sock";
  launcher.push_back("setsid");
  OpenvpnClient client(launcher, *server, tmp_ / "server.pem",
                       {"--pkcs11-providers", kModule, "--pkcs11-id", id, "--management",
                        management.string(), "unix", "--management-query-passwords"},
                       tmp_.path());
  EXPECT_EQ(answer_pin_request(management, kPin), ">PASSWORD:Need 'ops token' password")
      << client.log();
  expect_connected(client, *server);
  EXPECT_FALSE(contains(client.log(), std::string(kPin))) << "the PIN is in the client's log";
  EXPECT_EQ(vault().pin_failures(), 0);
}

TEST_F(Openvpn, Pkcs11IdTakesNoPinFromAskpass) {
  std::vector<std::string> launcher = module_env(dir_);
  const std::string id = pkcs11_id(launcher, kModule, "api");
  ASSERT_FALSE(id.empty()) << "openvpn --show-pkcs11-ids listed no certificate CN=api";
  auto server = this->server(tmp_ / "vault-ca.pem");
  ASSERT_TRUE(server);
  launcher.push_back("setsid");
  // --askpass is for a private key file's password: pkcs11-helper's PIN prompt ignores it.
  OpenvpnClient client(
      launcher, *server, tmp_ / "server.pem",
      {"--pkcs11-providers", kModule, "--pkcs11-id", id, "--askpass", pin_.string()}, tmp_.path());
  ASSERT_TRUE(client.ends()) << client.log();
  EXPECT_TRUE(contains(client.log(), "can't ask for 'Enter ops token Password:'")) << client.log();
  EXPECT_FALSE(contains(client.log(), kCompleted)) << client.log();
}

TEST_F(Openvpn, ProviderKeyFileWithThePinFromAskpass) {
  auto server = this->server(tmp_ / "vault-ca.pem");
  ASSERT_TRUE(server);
  OpenvpnClient client(provider_launcher(), *server, tmp_ / "server.pem", provider_options(true),
                       tmp_.path());
  expect_connected(client, *server);
  EXPECT_EQ(vault().pin_failures(), 0);
}

TEST_F(Openvpn, ProviderKeyFileWithoutAskpassCannotAskForThePin) {
  auto server = this->server(tmp_ / "vault-ca.pem");
  ASSERT_TRUE(server);
  OpenvpnClient client(provider_launcher(), *server, tmp_ / "server.pem", provider_options(false),
                       tmp_.path());
  ASSERT_TRUE(client.ends()) << client.log();
  EXPECT_TRUE(contains(client.log(), "can't ask for 'Enter Private Key Password:'"))
      << client.log();
  EXPECT_FALSE(contains(client.log(), kCompleted)) << client.log();
}

TEST_F(Openvpn, ServerTrustingAnotherCaRefusesTheVaultCertificate) {
  const fs::path other_ca = write_other_ca(tmp_.path());
  ASSERT_FALSE(other_ca.empty());
  auto server = this->server(other_ca);
  ASSERT_TRUE(server);
  OpenvpnClient client(provider_launcher(), *server, tmp_ / "server.pem", provider_options(true),
                       tmp_.path());
  EXPECT_TRUE(server->says("VERIFY ERROR: depth=0")) << server->log();
  ASSERT_TRUE(client.ends()) << client.log();
  EXPECT_FALSE(contains(client.log(), kCompleted)) << client.log();
  EXPECT_FALSE(contains(server->log(), "Peer Connection Initiated")) << server->log();
}

// Through the agent: openvpn run as the client user, with no PIN anywhere and no access
// to the vault directory.
class AgentOpenvpn : public AgentTest {
 protected:
  void SetUp() override {
    AgentTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (!have_openvpn()) GTEST_SKIP() << kNoOpenvpn;
    issue("api", 100);
    start_agent();
    if (HasFatalFailure()) return;
    unlock();
    auto made = make_server_cert(out_ / "server.pem", tmp_ / "server.key");
    ASSERT_EQ(made.exit_code, 0) << made.err;
    ::chmod((out_ / "server.pem").c_str(), 0644);
    auto cert = cv({"show", "api", "--pem"});
    ASSERT_EQ(cert.exit_code, 0) << cert.err;
    write_file(out_ / "api.crt", cert.out, 0644);
    ASSERT_EQ(cv({"uri", "api", "--pem", "-o", (out_ / "api.key").string()}).exit_code, 0);
    const std::string owner = std::to_string(client_uid_) + ":" + std::to_string(client_gid_);
    ASSERT_EQ(run({"chown", owner, (out_ / "api.key").string()}).exit_code, 0);
    server_ =
        OpenvpnServer::start(tmp_.path(), out_ / "server.pem", tmp_ / "server.key", vault_ca_);
    ASSERT_TRUE(server_);
  }

  void allow() {
    ASSERT_EQ(cv({"access", "api", "allow", "--uid", std::to_string(client_uid_)}).exit_code, 0);
  }

  OpenvpnClient provider_client() {
    return OpenvpnClient(
        as_client({"env", "OPENSSL_MODULES=" + (run_dir_ / "ossl-modules").string(), "setsid"}),
        *server_, out_ / "server.pem",
        {"--providers", "certvault", "default", "--cert", (out_ / "api.crt").string(), "--key",
         (out_ / "api.key").string()},
        out_);
  }

  std::optional<OpenvpnServer> server_;
};

TEST_F(AgentOpenvpn, Pkcs11IdWithNoPinAsAnotherUser) {
  allow();
  const std::string id = pkcs11_id(as_client({}), module_, "api");
  ASSERT_FALSE(id.empty()) << "openvpn --show-pkcs11-ids (as the client user) listed no CN=api";
  OpenvpnClient client(as_client({"setsid"}), *server_, out_ / "server.pem",
                       {"--pkcs11-providers", module_.string(), "--pkcs11-id", id}, out_);
  expect_connected(client, *server_);
  EXPECT_TRUE(contains(audit_log(), "\"exe\":\"/usr/sbin/openvpn\"")) << audit_log();
}

TEST_F(AgentOpenvpn, ProviderKeyFileWithNoPinAsAnotherUser) {
  allow();
  OpenvpnClient client = provider_client();
  expect_connected(client, *server_);
  EXPECT_TRUE(contains(audit_log(), "\"exe\":\"/usr/sbin/openvpn\"")) << audit_log();
}

TEST_F(AgentOpenvpn, UserTheAgentRefusesGetsNoKey) {
  // No access rule for the client user: the module lists no certificate of the entry, and
  // the provider's key file loads no key, so openvpn ends before any handshake.
  EXPECT_EQ(pkcs11_id(as_client({}), module_, "api"), "");
  OpenvpnClient client = provider_client();
  ASSERT_TRUE(client.ends()) << client.log();
  EXPECT_TRUE(contains(client.log(), "the certvault agent refuses uid " +
                                         std::to_string(client_uid_) + " the key 'api'"))
      << client.log();
  EXPECT_TRUE(contains(client.log(), "Cannot load private key file")) << client.log();
  EXPECT_FALSE(contains(client.log(), kCompleted)) << client.log();
  EXPECT_FALSE(contains(server_->log(), "CN=api")) << server_->log();
}

}  // namespace
}  // namespace cvtest
