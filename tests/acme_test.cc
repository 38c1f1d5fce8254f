// Enrolling at and renewing with an outside CA by ACME (RFC 8555; docs/lifecycle.md,
// "Outside CAs: ACME"), as a user does it: `issuer add --acme`, `create --issuer`, `renew`,
// against Debian's `pebble` on loopback with a configuration and TLS certificate the test
// makes. Validation is real (http-01 to certvault's own responder) except where a case is
// not about it. Skipped only when pebble is not installed.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "http_test_server.h"
#include "renewal.h"
#include "support.h"
#include "test_cli.h"
#include "tls_server.h"
#include "vault.h"

namespace cvtest {
namespace {

using certvault::Time;
using certvault::Vault;

// An external account binding MAC key as an ACME CA hands it out (base64url).
constexpr std::string_view kEabKey =
    "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";

class AcmeCli : public CliTest {
 protected:
  void SetUp() override {
    if (run({"sh", "-c", "command -v pebble"}).exit_code != 0)
      GTEST_SKIP() << "pebble is not installed (scripts/install-deps.sh installs it)";
    CliTest::SetUp();
    // The test's own servers are on loopback; a proxy in the environment must not see them.
    ::setenv("NO_PROXY", "127.0.0.1,localhost", 1);
    ::setenv("no_proxy", "127.0.0.1,localhost", 1);
    auto made = make_server_cert(tmp_ / "pebble.pem", tmp_ / "pebble.key");
    ASSERT_EQ(made.exit_code, 0) << made.err;
    acme_port_ = free_loopback_port();
    mgmt_port_ = free_loopback_port();
    http01_port_ = free_loopback_port();
    ASSERT_TRUE(acme_port_ && mgmt_port_ && http01_port_);
  }

