// nginx 1.22 with the provider loaded from an OpenSSL configuration of its own and the
// URI-in-PEM key file (`certvault uri --pem`): `ssl_certificate_key` for its own server
// key, and `proxy_ssl_certificate_key` presenting the vault certificate to an upstream
// (`openssl s_server -Verify 1`) that demands one. With a PIN source in-process (nginx
// as root, its worker as nobody), and with none through the agent, nginx run as another
// user. Loopback only.
#include <gtest/gtest.h>

#include "agent_support.h"
#include "client_support.h"

namespace cvtest {
namespace {

// The two server blocks: ports[0] serves HTTPS with the vault key, ports[1] is plain HTTP
// proxied to the upstream at `upstream_port` with the vault certificate. Files in `dir`.
std::string servers(const fs::path& dir, int upstream_port, const std::vector<int>& ports) {
  const std::string d = dir.string();
  return "  server {\n    listen 127.0.0.1:" + std::to_string(ports[0]) +
         " ssl;\n    ssl_certificate " + d + "/api-chain.crt;\n    ssl_certificate_key " + d +
         "/api.key;\n    location / { return 200 \"served by nginx\\n\"; }\n  }\n"
         "  server {\n    listen 127.0.0.1:" +
         std::to_string(ports[1]) + ";\n    location / {\n      proxy_pass https://127.0.0.1:" +
         std::to_string(upstream_port) + ";\n      proxy_ssl_certificate " + d +
         "/api-chain.crt;\n      proxy_ssl_certificate_key " + d +
         "/api.key;\n      proxy_ssl_trusted_certificate " + d +
         "/server.pem;\n      proxy_ssl_verify on;\n      proxy_ssl_name localhost;\n    }\n  }\n";
}

// Writes what nginx reads into `dir`: the certificate with its chain, the URI-in-PEM key
// file, the upstream's certificate (to trust) and its key (`server_key`, elsewhere).
void write_nginx_files(const std::vector<std::string>& cv_prefix, const fs::path& dir,
                       const fs::path& server_key) {
  std::vector<std::string> show = cv_prefix;
  for (const char* a : {"show", "api", "--pem", "--chain"}) show.push_back(a);
  auto chain = run(show);
  ASSERT_EQ(chain.exit_code, 0) << chain.err;
  write_file(dir / "api-chain.crt", chain.out, 0644);
  std::vector<std::string> uri = cv_prefix;
  for (const std::string& a : {std::string("uri"), std::string("api"), std::string("--pem"),
                               std::string("-o"), (dir / "api.key").string()})
    uri.push_back(a);
  auto written = run(uri);
  ASSERT_EQ(written.exit_code, 0) << written.err;
  // The URI names the vault by its path; the file holds no secret.
  EXPECT_TRUE(contains(read_file(dir / "api.key"), "-----BEGIN CERTVAULT URI-----"));
  auto made = make_server_cert(dir / "server.pem", server_key);
  ASSERT_EQ(made.exit_code, 0) << made.err;
  ::chmod((dir / "server.pem").c_str(), 0644);
}

// nginx's own HTTPS server presents the vault certificate and completes the handshake,
// which it signs with the vault key.
void expect_serves_with_vault_key(const Nginx& nginx) {
  auto r = run({"env", "OPENSSL_CONF=/dev/null", "openssl", "s_client", "-connect",
                "127.0.0.1:" + std::to_string(nginx.port(0)), "-nameopt", "oneline", "-ign_eof"},
               "GET / HTTP/1.0\r\n\r\n", 60s);
  EXPECT_FALSE(r.timed_out);
  EXPECT_TRUE(contains(r.out, "subject=CN = api\n")) << r.out << r.err << nginx.log();
  EXPECT_TRUE(contains(r.out, "HTTP/1.1 200 OK")) << r.out;
  EXPECT_TRUE(contains(r.out, "served by nginx\n")) << r.out;
}

// A request through nginx's proxy: the upstream demanded a client certificate and
// verified the vault's.
void expect_proxy_presents(const Nginx& nginx, TlsServer& upstream) {
  auto r = run({"curl", "--silent", "--show-error", "--max-time", "60",
                "http://127.0.0.1:" + std::to_string(nginx.port(1)) + "/"},
               {}, 90s);
  const std::string log = upstream.log();
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "Subject: CN=api\n")) << r.out << nginx.log();
  EXPECT_TRUE(contains(log, "depth=0 CN = api\nverify return:1")) << log << nginx.log();
}

