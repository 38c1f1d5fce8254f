// Enrolling at and renewing with an outside CA by CMP (docs/lifecycle.md, "Outside CAs:
// CMP"), as a user does it: `issuer add`, `create --issuer`, `renew`. Successful issuance
// comes from a small CMP server built on OpenSSL's server API (cmp_test_server.h); errors
// and refusals from Debian's `openssl cmp` mock server, which answers every request with
// one preconfigured certificate. Loopback only.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "cmp_test_server.h"
#include "support.h"
#include "test_cli.h"
#include "test_vault.h"
#include "tls_server.h"
#include "vault.h"

namespace cvtest {
namespace {

using certvault::Vault;

constexpr std::string_view kSecret = "cmp-shared-secret-0815";
constexpr std::string_view kReference = "ref-4711";

class CmpCli : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    ca_key_ = generate_ec_key();
    ca_.reset(make_test_ca(ca_key_.get(), "Test CMP CA"));
    ASSERT_TRUE(ca_);
    write_file(ca_pem(), x509_to_pem(ca_.get()));
    write_file(tmp_ / "cmp-ca.key", key_to_pem(ca_key_.get()));
    write_secret_file(tmp_ / "cmp-secret", kSecret);
  }
  void TearDown() override {
    if (mock_pid_ > 0) {
      ::kill(mock_pid_, SIGKILL);
      ::waitpid(mock_pid_, nullptr, 0);
    }
  }

  fs::path ca_pem() const { return tmp_ / "cmp-ca.pem"; }

  CmpTestServer::Options options(int port = 0) const {
    CmpTestServer::Options o;
    o.ca_key = ca_key_.get();
    o.ca_cert = ca_.get();
    o.reference = kReference;
    o.secret = kSecret;
    o.port = port;
    return o;
  }

  void add_issuer(const std::string& url) {
    ok({"issuer", "add", "ca1", "--cmp", url, "--cmp-ref", std::string(kReference),
        "--cmp-secret-file", (tmp_ / "cmp-secret").string(), "--trust", ca_pem().string()});
  }