  // Pebble with its own TLS certificate, asking http-01 proofs at the test's port;
  // `always_valid`: no validation at all (for cases that are not about it).
  // `nonce_reject`: the percentage of good nonces pebble refuses with badNonce.
  void start_pebble(bool always_valid = false, bool eab = false, int nonce_reject = 0) {
    const fs::path config = tmp_ / "pebble.json";
    write_file(config, R"({"pebble": {"listenAddress": "127.0.0.1:)" + std::to_string(acme_port_) +
                           R"(", "managementListenAddress": "127.0.0.1:)" +
                           std::to_string(mgmt_port_) + R"(", "certificate": ")" +
                           (tmp_ / "pebble.pem").string() + R"(", "privateKey": ")" +
                           (tmp_ / "pebble.key").string() + R"(", "httpPort": )" +
                           std::to_string(http01_port_) + R"(, "tlsPort": )" +
                           std::to_string(free_loopback_port()) +
                           R"(, "ocspResponderURL": "", "externalAccountBindingRequired": )" +
                           (eab ? R"(true, "externalAccountMACKeys": {"kid-1": ")" +
                                      std::string(kEabKey) + R"("},)"
                                : std::string("false,")) +
                           R"( "certificateValidityPeriod": 7200}})");
    std::vector<std::string> argv{"env", "PEBBLE_VA_NOSLEEP=1",
                                  "PEBBLE_WFE_NONCEREJECT=" + std::to_string(nonce_reject)};
    if (always_valid) argv.push_back("PEBBLE_VA_ALWAYS_VALID=1");
    argv.insert(argv.end(), {"pebble", "-config", config.string()});
    if (!dns_server_.empty()) argv.insert(argv.end(), {"-dnsserver", dns_server_});
    pebble_ = ChildGuard(spawn_logged(argv, tmp_ / "pebble.out", tmp_ / "pebble.err"));
    // Its root for issued certificates, from the management port, once it answers.
    for (int i = 0; i < 100; ++i) {  // bounded: 10 s at most
      auto root = run({"curl", "-sf", "--noproxy", "*", "--max-time", "2", "--cacert",
                       (tmp_ / "pebble.pem").string(), mgmt_url() + "/roots/0"});
      if (root.exit_code == 0 && contains(root.out, "BEGIN CERTIFICATE")) {
        write_file(root_pem(), root.out);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    FAIL() << "pebble did not start: " << read_file(tmp_ / "pebble.out");
  }

  std::string directory() const {
    return "https://127.0.0.1:" + std::to_string(acme_port_) + "/dir";
  }
  std::string mgmt_url() const { return "https://127.0.0.1:" + std::to_string(mgmt_port_); }
  fs::path root_pem() const { return tmp_ / "pebble-root.pem"; }

  void add_issuer() {
    ok({"issuer", "add", "le", "--acme", directory(), "--trust", root_pem().string(), "--server-ca",
        (tmp_ / "pebble.pem").string(), "--http01-listen",
        "127.0.0.1:" + std::to_string(http01_port_)});
  }

  // The entry's certificate verified by openssl against pebble's root, through the chain
  // the vault stored, for client authentication.
  RunResult verify(const std::string& nickname) {
    auto v = Vault::open(vault_);
    EXPECT_TRUE(v) << (v ? "" : v.error().message);
    if (!v) return {};
    auto ders = v->chain_der(nickname);
    EXPECT_TRUE(ders);
    std::string chain;
    for (const auto& der : ders.value_or(std::vector<std::vector<uint8_t>>{}))
      chain += der_to_pem(der);
    write_file(tmp_ / "chain.pem", chain);
    return run({"openssl", "verify", "-purpose", "sslclient", "-CAfile", root_pem().string(),
                "-untrusted", (tmp_ / "chain.pem").string(), cert_file(nickname).string()});
  }

  // Pebble's view of a certificate (GET /cert-status-by-serial/HEX on its management
  // port): {"Status": "Valid"|"Revoked", "Reason": N, ...}.
  Json::Value cert_status(const std::string& serial) {
    auto r = run({"curl", "-sf", "--noproxy", "*", "--max-time", "5", "--cacert",
                  (tmp_ / "pebble.pem").string(), mgmt_url() + "/cert-status-by-serial/" + serial});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return parse_json(r.out);
  }

  // --- renewal information (RFC 9773), which pebble 2.4 does not offer ---------------

  // A loopback server in front of pebble: its directory is pebble's with renewalInfo
  // added (and, with order_here_, newOrder pointing at the front too); renewalInfo answers
  // with ari_, newOrder with the orders_ answers in turn. Issuer 'ca' uses it.
  void start_front() {
    auto dir = run({"curl", "-sf", "--noproxy", "*", "--max-time", "5", "--cacert",
                    (tmp_ / "pebble.pem").string(), directory()});
    ASSERT_EQ(dir.exit_code, 0) << dir.err;
    pebble_dir_ = parse_json(dir.out);
    ASSERT_TRUE(pebble_dir_["newOrder"].isString()) << dir.out;
    front_ = std::make_unique<HttpTestServer>();
    ASSERT_TRUE(front_->listening());
    front_->set_handler([this](const HttpTestServer::Request& r) { return answer(r); });
    ok({"issuer", "add", "ca", "--acme", front_->url() + "/dir", "--trust", root_pem().string(),
        "--server-ca", (tmp_ / "pebble.pem").string(), "--http01-listen",
        "127.0.0.1:" + std::to_string(http01_port_)});
  }

  HttpTestServer::Answer answer(const HttpTestServer::Request& r) {
    const HttpTestServer::Answer json_type{200, "", {{"Content-Type", "application/json"}}};
    if (r.method == "GET" && r.path == "/dir") {
      Json::Value d = pebble_dir_;
      d["renewalInfo"] = front_->url() + "/renewal-info";
      if (order_here_) d["newOrder"] = front_->url() + "/new-order";
      HttpTestServer::Answer a = json_type;
      a.body = d.toStyledString();
      return a;
    }
    if (r.method == "GET" && r.path.starts_with("/renewal-info/")) return ari_;
    if (r.method == "POST" && r.path == "/new-order" && !orders_.empty()) {
      auto a = orders_.front();
      if (orders_.size() > 1) orders_.erase(orders_.begin());
      return a;
    }
    return {404, "", {}};
  }

  // A renewalInfo answer with this window (seconds from now) and explanation.
  static HttpTestServer::Answer window(Time from, Time to, const std::string& why = "") {
    Json::Value v(Json::objectValue);
    v["suggestedWindow"]["start"] = certvault::format_time(certvault::now() + from);
    v["suggestedWindow"]["end"] = certvault::format_time(certvault::now() + to);
    if (!why.empty()) v["explanationURL"] = why;
    return {
        200, v.toStyledString(), {{"Content-Type", "application/json"}, {"Retry-After", "21600"}}};
  }

  // The requests the front saw for renewal information, from the `since`th on.
  std::vector<std::string> ari_paths(size_t since = 0) const {
    std::vector<std::string> out;
    const auto all = front_->requests();
    for (size_t i = since; i < all.size(); ++i)
      if (all[i].path.starts_with("/renewal-info/")) out.push_back(all[i].path);
    return out;
  }

  // The ARI id of the entry's current certificate (RFC 9773 4.1), from what `openssl x509`
  // prints: base64url of the AKI key id, '.', base64url of the serial's DER content.
  std::string expected_ari_id(const std::string& nickname) {
    auto printed = run({"openssl", "x509", "-in", cert_file(nickname).string(), "-noout", "-serial",
                        "-ext", "authorityKeyIdentifier"});
    EXPECT_EQ(printed.exit_code, 0) << printed.err;
    auto hex_bytes = [](std::string hex) {
      std::string clean;
      for (char c : hex)
        if (std::isxdigit(static_cast<unsigned char>(c))) clean += c;
      if (clean.size() % 2) clean = "0" + clean;
      std::vector<unsigned char> out;
      for (size_t i = 0; i < clean.size(); i += 2)
        out.push_back(static_cast<unsigned char>(std::stoi(clean.substr(i, 2), nullptr, 16)));
      return out;
    };
    auto b64url = [](const std::vector<unsigned char>& d) {
      std::string out(4 * ((d.size() + 2) / 3) + 1, '\0');
      out.resize(static_cast<size_t>(EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                                     d.data(), static_cast<int>(d.size()))));
      while (!out.empty() && out.back() == '=') out.pop_back();
      for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
      return out;
    };
    const std::string& t = printed.out;
    const size_t serial_at = t.find("serial=") + 7;
    auto serial = hex_bytes(t.substr(serial_at, t.find('\n', serial_at) - serial_at));
    if (!serial.empty() && serial[0] & 0x80) serial.insert(serial.begin(), 0);  // DER INTEGER
    const size_t aki_line = t.find('\n', t.find("Authority Key Identifier")) + 1;
    std::string aki = t.substr(aki_line, t.find('\n', aki_line) - aki_line);
    if (aki.find("keyid:") != std::string::npos) aki = aki.substr(aki.find("keyid:") + 6);
    return b64url(hex_bytes(aki)) + "." + b64url(serial);
  }

  // The JSON payload of a JWS the front received.
  static Json::Value jws_payload(const std::string& body) {
    std::string p = parse_json(body)["payload"].asString();
    for (char& c : p) c = c == '-' ? '+' : c == '_' ? '/' : c;
    while (p.size() % 4) p += '=';
    std::string out(p.size(), '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(p.data()),
                                  static_cast<int>(p.size()));
    out.resize(n > 0 ? static_cast<size_t>(n) : 0);
    while (!out.empty() && out.back() == '\0') out.pop_back();
    return parse_json(out);
  }

  RunResult renew_at(const std::string& offset, const std::vector<std::string>& args) {
    std::vector<std::string> argv{"env",
                                  "CERTVAULT_TEST_NOW=" + offset,
                                  cli(),
                                  "--vault",
                                  vault_.string(),
                                  "--pin-file",
                                  pin_file_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }

  uint32_t generation(const std::string& nickname) const {
    auto e = Vault::open(vault_)->find(nickname);
    return e && e->current() ? e->current()->number : 0;
  }

  int acme_port_ = 0, mgmt_port_ = 0, http01_port_ = 0;
  std::string dns_server_;  // ADDRESS:PORT pebble resolves names with; "" the system's
  ChildGuard pebble_;
  Json::Value pebble_dir_;
  std::unique_ptr<HttpTestServer> front_;
  HttpTestServer::Answer ari_{500, "", {}};
  bool order_here_ = false;
  std::vector<HttpTestServer::Answer> orders_;
};

