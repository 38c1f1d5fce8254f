// The PKCS#11 module under TLS clients: p11tool lists the vault's objects, and gnutls-cli
// and curl (OpenSSL with libp11's engine) present a vault certificate by PKCS#11 URI to an
// `openssl s_server` that requires a client certificate. Loopback only; every server is
// killed when its test ends.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "pkcs11_support.h"
#include "support.h"
#include "test_vault.h"
#include "tls_server.h"

namespace cvtest {
namespace {

using namespace std::chrono_literals;

class GnutlsTest : public VaultTest {
 protected:
  // p11tool or gnutls-cli (or anything else) with the module's environment and the PIN in
  // GNUTLS_PIN, where both GnuTLS programs read it.
  RunResult gnutls(std::vector<std::string> args, std::string_view input = {}) {
    std::vector<std::string> argv = module_env(dir_);
    argv.push_back("GNUTLS_PIN=" + std::string(kPin));
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, input, 60s);
  }
};

class P11tool : public GnutlsTest {
 protected:
  void SetUp() override {
    GnutlsTest::SetUp();
    if (HasFatalFailure()) return;
    issue("api-prod", 100, certvault::KeyType::kEcP256);
    issue("rsa client", 100, certvault::KeyType::kRsa2048);
  }
};

TEST_F(P11tool, ListsCertificatesAndKeys) {
  auto certs = gnutls({"p11tool", "--provider", kModule, "--list-all-certs"});
  ASSERT_EQ(certs.exit_code, 0) << certs.out << certs.err;
  EXPECT_NE(certs.out.find("Label: api-prod\n"), std::string::npos) << certs.out;
  EXPECT_NE(certs.out.find("Label: rsa client\n"), std::string::npos) << certs.out;
  // GnuTLS prints each object's RFC 7512 URI, nickname percent-encoded.
  EXPECT_NE(certs.out.find("token=" + vault().label() + ";"), std::string::npos) << certs.out;
  EXPECT_NE(certs.out.find("object=api-prod;type=cert"), std::string::npos) << certs.out;
  EXPECT_NE(certs.out.find("object=rsa%20client;type=cert"), std::string::npos) << certs.out;
  EXPECT_NE(certs.out.find("Type: X.509 Certificate (RSA-2048)"), std::string::npos) << certs.out;
  EXPECT_EQ(certs.out.find("type=private"), std::string::npos) << certs.out;

  auto before_login = gnutls({"p11tool", "--provider", kModule, "--list-all"});
  ASSERT_EQ(before_login.exit_code, 0) << before_login.out << before_login.err;
  EXPECT_NE(before_login.out.find("object=api-prod;type=public"), std::string::npos)
      << before_login.out;
  EXPECT_EQ(before_login.out.find("type=private"), std::string::npos) << before_login.out;

  auto after_login = gnutls(
      {"p11tool", "--provider", kModule, "--login", "--set-pin", std::string(kPin), "--list-all"});
  ASSERT_EQ(after_login.exit_code, 0) << after_login.out << after_login.err;
  EXPECT_NE(after_login.out.find("object=api-prod;type=private"), std::string::npos)
      << after_login.out;
  EXPECT_NE(after_login.out.find("object=rsa%20client;type=private"), std::string::npos)
      << after_login.out;
  EXPECT_NE(after_login.out.find("Type: Private key (EC/ECDSA-SECP256R1)"), std::string::npos)
      << after_login.out;
  EXPECT_NE(after_login.out.find("Type: Private key (RSA-2048)"), std::string::npos)
      << after_login.out;
  EXPECT_NE(after_login.out.find("CKA_NEVER_EXTRACTABLE"), std::string::npos) << after_login.out;
}

// The server side of a mutual-TLS test, in `dir`: its own certificate, self-signed for
// 127.0.0.1 (the client trusts exactly it), its key, and the vault CA it trusts for client
// certificates.
struct ServerFiles {
  fs::path cert, key, client_ca;
};
void make_server_files(const fs::path& dir, certvault::Vault& vault, ServerFiles& out) {
  out.cert = dir / "server.pem";
  out.key = dir / "server.key";
  auto made = make_server_cert(out.cert, out.key);
  ASSERT_EQ(made.exit_code, 0) << made.err;
  auto ca = vault.ca_certificate_der();
  ASSERT_TRUE(ca) << why(ca);
  out.client_ca = dir / "vault-ca.pem";
  write_file(out.client_ca, der_to_pem(*ca));
}

class MutualTls : public GnutlsTest {
 protected:
  void SetUp() override {
#ifdef CERTVAULT_SANITIZER_RUNTIME
    // With libasan preloaded, gnutls-cli (Debian 12: GnuTLS 3.7.9, p11-kit 0.24.1, GCC 12)
    // finishes its work and then deadlocks at exit in libp11-kit's destructor (freelocale
    // waits on glibc's locale lock, whose reader count is corrupt), with or without this
    // module loaded. Every run would end by timeout, so these tests cannot judge the module.
    GTEST_SKIP() << "gnutls-cli hangs at exit under a preloaded sanitizer runtime";
#endif
    GnutlsTest::SetUp();
    if (HasFatalFailure()) return;
    ServerFiles files;
    make_server_files(tmp_.path(), vault(), files);
    if (HasFatalFailure()) return;
    server_cert_ = files.cert;
    server_key_ = files.key;
    vault_ca_ = files.client_ca;
  }

