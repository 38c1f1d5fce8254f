// GnuTLS programs that take only a certificate and a key file name, given `pkcs11:` URIs:
// wget (against `openssl s_server -Verify 1`) and git (git-remote-https is libcurl-gnutls;
// a clone over HTTPS from nginx with ssl_verify_client on). They find the module through
// p11-kit's per-user configuration (~/.config/pkcs11/modules/), which p11-kit skips for
// root, so both run as the client user: with a vault of its own and the PIN from the key
// URI's pin-source, and with no PIN through the agent. Loopback only.
#include <gtest/gtest.h>

#include "agent_support.h"
#include "client_support.h"

namespace cvtest {
namespace {

constexpr const char* kCertUri = "pkcs11:token=ops;object=api;type=cert";
constexpr const char* kKeyUri = "pkcs11:token=ops;object=api;type=private";

class GnutlsPkcs11 : public AgentTest {
 protected:
  void SetUp() override {
#ifdef CERTVAULT_SANITIZER_RUNTIME
    // The glibc locale-lock deadlock of GnuTLS programs under a preloaded sanitizer
    // runtime (see pkcs11_tls_test.cc).
    GTEST_SKIP() << "GnuTLS programs hang under a preloaded sanitizer runtime";
#endif
    AgentTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    issue("api", 100);
    home_ = out_ / "home";
    fs::create_directories(home_ / ".config" / "pkcs11" / "modules");
    write_file(home_ / ".config" / "pkcs11" / "modules" / "certvault.module",
               "module: " + module_.string() + "\n", 0644);
    server_cert_ = out_ / "server.pem";
    server_key_ = out_ / "server.key";  // nginx, run as the client user, reads it
    auto made = make_server_cert(server_cert_, server_key_);
    ASSERT_EQ(made.exit_code, 0) << made.err;
    ::chmod(server_cert_.c_str(), 0644);
    chown_to_client(out_);
  }

  void chown_to_client(const fs::path& path) {
    const std::string owner = std::to_string(client_uid_) + ":" + std::to_string(client_gid_);
    ASSERT_EQ(run({"chown", "-R", owner, path.string()}).exit_code, 0);
  }

  // The client user owns a copy of the vault and a PIN file, and the module works
  // in-process (no agent answers).
  void use_own_vault() {
    own_vault_ = out_ / "vault";
    ASSERT_EQ(run({"cp", "-a", dir_.string(), own_vault_.string()}).exit_code, 0);
    pin_ = write_secret_file(out_ / "pin", kPin);
    chown_to_client(own_vault_);
    chown_to_client(pin_);
  }

  // A program as the client user, without a terminal, its HOME holding p11-kit's module
  // configuration; the copy of the vault when use_own_vault() made one.
  RunResult client(const std::vector<std::string>& argv) {
    std::vector<std::string> full = {"env", "HOME=" + home_.string(),
                                     "CERTVAULT_PKCS11_CONF=/nonexistent"};
    if (!own_vault_.empty()) full.push_back("CERTVAULT_VAULT=" + own_vault_.string());
    full.push_back("setsid");
    full.push_back("--wait");
    full.insert(full.end(), argv.begin(), argv.end());
    return run(as_client(full), {}, 90s);
  }

  // wget fetching s_server's page with the vault certificate; the server's log.
  std::pair<RunResult, std::string> wget(const std::string& key_uri) {
    auto server = TlsServer::start(tmp_.path(), server_cert_, server_key_, vault_ca_);
    if (!server) return {};
    auto r = client({"wget", "--tries=1", "--timeout=30", "-O", "-",
                     "--ca-certificate=" + server_cert_.string(),
                     std::string("--certificate=") + kCertUri, "--private-key=" + key_uri,
                     "https://127.0.0.1:" + std::to_string(server->port()) + "/"});
    return {r, server->log()};
  }

  void expect_wget_presents(const std::string& key_uri) {
    auto [r, log] = wget(key_uri);
    EXPECT_FALSE(r.timed_out);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err << "\nserver:\n" << log;
    EXPECT_TRUE(contains(r.out, "Subject: CN=api\n")) << r.out;
    EXPECT_TRUE(contains(log, "depth=0 CN = api\nverify return:1")) << log;
  }

