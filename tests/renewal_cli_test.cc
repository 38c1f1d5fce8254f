// `certvault renew-rule`, `renew` and the renewal parts of `policy`, `show` and `list`, as a
// user runs them (docs/lifecycle.md). The renewal clock is moved with $CERTVAULT_TEST_NOW
// (compiled into test builds only); certificates are always issued on the real clock.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "support.h"
#include "test_cli.h"
#include "vault.h"

namespace cvtest {
namespace {

using certvault::Vault;

class RenewalCli : public CliTest {
 protected:
  // certvault --vault DIR --pin-file PIN ARGS... with the renewal clock `days` ahead.
  RunResult at(int days, const std::vector<std::string>& args, bool json = false) const {
    std::vector<std::string> argv{"env",
                                  "CERTVAULT_TEST_NOW=+" + std::to_string(days) + "d",
                                  cli(),
                                  "--vault",
                                  vault_.string(),
                                  "--pin-file",
                                  pin_file_.string()};
    if (json) argv.push_back("--json");
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }
  // The same without a PIN source: a command that asked for the PIN would fail.
  RunResult without_pin(int days, const std::vector<std::string>& args) const {
    std::vector<std::string> argv{"env", "CERTVAULT_TEST_NOW=+" + std::to_string(days) + "d", cli(),
                                  "--vault", vault_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }
  uint32_t generation(const std::string& nickname) const {
    auto e = Vault::open(vault_)->find(nickname);
    return e && e->current() ? e->current()->number : 0;
  }
  // An entry of 40 days renewed 30 days before its end: due after 10 to 13 days.
  void forty_days(const std::string& nickname) {
    ok({"create", nickname, "--end-date", "+40d", "--san", "DNS:" + nickname + ".example.com"});
    ok({"renew-rule", nickname, "--before", "30d"});
  }
};

TEST_F(RenewalCli, AnEntryIsNotRenewedBeforeItsWindowAndIsRenewedInIt) {
  forty_days("api");
  const fs::path log = tmp_ / "hook.log";
  ok({"renew-rule", "api", "--then",
      "echo \"$CERTVAULT_NICKNAME $CERTVAULT_GENERATION $CERTVAULT_SERIAL $CERTVAULT_URI\" >> " +
          log.string()});
  const std::string uri = ok({"uri", "api"}).out;
  auto today = at(0, {"renew"});
  EXPECT_EQ(today.exit_code, 0) << today.err;
  EXPECT_TRUE(contains(today.out, "Nothing is due for renewal in vault 'ops'. Next: 'api'"))
      << today.out;
  EXPECT_EQ(at(9, {"renew"}).exit_code, 0);
  EXPECT_EQ(generation("api"), 1u) << "not renewed 9 days later";
  // 13 days later every entry of this shape is due (10 days, and at most 3 of spread).
  auto later = at(13, {"renew"});
  ASSERT_EQ(later.exit_code, 0) << later.out << later.err;
  EXPECT_TRUE(contains(later.out, "Renewed 'api': generation 2")) << later.out;
  EXPECT_EQ(generation("api"), 2u);
  EXPECT_EQ(ok({"uri", "api"}).out, uri) << "the URI stays";
  // Same names, subject and lifetime; a new key.
  auto e = Vault::open(vault_)->find("api");
  EXPECT_EQ(e->generations[0].subject, e->generations[1].subject);
  EXPECT_NE(e->generations[0].key_id, e->generations[1].key_id);
  EXPECT_NEAR(e->generations[1].not_after - e->generations[1].not_before,
              e->generations[0].not_after - e->generations[0].not_before, 5);
  EXPECT_TRUE(contains(openssl_text(cert_file("api")), "DNS:api.example.com"));
  // The command ran once, with the new generation in its environment.
  const std::string ran = read_file(log);
  EXPECT_EQ(ran, "api 2 " + e->generations[1].serial + " certvault:api?vault=" +
                     fs::absolute(vault_).lexically_normal().string() + "\n");
  EXPECT_TRUE(contains(later.err, "the command of 'api' exited 0")) << later.err;
  // The new generation (issued on the real clock, like the first) is not due 9 days on.
  auto again = at(9, {"renew"});
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_EQ(generation("api"), 2u);
  EXPECT_EQ(read_file(log), ran) << "the command ran once";
}

// The same story on the clock everything reads: libfaketime moves the whole process's time
// (renewal schedule and issuance alike), and openssl checks the result on the same faked
// clock. Nothing here uses the test clock (CERTVAULT_TEST_NOW). Can fail: a scheduler that
// read another clock than issuance, or a renewed certificate not valid on the day it was
// renewed. libfaketime aborts sanitizer builds, so those skip it.
TEST_F(RenewalCli, UnderAFakedClockTheEntryRenewsWhenItsDayComes) {
#ifdef CERTVAULT_SANITIZED
  GTEST_SKIP() << "libfaketime aborts sanitizer builds";
#endif
  if (run({"sh", "-c", "command -v faketime"}).exit_code != 0)
    GTEST_SKIP() << "faketime is not installed (scripts/install-deps.sh installs it)";
  forty_days("api");
  auto faked = [&](const std::string& offset, std::vector<std::string> argv) {
    argv.insert(argv.begin(), {"faketime", "-f", offset});
    return run(argv);
  };
  auto cvf = [&](const std::string& offset, const std::vector<std::string>& args) {
    std::vector<std::string> argv{cli(), "--vault", vault_.string(), "--pin-file",
                                  pin_file_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return faked(offset, argv);
  };
  auto early = cvf("+9d", {"renew"});
  ASSERT_EQ(early.exit_code, 0) << early.out << early.err;
  EXPECT_TRUE(contains(early.out, "Nothing is due")) << early.out;
  EXPECT_EQ(generation("api"), 1u);
  auto due = cvf("+14d", {"renew"});
  ASSERT_EQ(due.exit_code, 0) << due.out << due.err;
  EXPECT_TRUE(contains(due.out, "Renewed 'api': generation 2")) << due.out;
  auto e = Vault::open(vault_)->find("api");
  ASSERT_TRUE(e && e->current());
  // Issued on the faked day: 14 days from now, for the same 40 days.
  EXPECT_NEAR(e->current()->not_before, certvault::now() + 14 * 86400, 3600);
  EXPECT_NEAR(e->current()->not_after - e->current()->not_before,
              e->generations[0].not_after - e->generations[0].not_before, 5);
  // Valid on that day by openssl's own reading of the clock, and not yet valid today.
  const fs::path cert = cert_file("api");
  auto then = faked("+14d", {"openssl", "verify", "-purpose", "sslclient", "-CAfile",
                             ca_file().string(), cert.string()});
  EXPECT_EQ(then.exit_code, 0) << then.out << then.err;
  auto today = run({"openssl", "verify", "-CAfile", ca_file().string(), cert.string()});
  EXPECT_NE(today.exit_code, 0) << today.out;
  EXPECT_TRUE(contains(today.out + today.err, "not yet valid")) << today.out << today.err;
  // On the faked day the new generation is not due again.
  auto after = cvf("+14d", {"renew"});
  EXPECT_EQ(after.exit_code, 0);
  EXPECT_EQ(generation("api"), 2u);
}

TEST_F(RenewalCli, DryRunSaysWhatWouldBeRenewedAsksNoPinAndChangesNoByte) {
  forty_days("api");
  forty_days("web");
  ok({"create", "later", "--end-date", "+300d"});
  ok({"renew-rule", "later", "--before", "30d"});
  const auto before = snapshot(vault_);
  auto dry = without_pin(13, {"renew", "--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_TRUE(contains(dry.out, "Would renew 'api' (due since ")) << dry.out;
  EXPECT_TRUE(contains(dry.out, "by the vault CA")) << dry.out;
  EXPECT_TRUE(contains(dry.out, "Would renew 'web'")) << dry.out;
  EXPECT_FALSE(contains(dry.out, "later")) << dry.out;
  auto json = without_pin(13, {"--json", "renew", "--dry-run"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  auto doc = parse_json(json.out);
  ASSERT_EQ(doc["renewals"].size(), 2u) << json.out;
  EXPECT_EQ(doc["renewals"][0]["result"].asString(), "would-renew");
  EXPECT_EQ(doc["renewals"][0]["renewer"].asString(), "vault-ca");
  EXPECT_EQ(doc["next_due"]["nickname"].asString(), "later");
  EXPECT_EQ(describe_difference(before, snapshot(vault_)), "");
  // With nothing due, renewing asks for no PIN either.
  auto nothing = without_pin(0, {"renew"});
  EXPECT_EQ(nothing.exit_code, 0) << nothing.err;
  EXPECT_EQ(describe_difference(before, snapshot(vault_)), "");
}

TEST_F(RenewalCli, NamedEntriesAreRenewedNowDueOrNot) {
  ok({"create", "api", "--end-date", "+90d"});
  auto r = ok({"renew", "api"});
  EXPECT_TRUE(contains(r.out, "Renewed 'api': generation 2")) << r.out;
  EXPECT_EQ(generation("api"), 2u);
  ExpectRefusedUnchanged({"renew", "nosuch"}, {4});
}

TEST_F(RenewalCli, RevokeOldRevokesTheReplacedGenerationOnceTheNewOneIsStored) {
  ok({"create", "api", "--end-date", "+90d"});
  const std::string old_serial = Vault::open(vault_)->find("api")->current()->serial;
  auto r = ok({"renew", "api", "--revoke-old"});
  EXPECT_TRUE(contains(r.out, "Generation 1 is revoked (superseded)")) << r.out;
  auto e = Vault::open(vault_)->find("api");
  EXPECT_EQ(e->current()->number, 2u);
  EXPECT_EQ(e->generations[0].status, certvault::Status::kDisabled) << "stops working at once";
  const fs::path crl = tmp_ / "ca.crl";
  ok({"ca", "crl", "-o", crl.string()});
  auto text = run({"openssl", "crl", "-in", crl.string(), "-noout", "-text"});
  EXPECT_TRUE(contains(text.out, old_serial)) << text.out;
  EXPECT_TRUE(contains(text.out, "Superseded")) << text.out;
  // Without --revoke-old the replaced generation keeps working until its end.
  ok({"renew", "api"});
  EXPECT_EQ(Vault::open(vault_)->find("api")->generations[1].status,
            certvault::Status::kSuperseded);
  // A self-signed certificate is no vault CA's to revoke: renewed all the same, and said so.
  ok({"create", "self", "--self-signed", "--end-date", "+90d"});
  auto self = ok({"renew", "self", "--revoke-old"});
  EXPECT_TRUE(contains(self.out, "Renewed 'self'")) << self.out;
  EXPECT_TRUE(contains(self.out, "Generation 1 was not revoked: ")) << self.out;
}

TEST_F(RenewalCli, ImportedEntryIsReportedAsRenewByHand) {
  auto key = generate_ec_key();
  auto cert = make_self_signed(key.get(), "theirs", -60, 40 * 86400);
  const fs::path pem = tmp_ / "theirs.pem";
  write_file(pem, key_to_pem(key.get()) + x509_to_pem(cert.get()));
  ok({"import", pem.string(), "--nickname", "theirs"});
  ok({"renew-rule", "theirs", "--before", "30d"});
  auto r = at(13, {"renew"});
  EXPECT_EQ(r.exit_code, 1) << "something due could not be renewed";
  EXPECT_TRUE(contains(r.out, "'theirs' (due since ")) << r.out;
  EXPECT_TRUE(contains(r.out, "renew by hand (it was imported): run `certvault csr 'theirs'"))
      << r.out;
  EXPECT_EQ(generation("theirs"), 1u);
}

TEST_F(RenewalCli, AFailedRenewalIsRecordedShownAndHeldBack) {
  forty_days("api");
  ok({"policy", "set", "--max-lifetime", "20d"});
  auto failed = at(13, {"renew"});
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_TRUE(contains(failed.out,
                       "Could not renew 'api': renewing 'api' now would give a "
                       "certificate ending"))
      << failed.out;
  EXPECT_TRUE(contains(failed.out, "the policy's maximum lifetime of 20d")) << failed.out;
  EXPECT_TRUE(contains(failed.out, "next try after")) << failed.out;
  EXPECT_EQ(generation("api"), 1u) << "the current generation is untouched";
  auto shown = ok({"show", "api"}).out;
  EXPECT_TRUE(contains(shown, "Renewals:     failed 1 time")) << shown;
  // The next pass at the same moment holds it back; asking by name tries again.
  auto held = at(13, {"renew"});
  EXPECT_EQ(held.exit_code, 1);
  EXPECT_TRUE(contains(held.out, "is held back after 1 failed renewal")) << held.out;
  auto json = ok({"show", "api"}, true);
  EXPECT_EQ(parse_json(json.out)["renewal"]["failures"].asUInt(), 1u);
  ok({"policy", "set", "--max-lifetime", "none"});
  auto named = at(13, {"renew", "api"});
  EXPECT_EQ(named.exit_code, 0) << named.out;
  EXPECT_EQ(parse_json(ok({"show", "api"}, true).out)["renewal"]["failures"].asUInt(), 0u);
}

TEST_F(RenewalCli, ThePolicyRuleAppliesToEntriesWithoutOneOfTheirOwn) {
  ok({"create", "api", "--end-date", "+40d"});
  ok({"create", "pinned", "--end-date", "+40d"});
  ok({"renew-rule", "pinned", "--off"});
  auto set = ok({"policy", "set", "--renew-before", "30d"});
  EXPECT_TRUE(contains(set.out, "Renewal:")) << set.out;
  auto shown = ok({"show", "api"}).out;
  EXPECT_TRUE(contains(shown, "Renewal:      30d before expiry (vault policy); due ")) << shown;
  auto list = ok({"list"}).out;
  EXPECT_TRUE(contains(list, "RENEWAL DUE")) << list;
  auto json = parse_json(ok({"list"}, true).out);
  EXPECT_EQ(json[0]["renewal"]["rule"].asString(), "30d");
  EXPECT_TRUE(json[0]["renewal"]["from_policy"].asBool());
  EXPECT_EQ(json[1]["renewal"]["rule"].asString(), "off");
  auto r = at(13, {"renew"});
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(generation("api"), 2u);
  EXPECT_EQ(generation("pinned"), 1u);
  ok({"renew-rule", "pinned", "--policy"});
  EXPECT_TRUE(parse_json(ok({"show", "pinned"}, true).out)["renewal"]["from_policy"].asBool());
}

TEST_F(RenewalCli, MaxLifetimeRefusesALongerCertificateAndNamesTheLimit) {
  ok({"policy", "set", "--max-lifetime", "90d"});
  auto r = ExpectRefusedUnchanged({"create", "api", "--end-date", "+120d"}, {5});
  EXPECT_TRUE(contains(r.err, "beyond the policy's maximum lifetime of 90d")) << r.err;
  ok({"create", "api", "--end-date", "+80d"});
}

TEST_F(RenewalCli, BadRuleInputGetsOneLineAndChangesNothing) {
  ok({"create", "api", "--end-date", "+40d"});
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"renew-rule", "api", "--before", "30y"},
           {"renew-rule", "api", "--at", "3/2"},
           {"renew-rule", "api", "--before", "30d", "--off"},
           {"renew-rule", "api", "--then", ""},
           {"renew-rule", "api", "--then", "a\nb"},
           {"policy", "set", "--max-lifetime", "10m"},
           {"policy", "set", "--renew-before", "30d", "--renew-off"}})
    ExpectRefusedUnchanged(args, {3});
}

}  // namespace
}  // namespace cvtest
