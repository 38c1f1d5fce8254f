// Renewal in the keystore (docs/lifecycle.md): rules, when they make an entry due, and a
// renewal's new certificate (same subject and names, the lifetime as before, capped by the
// policy and the CA).
#include "renewal.h"

#include <gtest/gtest.h>
#include <openssl/x509v3.h>

#include <set>

#include "test_vault.h"

namespace cvtest {
namespace {

using certvault::Code;
using certvault::IssueRequest;
using certvault::parse_renew_at;
using certvault::parse_renew_before;
using certvault::plan_renewal;
using certvault::Policy;
using certvault::RenewRule;
using certvault::Time;
using certvault::Vault;

class RenewalTest : public VaultTest {
 protected:
  // An entry from the vault CA valid `days` from now, with `rule` ("30d" or "2/3").
  certvault::Entry entry(const std::string& nickname, int days, const std::string& rule,
                         const std::string& alt_names = "") {
    IssueRequest req;
    req.nickname = nickname;
    req.not_after = certvault::now() + days * kDay;
    req.alt_names = alt_names;
    req.subject = "CN=" + nickname + ",O=Example";
    auto made = vault().create(req);
    EXPECT_TRUE(made) << why(made);
    auto set = vault().update_renewal(nickname, [&](Vault::RenewalSettings& s) {
      s.rule = rule.find('/') != std::string::npos ? parse_renew_at(rule).value()
                                                   : parse_renew_before(rule).value();
    });
    EXPECT_TRUE(set) << why(set);
    return set ? *set : certvault::Entry{};
  }

  X509Ptr cert_of(const std::string& nickname) {
    auto der = vault().certificate_der(nickname);
    EXPECT_TRUE(der) << why(der);
    return x509_from_pem(der_to_pem(*der));
  }
};

TEST(RenewalRules, ParseAndDescribe) {
  EXPECT_EQ(certvault::rule_text(parse_renew_before("30d").value()), "30d before expiry");
  EXPECT_EQ(certvault::rule_text(parse_renew_before("36h").value()), "36h before expiry");
  EXPECT_EQ(certvault::rule_text(parse_renew_at("2/3").value()), "at 2/3 of its lifetime");
  for (const char* bad : {"", "30", "d", "-3d", "0d", "30y", "99999d", "30s"})
    EXPECT_FALSE(parse_renew_before(bad)) << bad;
  for (const char* bad : {"", "2", "3/2", "0/3", "2/2", "1/1001", "a/b", "2/3x"})
    EXPECT_FALSE(parse_renew_at(bad)) << bad;
  auto bad = parse_renew_before("30y");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message,
            "--before '30y' is not a duration; write N followed by s, m, h or d (30d, 12h, 90m)");
}

TEST(RenewalRules, RetriesSlowDownToADay) {
  EXPECT_EQ(certvault::retry_delay(0), 0);
  EXPECT_EQ(certvault::retry_delay(1), 3600);
  EXPECT_EQ(certvault::retry_delay(2), 7200);
  EXPECT_EQ(certvault::retry_delay(5), 16 * 3600);
  EXPECT_EQ(certvault::retry_delay(6), 86400);
  EXPECT_EQ(certvault::retry_delay(1000), 86400);
}

TEST_F(RenewalTest, DueTimeFallsInTheFirstTenthOfTheWindow) {
  // 40 days, renewed 30 days before the end: the window opens after 10 days and the
  // spread puts each entry somewhere in its first 3 days.
  std::set<Time> dues;
  for (int i = 0; i < 8; ++i) {
    auto e = entry("e" + std::to_string(i), 40, "30d");
    auto plan = plan_renewal(e, vault().policy());
    ASSERT_TRUE(plan && plan->due);
    const Time start = e.current()->not_after - 30 * kDay;
    EXPECT_GE(*plan->due, start);
    EXPECT_LT(*plan->due, start + 3 * kDay);
    EXPECT_FALSE(plan->ready(certvault::now()));
    EXPECT_TRUE(plan->ready(start + 3 * kDay));
    dues.insert(*plan->due);
  }
  EXPECT_GT(dues.size(), 4u) << "entries do not all fall due at the same moment";
}

TEST_F(RenewalTest, AtAFractionOfTheLifetime) {
  auto e = entry("web", 90, "2/3");
  auto plan = plan_renewal(e, vault().policy());
  ASSERT_TRUE(plan && plan->due);
  const auto& g = *e.current();
  const Time start = g.not_before + (g.not_after - g.not_before) * 2 / 3;
  EXPECT_GE(*plan->due, start);
  EXPECT_LT(*plan->due, start + (g.not_after - start) / 10);
}

TEST_F(RenewalTest, EntriesWithoutARuleFollowThePolicy) {
  issue("plain", 40);
  auto plan = plan_renewal(*vault().find("plain"), vault().policy());
  ASSERT_TRUE(plan);
  EXPECT_TRUE(plan->from_policy);
  EXPECT_FALSE(plan->due) << "no rule anywhere: never due";
  ASSERT_TRUE(
      vault().update_policy([](Policy& p) { p.renew = parse_renew_before("30d").value(); }));
  plan = plan_renewal(*vault().find("plain"), vault().policy());
  ASSERT_TRUE(plan && plan->due);
  EXPECT_EQ(plan->rule, parse_renew_before("30d").value());
  // Off on the entry wins over the policy.
  ASSERT_TRUE(
      vault().update_renewal("plain", [](Vault::RenewalSettings& s) { s.rule = RenewRule{}; }));
  plan = plan_renewal(*vault().find("plain"), vault().policy());
  EXPECT_FALSE(plan->from_policy);
  EXPECT_FALSE(plan->due);
}

TEST_F(RenewalTest, RenewKeepsSubjectNamesAndLifetime) {
  auto before = entry("api", 40, "30d", "DNS:api.example.com,URI:spiffe://example.com/api");
  const auto& old = *before.current();
  auto renewed = vault().renew("api");
  ASSERT_TRUE(renewed) << why(renewed);
  const auto& now_gen = *renewed->current();
  EXPECT_EQ(now_gen.number, 2u);
  EXPECT_EQ(renewed->generations.front().status, certvault::Status::kSuperseded);
  EXPECT_NE(now_gen.key_id, old.key_id) << "a new key";
  EXPECT_EQ(now_gen.subject, old.subject);
  EXPECT_NEAR(now_gen.not_after - now_gen.not_before, old.not_after - old.not_before, 5)
      << "the same lifetime, renewal after renewal";
  auto cert = cert_of("api");
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr));
  ASSERT_NE(names, nullptr);
  EXPECT_EQ(sk_GENERAL_NAME_num(names), 2);
  GENERAL_NAMES_free(names);
  EXPECT_EQ(renewed->renew_rule, before.renew_rule);
}