  // A bare repository served by nginx (as the client user) over HTTPS to clients with a
  // certificate from the vault CA only; git clones it with the vault certificate.
  void expect_git_clones(const std::string& key_uri) {
    const fs::path src = out_ / "src", bare = out_ / "www" / "repo.git";
    auto git = [&](const std::vector<std::string>& args) {
      std::vector<std::string> argv = {"git", "-c", "user.name=test", "-c",
                                       "user.email=test@example.invalid"};
      argv.insert(argv.end(), args.begin(), args.end());
      auto r = client(argv);
      EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
      return r;
    };
    git({"init", "-q", src.string()});
    git({"-C", src.string(), "commit", "-q", "--allow-empty", "-m", "cloned with a vault key"});
    git({"clone", "-q", "--bare", src.string(), bare.string()});
    git({"-C", bare.string(), "update-server-info"});  // served as plain files
    const fs::path prefix = out_ / "nginx";
    ASSERT_EQ(client({"mkdir", prefix.string()}).exit_code, 0);
    auto nginx = Nginx::start(
        prefix, 1,
        [&](const std::vector<int>& ports) {
          return "  server {\n    listen 127.0.0.1:" + std::to_string(ports[0]) +
                 " ssl;\n    ssl_certificate " + server_cert_.string() +
                 ";\n    ssl_certificate_key " + server_key_.string() +
                 ";\n    ssl_client_certificate " + vault_ca_.string() +
                 ";\n    ssl_verify_client on;\n    root " + (out_ / "www").string() + ";\n  }\n";
        },
        as_client({}));
    ASSERT_TRUE(nginx);
    const fs::path clone = out_ / "clone";
    auto r = client({"env", "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "git", "-c",
                     "http.sslCAInfo=" + server_cert_.string(), "-c",
                     std::string("http.sslCert=") + kCertUri, "-c", "http.sslKey=" + key_uri,
                     "clone", "https://127.0.0.1:" + std::to_string(nginx->port(0)) + "/repo.git",
                     clone.string()});
    EXPECT_FALSE(r.timed_out);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err << "\nnginx:\n" << nginx->log();
    auto log = client({"git", "-C", clone.string(), "log", "--format=%s"});
    EXPECT_EQ(log.out, "cloned with a vault key\n") << log.err;
  }

  fs::path home_, server_cert_, server_key_, own_vault_, pin_;
};

TEST_F(GnutlsPkcs11, WgetPresentsTheCertificateWithABarePinSourcePath) {
  use_own_vault();
  expect_wget_presents(std::string(kKeyUri) + "?pin-source=" + pin_.string());
  EXPECT_EQ(vault().pin_failures(), 0);
}

TEST_F(GnutlsPkcs11, WgetTakesNoPinFromAFileSchemePinSource) {
  // GnuTLS reads pin-source as a path: "file:/..." names no file, so there is no PIN, no
  // private key, and wget connects without a certificate, which the server refuses.
  use_own_vault();
  auto [r, log] = wget(std::string(kKeyUri) + "?pin-source=file:" + pin_.string());
  EXPECT_FALSE(r.timed_out);
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_FALSE(contains(r.out, "Client certificate")) << r.out;
  EXPECT_TRUE(contains(log, "peer did not return a certificate")) << log;
}

TEST_F(GnutlsPkcs11, GitClonesOverHttpsWithThePinFromABarePinSourcePath) {
  use_own_vault();
  expect_git_clones(std::string(kKeyUri) + "?pin-source=" + pin_.string());
}

TEST_F(GnutlsPkcs11, WgetWithNoPinThroughTheAgent) {
  start_agent();
  if (HasFatalFailure()) return;
  ASSERT_EQ(cv({"access", "api", "allow", "--uid", std::to_string(client_uid_)}).exit_code, 0);
  unlock();
  expect_wget_presents(kKeyUri);
}

TEST_F(GnutlsPkcs11, GitClonesWithNoPinThroughTheAgent) {
  start_agent();
  if (HasFatalFailure()) return;
  ASSERT_EQ(cv({"access", "api", "allow", "--uid", std::to_string(client_uid_)}).exit_code, 0);
  unlock();
  expect_git_clones(kKeyUri);
}

}  // namespace
}  // namespace cvtest