TEST_F(AcmeCli, CreateWithAnAcmeIssuerProvesTheAddressByHttp01AndStoresAClientCertificate) {
  start_pebble();
  add_issuer();
  auto created = ok({"create", "web", "--issuer", "le", "--san", "IP:127.0.0.1"});
  EXPECT_TRUE(contains(created.out, "Enrolled 'web' at issuer 'le' (generation 1)")) << created.out;
  auto e = Vault::open(vault_)->find("web");
  ASSERT_TRUE(e && e->current());
  EXPECT_EQ(e->issuer, "le");
  EXPECT_EQ(e->current()->issuer, certvault::IssuerKind::kExternal);
  EXPECT_TRUE(contains(e->current()->issuer_name, "Pebble Intermediate CA"))
      << e->current()->issuer_name;
  auto verified = verify("web");
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  const std::string text = openssl_text(cert_file("web"));
  EXPECT_TRUE(contains(text, "IP Address:127.0.0.1")) << text;
  EXPECT_TRUE(contains(text, "TLS Web Client Authentication")) << text;
  // The account was registered on first use and its URL kept; the account key never shows.
  auto issuer = parse_json(ok({"issuer", "show", "le"}, true).out);
  EXPECT_EQ(issuer["protocol"].asString(), "acme");
  EXPECT_TRUE(contains(issuer["account"].asString(), "/my-account/")) << issuer;
  auto json = parse_json(ok({"show", "web"}, true).out);
  EXPECT_EQ(json["renewal"]["renewer"].asString(), "acme");
}

TEST_F(AcmeCli, ADnsNameIsAskedForAsADnsIdentifier) {
  start_pebble(/*always_valid=*/true);
  add_issuer();
  ok({"create", "api", "--issuer", "le", "--san", "DNS:api.example.com,IP:127.0.0.1"});
  const std::string text = openssl_text(cert_file("api"));
  EXPECT_TRUE(contains(text, "DNS:api.example.com")) << text;
  EXPECT_TRUE(contains(text, "IP Address:127.0.0.1")) << text;
  EXPECT_EQ(verify("api").exit_code, 0);
}

TEST_F(AcmeCli, RenewOrdersANewCertificateForANewKeyUnderTheSameUri) {
  start_pebble();
  add_issuer();
  ok({"create", "web", "--issuer", "le", "--san", "IP:127.0.0.1"});
  const std::string uri = ok({"uri", "web"}).out;
  auto renewed = ok({"renew", "web"});
  EXPECT_TRUE(contains(renewed.out, "Renewed 'web': generation 2")) << renewed.out;
  auto e = Vault::open(vault_)->find("web");
  ASSERT_EQ(e->generations.size(), 2u);
  EXPECT_EQ(e->generations[0].status, certvault::Status::kSuperseded);
  EXPECT_EQ(e->current()->number, 2u);
  EXPECT_NE(e->generations[0].key_id, e->generations[1].key_id);
  EXPECT_EQ(ok({"uri", "web"}).out, uri);
  EXPECT_TRUE(contains(openssl_text(cert_file("web")), "IP Address:127.0.0.1"));
  EXPECT_EQ(verify("web").exit_code, 0);
}

// RFC 8555 6.5: a server may refuse a good nonce (badNonce) and the client sends the request
// again with the fresh nonce of the refusal. Pebble refusing a quarter of all nonces: some
// two dozen requests meet several refusals, and enrollment and renewal go through. Can
// fail: a client that gave up after one retry would fail at a refusal twice in a row.
TEST_F(AcmeCli, RefusedNoncesAreRetriedWithTheFreshNonce) {
  start_pebble(/*always_valid=*/true, /*eab=*/false, /*nonce_reject=*/25);
  add_issuer();
  ok({"create", "web", "--issuer", "le", "--san", "IP:127.0.0.1"});
  auto renewed = ok({"renew", "web"});
  EXPECT_TRUE(contains(renewed.out, "Renewed 'web': generation 2")) << renewed.out;
  EXPECT_EQ(verify("web").exit_code, 0);
}

TEST_F(AcmeCli, RenewRevokeOldRevokesTheOldCertificateAtTheCaAndKeepsTheNewOneValid) {
  start_pebble(/*always_valid=*/true);
  add_issuer();
  ok({"create", "web", "--issuer", "le", "--san", "IP:127.0.0.1"});
  const std::string old_serial = Vault::open(vault_)->find("web")->current()->serial;
  auto renewed = ok({"renew", "web", "--revoke-old"});
  EXPECT_TRUE(contains(renewed.out, "Renewed 'web': generation 2")) << renewed.out;
  EXPECT_TRUE(contains(renewed.out, "Generation 1 is revoked (superseded) at issuer 'le'."))
      << renewed.out;
  auto e = Vault::open(vault_)->find("web");
  ASSERT_TRUE(e && e->current());
  EXPECT_EQ(e->current()->number, 2u);
  EXPECT_EQ(e->generations[0].status, certvault::Status::kDisabled);
  // What the CA itself says, from its management interface.
  const auto old_status = cert_status(old_serial);
  EXPECT_EQ(old_status["Status"].asString(), "Revoked") << old_status;
  EXPECT_EQ(old_status["Reason"].asInt(), 4) << old_status;
  EXPECT_EQ(cert_status(e->current()->serial)["Status"].asString(), "Valid");
  EXPECT_EQ(verify("web").exit_code, 0);
  auto shown = ok({"show", "web"});
  EXPECT_TRUE(contains(shown.out, "generation 1 on")) << shown.out;
  EXPECT_TRUE(contains(shown.out, "(superseded) by issuer 'le'")) << shown.out;
}