  // A certificate from the test CA for a fresh key, as a PEM file for the mock to send.
  fs::path foreign_cert(const std::string& file, bool client_auth) {
    PkeyPtr key = generate_ec_key();
    X509_NAME* name = X509_NAME_new();
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("api"), -1, -1, 0);
    X509Ptr cert(issue_test_cert(ca_key_.get(), ca_.get(), key.get(), name, client_auth, 86400));
    X509_NAME_free(name);
    write_file(tmp_ / file, x509_to_pem(cert.get()));
    return tmp_ / file;
  }

  // Debian's `openssl cmp` mock server on `port` (0: any), answering `max_msgs` messages;
  // its port, once it says it listens.
  int start_mock(std::vector<std::string> args, int port = 0) {
    const fs::path out = tmp_ / "mock.out";
    std::vector<std::string> argv{"openssl",   "cmp", "-port", std::to_string(port),
                                  "-max_msgs", "1"};
    argv.insert(argv.end(), args.begin(), args.end());
    mock_pid_ = spawn_logged(argv, out, tmp_ / "mock.err");
    for (int i = 0; i < 200; ++i) {  // bounded: 20 s at most
      const std::string said = fs::exists(out) ? read_file(out) : "";
      // "ACCEPT [::]:PORT PID=..." (OpenSSL 3.0), "ACCEPT 0.0.0.0:PORT PID=..." (3.5)
      if (size_t at = said.find("ACCEPT "); at != std::string::npos) {
        const size_t end = said.find(' ', at + 7);
        const std::string address =
            said.substr(at + 7, end == std::string::npos ? end : end - at - 7);
        const size_t colon = address.rfind(':');
        if (end != std::string::npos && colon != std::string::npos)
          return std::atoi(address.c_str() + colon + 1);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return 0;
  }

  Vault::Stamp stamp() const { return Vault::manifest_stamp_now(vault_); }

  PkeyPtr ca_key_;
  X509Ptr ca_;
  pid_t mock_pid_ = -1;
};

TEST_F(CmpCli, CreateWithAnIssuerEnrollsWithTheSharedSecretAndKeepsTheSecretSealed) {
  CmpTestServer server(options());
  ASSERT_TRUE(server.listening());
  add_issuer(server.url());
  auto created = ok({"create", "api", "--issuer", "ca1", "--san", "DNS:api.example.com"});
  EXPECT_TRUE(contains(created.out, "Enrolled 'api' at issuer 'ca1' (generation 1)"))
      << created.out;
  EXPECT_EQ(server.served(), 1);
  auto e = Vault::open(vault_)->find("api");
  ASSERT_TRUE(e && e->current());
  EXPECT_EQ(e->issuer, "ca1");
  EXPECT_EQ(e->current()->issuer, certvault::IssuerKind::kExternal);
  EXPECT_EQ(e->current()->issuer_name, "CN=Test CMP CA");
  // The certificate chains to the issuer's anchor and is for client authentication.
  const fs::path cert = cert_file("api");
  auto verify = run(
      {"openssl", "verify", "-purpose", "sslclient", "-CAfile", ca_pem().string(), cert.string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  // The shared secret is nowhere in the vault in clear, nor in what `issuer show` prints.
  for (const auto& [name, content] : snapshot(vault_).files)
    EXPECT_FALSE(contains(content, std::string(kSecret))) << name;
  auto shown = ok({"issuer", "show", "ca1"});
  EXPECT_FALSE(contains(shown.out, std::string(kSecret))) << shown.out;
  EXPECT_TRUE(contains(shown.out, "'api'")) << shown.out;
  auto json = parse_json(ok({"show", "api"}, true).out);
  EXPECT_EQ(json["outside_issuer"].asString(), "ca1");
  EXPECT_EQ(json["renewal"]["renewer"].asString(), "cmp");
  // An issuer that still renews an entry stays.
  ExpectRefusedUnchanged({"issuer", "remove", "ca1"}, {5});
}

// A renewal pass plans outside the vault's lock and renews under it: an entry renewed in
// between (by a timer beside the agent, or a second `renew`) must not be renewed again at
// the CA. The pass names the generation it planned for to begin_renewal, the step before
// any key is made or CA asked; any other generation is refused there.
TEST_F(CmpCli, BeginRenewalRefusesAGenerationThatIsNoLongerCurrent) {
  CmpTestServer server(options());
  ASSERT_TRUE(server.listening());
  add_issuer(server.url());
  ok({"create", "api", "--issuer", "ca1"});
  ok({"renew", "api"});
  ASSERT_EQ(server.served(), 2);
  auto v = Vault::open(vault_);
  ASSERT_TRUE(v);
  ASSERT_TRUE(v->unlock(pin()));
  auto stale = v->begin_renewal("api", 1);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, certvault::Code::kRefused);
  EXPECT_TRUE(contains(stale.error().message, "changed meanwhile")) << stale.error().message;
  auto current = v->begin_renewal("api", 2);
  ASSERT_TRUE(current) << current.error().message;
  EXPECT_EQ(current->renews, 2u);
}

TEST_F(CmpCli, RenewSendsAKeyUpdateSignedWithTheCurrentKey) {
  CmpTestServer server(options());
  ASSERT_TRUE(server.listening());
  add_issuer(server.url());
  ok({"create", "api", "--issuer", "ca1", "--san", "DNS:api.example.com"});
  const std::string uri = ok({"uri", "api"}).out;
  auto renewed = ok({"renew", "api"});
  EXPECT_TRUE(contains(renewed.out, "Renewed 'api': generation 2")) << renewed.out;
  EXPECT_EQ(server.key_updates(), 1);
  auto e = Vault::open(vault_)->find("api");
  ASSERT_EQ(e->generations.size(), 2u);
  EXPECT_EQ(e->generations[0].status, certvault::Status::kSuperseded);
  EXPECT_EQ(e->current()->number, 2u);
  EXPECT_NE(e->generations[0].key_id, e->generations[1].key_id);
  EXPECT_EQ(e->generations[0].subject, e->generations[1].subject);
  EXPECT_EQ(ok({"uri", "api"}).out, uri);
  EXPECT_TRUE(contains(openssl_text(cert_file("api")), "DNS:api.example.com"));
}

// `--cmp-cert`: initial requests signed with a certificate the vault already holds from the
// CA (RFC 9483 4.1.1), instead of a shared secret. Can fail: a client that sent the request
// unprotected, or signed with the wrong key, is refused by the server, which accepts only
// signatures under its own CA; a certificate from another CA is refused likewise.
TEST_F(CmpCli, IssuerWithACertificateEnrollsWithRequestsSignedByThatEntry) {
  CmpTestServer server(options());
  ASSERT_TRUE(server.listening());
  add_issuer(server.url());
  ok({"create", "boot", "--issuer", "ca1", "--san", "DNS:boot.example.com"});
  ok({"issuer", "add", "ca2", "--cmp", server.url(), "--cmp-cert", "boot", "--trust",
      ca_pem().string()});
  auto created = ok({"create", "api", "--issuer", "ca2", "--san", "DNS:api.example.com"});
  EXPECT_TRUE(contains(created.out, "Enrolled 'api' at issuer 'ca2' (generation 1)"))
      << created.out;
  EXPECT_EQ(server.served(), 2);
  auto verify = run({"openssl", "verify", "-purpose", "sslclient", "-CAfile", ca_pem().string(),
                     cert_file("api").string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  auto shown = parse_json(ok({"issuer", "show", "ca2"}, true).out);
  EXPECT_EQ(shown["authentication"].asString(), "certificate");
  EXPECT_EQ(shown["client_cert"].asString(), "boot");
  // An entry whose certificate is from the vault's own CA: the server does not trust it.
  ok({"create", "local", "--end-date", "+30d"});
  ok({"issuer", "add", "ca3", "--cmp", server.url(), "--cmp-cert", "local", "--trust",
      ca_pem().string()});
  auto r = ExpectRefusedUnchanged(
      {"create", "web", "--issuer", "ca3", "--san", "DNS:web.example.com"}, {1, 5, 6});
  EXPECT_TRUE(contains(r.err, "issuer 'ca3'")) << r.err;
  EXPECT_TRUE(contains(r.err, "rejection")) << r.err;
}

// https: the CMP server behind TLS (socat terminates it, as a reverse proxy in front of a
// CA would), its certificate checked against the issuer's --server-ca. Can fail: a client
// that did not verify the server would enroll through the wrongly anchored issuer too.
TEST_F(CmpCli, AnHttpsServerIsAskedOverTlsVerifiedAgainstTheServerCa) {
  CmpTestServer server(options());
  ASSERT_TRUE(server.listening());
  ASSERT_EQ(make_server_cert(tmp_ / "tls.pem", tmp_ / "tls.key").exit_code, 0);
  ASSERT_EQ(make_server_cert(tmp_ / "other.pem", tmp_ / "other.key").exit_code, 0);
  const int port = free_loopback_port();
  ChildGuard front(spawn_logged(
      {"socat",
       "OPENSSL-LISTEN:" + std::to_string(port) + ",bind=127.0.0.1,reuseaddr,fork,cert=" +
           (tmp_ / "tls.pem").string() + ",key=" + (tmp_ / "tls.key").string() + ",verify=0",
       "TCP:127.0.0.1:" + std::to_string(server.port())},
      tmp_ / "socat.out", tmp_ / "socat.err"));
  bool up = false;
  for (int i = 0; i < 100 && !up; ++i) {  // bounded: 10 s at most
    up = run({"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(port), "-brief"}, "")
             .exit_code == 0;
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(up) << read_file(tmp_ / "socat.err");
  const std::string url = "https://127.0.0.1:" + std::to_string(port) + "/pkix/";
  for (auto [name, anchor] : {std::pair{"wrong", "other.pem"}, {"ca1", "tls.pem"}})
    ok({"issuer", "add", name, "--cmp", url, "--cmp-ref", std::string(kReference),
        "--cmp-secret-file", (tmp_ / "cmp-secret").string(), "--trust", ca_pem().string(),
        "--server-ca", (tmp_ / anchor).string()});
  auto refused = ExpectRefusedUnchanged(
      {"create", "web", "--issuer", "wrong", "--san", "DNS:web.example.com"}, {1, 5, 6});
  EXPECT_TRUE(contains(refused.err, "issuer 'wrong'")) << refused.err;
  EXPECT_TRUE(contains(refused.err, "TLS certificate does not verify")) << refused.err;
  EXPECT_EQ(server.served(), 0) << "nothing reached the CA through an unverified server";
  auto created = ok({"create", "api", "--issuer", "ca1", "--san", "DNS:api.example.com"});
  EXPECT_TRUE(contains(created.out, "Enrolled 'api' at issuer 'ca1' (generation 1)"))
      << created.out;
  auto renewed = ok({"renew", "api"});
  EXPECT_TRUE(contains(renewed.out, "Renewed 'api': generation 2")) << renewed.out;
  EXPECT_EQ(server.served(), 2);
  EXPECT_EQ(server.key_updates(), 1);
}

TEST_F(CmpCli, RenewRevokeOldSendsTheIssuerARevocationRequestForTheOldSerialAsSuperseded) {
  CmpTestServer server(options());
  ASSERT_TRUE(server.listening());
  add_issuer(server.url());
  ok({"create", "api", "--issuer", "ca1", "--san", "DNS:api.example.com"});
  const std::string old_serial = Vault::open(vault_)->find("api")->current()->serial;
  auto renewed = ok({"renew", "api", "--revoke-old"});
  EXPECT_TRUE(contains(renewed.out, "Renewed 'api': generation 2")) << renewed.out;
  EXPECT_TRUE(contains(renewed.out, "Generation 1 is revoked (superseded) at issuer 'ca1'."))
      << renewed.out;
  const auto asked = server.revocations();
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0].serial, old_serial);
  EXPECT_EQ(asked[0].reason, 4) << "superseded (RFC 5280 5.3.1)";
  EXPECT_TRUE(asked[0].accepted);
  auto e = Vault::open(vault_)->find("api");
  ASSERT_TRUE(e && e->current());
  EXPECT_EQ(e->current()->number, 2u);
  EXPECT_EQ(e->generations[0].status, certvault::Status::kDisabled) << "it no longer signs";
  ASSERT_NE(e->revocation(1), nullptr);
  EXPECT_EQ(e->revocation(1)->serial, old_serial);
  auto shown = ok({"show", "api"});
  EXPECT_TRUE(contains(shown.out, "(superseded) by issuer 'ca1'")) << shown.out;
  auto json = parse_json(ok({"show", "api"}, true).out);
  ASSERT_EQ(json["revoked"].size(), 1u);
  EXPECT_EQ(json["revoked"][0]["outside_issuer"].asString(), "ca1");
  // The issuer revoked it once: asking again is refused in one line, and asks nobody.
  ExpectRefusedUnchanged({"revoke", "api", "--generation", "1", "--reason", "superseded"}, {5});
  EXPECT_EQ(server.revocations().size(), 1u);
}

TEST_F(CmpCli, ARevocationTheIssuerRefusesLeavesTheRenewalDoneAndSaysNotRevoked) {
  CmpTestServer::Options o = options();
  o.refuse_revocation = true;
  CmpTestServer server(o);
  ASSERT_TRUE(server.listening());
  add_issuer(server.url());
  ok({"create", "api", "--issuer", "ca1"});
  auto renewed = cv({"renew", "api", "--revoke-old"});
  EXPECT_EQ(renewed.exit_code, 0) << "the renewal was made: " << renewed.out << renewed.err;
  EXPECT_TRUE(contains(renewed.out, "Renewed 'api': generation 2")) << renewed.out;
  EXPECT_TRUE(contains(renewed.out, "Generation 1 was not revoked: issuer 'ca1' (" + server.url() +
                                        ") did not revoke generation 1 of 'api'"))
      << renewed.out;
  EXPECT_TRUE(contains(renewed.out, "rejection")) << "the CA's answer: " << renewed.out;
  ASSERT_EQ(server.revocations().size(), 1u);
  auto e = Vault::open(vault_)->find("api");
  ASSERT_TRUE(e && e->current());
  EXPECT_EQ(e->current()->number, 2u);
  EXPECT_EQ(e->generations[0].status, certvault::Status::kSuperseded) << "still works";
  EXPECT_TRUE(e->revoked.empty()) << "nothing recorded that the issuer did not do";
  // `revoke` alone: the refusal in one line, and the vault unchanged.
  auto r =
      ExpectRefusedUnchanged({"revoke", "api", "--generation", "1", "--reason", "superseded"}, {5});
  EXPECT_TRUE(contains(r.err, "did not revoke generation 1 of 'api'")) << r.err;
}

TEST_F(CmpCli, RevokeAsksTheOutsideIssuerAndTheVaultCaCrlDoesNotListIt) {
  CmpTestServer server(options());
  ASSERT_TRUE(server.listening());
  add_issuer(server.url());
  ok({"create", "laptop", "--end-date", "+90d"});
  ok({"create", "api", "--issuer", "ca1"});
  const std::string outside = Vault::open(vault_)->find("api")->current()->serial;
  const std::string ours = Vault::open(vault_)->find("laptop")->current()->serial;
  auto revoked = ok({"revoke", "api", "--reason", "keyCompromise"});
  EXPECT_TRUE(contains(revoked.out, "Revoked generation 1 of 'api' at issuer 'ca1'"))
      << revoked.out;
  EXPECT_TRUE(contains(revoked.out, "the vault CA's CRL does not list it")) << revoked.out;
  const auto asked = server.revocations();
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0].serial, outside);
  EXPECT_EQ(asked[0].reason, 1) << "keyCompromise";
  auto e = Vault::open(vault_)->find("api");
  EXPECT_EQ(e->current(), nullptr) << "the revoked generation no longer signs";
  ok({"revoke", "laptop", "--reason", "keyCompromise"});
  const fs::path crl = tmp_ / "ca.crl";
  ok({"ca", "crl", "-o", crl.string()});
  auto text = run({"openssl", "crl", "-in", crl.string(), "-noout", "-text"});
  EXPECT_TRUE(contains(text.out, ours)) << "the vault CA's own revocation is listed: " << text.out;
  EXPECT_FALSE(contains(text.out, outside)) << "the outside certificate is not: " << text.out;
  // The outside issuer keeps its revocation: the entry may go, unlike the vault CA's.
  ok({"delete", "api", "--yes"});
  ExpectRefusedUnchanged({"delete", "laptop", "--yes"}, {5});
}

TEST_F(CmpCli, AnErrorResponseFailsTheRenewalWhichIsRecordedAndTheOldGenerationStays) {
  int port = 0;
  {
    CmpTestServer server(options());
    ASSERT_TRUE(server.listening());
    port = server.port();
    add_issuer(server.url());
    ok({"create", "api", "--issuer", "ca1"});
  }
  // The same address now answers every request with an error.
  const fs::path rsp = foreign_cert("rsp.pem", true);
  ASSERT_EQ(
      start_mock({"-srv_cert", ca_pem().string(), "-srv_key", (tmp_ / "cmp-ca.key").string(),
                  "-srv_trusted", ca_pem().string(), "-rsp_cert", rsp.string(), "-send_error"},
                 port),
      port);
  auto r = cv({"renew", "api"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "Could not renew 'api': issuer 'ca1'")) << r.out;
  EXPECT_TRUE(contains(r.out, "PKIStatus: rejection")) << "the CA's answer, in one line: " << r.out;
  auto e = Vault::open(vault_)->find("api");
  ASSERT_TRUE(e && e->current());
  EXPECT_EQ(e->current()->number, 1u) << "the old generation stays";
  EXPECT_EQ(e->generations.size(), 1u);
  EXPECT_EQ(e->renewal.failures, 1u);
  EXPECT_TRUE(contains(e->renewal.last_error, "did not renew")) << e->renewal.last_error;
}

TEST_F(CmpCli, ACertificateWithoutClientAuthIsRefusedAndTheVaultIsUnchanged) {
  const fs::path rsp = foreign_cert("server-only.pem", false);
  const int port = start_mock({"-srv_ref", std::string(kReference), "-srv_secret",
                               "pass:" + std::string(kSecret), "-rsp_cert", rsp.string()});
  ASSERT_NE(port, 0);
  add_issuer("http://127.0.0.1:" + std::to_string(port) + "/pkix/");
  auto r = ExpectRefusedUnchanged({"create", "api", "--issuer", "ca1"}, {5});
  EXPECT_TRUE(contains(r.err, "issuer 'ca1' sent a certificate for 'api' that the vault refuses"))
      << r.err;
  EXPECT_TRUE(contains(r.err, "clientAuth")) << r.err;
}

TEST_F(CmpCli, ACertificateForAnotherKeyIsRefusedAndTheVaultIsUnchanged) {
  const fs::path rsp = foreign_cert("other-key.pem", true);
  const int port = start_mock({"-srv_ref", std::string(kReference), "-srv_secret",
                               "pass:" + std::string(kSecret), "-rsp_cert", rsp.string()});
  ASSERT_NE(port, 0);
  add_issuer("http://127.0.0.1:" + std::to_string(port) + "/pkix/");
  auto r = ExpectRefusedUnchanged({"create", "api", "--issuer", "ca1"}, {5});
  EXPECT_TRUE(contains(r.err, "for another key")) << r.err;
}

TEST_F(CmpCli, IssuerAddNeedsExactlyOneWayToAuthenticate) {
  ExpectRefusedUnchanged(
      {"issuer", "add", "ca1", "--cmp", "http://127.0.0.1:1/cmp", "--trust", ca_pem().string()},
      {3});
  ExpectRefusedUnchanged({"create", "api"}, {3});
  ExpectRefusedUnchanged({"create", "api", "--issuer", "nosuch"}, {4});
  // A password in the URL would sit in the vault in the clear and show in messages.
  auto r = ExpectRefusedUnchanged(
      {"issuer", "add", "ca1", "--cmp", "http://user:hunter2@127.0.0.1:1/cmp", "--cmp-ref", "3078",
       "--cmp-secret-file", (tmp_ / "cmp-secret").string(), "--trust", ca_pem().string()},
      {3});
  EXPECT_FALSE(contains(r.err, "hunter2")) << r.err;
}

}  // namespace
}  // namespace cvtest