class NginxProvider : public VaultTest {
 protected:
  void SetUp() override {
    VaultTest::SetUp();
    if (HasFatalFailure()) return;
    if (::geteuid() != 0) GTEST_SKIP() << "nginx runs its worker as nobody only as root";
    issue("api", 100);
    const fs::path pin = write_secret_file(tmp_ / "pin", kPin);
    write_nginx_files({cli(), "--vault", dir_.string(), "--pin-file", pin.string()}, tmp_.path(),
                      tmp_ / "server.key");
    if (HasFatalFailure()) return;
    auto ca = vault().ca_certificate_der();
    ASSERT_TRUE(ca) << why(ca);
    write_file(tmp_ / "vault-ca.pem", der_to_pem(*ca));
    const fs::path conf = tmp_ / "openssl-nginx.cnf";
    write_file(conf,
               provider_openssl_cnf(kProviderDir, "pin-source = file:" + pin.string() + "\n"));
    upstream_ = TlsServer::start(tmp_.path(), tmp_ / "server.pem", tmp_ / "server.key",
                                 tmp_ / "vault-ca.pem");
    ASSERT_TRUE(upstream_);
    fs::create_directory(tmp_ / "nginx");
    nginx_ = Nginx::start(
        tmp_ / "nginx", 2,
        [this](const std::vector<int>& ports) {
          return servers(tmp_.path(), upstream_->port(), ports);
        },
        provider_env(dir_, conf));
    ASSERT_TRUE(nginx_);
  }

  std::optional<TlsServer> upstream_;
  std::optional<Nginx> nginx_;
};

TEST_F(NginxProvider, ServesHttpsWithTheVaultKeyFromAUriInPemFile) {
  expect_serves_with_vault_key(*nginx_);
}

TEST_F(NginxProvider, ProxyPresentsTheVaultCertificateToAnUpstreamThatDemandsOne) {
  expect_proxy_presents(*nginx_, *upstream_);
  EXPECT_EQ(vault().pin_failures(), 0);
}

// Through the agent: nginx, master and worker, run as the client user, with no PIN
// anywhere and no access to the vault directory.
class AgentNginx : public AgentTest {
 protected:
  void SetUp() override {
    AgentTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    issue("api", 100);
    start_agent();
    if (HasFatalFailure()) return;
    ASSERT_EQ(cv({"access", "api", "allow", "--uid", std::to_string(client_uid_)}).exit_code, 0);
    unlock();
    const fs::path files = out_ / "files";
    fs::create_directory(files);
    write_nginx_files({cli(), "--vault", dir_.string(), "--pin-file", pin_file_.string()}, files,
                      tmp_ / "server.key");
    if (HasFatalFailure()) return;
    const fs::path conf = files / "openssl-nginx.cnf";
    write_file(conf,
               provider_openssl_cnf(run_dir_ / "ossl-modules",
                                    "agent-socket = " + socket_.string() + "\n"),
               0644);
    const fs::path prefix = out_ / "nginx";
    fs::create_directory(prefix);
    const std::string owner = std::to_string(client_uid_) + ":" + std::to_string(client_gid_);
    ASSERT_EQ(run({"chown", "-R", owner, files.string(), prefix.string()}).exit_code, 0);
    upstream_ = TlsServer::start(tmp_.path(), files / "server.pem", tmp_ / "server.key", vault_ca_);
    ASSERT_TRUE(upstream_);
    nginx_ = Nginx::start(
        prefix, 2,
        [&](const std::vector<int>& ports) { return servers(files, upstream_->port(), ports); },
        as_client({"env", "OPENSSL_CONF=" + conf.string()}));
    ASSERT_TRUE(nginx_);
  }

  std::optional<TlsServer> upstream_;
  std::optional<Nginx> nginx_;
};

TEST_F(AgentNginx, ServesHttpsWithTheVaultKeyThroughTheAgent) {
  expect_serves_with_vault_key(*nginx_);
}

TEST_F(AgentNginx, ProxyPresentsTheVaultCertificateThroughTheAgent) {
  expect_proxy_presents(*nginx_, *upstream_);
  EXPECT_TRUE(contains(audit_log(), "\"action\":\"sign\"")) << audit_log();
}

}  // namespace
}  // namespace cvtest