TEST_F(AcmeCli, RevokeAsksTheCaWithTheReasonGivenAndACaThatDoesNotAnswerChangesNothing) {
  start_pebble(/*always_valid=*/true);
  add_issuer();
  ok({"create", "web", "--issuer", "le", "--san", "IP:127.0.0.1"});
  ok({"create", "api", "--issuer", "le", "--san", "IP:127.0.0.1"});
  const std::string serial = Vault::open(vault_)->find("web")->current()->serial;
  auto revoked = ok({"revoke", "web", "--reason", "keyCompromise"});
  EXPECT_TRUE(contains(revoked.out, "Revoked generation 1 of 'web' at issuer 'le'")) << revoked.out;
  const auto status = cert_status(serial);
  EXPECT_EQ(status["Status"].asString(), "Revoked") << status;
  EXPECT_EQ(status["Reason"].asInt(), 1) << status;
  EXPECT_EQ(Vault::open(vault_)->find("web")->current(), nullptr) << "it no longer signs";
  pebble_ = ChildGuard();  // stopped
  auto r = ExpectRefusedUnchanged({"revoke", "api", "--reason", "cessationOfOperation"}, {5});
  EXPECT_TRUE(contains(r.err, "issuer 'le'")) << r.err;
  EXPECT_TRUE(contains(r.err, "did not revoke generation 1 of 'api'")) << r.err;
}

// HTTPS_PROXY and NO_PROXY apply as libcurl reads them: the CA is asked through the proxy
// (here one that refuses every tunnel), and directly when NO_PROXY names its host. Can
// fail: a client that ignored the environment would reach pebble in the first case.
TEST_F(AcmeCli, HttpsProxyFromTheEnvironmentIsUsedAndNoProxyBypassesIt) {
  start_pebble(/*always_valid=*/true);
  add_issuer();
  HttpTestServer proxy;
  ASSERT_TRUE(proxy.listening());
  proxy.set_handler([](const HttpTestServer::Request&) {
    return HttpTestServer::Answer{403, "", {}};
  });
  auto with_env = [&](std::vector<std::string> env, const std::vector<std::string>& args) {
    std::vector<std::string> argv{"env", "-u", "https_proxy", "-u", "no_proxy", "-u", "NO_PROXY"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.insert(argv.end(), {cli(), "--vault", vault_.string(), "--pin-file", pin_file_.string()});
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  };
  auto through = with_env({"HTTPS_PROXY=" + proxy.url()},
                          {"create", "web", "--issuer", "le", "--san", "IP:127.0.0.1"});
  EXPECT_NE(through.exit_code, 0) << through.out;
  ExpectOneLineFailure(through, {5});
  const auto asked = proxy.requests();
  ASSERT_FALSE(asked.empty()) << through.err;
  EXPECT_EQ(asked[0].method, "CONNECT");
  EXPECT_EQ(asked[0].path, "127.0.0.1:" + std::to_string(acme_port_));
  EXPECT_FALSE(Vault::open(vault_)->find("web"));
  auto direct = with_env({"HTTPS_PROXY=" + proxy.url(), "NO_PROXY=127.0.0.1"},
                         {"create", "web", "--issuer", "le", "--san", "IP:127.0.0.1"});
  EXPECT_EQ(direct.exit_code, 0) << direct.err;
  EXPECT_EQ(proxy.requests().size(), asked.size()) << "NO_PROXY: the proxy was not asked";
}

TEST_F(AcmeCli, RenewWithTheServerDownFailsIsRecordedAndTheOldGenerationStays) {
  start_pebble();
  add_issuer();
  ok({"create", "web", "--issuer", "le", "--san", "IP:127.0.0.1"});
  pebble_ = ChildGuard();  // stopped
  auto r = cv({"renew", "web"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "Could not renew 'web': issuer 'le'")) << r.out;
  auto e = Vault::open(vault_)->find("web");
  ASSERT_TRUE(e && e->current());
  EXPECT_EQ(e->current()->number, 1u) << "the old generation stays";
  EXPECT_EQ(e->generations.size(), 1u);
  EXPECT_EQ(e->renewal.failures, 1u);
  EXPECT_TRUE(contains(e->renewal.last_error, "did not renew")) << e->renewal.last_error;
}

TEST_F(AcmeCli, ExternalAccountBindingRegistersTheAccountWithTheKeyIdTheCaGave) {
  start_pebble(/*always_valid=*/true, /*eab=*/true);
  // Without the binding the CA refuses the account, and nothing is stored.
  add_issuer();
  auto refused =
      ExpectRefusedUnchanged({"create", "web", "--issuer", "le", "--san", "IP:127.0.0.1"}, {5});
  EXPECT_TRUE(contains(refused.err, "externalAccountRequired")) << refused.err;
  write_secret_file(tmp_ / "eab.key", kEabKey);
  ok({"issuer", "add", "bound", "--acme", directory(), "--trust", root_pem().string(),
      "--server-ca", (tmp_ / "pebble.pem").string(), "--eab",
      "kid-1:" + (tmp_ / "eab.key").string(), "--http01-listen",
      "127.0.0.1:" + std::to_string(http01_port_)});
  ok({"create", "web", "--issuer", "bound", "--san", "IP:127.0.0.1"});
  EXPECT_EQ(verify("web").exit_code, 0);
  for (const auto& [name, content] : snapshot(vault_).files)
    EXPECT_FALSE(contains(content, std::string(kEabKey))) << name << ": sealed, never in clear";
  auto shown = ok({"issuer", "show", "bound"});
  EXPECT_TRUE(contains(shown.out, "key id 'kid-1'")) << shown.out;
  EXPECT_FALSE(contains(shown.out, std::string(kEabKey))) << shown.out;
}

TEST_F(AcmeCli, AnEntryWithoutADnsNameOrIpAddressIsRefusedInOneLine) {
  start_pebble(/*always_valid=*/true);
  add_issuer();
  auto r = ExpectRefusedUnchanged({"create", "mail", "--issuer", "le"}, {3});
  EXPECT_TRUE(contains(r.err, "DNS names and IP addresses only")) << r.err;
  r = ExpectRefusedUnchanged({"create", "mail", "--issuer", "le", "--san", "email:ops@example.com"},
                             {3});
  EXPECT_TRUE(contains(r.err, "DNS names and IP addresses only")) << r.err;
  // The CA decides the lifetime: an end date asked for would not be honoured.
  r = ExpectRefusedUnchanged(
      {"create", "web", "--issuer", "le", "--san", "IP:127.0.0.1", "--end-date", "+30d"}, {3});
  EXPECT_TRUE(contains(r.err, "--end-date does not apply")) << r.err;
}

TEST_F(AcmeCli, IssuerAddTakesEitherCmpOrAcme) {
  auto made = make_server_cert(tmp_ / "anchor.pem", tmp_ / "anchor.key");
  ASSERT_EQ(made.exit_code, 0);
  const std::string anchor = (tmp_ / "anchor.pem").string();
  ExpectRefusedUnchanged({"issuer", "add", "x", "--trust", anchor}, {3});
  ExpectRefusedUnchanged({"issuer", "add", "x", "--acme", "https://127.0.0.1:1/dir", "--cmp",
                          "http://127.0.0.1:1/pkix/", "--trust", anchor},
                         {3});
  ExpectRefusedUnchanged({"issuer", "add", "x", "--acme", "https://127.0.0.1:1/dir",
                          "--http01-listen", "127.0.0.1", "--trust", anchor},
                         {3});
  ok({"issuer", "add", "x", "--acme", "https://127.0.0.1:1/dir", "--trust", anchor});
  auto listed = parse_json(ok({"issuer", "list"}, true).out);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["protocol"].asString(), "acme");
  // The vault still opens: the record reads back strictly.
  EXPECT_EQ(parse_json(ok({"issuer", "show", "x"}, true).out)["account"], Json::Value());
}