  // gnutls-cli presenting `nickname` by PKCS#11 URI to `server`, sending one HTTP request.
  RunResult connect(const TlsServer& server, const std::string& nickname) {
    const std::string token = vault().label();
    return gnutls(
        {"gnutls-cli", "--provider", kModule, "--x509certfile", pkcs11_uri(token, nickname, "cert"),
         "--x509keyfile", pkcs11_uri(token, nickname, "private"), "--x509cafile",
         server_cert_.string(), "-p", std::to_string(server.port()), "127.0.0.1"},
        "GET / HTTP/1.0\r\n\r\n");
  }

  // Runs one mutual-TLS connection for `nickname` and checks the server verified it.
  void expect_presented(const std::string& nickname) {
    SCOPED_TRACE(nickname);
    auto server = TlsServer::start(tmp_.path(), server_cert_, server_key_, vault_ca_);
    ASSERT_TRUE(server);
    auto client = connect(*server, nickname);
    const std::string log = server->log();
    EXPECT_FALSE(client.timed_out);
    EXPECT_EQ(client.exit_code, 0) << client.out << client.err << "\nserver:\n" << log;
    EXPECT_NE(client.out.find("Handshake was completed"), std::string::npos) << client.out;
    // The -www page is the server's view of the session, client certificate included.
    EXPECT_NE(client.out.find("Client certificate"), std::string::npos) << client.out;
    EXPECT_NE(client.out.find("Subject: CN=" + nickname + "\n"), std::string::npos) << client.out;
    EXPECT_NE(log.find("depth=0 CN = " + nickname + "\nverify return:1"), std::string::npos) << log;
  }

