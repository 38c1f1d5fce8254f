// `certvault revoke` and `certvault ca crl` as a user runs them, and the CRL they make
// in front of a server that checks one (`openssl s_server -crl_check`). Loopback only.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test_cli.h"
#include "test_vault.h"
#include "tls_server.h"
#include "vault.h"

namespace cvtest {
namespace {

class RevocationCli : public CliTest {
 protected:
  // A client's certificate and key as files, read through the keystore API while the
  // entry may still sign.
  std::pair<fs::path, fs::path> client_files(const std::string& nickname) {
    auto v = certvault::Vault::open(vault_);
    EXPECT_TRUE(v) << why(v);
    if (!v) return {};
    EXPECT_TRUE(v->unlock(pin()));
    auto key = v->private_key(nickname);
    EXPECT_TRUE(key) << why(key);
    const fs::path key_file = tmp_ / (nickname + ".key.pem");
    if (key) write_file(key_file, key_to_pem(key->get()));
    return {cert_file(nickname), key_file};
  }

  // One handshake with `openssl s_server -crl_check`; the server's log and the client's
  // output (the -www page when the server accepted).
  std::pair<RunResult, std::string> handshake(const fs::path& ca, const fs::path& crl,
                                              const std::pair<fs::path, fs::path>& client) {
    auto s = TlsServer::start(tmp_.path(), server_cert_, server_key_, ca,
                              {"-crl_check", "-CRL", crl.string()});
    if (!s) return {};
    auto c = run({"env", "OPENSSL_CONF=/dev/null", "openssl", "s_client", "-connect",
                  "127.0.0.1:" + std::to_string(s->port()), "-cert", client.first.string(), "-key",
                  client.second.string(), "-ign_eof"},
                 "GET / HTTP/1.0\r\n\r\n", std::chrono::seconds(60));
    return {c, s->log()};
  }

  void SetUp() override {
    CliTest::SetUp();
    if (HasFatalFailure()) return;
    server_cert_ = tmp_ / "server.pem";
    server_key_ = tmp_ / "server.key";
    auto made = make_server_cert(server_cert_, server_key_);
    ASSERT_EQ(made.exit_code, 0) << made.err;
  }

  fs::path server_cert_, server_key_;
};

TEST_F(RevocationCli, RevokedClientIsRefusedByCrlCheckingServerAndOthersConnect) {
  ok({"create", "kept", "--end-date", "+100d"});
  ok({"create", "lost", "--end-date", "+100d"});
  const auto kept = client_files("kept");
  const auto lost = client_files("lost");
  const fs::path ca = ca_file();

  auto revoked = ok({"revoke", "lost", "--reason", "keyCompromise"});
  EXPECT_TRUE(contains(revoked.out, "Revoked generation 1 of 'lost'")) << revoked.out;
  const fs::path crl = tmp_ / "crl.pem";
  auto wrote = ok({"ca", "crl", "-o", crl.string()});
  EXPECT_TRUE(contains(wrote.out, "CRL number 1")) << wrote.out;
  EXPECT_EQ(file_mode(crl), 0644u);

  auto [refused, refused_log] = handshake(ca, crl, lost);
  EXPECT_FALSE(refused.timed_out);
  EXPECT_FALSE(contains(refused.out, "Client certificate")) << refused.out;
  EXPECT_TRUE(contains(refused_log, "certificate revoked")) << refused_log;

  auto [accepted, accepted_log] = handshake(ca, crl, kept);
  EXPECT_FALSE(accepted.timed_out);
  EXPECT_EQ(accepted.exit_code, 0) << accepted.err << "\nserver:\n" << accepted_log;
  EXPECT_TRUE(contains(accepted.out, "Client certificate")) << accepted.out;
  EXPECT_TRUE(contains(accepted_log, "depth=0 CN = kept\nverify return:1")) << accepted_log;
}

TEST_F(RevocationCli, CrlFileIsReplacedWithTheNextNumber) {
  const fs::path crl = tmp_ / "ca.crl";
  ok({"ca", "crl", "-o", crl.string(), "--next-update", "1d"});
  const std::string first = read_file(crl);
  ok({"ca", "crl", "-o", crl.string()});
  EXPECT_NE(read_file(crl), first);
  auto text = run({"openssl", "crl", "-in", crl.string(), "-noout", "-text"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_TRUE(contains(text.out, "X509v3 CRL Number: \n                2")) << text.out;
  // Nothing but the CRL is left in its directory.
  for (const auto& f : fs::directory_iterator(tmp_.path()))
    EXPECT_FALSE(f.path().filename().string().starts_with(".ca.crl")) << f.path();
}

// `check` watches the CRL file it wrote: fine early on, "soon" in the last quarter of its
// validity, expired (exit 2) past its nextUpdate, when servers that check it refuse all.
TEST_F(RevocationCli, CheckWarnsWhenTheCrlItWroteNearsItsNextUpdate) {
  const fs::path crl = tmp_ / "ca.crl";
  ok({"ca", "crl", "-o", crl.string(), "--next-update", "4d"});
  auto at = [&](const std::string& ahead) {
    return run({"env", "CERTVAULT_TEST_NOW=" + ahead, cli(), "--vault", vault_.string(), "check"});
  };
  EXPECT_EQ(at("+1d").exit_code, 0);
  auto soon = at("+84h");
  EXPECT_EQ(soon.exit_code, 1);
  EXPECT_TRUE(contains(soon.out + soon.err, "CRL " + crl.string() + " (number 1): next update due"))
      << soon.out << soon.err;
  auto stale = at("+5d");
  EXPECT_EQ(stale.exit_code, 2);
  EXPECT_TRUE(contains(stale.out + stale.err, "so servers that check it refuse every client"))
      << stale.out << stale.err;
  auto json =
      run({"env", "CERTVAULT_TEST_NOW=+5d", cli(), "--vault", vault_.string(), "--json", "check"});
  EXPECT_EQ(parse_json(json.out)["problems"][0]["problem"].asString(), "crl-expired") << json.out;
}

TEST_F(RevocationCli, BadInputIsOneLineAndChangesNothing) {
  ok({"create", "laptop", "--end-date", "+100d"});
  ok({"create", "self", "--end-date", "+100d", "--self-signed"});
  ExpectRefusedUnchanged({"revoke", "laptop", "--reason", "certificateHold"}, {3});
  ExpectRefusedUnchanged({"revoke", "laptop", "--reason", "keyCompromise", "--generation", "9"},
                         {4});
  ExpectRefusedUnchanged({"revoke", "nobody", "--reason", "keyCompromise"}, {4});
  auto self = ExpectRefusedUnchanged({"revoke", "self", "--reason", "keyCompromise"}, {5});
  EXPECT_TRUE(contains(self.err, "self-signed")) << self.err;
  ExpectRefusedUnchanged({"ca", "crl", "--next-update", "soon"}, {3});
  ExpectRefusedUnchanged({"ca", "crl", "-o", (tmp_ / "no-such-dir" / "ca.crl").string()}, {4});
  auto missing_reason = cv({"revoke", "laptop"});
  EXPECT_NE(missing_reason.exit_code, 0);
}

}  // namespace
}  // namespace cvtest
