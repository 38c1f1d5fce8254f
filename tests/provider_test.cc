// The provider under Debian's `openssl` programs: STORE listing, public keys, signatures,
// CSRs, CMS, mutual TLS with s_client against s_server, PIN sources, URI-in-PEM key
// files, disabled entries and rotation. Loopback only; every server is killed when its
// test ends; each test has its own vault, files and port.
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "provider_support.h"
#include "support.h"
#include "test_vault.h"

namespace cvtest {
namespace {

using certvault::KeyType;

class ProviderTest : public VaultTest {
 protected:
  void SetUp() override {
    VaultTest::SetUp();
    if (HasFatalFailure()) return;
    pin_file_ = write_secret_file(tmp_ / "pin", kPin);
    auto ca = vault().ca_certificate_der();
    ASSERT_TRUE(ca) << why(ca);
    vault_ca_ = tmp_ / "vault-ca.pem";
    write_file(vault_ca_, der_to_pem(*ca));
  }

  // `openssl COMMAND` with certvault and default loaded and this test's vault, then `args`.
  RunResult openssl(const std::string& command, const std::vector<std::string>& args,
                    const std::vector<std::string>& env = {}) {
    std::vector<std::string> argv = provider_env(dir_);
    argv.insert(argv.end(), env.begin(), env.end());
    argv.push_back("openssl");
    argv.push_back(command);
    for (const auto& a : provider_args()) argv.push_back(a);
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, {}, std::chrono::seconds(60));
  }