  fs::path server_cert_, server_key_, vault_ca_;
};

TEST_F(MutualTls, GnutlsCliPresentsVaultCertificateByPkcs11Uri) {
  issue("api-prod", 100, certvault::KeyType::kEcP256);
  issue("rsa client", 100, certvault::KeyType::kRsa2048);
  expect_presented("api-prod");
  expect_presented("rsa client");
}

TEST_F(MutualTls, DisabledCertificateIsNoLongerPresented) {
  issue("api-prod", 100, certvault::KeyType::kEcP256);
  expect_presented("api-prod");
  if (HasFailure()) return;
  auto disabled = vault().disable("api-prod");
  ASSERT_TRUE(disabled) << why(disabled);

  auto server = TlsServer::start(tmp_.path(), server_cert_, server_key_, vault_ca_);
  ASSERT_TRUE(server);
  auto client = connect(*server, "api-prod");
  // gnutls-cli finds no certificate behind the URI and gives up before connecting, so the
  // server has nothing more to log.
  const std::string log = server->log(0ms);
  EXPECT_FALSE(client.timed_out);
  EXPECT_NE(client.exit_code, 0) << client.out << client.err;
  EXPECT_NE(client.err.find("Error loading cert file"), std::string::npos) << client.err;
  EXPECT_EQ(client.out.find("Client certificate"), std::string::npos) << client.out;
  EXPECT_EQ(log.find("CN = api-prod"), std::string::npos) << log;
}

TEST_F(MutualTls, FailsWhenServerTrustsAnotherCa) {
  issue("api-prod", 100, certvault::KeyType::kEcP256);
  const fs::path other_ca_pem = write_other_ca(tmp_.path());
  ASSERT_FALSE(other_ca_pem.empty());

  auto server = TlsServer::start(tmp_.path(), server_cert_, server_key_, other_ca_pem);
  ASSERT_TRUE(server);
  auto client = connect(*server, "api-prod");
  const std::string log = server->log();
  EXPECT_FALSE(client.timed_out);
  EXPECT_NE(client.exit_code, 0) << client.out << client.err;
  EXPECT_EQ(client.out.find("Client certificate"), std::string::npos) << client.out;
  // The client did present its certificate; the server refused the chain.
  EXPECT_NE(log.find("depth=0 CN = api-prod"), std::string::npos) << log;
  EXPECT_NE(log.find("certificate verify failed"), std::string::npos) << log;
}

// curl 7.88 built with OpenSSL loads `pkcs11:` URIs through libp11's OpenSSL engine
// (libengine-pkcs11-openssl). The test writes its own OpenSSL config that points the engine
// at this module, so neither the system's openssl.cnf nor p11-kit's proxy takes part.
class CurlMutualTls : public VaultTest {
 protected:
  void SetUp() override {
#ifdef CERTVAULT_SANITIZER_RUNTIME
    // The same glibc locale-lock deadlock as gnutls-cli's above (curl links libp11-kit via
    // librtmp and GnuTLS): with libasan preloaded, even `curl --version` never gets past
    // setlocale() at the start of main, before this module is loaded.
    GTEST_SKIP() << "curl hangs at start under a preloaded sanitizer runtime";
#endif
    VaultTest::SetUp();
    if (HasFatalFailure()) return;
    make_server_files(tmp_.path(), vault(), server_);
    if (HasFatalFailure()) return;
    auto dir = run({"openssl", "version", "-e"});  // ENGINESDIR: "/usr/lib/.../engines-3"
    ASSERT_EQ(dir.exit_code, 0) << dir.err;
    const auto quote = dir.out.find('"');
    ASSERT_NE(quote, std::string::npos) << dir.out;
    const fs::path engine =
        fs::path(dir.out.substr(quote + 1, dir.out.find('"', quote + 1) - quote - 1)) / "pkcs11.so";
    ASSERT_TRUE(fs::exists(engine)) << engine << ": install libengine-pkcs11-openssl";
    openssl_conf_ = tmp_ / "openssl.cnf";
    write_file(openssl_conf_,
               "openssl_conf = openssl_init\n"
               "[openssl_init]\n"
               "engines = engines\n"
               "[engines]\n"
               "pkcs11 = pkcs11_engine\n"
               "[pkcs11_engine]\n"
               "dynamic_path = " +
                   engine.string() +
                   "\n"
                   "MODULE_PATH = " +
                   kModule + "\n");
    // libp11 takes the whole file as the PIN, so no trailing newline.
    pin_file_ = tmp_ / "curl-pin";
    write_file(pin_file_, kPin);
    pin_file_with_newline_ = write_secret_file(tmp_ / "pin", kPin);
  }

  // curl fetching the server's -www page, presenting `nickname` by PKCS#11 URI; the key's
  // URI names the PIN file (RFC 7512 pin-source, "file:PATH" or the bare path: libp11 takes
  // both).
  RunResult curl(const TlsServer& server, const std::string& nickname,
                 const std::string& pin_source_scheme = "file:") {
    const std::string token = vault().label();
    std::vector<std::string> argv = module_env(dir_);
    argv.push_back("OPENSSL_CONF=" + openssl_conf_.string());
    // Without a controlling terminal: libp11 asks for a PIN on /dev/tty when it cannot find
    // an object, which would wait for a person. --wait passes curl's exit status on.
    argv.insert(argv.end(), {"setsid", "--wait", "curl", "--silent", "--show-error", "--max-time",
                             "60", "--cacert", server_.cert.string(), "--cert",
                             pkcs11_uri(token, nickname, "cert"), "--key",
                             pkcs11_uri(token, nickname, "private") +
                                 "?pin-source=" + pin_source_scheme + pin_file_.string(),
                             "https://127.0.0.1:" + std::to_string(server.port()) + "/"});
    return run(argv, {}, 90s);
  }

