// File targets (`certvault publish`, docs/lifecycle.md): the files programs read as their
// certificate follow the entry through renewals; curl presents the renewed certificate
// from them; a writer killed while rewriting leaves a whole file; ownership and mode.
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "support.h"
#include "test_cli.h"
#include "tls_server.h"
#include "vault.h"

namespace cvtest {
namespace {

using certvault::Vault;

class Publish : public CliTest {
 protected:
  fs::path dir() const { return tmp_ / "pub"; }
  void SetUp() override {
    CliTest::SetUp();
    if (HasFatalFailure()) return;
    fs::create_directory(dir());
    ok({"create", "api", "--end-date", "+40d"});
  }
  std::string serial_now() const { return Vault::open(vault_)->find("api")->current()->serial; }
  // The serial of the (first) certificate in a PEM file, upper-case hex.
  static std::string serial_in(const fs::path& pem) {
    auto cert = x509_from_pem(read_file(pem));
    if (!cert) return "";
    BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr);
    char* hex = BN_bn2hex(bn);
    std::string out(hex);
    OPENSSL_free(hex);
    BN_free(bn);
    return out;
  }
};

TEST_F(Publish, FilesAreWrittenAndFollowEachRenewal) {
  auto r = ok({"publish", "api", "--cert", (dir() / "api.crt").string(), "--chain",
               (dir() / "chain.pem").string(), "--fullchain", (dir() / "full.pem").string(),
               "--key-uri", (dir() / "api.key").string(), "--mode", "0640"});
  EXPECT_TRUE(contains(r.out, "Files rewritten whenever the certificate of 'api' changes"))
      << r.out;
  EXPECT_EQ(serial_in(dir() / "api.crt"), serial_now());
  EXPECT_EQ(serial_in(dir() / "full.pem"), serial_now());
  EXPECT_EQ(read_file(dir() / "chain.pem"), read_file(ca_file()));
  EXPECT_TRUE(contains(read_file(dir() / "full.pem"), read_file(ca_file())));
  EXPECT_TRUE(contains(read_file(dir() / "api.key"), "-----BEGIN CERTVAULT URI-----"))
      << read_file(dir() / "api.key");
  struct stat st {};
  ASSERT_EQ(::stat((dir() / "api.crt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  ASSERT_EQ(::stat((dir() / "api.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0007, 0u) << "a key file is never readable by others";
  const std::string first = serial_now();
  ok({"renew", "api"});
  EXPECT_NE(serial_now(), first);
  EXPECT_EQ(serial_in(dir() / "api.crt"), serial_now()) << "renew rewrote the file";
  ok({"rotate", "api"});
  EXPECT_EQ(serial_in(dir() / "api.crt"), serial_now()) << "rotate rewrote the file";
  EXPECT_EQ(serial_in(dir() / "full.pem"), serial_now());
  // No temporary file is left beside them.
  std::vector<std::string> names;
  for (const auto& f : fs::directory_iterator(dir())) names.push_back(f.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"api.crt", "api.key", "chain.pem", "full.pem"}));
  // Forgotten targets are left as they are.
  ok({"publish", "api", "--remove"});
  ok({"rotate", "api"});
  EXPECT_NE(serial_in(dir() / "api.crt"), serial_now());
}

TEST_F(Publish, OwnerAndModeAsAsked) {
  if (::geteuid() != 0) GTEST_SKIP() << "giving files to another user needs root";
  ok({"publish", "api", "--cert", (dir() / "api.crt").string(), "--owner", "nobody", "--mode",
      "0600"});
  struct stat st {};
  ASSERT_EQ(::stat((dir() / "api.crt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, ::getpwnam("nobody")->pw_uid);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(Publish, BadTargetsGetOneLineAndChangeNothing) {
  ExpectRefusedUnchanged({"publish", "api", "--cert", "/nonexistent-dir/api.crt"}, {3});
  ExpectRefusedUnchanged(
      {"publish", "api", "--cert", (dir() / "a").string(), "--chain", (dir() / "a").string()}, {3});
  ExpectRefusedUnchanged({"publish", "api", "--cert", (dir() / "a").string(), "--mode", "999"},
                         {3});
  ExpectRefusedUnchanged({"publish", "api", "--mode", "0644"}, {3});
  // Nobody but the files' owner may change the certificate programs trust.
  ExpectRefusedUnchanged({"publish", "api", "--cert", (dir() / "a").string(), "--mode", "0664"},
                         {3});
  ExpectRefusedUnchanged({"publish", "nosuch", "--cert", (dir() / "a").string()}, {4});
}

// A rewrite killed at any moment leaves the old file or the new one, each a whole
// certificate: killed at 40 points spread over the time a renewal takes.
TEST_F(Publish, AWriterKilledWhileRewritingLeavesAWholeFile) {
  ok({"publish", "api", "--fullchain", (dir() / "full.pem").string()});
  const std::string whole_before = read_file(dir() / "full.pem");
  for (int i = 0; i < 40; ++i) {
    const pid_t pid = spawn_quiet(
        {cli(), "--vault", vault_.string(), "--pin-file", pin_file_.string(), "renew", "api"});
    std::this_thread::sleep_for(std::chrono::microseconds(500 * i));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    const std::string now = read_file(dir() / "full.pem");
    auto cert = x509_from_pem(now);
    ASSERT_TRUE(cert) << "kill " << i << " left: " << now;
    EXPECT_TRUE(now.ends_with("-----END CERTIFICATE-----\n")) << "kill " << i;
    EXPECT_EQ(std::count(now.begin(), now.end(), '\n'),
              std::count(whole_before.begin(), whole_before.end(), '\n'))
        << "kill " << i;
  }
}

// curl 7.88 with --cert the published file and --key the URI-in-PEM file (the provider
// loaded from openssl.cnf): after a renewal, its next run presents the new certificate.
TEST_F(Publish, CurlPresentsTheRenewedCertificateFromThePublishedFiles) {
#ifdef CERTVAULT_SANITIZER_RUNTIME
  GTEST_SKIP() << "curl hangs under a preloaded sanitizer runtime";
#endif
  ok({"publish", "api", "--cert", (dir() / "api.crt").string(), "--key-uri",
      (dir() / "api.key").string()});
  const fs::path conf = tmp_ / "openssl.cnf";
  write_file(conf,
             "openssl_conf = openssl_init\n[openssl_init]\nproviders = provider_sect\n"
             "[provider_sect]\ndefault = default_sect\ncertvault = certvault_sect\n"
             "[default_sect]\nactivate = 1\n[certvault_sect]\nmodule = " +
                 std::string(CERTVAULT_PROVIDER_DIR) +
                 "/certvault.so\npin-source = file:" + pin_file_.string() + "\nactivate = 1\n");
  const fs::path server_cert = tmp_ / "server.pem", server_key = tmp_ / "server.key";
  ASSERT_EQ(make_server_cert(server_cert, server_key).exit_code, 0);
  auto present = [&]() -> std::string {
    auto s = TlsServer::start(tmp_.path(), server_cert, server_key, ca_file());
    if (!s) return "";
    auto c =
        run({"env", "OPENSSL_CONF=" + conf.string(), "CERTVAULT_AGENT_SOCK=/nonexistent", "curl",
             "--silent", "--show-error", "--max-time", "60", "--cacert", server_cert.string(),
             "--cert", (dir() / "api.crt").string(), "--key", (dir() / "api.key").string(),
             "https://127.0.0.1:" + std::to_string(s->port()) + "/"});
    EXPECT_EQ(c.exit_code, 0) << c.err;
    // s_server -www shows the client's certificate as PEM.
    const auto begin = c.out.find("-----BEGIN CERTIFICATE-----");
    if (begin == std::string::npos) {
      ADD_FAILURE() << "no client certificate in: " << c.out << s->log();
      return "";
    }
    const fs::path shown = tmp_ / "shown.pem";
    write_file(shown, c.out.substr(begin));
    return serial_in(shown);
  };
  EXPECT_EQ(present(), serial_now());
  ok({"renew", "api"});
  EXPECT_EQ(present(), serial_now()) << "the renewed certificate, from the rewritten file";
}

}  // namespace
}  // namespace cvtest