// A renewal decided from an earlier look (the agent's pass, a timer's) does not renew an
// entry another process renewed meanwhile: one new generation, not two.
TEST_F(RenewalTest, RenewOfAGenerationNoLongerCurrentIsRefused) {
  entry("api", 40, "30d");
  ASSERT_TRUE(vault().renew("api", 1u));
  auto again = vault().renew("api", 1u);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().message, "'api' changed meanwhile; check it and try again");
  EXPECT_EQ(vault().find("api")->current()->number, 2u);
}

TEST_F(RenewalTest, AFailureReasonIsKeptAsOneLineATerminalShowsAsIs) {
  entry("api", 40, "30d");
  auto failed = vault().record_renewal_failure("api", "CA says:\x1b[2J\x07 no\r\nmore");
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->renewal.last_error, "CA says:?[2J? no  more");
}

TEST_F(RenewalTest, RenewEndsAtTheCasEndWhenTheUsualLifetimeWouldPassIt) {
  // An entry of 95 days, then a CA that ends in 60: renewed now, the entry ends with the CA.
  entry("long", 95, "10d");
  certvault::CaRequest ca;
  ca.not_after = certvault::now() + 60 * kDay;
  ca.replace = true;
  ASSERT_TRUE(vault().create_ca(ca));
  auto renewed = vault().renew("long");
  ASSERT_TRUE(renewed) << why(renewed);
  EXPECT_EQ(renewed->current()->not_after, vault().active_ca()->not_after);
}

TEST_F(RenewalTest, RenewRefusesWhenTheCappedCertificateWouldBeDueAtOnce) {
  entry("short", 40, "30d");
  ASSERT_TRUE(vault().update_policy([](Policy& p) { p.max_lifetime = 20 * kDay; }));
  const auto before = snapshot(dir_);
  auto refused = vault().renew("short");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kRefused);
  EXPECT_NE(refused.error().message.find("the policy's maximum lifetime of 20d"), std::string::npos)
      << refused.error().message;
  EXPECT_NE(refused.error().message.find("certvault policy set --max-lifetime"), std::string::npos)
      << refused.error().message;
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
  // Capped but still longer than its window: ends at the cap.
  ASSERT_TRUE(vault().update_policy([](Policy& p) { p.max_lifetime = 35 * kDay; }));
  auto renewed = vault().renew("short");
  ASSERT_TRUE(renewed) << why(renewed);
  EXPECT_NEAR(renewed->current()->not_after, certvault::now() + 35 * kDay, 60);
}