// --- renewal information (RFC 9773) -------------------------------------------------------

TEST_F(AcmeCli, ACaWindowAlreadyOpenRenewsAheadOfTheRuleAndSaysWhy) {
  start_pebble(/*always_valid=*/true);
  start_front();
  ok({"create", "web", "--issuer", "ca", "--san", "IP:127.0.0.1"});
  ok({"renew-rule", "web", "--before", "30m"});  // pebble's 2 h certificate: due in 1.5 h
  const std::string id = expected_ari_id("web");
  ari_ = window(-7200, -3600, "https://ca.example/incident/42");
  // A dry run reads local public data only: no request at all, and nothing is due.
  const size_t before = front_->requests().size();
  auto dry = ok({"renew", "--dry-run"});
  EXPECT_TRUE(contains(dry.out, "Nothing is due")) << dry.out;
  EXPECT_EQ(front_->requests().size(), before);
  // A renewal asks the CA once, and renews because the CA's window says so.
  auto renewed = cv({"renew"});
  EXPECT_EQ(renewed.exit_code, 0) << renewed.out << renewed.err;
  EXPECT_TRUE(contains(renewed.out, "Renewed 'web' (due since")) << renewed.out;
  EXPECT_TRUE(contains(renewed.out, "by its CA's renewal information, ahead of its rule"))
      << renewed.out;
  EXPECT_TRUE(contains(renewed.out, "see https://ca.example/incident/42")) << renewed.out;
  EXPECT_EQ(ari_paths(before), std::vector<std::string>{"/renewal-info/" + id});
  EXPECT_EQ(generation("web"), 2u);
  EXPECT_EQ(verify("web").exit_code, 0);
  auto e = Vault::open(vault_)->find("web");
  EXPECT_EQ(e->renewal.failures, 0u);
}

TEST_F(AcmeCli, ALaterCaWindowNeitherRenewsNowNorDelaysTheRule) {
  start_pebble(/*always_valid=*/true);
  start_front();
  ok({"create", "web", "--issuer", "ca", "--san", "IP:127.0.0.1"});
  ok({"renew-rule", "web", "--before", "30m"});
  ari_ = window(86400, 2 * 86400);
  auto r = cv({"renew"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "Nothing is due")) << r.out;
  EXPECT_EQ(ari_paths().size(), 1u) << "asked once for the run";
  EXPECT_EQ(generation("web"), 1u);
  // Once the rule makes it due, it renews whatever the CA's later window says.
  r = renew_at("+100m", {"renew"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "Renewed 'web': generation 2")) << r.out;
  EXPECT_FALSE(contains(r.out, "renewal information")) << r.out;
}

TEST_F(AcmeCli, RenewalInformationThatCannotBeHadLeavesItToTheRuleWithALogLine) {
  start_pebble(/*always_valid=*/true);
  start_front();
  ok({"create", "web", "--issuer", "ca", "--san", "IP:127.0.0.1"});
  ok({"renew-rule", "web", "--before", "30m"});
  ari_ = {503, "", {{"Retry-After", "120"}}};
  auto r = cv({"renew"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "Nothing is due")) << r.out;
  EXPECT_TRUE(
      contains(r.err, "certvault: 'web': no renewal information from issuer 'ca' (HTTP 503"))
      << r.err;
  // A window whose end is not after its start is no answer (RFC 9773 4.2).
  ari_ = window(3600, 3600);
  r = cv({"renew"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, "is not after its start")) << r.err;
  auto e = Vault::open(vault_)->find("web");
  EXPECT_EQ(e->current()->number, 1u);
  EXPECT_EQ(e->renewal.failures, 0u) << "not a renewal failure";
}