  // The certvault CLI on this test's vault.
  RunResult cv(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {cli(), "--vault", dir_.string(), "--pin-file",
                                     pin_file_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }

  std::string passin() const { return "file:" + pin_file_.string(); }

  // The current certificate of `nickname` as a PEM file, read through the keystore.
  fs::path cert_file(const std::string& nickname) {
    auto der = vault().certificate_der(nickname);
    EXPECT_TRUE(der) << why(der);
    auto path = tmp_ / (nickname + ".crt");
    write_file(path, der ? der_to_pem(*der) : "");
    return path;
  }

  // The certificate's public key (SubjectPublicKeyInfo, PEM) as plain openssl prints it.
  std::string cert_pubkey(const fs::path& cert) {
    auto r = run({"env", "OPENSSL_CONF=/dev/null", "openssl", "x509", "-in", cert.string(),
                  "-noout", "-pubkey"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }

  fs::path pin_file_;
  fs::path vault_ca_;
};

std::string uri(const std::string& nickname) {
  std::string out = "certvault:";
  for (unsigned char c : nickname) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.') {
      out += static_cast<char>(c);
    } else {
      static const char* digits = "0123456789ABCDEF";
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  return out;
}

// --- STORE ----------------------------------------------------------------------------

TEST_F(ProviderTest, StoreutlListsCertificateChainAndKey) {
  issue("api prod", 100, KeyType::kEcP256);
  auto r = openssl("storeutl", {"-noout", "-passin", passin(), uri("api prod")});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "0: Certificate\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "1: Certificate\n")) << r.out;  // the vault CA
  EXPECT_TRUE(contains(r.out, "2: Pkey\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "Total found: 3")) << r.out;
  EXPECT_TRUE(r.err.empty()) << r.err;
}

TEST_F(ProviderTest, CertificatesNeedNoPin) {
  issue("api-prod", 100, KeyType::kEcP256);
  // No PIN source at all, and no terminal: certificates still load.
  auto r = openssl("storeutl", {"-certs", uri("api-prod")});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto pem = pem_block(r.out);
  auto cert = x509_from_pem(pem);
  ASSERT_TRUE(cert) << r.out;
  EXPECT_EQ(pem, read_file(cert_file("api-prod")));
  EXPECT_TRUE(contains(r.out, "Total found: 2")) << r.out;
}

TEST_F(ProviderTest, PkeyPuboutMatchesTheCertificate) {
  for (auto [nick, type] :
       {std::pair{"ec", KeyType::kEcP256}, std::pair{"p384", KeyType::kEcP384},
        std::pair{"rsa", KeyType::kRsa2048}, std::pair{"ed", KeyType::kEd25519}}) {
    SCOPED_TRACE(nick);
    issue(nick, 100, type);
    auto r = openssl("pkey", {"-in", uri(nick), "-passin", passin(), "-pubout"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, cert_pubkey(cert_file(nick)));
    EXPECT_TRUE(r.err.empty()) << r.err;
  }
}

TEST_F(ProviderTest, PkeyutlSignatureVerifiesWithTheCertificateKey) {
  write_file(tmp_ / "data", "the data to sign\n");
  struct Case {
    const char* nick;
    KeyType type;
    std::vector<std::string> opts;
  };
  const std::vector<Case> cases = {
      {"ec", KeyType::kEcP256, {"-digest", "sha256"}},
      {"p384", KeyType::kEcP384, {"-digest", "sha384"}},
      {"rsa", KeyType::kRsa2048, {"-digest", "sha256"}},
      {"rsa-pss",
       KeyType::kRsa2048,
       {"-digest", "sha256", "-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt",
        "rsa_pss_saltlen:digest", "-pkeyopt", "rsa_mgf1_md:sha256"}},
      {"ed", KeyType::kEd25519, {}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.nick);
    issue(c.nick, 100, c.type);
    write_file(tmp_ / "pub.pem", cert_pubkey(cert_file(c.nick)));
    const std::string sig = (tmp_ / (std::string(c.nick) + ".sig")).string();
    std::vector<std::string> sign = {"-sign",   "-rawin", "-inkey", uri(c.nick),
                                     "-passin", passin(), "-in",    (tmp_ / "data").string(),
                                     "-out",    sig};
    sign.insert(sign.end(), c.opts.begin(), c.opts.end());
    auto s = openssl("pkeyutl", sign);
    ASSERT_EQ(s.exit_code, 0) << s.err;
    std::vector<std::string> verify = {"env",
                                       "OPENSSL_CONF=/dev/null",
                                       "openssl",
                                       "pkeyutl",
                                       "-verify",
                                       "-rawin",
                                       "-pubin",
                                       "-inkey",
                                       (tmp_ / "pub.pem").string(),
                                       "-in",
                                       (tmp_ / "data").string(),
                                       "-sigfile",
                                       sig};
    verify.insert(verify.end(), c.opts.begin(), c.opts.end());
    auto v = run(verify);
    EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
    EXPECT_TRUE(contains(v.out, "Signature Verified Successfully")) << v.out;
  }
}

TEST_F(ProviderTest, ReqMakesACsrThatVerifies) {
  for (auto [nick, type] : {std::pair{"ec", KeyType::kEcP256}, std::pair{"rsa", KeyType::kRsa2048},
                            std::pair{"ed", KeyType::kEd25519}}) {
    SCOPED_TRACE(nick);
    issue(nick, 100, type);
    const std::string csr = (tmp_ / (std::string(nick) + ".csr")).string();
    auto r = openssl("req", {"-new", "-key", uri(nick), "-passin", passin(), "-subj",
                             std::string("/CN=") + nick + " renewal", "-out", csr});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto v = run({"env", "OPENSSL_CONF=/dev/null", "openssl", "req", "-in", csr, "-verify",
                  "-noout", "-pubkey"});
    EXPECT_EQ(v.exit_code, 0) << v.err;
    EXPECT_TRUE(contains(v.err + v.out, "verify OK")) << v.err << v.out;
    EXPECT_TRUE(contains(v.out, cert_pubkey(cert_file(nick)))) << v.out;
  }
}

TEST_F(ProviderTest, CmsSignWithTheVaultKeyVerifies) {
  issue("signer", 100, KeyType::kEcP256);
  write_file(tmp_ / "msg", "a signed message\n");
  const auto cms = tmp_ / "msg.cms";
  auto r = openssl("cms", {"-sign", "-signer", cert_file("signer").string(), "-inkey",
                           uri("signer"), "-passin", passin(), "-in", (tmp_ / "msg").string(),
                           "-out", cms.string(), "-outform", "PEM", "-nodetach", "-binary"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto v = run({"env", "OPENSSL_CONF=/dev/null", "openssl", "cms", "-verify", "-in", cms.string(),
                "-inform", "PEM", "-CAfile", vault_ca_.string(), "-purpose", "any", "-out",
                (tmp_ / "msg.out").string()});
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_TRUE(contains(v.err, "Verification successful")) << v.err;
  EXPECT_EQ(read_file(tmp_ / "msg.out"), "a signed message\n");
}

TEST_F(ProviderTest, PrivateKeyNeverLeavesTheVault) {
  for (auto [nick, type] : {std::pair{"ec", KeyType::kEcP256}, std::pair{"rsa", KeyType::kRsa2048},
                            std::pair{"ed", KeyType::kEd25519}}) {
    SCOPED_TRACE(nick);
    issue(nick, 100, type);
    // `openssl pkey` without -pubout writes the private key: refused, nothing written.
    auto r = openssl("pkey", {"-in", uri(nick), "-passin", passin()});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_FALSE(contains(r.out, "PRIVATE KEY")) << r.out;
    auto der = openssl("pkey", {"-in", uri(nick), "-passin", passin(), "-outform", "DER"});
    EXPECT_NE(der.exit_code, 0);
    EXPECT_TRUE(der.out.empty()) << der.out.size() << " bytes written";
  }
}

// --- PIN sources and failures ---------------------------------------------------------

TEST_F(ProviderTest, PinSourceInTheUri) {
  issue("api-prod", 100, KeyType::kEcP256);
  auto r = openssl("pkey",
                   {"-in", uri("api-prod") + "?pin-source=file:" + pin_file_.string(), "-pubout"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, cert_pubkey(cert_file("api-prod")));
}

TEST_F(ProviderTest, WrongPinGivesAClearErrorAndIsCounted) {
  issue("api-prod", 100, KeyType::kEcP256);
  auto wrong = write_secret_file(tmp_ / "wrong", "not-the-pin");
  auto r =
      openssl("pkey", {"-in", uri("api-prod"), "-passin", "file:" + wrong.string(), "-pubout"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_TRUE(contains(r.err, "certvault")) << r.err;
  EXPECT_TRUE(contains(r.err, "wrong PIN for vault")) << r.err;
  EXPECT_TRUE(contains(r.err, "attempts left")) << r.err;
  EXPECT_FALSE(contains(r.err, "not-the-pin")) << r.err;
  EXPECT_EQ(vault().pin_failures(), 1);
}

TEST_F(ProviderTest, NoPinSourceSaysHowToGiveOne) {
  issue("api-prod", 100, KeyType::kEcP256);
  auto r = openssl("pkey", {"-in", uri("api-prod"), "-pubout"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "needs the PIN")) << r.err;
  EXPECT_TRUE(contains(r.err, "pin-source=file:PATH")) << r.err;
}

TEST_F(ProviderTest, UnknownNicknameIsRefusedWithTheReason) {
  auto r = openssl("pkey", {"-in", uri("nobody"), "-passin", passin(), "-pubout"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "no entry named 'nobody'")) << r.err;
  EXPECT_FALSE(contains(r.err, "certvault list")) << "the CLI's advice, in a program";
}

// The keystore says what is wrong; `certvault` adds the command to run, and a program
// gets no advice meant for the CLI's user.
TEST_F(ProviderTest, MissingVaultIsSaidWithoutTheCliAdvice) {
  auto r = openssl("pkey", {"-in",
                            "certvault:api?vault=" + (tmp_ / "nowhere").string() +
                                "&pin-source=file:" + pin_file_.string(),
                            "-pubout"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "no vault at " + (tmp_ / "nowhere").string())) << r.err;
  EXPECT_FALSE(contains(r.err, "certvault init")) << r.err;
  auto listed = run({cli(), "--vault", (tmp_ / "nowhere").string(), "list"});
  EXPECT_NE(listed.exit_code, 0);
  EXPECT_TRUE(contains(listed.err, "no vault at " + (tmp_ / "nowhere").string() +
                                       "; create one with `certvault init` or pass --vault DIR"))
      << listed.err;
}

TEST_F(ProviderTest, DisabledNicknameIsRefused) {
  issue("api-prod", 100, KeyType::kEcP256);
  auto disabled = cv({"disable", "api-prod"});
  ASSERT_EQ(disabled.exit_code, 0) << disabled.err;
  auto key = openssl("pkey", {"-in", uri("api-prod"), "-passin", passin(), "-pubout"});
  EXPECT_NE(key.exit_code, 0);
  EXPECT_TRUE(contains(key.err, "'api-prod' is disabled")) << key.err;
  EXPECT_FALSE(contains(key.err, "certvault enable")) << "the CLI's advice, in a program";
  // storeutl reports the error and finds nothing (its exit code stays 0).
  auto certs = openssl("storeutl", {"-certs", uri("api-prod")});
  EXPECT_TRUE(contains(certs.err, "'api-prod' is disabled")) << certs.err;
  EXPECT_TRUE(pem_block(certs.out).empty()) << certs.out;
}

TEST_F(ProviderTest, MalformedUriIsRefusedWithTheReason) {
  auto r = openssl("pkey", {"-in", "certvault:api?colour=blue", "-passin", passin(), "-pubout"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "unknown query attribute 'colour'")) << r.err;
}

TEST_F(ProviderTest, DebugLogIsOffByDefaultAndNeverHoldsThePin) {
  issue("api-prod", 100, KeyType::kEcP256);
  auto quiet = openssl("pkey", {"-in", uri("api-prod"), "-passin", passin(), "-pubout"});
  ASSERT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_FALSE(contains(quiet.err, "certvault-provider")) << quiet.err;
  auto loud = openssl("pkey", {"-in", uri("api-prod"), "-passin", passin(), "-pubout"},
                      {"CERTVAULT_DEBUG=1"});
  ASSERT_EQ(loud.exit_code, 0) << loud.err;
  EXPECT_TRUE(contains(loud.err, "certvault-provider: ")) << loud.err;
  EXPECT_FALSE(contains(loud.err, std::string(kPin))) << loud.err;
}

// --- openssl.cnf ----------------------------------------------------------------------

TEST_F(ProviderTest, OpensslCnfLoadsTheProviderWithVaultAndPinSource) {
  issue("api-prod", 100, KeyType::kEcP256);
  const auto conf = tmp_ / "openssl.cnf";
  write_file(conf,
             "openssl_conf = openssl_init\n"
             "[openssl_init]\nproviders = provider_sect\n"
             "[provider_sect]\ndefault = default_sect\ncertvault = certvault_sect\n"
             "[default_sect]\nactivate = 1\n"
             "[certvault_sect]\nmodule = " +
                 provider_module() + "\nvault = " + dir_.string() +
                 "\npin-source = file:" + pin_file_.string() + "\nactivate = 1\n");
  // No -provider options, no -passin, and CERTVAULT_VAULT pointing elsewhere.
  std::vector<std::string> argv = provider_env(tmp_ / "elsewhere", conf);
  for (auto a : {"openssl", "pkey", "-in", "certvault:api-prod", "-pubout"}) argv.push_back(a);
  auto r = run(argv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, cert_pubkey(cert_file("api-prod")));

  // A program that only reads a key file gets the vault key from a URI-in-PEM file.
  const auto key_file = tmp_ / "api-prod.key";
  auto made = cv({"uri", "api-prod", "--pem", "-o", key_file.string()});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  write_file(tmp_ / "data", "data\n");
  argv = provider_env(tmp_ / "elsewhere", conf);
  for (auto a : {"openssl", "pkeyutl", "-sign", "-rawin", "-digest", "sha256", "-inkey"})
    argv.push_back(a);
  for (auto a : {key_file.string(), std::string("-in"), (tmp_ / "data").string(),
                 std::string("-out"), (tmp_ / "sig").string()})
    argv.push_back(a);
  auto signed_ = run(argv);
  ASSERT_EQ(signed_.exit_code, 0) << signed_.err;
  write_file(tmp_ / "pub.pem", cert_pubkey(cert_file("api-prod")));
  auto v = run({"env", "OPENSSL_CONF=/dev/null", "openssl", "pkeyutl", "-verify", "-rawin",
                "-digest", "sha256", "-pubin", "-inkey", (tmp_ / "pub.pem").string(), "-in",
                (tmp_ / "data").string(), "-sigfile", (tmp_ / "sig").string()});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

// --- URI-in-PEM -----------------------------------------------------------------------

TEST_F(ProviderTest, UriPemFileHoldsOnlyTheUriAndLoadsTheKey) {
  issue("api-prod", 100, KeyType::kEcP256);
  const auto key_file = tmp_ / "api-prod.key";
  auto made = cv({"uri", "api-prod", "--pem", "-o", key_file.string()});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  EXPECT_EQ(file_mode(key_file), 0600u);
  const std::string text = read_file(key_file);
  EXPECT_TRUE(text.starts_with("-----BEGIN CERTVAULT URI-----\n")) << text;
  EXPECT_FALSE(contains(text, "PRIVATE")) << text;
  EXPECT_LT(text.size(), 400u) << text;
  auto r = openssl("pkey", {"-in", key_file.string(), "-passin", passin(), "-pubout"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, cert_pubkey(cert_file("api-prod")));
  // An existing file is never overwritten.
  auto again = cv({"uri", "api-prod", "--pem", "-o", key_file.string()});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_EQ(read_file(key_file), text);
}

TEST_F(ProviderTest, UriCommandPrintsTheUriProgramsUse) {
  issue("billing batch", 100, KeyType::kEcP256);
  auto r = cv({"uri", "billing batch"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Not the default vault: the URI names it.
  EXPECT_EQ(r.out, uri("billing batch") + "?vault=" + dir_.string() + "\n");
  auto key =
      openssl("pkey", {"-in", r.out.substr(0, r.out.size() - 1), "-passin", passin(), "-pubout"});
  ASSERT_EQ(key.exit_code, 0) << key.err;
  EXPECT_EQ(key.out, cert_pubkey(cert_file("billing batch")));
  auto unknown = cv({"uri", "nobody", "--pem"});
  EXPECT_EQ(unknown.exit_code, 4) << unknown.err;
  EXPECT_TRUE(contains(unknown.err, "no entry named 'nobody'")) << unknown.err;
}

// --- mutual TLS -----------------------------------------------------------------------

class ProviderTls : public ProviderTest {
 protected:
  void SetUp() override {
    ProviderTest::SetUp();
    if (HasFatalFailure()) return;
    server_cert_ = tmp_ / "server.pem";
    server_key_ = tmp_ / "server.key";
    auto made = make_server_cert(server_cert_, server_key_);
    ASSERT_EQ(made.exit_code, 0) << made.err;
  }

  // s_client presenting `cert` and `key` (URIs or files) to `server`, one HTTP request.
  RunResult connect(const TlsServer& server, const std::string& cert, const std::string& key,
                    const std::vector<std::string>& extra = {}, bool default_first = false) {
    std::vector<std::string> args = {"-connect",
                                     "127.0.0.1:" + std::to_string(server.port()),
                                     "-cert",
                                     cert,
                                     "-key",
                                     key,
                                     "-pass",
                                     passin(),
                                     "-CAfile",
                                     server_cert_.string(),
                                     "-verify_return_error",
                                     "-ign_eof"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<std::string> argv = provider_env(dir_);
    argv.push_back("openssl");
    argv.push_back("s_client");
    if (default_first) {
      for (auto a :
           {"-provider-path", kProviderDir, "-provider", "default", "-provider", "certvault"})
        argv.push_back(a);
    } else {
      for (const auto& a : provider_args()) argv.push_back(a);
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, "GET / HTTP/1.0\r\n\r\n", std::chrono::seconds(60));
  }

  // One handshake for `nickname` by URI; the server must have verified the vault
  // certificate. Returns the client's output (the -www page: the server's view).
  std::string expect_accepted(const std::string& nickname, const std::vector<std::string>& server,
                              const std::vector<std::string>& client = {},
                              const std::string& key = "") {
    SCOPED_TRACE(nickname);
    auto s = TlsServer::start(tmp_.path(), server_cert_, server_key_, vault_ca_, server);
    if (!s) return {};
    auto c = connect(*s, uri(nickname), key.empty() ? uri(nickname) : key, client);
    const std::string log = s->log();
    EXPECT_FALSE(c.timed_out);
    EXPECT_EQ(c.exit_code, 0) << c.out << c.err << "\nserver:\n" << log;
    EXPECT_TRUE(contains(c.out, "Client certificate")) << c.out;
    EXPECT_TRUE(contains(c.out, "Subject: CN=" + nickname + "\n")) << c.out;
    EXPECT_TRUE(contains(log, "depth=0 CN = " + nickname + "\nverify return:1")) << log;
    return c.out;
  }

  fs::path server_cert_, server_key_;
};

TEST_F(ProviderTls, EcdsaP256OverTls12And13) {
  issue("ec client", 100, KeyType::kEcP256);
  expect_accepted("ec client", {"-tls1_2"});
  expect_accepted("ec client", {"-tls1_3"});
  // A NIST-curve key exchange as well as X25519.
  expect_accepted("ec client", {"-tls1_2", "-groups", "P-256"});
  expect_accepted("ec client", {"-tls1_3", "-groups", "P-256"});
}

TEST_F(ProviderTls, EcdsaP384OverTls12And13) {
  issue("p384", 100, KeyType::kEcP384);
  expect_accepted("p384", {"-tls1_2"});
  expect_accepted("p384", {"-tls1_3"});
}

TEST_F(ProviderTls, RsaPkcs1AndPssOverTls12) {
  issue("rsa", 100, KeyType::kRsa2048);
  auto pkcs1 = expect_accepted("rsa", {"-tls1_2", "-client_sigalgs", "RSA+SHA256"});
  auto pss = expect_accepted("rsa", {"-tls1_2", "-client_sigalgs", "rsa_pss_rsae_sha256"});
}

TEST_F(ProviderTls, RsaPssOverTls13) {
  issue("rsa", 100, KeyType::kRsa2048);
  expect_accepted("rsa", {"-tls1_3"});
  expect_accepted("rsa", {"-tls1_3", "-client_sigalgs", "rsa_pss_rsae_sha384"});
}

TEST_F(ProviderTls, Ed25519OverTls12And13) {
  issue("ed", 100, KeyType::kEd25519);
  expect_accepted("ed", {"-tls1_2"});
  expect_accepted("ed", {"-tls1_3"});
}

// The order of the sample openssl.cnf: default, then certvault.
TEST_F(ProviderTls, DefaultProviderActivatedFirst) {
  issue("ec", 100, KeyType::kEcP256);
  issue("rsa", 100, KeyType::kRsa2048);
  for (const char* nick : {"ec", "rsa"}) {
    for (const char* version : {"-tls1_2", "-tls1_3"}) {
      SCOPED_TRACE(std::string(nick) + " " + version);
      auto s = TlsServer::start(tmp_.path(), server_cert_, server_key_, vault_ca_, {version});
      ASSERT_TRUE(s);
      auto c = connect(*s, uri(nick), uri(nick), {}, /*default_first=*/true);
      const std::string log = s->log();
      EXPECT_EQ(c.exit_code, 0) << c.err << "\nserver:\n" << log;
      EXPECT_TRUE(contains(log, "depth=0 CN = " + std::string(nick) + "\nverify return:1")) << log;
    }
  }
}

// A server that activates certvault before default (DESIGN.md's order): certvault's EC
// KEYMGMT then makes the server's ephemeral ECDHE keys (copied, and given the client's
// point, in TLS 1.2), and every group name libssl accepts comes from the TLS-GROUP
// capabilities certvault declares. The client presents its vault certificate by URI, with
// certvault first and with default first.
TEST_F(ProviderTls, CertvaultFirstServerNegotiatesNamedGroupsOverTls12) {
  issue("p256 client", 100, KeyType::kEcP256);
  issue("p384 client", 100, KeyType::kEcP384);
  // The client, the server's groups (in TLS 1.2 they must hold the curve of the client's
  // ECDSA key, RFC 8422 section 5.1; -serverpref makes the first one the one chosen), the
  // curve as s_client names it, and what the client offers: its default list has P-256
  // (the curve of the server's certificate) and P-384, not brainpool.
  struct Case {
    std::string nickname, groups, curve;
    std::vector<std::string> client;
  };
  const std::vector<Case> cases = {{"p256 client", "P-256", "prime256v1", {}},
                                   {"p384 client", "P-384", "secp384r1", {}},
                                   {"p256 client",
                                    "brainpoolP256r1:P-256",
                                    "brainpoolP256r1",
                                    {"-groups", "brainpoolP256r1:P-256"}}};
  for (const auto& [nickname, groups, curve, client] : cases) {
    for (bool client_default_first : {false, true}) {
      SCOPED_TRACE(groups +
                   (client_default_first ? ", client default first" : ", client certvault first"));
      auto s =
          TlsServer::start(tmp_.path(), server_cert_, server_key_, vault_ca_,
                           {"-provider-path", kProviderDir, "-provider", "certvault", "-provider",
                            "default", "-tls1_2", "-serverpref", "-groups", groups},
                           provider_env(dir_));
      ASSERT_TRUE(s);
      auto c = connect(*s, uri(nickname), uri(nickname), client, client_default_first);
      const std::string log = s->log();
      EXPECT_FALSE(c.timed_out);
      EXPECT_EQ(c.exit_code, 0) << c.out << c.err << "\nserver:\n" << log;
      // s_client's "Server Temp Key" line is "Peer Temp Key" from OpenSSL 3.2 on.
      EXPECT_TRUE(contains(c.out, "Server Temp Key: ECDH, " + curve + ",") ||
                  contains(c.out, "Peer Temp Key: ECDH, " + curve + ","))
          << c.out;
      EXPECT_TRUE(contains(c.out, "Cipher is ECDHE-")) << c.out;
      EXPECT_TRUE(contains(c.out, "Subject: CN=" + nickname + "\n")) << c.out;
      EXPECT_TRUE(contains(log, "depth=0 CN = " + nickname + "\nverify return:1")) << log;
    }
  }
}

TEST_F(ProviderTls, UriPemFileAsKey) {
  issue("api-prod", 100, KeyType::kEcP256);
  const auto key_file = tmp_ / "api-prod.key";
  auto made = cv({"uri", "api-prod", "--pem", "-o", key_file.string()});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  expect_accepted("api-prod", {"-tls1_3"}, {}, key_file.string());
}

TEST_F(ProviderTls, RefusedWhenTheServerTrustsAnotherCa) {
  issue("api-prod", 100, KeyType::kEcP256);
  const fs::path other_ca_pem = write_other_ca(tmp_.path());
  ASSERT_FALSE(other_ca_pem.empty());
  auto s = TlsServer::start(tmp_.path(), server_cert_, server_key_, other_ca_pem);
  ASSERT_TRUE(s);
  auto c = connect(*s, uri("api-prod"), uri("api-prod"));
  const std::string log = s->log();
  EXPECT_FALSE(c.timed_out);
  EXPECT_NE(c.exit_code, 0) << c.out << c.err;
  EXPECT_FALSE(contains(c.out, "Client certificate")) << c.out;
  EXPECT_TRUE(contains(log, "depth=0 CN = api-prod")) << log;
  EXPECT_TRUE(contains(log, "certificate verify failed")) << log;
}

// "c1:b6:..." as `openssl x509 -text` prints a serial given as "C1B6...".
std::string text_serial(std::string hex) {
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    if (!out.empty()) out += ':';
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(hex[i])));
    if (i + 1 < hex.size())
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(hex[i + 1])));
  }
  return out;
}

TEST_F(ProviderTls, AfterRotateANewProcessPresentsTheNewCertificate) {
  auto before = issue("api-prod", 100, KeyType::kEcP256);
  ASSERT_TRUE(before.current());
  const std::string old_serial = before.current()->serial;
  auto first = expect_accepted("api-prod", {"-tls1_3"});
  EXPECT_TRUE(contains(first, text_serial(old_serial))) << first;

  auto rotated = cv({"rotate", "api-prod"});
  ASSERT_EQ(rotated.exit_code, 0) << rotated.err;
  auto entry = vault().find("api-prod");
  ASSERT_TRUE(entry && entry->current());
  const std::string new_serial = entry->current()->serial;
  ASSERT_NE(new_serial, old_serial);

  auto second = expect_accepted("api-prod", {"-tls1_3"});
  EXPECT_TRUE(contains(second, text_serial(new_serial))) << second;
  EXPECT_FALSE(contains(second, text_serial(old_serial))) << second;
}

TEST_F(ProviderTls, PinnedSerialPresentsThatGeneration) {
  auto before = issue("api-prod", 100, KeyType::kEcP256);
  ASSERT_TRUE(before.current());
  const std::string old_serial = before.current()->serial;
  auto rotated = cv({"rotate", "api-prod"});
  ASSERT_EQ(rotated.exit_code, 0) << rotated.err;
  // The superseded generation is still the one this URI names.
  auto r = openssl("storeutl", {"-certs", uri("api-prod") + "?serial=" + old_serial});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto cert = x509_from_pem(pem_block(r.out));
  ASSERT_TRUE(cert);
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr);
  char* hex = BN_bn2hex(bn);
  auto strip = [](std::string s) {
    return s.erase(0, std::min(s.find_first_not_of('0'), s.size()));
  };
  EXPECT_EQ(strip(hex), strip(old_serial));
  OPENSSL_free(hex);
  BN_free(bn);
}

// `disable` stops the replaced generations with the active one: a URI that pins the old
// serial no longer loads its key or its certificate, in-process as through the agent.
TEST_F(ProviderTls, PinnedSerialOfADisabledEntryIsRefused) {
  auto before = issue("api-prod", 100, KeyType::kEcP256);
  ASSERT_TRUE(before.current());
  const std::string old_uri = uri("api-prod") + "?serial=" + before.current()->serial;
  ASSERT_EQ(cv({"rotate", "api-prod"}).exit_code, 0);
  auto usable = openssl("pkey", {"-in", old_uri, "-passin", passin(), "-pubout"});
  ASSERT_EQ(usable.exit_code, 0) << "a replaced generation signs until its notAfter: "
                                 << usable.err;

  ASSERT_EQ(cv({"disable", "api-prod"}).exit_code, 0);
  auto key = openssl("pkey", {"-in", old_uri, "-passin", passin(), "-pubout"});
  EXPECT_NE(key.exit_code, 0) << key.out;
  EXPECT_TRUE(contains(key.err, "'api-prod' is disabled")) << key.err;
  auto certs = openssl("storeutl", {"-certs", old_uri});
  EXPECT_TRUE(contains(certs.err, "'api-prod' is disabled")) << certs.err;
  EXPECT_TRUE(pem_block(certs.out).empty()) << certs.out;
}

}  // namespace
}  // namespace cvtest