TEST_F(RenewalTest, MaxLifetimeRefusesALongerCertificateAndNamesTheLimit) {
  ASSERT_TRUE(vault().update_policy([](Policy& p) { p.max_lifetime = 90 * kDay; }));
  IssueRequest req;
  req.nickname = "too-long";
  req.not_after = certvault::now() + 120 * kDay;
  auto refused = vault().create(req);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kRefused);
  EXPECT_NE(refused.error().message.find("beyond the policy's maximum lifetime of 90d"),
            std::string::npos)
      << refused.error().message;
  req.not_after = certvault::now() + 80 * kDay;
  EXPECT_TRUE(vault().create(req));
}

TEST_F(RenewalTest, ImportedEntriesAreRenewedByHand) {
  auto key = generate_ec_key();
  auto cert = make_self_signed(key.get(), "theirs", -60, 40 * kDay);
  auto imported = vault().import_pem("theirs", key_to_pem(key.get()) + x509_to_pem(cert.get()));
  ASSERT_TRUE(imported) << why(imported);
  auto plan = plan_renewal(*imported, vault().policy());
  EXPECT_EQ(plan->renewer, certvault::Renewer::kByHand);
  auto refused = vault().renew("theirs");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("renew it by hand: run `certvault csr 'theirs'"),
            std::string::npos)
      << refused.error().message;
}

// A CA's Retry-After holds the next try back beyond the backoff, but at most a day, and a
// server's absurd value leaves the vault readable. Can fail: a time stored as the server
// gave it (past the year 9999) makes the manifest unreadable.
TEST_F(RenewalTest, ACasRetryAfterHoldsBackTheNextTryAtMostADay) {
  entry("limited", 40, "60d");
  auto failed = vault().record_renewal_failure("limited", "rate limited", certvault::now() + 7200);
  ASSERT_TRUE(failed);
  auto plan = plan_renewal(*failed, vault().policy());
  ASSERT_TRUE(plan && plan->retry_at);
  EXPECT_NEAR(*plan->retry_at, certvault::now() + 7200, 60) << "the CA's two hours, not one";
  failed = vault().record_renewal_failure("limited", "rate limited", 999999999999999LL);
  ASSERT_TRUE(failed);
  EXPECT_NEAR(failed->renewal.not_before, certvault::now() + 86400, 60);
  auto reopened = Vault::open(dir_);
  ASSERT_TRUE(reopened) << why(reopened);
  EXPECT_EQ(reopened->find("limited")->renewal.not_before, failed->renewal.not_before);
}

TEST_F(RenewalTest, FailuresCountUntilASuccessAndHoldBackRetries) {
  entry("flaky", 40, "60d");  // due since 20 days
  ASSERT_TRUE(vault().record_renewal_failure("flaky", "the CA is down"));
  auto failed = vault().record_renewal_failure("flaky", "the CA is still down");
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->renewal.failures, 2u);
  auto plan = plan_renewal(*failed, vault().policy());
  ASSERT_TRUE(plan->retry_at);
  EXPECT_NEAR(*plan->retry_at, certvault::now() + 2 * 3600, 60);
  EXPECT_LT(*plan->due, certvault::now());
  EXPECT_FALSE(plan->ready(certvault::now())) << "held back by the last failure";
  EXPECT_TRUE(plan->ready(*plan->retry_at));
  // 40 days of life and a 60-day window: every renewal would be due at once.
  auto refused = vault().renew("flaky");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("lives 40 days, no longer than its renewal window (60d "
                                         "before expiry)"),
            std::string::npos)
      << refused.error().message;
  ASSERT_TRUE(vault().update_renewal(
      "flaky", [](Vault::RenewalSettings& s) { s.rule = parse_renew_before("10d").value(); }));
  auto renewed = vault().renew("flaky");
  ASSERT_TRUE(renewed) << why(renewed);
  EXPECT_EQ(renewed->renewal.failures, 0u);
  EXPECT_EQ(renewed->renewal.failures_total, 2u);
  EXPECT_EQ(renewed->renewal.last_error, "the CA is still down");
}

}  // namespace
}  // namespace cvtest