TEST_F(AcmeCli, ARenewalOrderNamesTheCertificateItReplaces) {
  start_pebble(/*always_valid=*/true);
  start_front();
  ok({"create", "web", "--issuer", "ca", "--san", "IP:127.0.0.1"});
  const std::string id = expected_ari_id("web");
  // The front takes the orders now: it says the certificate was replaced already, then
  // that the account is rate limited.
  order_here_ = true;
  const std::vector<std::pair<std::string, std::string>> problem{
      {"Content-Type", "application/problem+json"}};
  orders_ = {
      {409, R"({"type": "urn:ietf:params:acme:error:alreadyReplaced", "detail": "replaced"})",
       problem},
      {429,
       R"({"type": "urn:ietf:params:acme:error:rateLimited", "detail": "too many"})",
       {{"Content-Type", "application/problem+json"}, {"Retry-After", "7200"}}}};
  auto r = cv({"renew", "web"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  std::vector<Json::Value> placed;
  for (const auto& req : front_->requests())
    if (req.path == "/new-order") placed.push_back(jws_payload(req.body));
  ASSERT_EQ(placed.size(), 2u);
  EXPECT_EQ(placed[0]["replaces"].asString(), id) << placed[0];
  EXPECT_EQ(placed[0]["identifiers"][0]["value"].asString(), "127.0.0.1");
  EXPECT_FALSE(placed[1].isMember("replaces")) << "asked again without it: " << placed[1];
  // The rate limit's Retry-After is shown with the failure.
  auto e = Vault::open(vault_)->find("web");
  EXPECT_EQ(e->renewal.failures, 1u);
  EXPECT_TRUE(contains(e->renewal.last_error, "HTTP 429")) << e->renewal.last_error;
  EXPECT_TRUE(contains(e->renewal.last_error, "(retry after ")) << e->renewal.last_error;
  EXPECT_TRUE(contains(e->renewal.last_error, "rateLimited")) << e->renewal.last_error;
  // ... and honoured: no try before it, though the vault's own backoff (one hour) would
  // allow one earlier. Can fail: a failure that forgot the CA's time.
  EXPECT_NEAR(e->renewal.not_before, e->renewal.last_failure + 7200, 5);
  auto shown = parse_json(ok({"show", "web"}, true).out);
  auto plan = certvault::plan_renewal(*e, Vault::open(vault_)->policy(), {});
  ASSERT_TRUE(plan && plan->retry_at);
  EXPECT_NEAR(*plan->retry_at, e->renewal.last_failure + 7200, 5);
  EXPECT_FALSE(shown["renewal"]["retry_at"].isNull()) << shown;
}

TEST_F(AcmeCli, WithoutRenewalInformationInTheDirectoryAPassIsAsBefore) {
  // Against pebble itself (no renewalInfo in Debian 12's pebble 2.4) a pass over entries
  // that are not due reads the directory, renews nothing early and says nothing.
  start_pebble(/*always_valid=*/true);
  auto dir = run({"curl", "-sf", "--noproxy", "*", "--max-time", "5", "--cacert",
                  (tmp_ / "pebble.pem").string(), directory()});
  ASSERT_EQ(dir.exit_code, 0) << dir.err;
  if (parse_json(dir.out).isMember("renewalInfo"))
    GTEST_SKIP() << "this pebble offers renewal information (Debian 13's does); the tests "
                    "with the loopback front cover a directory that offers it";
  add_issuer();
  ok({"create", "web", "--issuer", "le", "--san", "IP:127.0.0.1"});
  ok({"renew-rule", "web", "--before", "30m"});
  auto r = cv({"renew"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "Nothing is due")) << r.out;
  EXPECT_EQ(r.err, "");
}

// dns-01 (RFC 8555 8.4) answered by the issuer's hook, validated for real: pebble resolves
// the TXT record through pebble-challtestsrv's DNS server, which the hook fills over its
// management API, as a DNS provider's API would be.
class AcmeDns01 : public AcmeCli {
 protected:
  void SetUp() override {
    AcmeCli::SetUp();
    if (IsSkipped()) return;
    if (run({"sh", "-c", "command -v pebble-challtestsrv"}).exit_code != 0)
      GTEST_SKIP() << "pebble-challtestsrv is not installed (it comes with Debian's pebble)";
    dns_port_ = free_loopback_port();
    challtest_port_ = free_loopback_port();
    ASSERT_TRUE(dns_port_ && challtest_port_);
    const std::string dns = "127.0.0.1:" + std::to_string(dns_port_);
    challtestsrv_ = ChildGuard(spawn_logged({"pebble-challtestsrv", "-dns01", dns, "-management",
                                             "127.0.0.1:" + std::to_string(challtest_port_),
                                             "-http01", "", "-https01", "", "-tlsalpn01", ""},
                                            tmp_ / "challtestsrv.out", tmp_ / "challtestsrv.err"));
    bool up = false;
    for (int i = 0; i < 100 && !up; ++i) {  // bounded: 10 s at most
      up = run({"curl", "-sf", "--noproxy", "*", "--max-time", "2", "-d", R"({"host":"up."})",
                challtest_url() + "/clear-txt"})
               .exit_code == 0;
      if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE(up) << "pebble-challtestsrv did not start: "
                    << read_file(tmp_ / "challtestsrv.err");
    dns_server_ = dns;
    // The hook a user would write for a DNS provider's API: set the record on present,
    // remove it on cleanup. Its environment is logged for the test; `hook.mode` makes it
    // fail (`fail`) or publish a wrong value (`wrong`).
    write_file(tmp_ / "hook.sh", "exec >>'" + (tmp_ / "hook.out").string() + "' 2>&1\n" +
                                     "env | grep '^CERTVAULT_' | sort >>'" + hook_log().string() +
                                     "'\n" + "echo -- >>'" + hook_log().string() + "'\n" +
                                     "mode=$(cat '" + (tmp_ / "hook.mode").string() +
                                     "' 2>/dev/null)\n" + "api='" + challtest_url() + "'\n" +
                                     R"(case "$CERTVAULT_ACME_ACTION" in
present)
  [ "$mode" = fail ] && { echo 'no such zone' >&2; exit 1; }
  value=$CERTVAULT_ACME_TXT
  [ "$mode" = wrong ] && value=wrong-value
  curl -sf --noproxy '*' --max-time 5 -d "{\"host\":\"$CERTVAULT_ACME_RECORD\",\"value\":\"$value\"}" "$api/set-txt" ;;
cleanup)
  curl -sf --noproxy '*' --max-time 5 -d "{\"host\":\"$CERTVAULT_ACME_RECORD\"}" "$api/clear-txt" ;;
esac
)");
  }

  std::string challtest_url() const {
    return "http://127.0.0.1:" + std::to_string(challtest_port_);
  }
  fs::path hook_log() const { return tmp_ / "hook.log"; }
  std::string hook() const { return "sh '" + (tmp_ / "hook.sh").string() + "'"; }
  void set_mode(const std::string& mode) { write_file(tmp_ / "hook.mode", mode); }

  void add_dns01_issuer(const std::string& name, bool with_http01 = false) {
    std::vector<std::string> args{"issuer",
                                  "add",
                                  name,
                                  "--acme",
                                  directory(),
                                  "--trust",
                                  root_pem().string(),
                                  "--server-ca",
                                  (tmp_ / "pebble.pem").string(),
                                  "--dns01-hook",
                                  hook()};
    if (with_http01)
      args.insert(args.end(), {"--http01-listen", "127.0.0.1:" + std::to_string(http01_port_)});
    ok(args);
  }

  // Each run of the hook: its CERTVAULT_* variables.
  std::vector<std::map<std::string, std::string>> hook_runs() const {
    std::vector<std::map<std::string, std::string>> runs(1);
    std::istringstream in(fs::exists(hook_log()) ? read_file(hook_log()) : "");
    for (std::string line; std::getline(in, line);) {
      if (line == "--") {
        runs.emplace_back();
      } else if (auto eq = line.find('='); eq != std::string::npos) {
        runs.back()[line.substr(0, eq)] = line.substr(eq + 1);
      }
    }
    runs.pop_back();
    return runs;
  }

  int dns_port_ = 0, challtest_port_ = 0;
  ChildGuard challtestsrv_;
};

TEST_F(AcmeDns01, TheHookPresentsTheTxtRecordOfEachNameAndCleansUpAfterwards) {
  start_pebble();
  add_dns01_issuer("le");
  auto created = ok(
      {"create", "api", "--issuer", "le", "--san", "DNS:api.example.test,DNS:*.wild.example.test"});
  EXPECT_TRUE(contains(created.out, "Enrolled 'api' at issuer 'le' (generation 1)")) << created.out;
  const std::string text = openssl_text(cert_file("api"));
  EXPECT_TRUE(contains(text, "DNS:api.example.test")) << text;
  EXPECT_TRUE(contains(text, "DNS:*.wild.example.test")) << text;
  EXPECT_EQ(verify("api").exit_code, 0);

  // Per name, present then cleanup with the same record and value; a wildcard's record is
  // its base domain's (RFC 8555 8.4).
  const auto runs = hook_runs();
  ASSERT_EQ(runs.size(), 4u) << read_file(hook_log());
  std::set<std::string> domains;
  for (size_t i = 0; i < runs.size(); i += 2) {
    const auto& present = runs[i];
    const auto& cleanup = runs[i + 1];
    EXPECT_EQ(present.at("CERTVAULT_ACME_ACTION"), "present");
    EXPECT_EQ(cleanup.at("CERTVAULT_ACME_ACTION"), "cleanup");
    const std::string domain = present.at("CERTVAULT_ACME_DOMAIN");
    domains.insert(domain);
    EXPECT_EQ(present.at("CERTVAULT_ACME_RECORD"), "_acme-challenge." + domain + ".");
    EXPECT_EQ(present.at("CERTVAULT_ACME_TXT").size(), 43u) << "base64url of a SHA-256";
    EXPECT_EQ(
        present.at("CERTVAULT_ACME_TXT")
            .find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
        std::string::npos);
    EXPECT_EQ(present.at("CERTVAULT_ACME_ISSUER"), "le");
    EXPECT_EQ(present.at("CERTVAULT_NICKNAME"), "api");
    for (const char* same :
         {"CERTVAULT_ACME_DOMAIN", "CERTVAULT_ACME_RECORD", "CERTVAULT_ACME_TXT"})
      EXPECT_EQ(cleanup.at(same), present.at(same)) << same;
  }
  EXPECT_EQ(domains, (std::set<std::string>{"api.example.test", "wild.example.test"}));

  auto issuer = parse_json(ok({"issuer", "show", "le"}, true).out);
  EXPECT_EQ(issuer["dns01_hook"].asString(), hook());
  EXPECT_EQ(issuer["challenges"], parse_json(R"(["dns-01"])"));
  EXPECT_TRUE(contains(ok({"issuer", "show", "le"}).out, hook()));
}

TEST_F(AcmeDns01, AHookThatFailsFailsTheCreateInOneLineAndStillCleansUp) {
  start_pebble();
  add_dns01_issuer("le");
  set_mode("fail");
  auto r = cv({"create", "api", "--issuer", "le", "--san", "DNS:api.example.test"});
  ExpectOneLineFailure(r, {5});
  EXPECT_TRUE(contains(r.err, "dns-01 hook exited 1")) << r.err;
  EXPECT_TRUE(contains(r.err, "_acme-challenge.api.example.test.")) << r.err;
  EXPECT_FALSE(Vault::open(vault_)->find("api")) << "nothing stored";
  auto runs = hook_runs();
  ASSERT_EQ(runs.size(), 2u) << read_file(hook_log());
  EXPECT_EQ(runs[0].at("CERTVAULT_ACME_ACTION"), "present");
  EXPECT_EQ(runs[1].at("CERTVAULT_ACME_ACTION"), "cleanup");
  EXPECT_TRUE(contains(read_file(tmp_ / "hook.out"), "no such zone"));
  // Once the account is registered (the first attempt did that), a failure changes nothing.
  r = ExpectRefusedUnchanged({"create", "api", "--issuer", "le", "--san", "DNS:api.example.test"},
                             {5});
  EXPECT_TRUE(contains(r.err, "dns-01 hook exited 1")) << r.err;
  EXPECT_EQ(hook_runs().size(), 4u);
  EXPECT_EQ(hook_runs().back().at("CERTVAULT_ACME_ACTION"), "cleanup");
}

TEST_F(AcmeDns01, AWrongTxtValueIsRefusedByTheCaAndTheCreateFails) {
  start_pebble();
  add_dns01_issuer("le");
  set_mode("wrong");
  auto r = cv({"create", "api", "--issuer", "le", "--san", "DNS:api.example.test"});
  ExpectOneLineFailure(r, {5});
  EXPECT_TRUE(contains(r.err, "did not accept the dns-01 proof for 'api.example.test'")) << r.err;
  EXPECT_FALSE(Vault::open(vault_)->find("api")) << "nothing stored";
  auto runs = hook_runs();
  ASSERT_EQ(runs.size(), 2u) << read_file(hook_log());
  EXPECT_EQ(runs[1].at("CERTVAULT_ACME_ACTION"), "cleanup");
}

TEST_F(AcmeDns01, WithBothChallengesDnsNamesUseTheHookAndAddressesHttp01) {
  start_pebble();
  add_dns01_issuer("le", /*with_http01=*/true);
  ok({"create", "api", "--issuer", "le", "--san", "DNS:api.example.test,IP:127.0.0.1"});
  const std::string text = openssl_text(cert_file("api"));
  EXPECT_TRUE(contains(text, "DNS:api.example.test")) << text;
  EXPECT_TRUE(contains(text, "IP Address:127.0.0.1")) << text;
  auto runs = hook_runs();
  ASSERT_EQ(runs.size(), 2u) << "the hook ran for the DNS name only: " << read_file(hook_log());
  EXPECT_EQ(runs[0].at("CERTVAULT_ACME_DOMAIN"), "api.example.test");
  EXPECT_EQ(parse_json(ok({"issuer", "show", "le"}, true).out)["challenges"],
            parse_json(R"(["dns-01", "http-01"])"));
}

TEST_F(AcmeDns01, ANameNoConfiguredChallengeCanProveIsRefusedBeforeAnyHookRuns) {
  start_pebble();
  add_dns01_issuer("le");
  // An IP address is never proven by dns-01 (RFC 8738), and this issuer has no http-01.
  auto r = cv({"create", "api", "--issuer", "le", "--san", "DNS:api.example.test,IP:127.0.0.1"});
  ExpectOneLineFailure(r, {3});
  EXPECT_TRUE(contains(r.err, "has no way to prove '127.0.0.1'")) << r.err;
  EXPECT_TRUE(contains(r.err, "--http01-listen")) << r.err;
  EXPECT_FALSE(Vault::open(vault_)->find("api"));
  EXPECT_TRUE(hook_runs().empty()) << read_file(hook_log());
  // An issuer with no challenge at all says which options would give one.
  ok({"issuer", "add", "bare", "--acme", directory(), "--trust", root_pem().string(), "--server-ca",
      (tmp_ / "pebble.pem").string()});
  r = cv({"create", "api", "--issuer", "bare", "--san", "DNS:api.example.test"});
  ExpectOneLineFailure(r, {3});
  EXPECT_TRUE(contains(r.err, "--dns01-hook COMMAND or --http01-listen")) << r.err;
}

TEST_F(AcmeCli, IssuerAddTakesADns01HookForAcmeOnlyOnOneLine) {
  auto made = make_server_cert(tmp_ / "anchor.pem", tmp_ / "anchor.key");
  ASSERT_EQ(made.exit_code, 0);
  const std::string anchor = (tmp_ / "anchor.pem").string();
  auto r = ExpectRefusedUnchanged(
      {"issuer", "add", "x", "--cmp", "http://127.0.0.1:1/pkix/", "--cmp-ref", "1",
       "--cmp-secret-file", pin_file_.string(), "--dns01-hook", "true", "--trust", anchor},
      {3});
  EXPECT_TRUE(contains(r.err, "--dns01-hook")) << r.err;
  r = ExpectRefusedUnchanged({"issuer", "add", "x", "--acme", "https://127.0.0.1:1/dir",
                              "--dns01-hook", "echo one\necho two", "--trust", anchor},
                             {3});
  EXPECT_TRUE(contains(r.err, "on one line")) << r.err;
  ok({"issuer", "add", "x", "--acme", "https://127.0.0.1:1/dir", "--dns01-hook",
      "/usr/local/bin/dns-hook --zone example.test", "--trust", anchor});
  // Kept in the vault and read back strictly.
  auto shown = parse_json(ok({"issuer", "show", "x"}, true).out);
  EXPECT_EQ(shown["dns01_hook"].asString(), "/usr/local/bin/dns-hook --zone example.test");
  EXPECT_EQ(shown["http01_listen"], Json::Value());
  auto listed = parse_json(ok({"issuer", "list"}, true).out);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["challenges"], parse_json(R"(["dns-01"])"));
}

}  // namespace
}  // namespace cvtest