  // One mutual-TLS request for `nickname`: curl succeeds and the server verified the vault
  // certificate it presented.
  void expect_presented(const std::string& nickname,
                        const std::string& pin_source_scheme = "file:") {
    SCOPED_TRACE(nickname);
    auto server = TlsServer::start(tmp_.path(), server_.cert, server_.key, server_.client_ca);
    ASSERT_TRUE(server);
    auto client = curl(*server, nickname, pin_source_scheme);
    const std::string log = server->log();
    EXPECT_FALSE(client.timed_out);
    EXPECT_EQ(client.exit_code, 0) << client.out << client.err << "\nserver:\n" << log;
    // The -www page is the server's view of the session, client certificate included.
    EXPECT_NE(client.out.find("Client certificate"), std::string::npos) << client.out;
    EXPECT_NE(client.out.find("Subject: CN=" + nickname + "\n"), std::string::npos) << client.out;
    EXPECT_NE(log.find("depth=0 CN = " + nickname + "\nverify return:1"), std::string::npos) << log;
  }

  ServerFiles server_;
  fs::path openssl_conf_, pin_file_, pin_file_with_newline_;
};

TEST_F(CurlMutualTls, PresentsEcCertificateByPkcs11Uri) {
  issue("api-prod", 100, certvault::KeyType::kEcP256);
  expect_presented("api-prod");
}

TEST_F(CurlMutualTls, TakesABarePinSourcePathAsWell) {
  issue("api-prod", 100, certvault::KeyType::kEcP256);
  expect_presented("api-prod", "");
}

// FAILS until pkcs11/mechanisms.cc is fixed (bug found by this test): TLS 1.3 signs with
// RSA-PSS, which libp11 asks for as CKM_RSA_PKCS_PSS. In curl's process libp11's engine
// supplies OpenSSL's RSA method, so the EVP_PKEY_CTX the module makes for its own key is a
// legacy (engine) context, on which EVP_PKEY_CTX_set_rsa_mgf1_md_name fails: C_Sign returns
// CKR_MECHANISM_PARAM_INVALID, libp11 falls back to CKM_RSA_X_509 (not offered:
// CKR_MECHANISM_INVALID) and the handshake ends with "PKCS#11 module::Mechanism invalid".
TEST_F(CurlMutualTls, PresentsRsaCertificateByPkcs11Uri) {
  issue("rsa client", 100, certvault::KeyType::kRsa2048);
  expect_presented("rsa client");
}

TEST_F(CurlMutualTls, FailsOnceTheCertificateIsDisabled) {
  issue("api-prod", 100, certvault::KeyType::kEcP256);
  expect_presented("api-prod");
  if (HasFailure()) return;
  auto disabled = run({cli(), "--vault", dir_.string(), "--pin-file",
                       pin_file_with_newline_.string(), "disable", "api-prod"});
  ASSERT_EQ(disabled.exit_code, 0) << disabled.err;

  auto server = TlsServer::start(tmp_.path(), server_.cert, server_.key, server_.client_ca);
  ASSERT_TRUE(server);
  auto client = curl(*server, "api-prod");
  // curl finds no certificate behind the URI and gives up before its handshake, so the
  // server has nothing more to log.
  const std::string log = server->log(0ms);
  EXPECT_FALSE(client.timed_out);
  EXPECT_EQ(client.exit_code, 58) << "CURLE_SSL_CERTPROBLEM\n" << client.out << client.err;
  EXPECT_NE(client.err.find("cannot load client cert"), std::string::npos) << client.err;
  EXPECT_EQ(client.out.find("Client certificate"), std::string::npos) << client.out;
  EXPECT_EQ(log.find("CN = api-prod"), std::string::npos) << log;
}

}  // namespace
}  // namespace cvtest
