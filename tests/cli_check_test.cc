// `certvault check` as a monitoring job runs it (docs/monitoring.md): which problems it
// reports, in which order, as text, JSON and Prometheus metrics, and the file it writes.
// Time moves with CERTVAULT_TEST_NOW (the renewal clock, which check reads).
#include <gtest/gtest.h>
#include <json/json.h>

#include <sstream>
#include <string>
#include <vector>

#include "renewal.h"
#include "support.h"
#include "test_cli.h"
#include "test_vault.h"
#include "vault.h"

namespace cvtest {
namespace {

using certvault::Vault;

class CliCheck : public CliTest {
 protected:
  // certvault check ... with the clock moved by `offset` ("+13d"; "" leaves it).
  RunResult check(std::vector<std::string> args, const std::string& offset = "") const {
    std::vector<std::string> argv{"env"};
    if (!offset.empty()) argv.push_back("CERTVAULT_TEST_NOW=" + offset);
    for (const std::string& a :
         {cli(), std::string("--vault"), vault_.string(), std::string("check")})
      argv.push_back(a);
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }

  Json::Value check_json(std::vector<std::string> args = {}, const std::string& offset = "") const {
    args.insert(args.begin(), {"--format", "json"});
    auto r = check(args, offset);
    EXPECT_TRUE(r.exit_code >= 0 && r.exit_code <= 2) << r.err;
    return parse_json(r.out);
  }

  // The vault through the keystore API, unlocked: what no CLI command does yet.
  Vault unlocked() const {
    auto v = Vault::open(vault_);
    EXPECT_TRUE(v) << why(v);
    auto u = v->unlock(pin());
    EXPECT_TRUE(u) << why(u);
    return std::move(*v);
  }

  void renew_rule(const std::string& nickname, const std::string& before) const {
    auto v = unlocked();
    auto set = v.update_renewal(nickname, [&](Vault::RenewalSettings& s) {
      s.rule = certvault::parse_renew_before(before).value();
    });
    ASSERT_TRUE(set) << why(set);
  }

  void fail_renewal(const std::string& nickname, const std::string& reason) const {
    auto v = unlocked();
    auto failed = v.record_renewal_failure(nickname, reason);
    ASSERT_TRUE(failed) << why(failed);
  }

  // An entry imported from a PEM file (a key made outside the vault, so renewed by hand),
  // valid from yesterday for `days` more days.
  void import_outside(const std::string& nickname, int days) const {
    auto key = generate_ec_key();
    auto cert = make_self_signed(key.get(), nickname, -86400L, days * 86400L);
    auto path = tmp_ / (nickname + ".pem");
    write_file(path, x509_to_pem(cert.get()) + key_to_pem(key.get()));
    ok({"import", path.string(), "--nickname", nickname});
  }
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The problem kinds of a JSON report, in order.
std::vector<std::string> kinds(const Json::Value& report) {
  std::vector<std::string> out;
  for (const auto& p : report["problems"]) out.push_back(p["problem"].asString());
  return out;
}

TEST_F(CliCheck, NothingToReportIsSilentAndExitsZero) {
  ok({"create", "api", "--end-date", "+200d"});
  auto r = check({});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  auto json = check_json();
  EXPECT_EQ(json["status"].asString(), "ok");
  EXPECT_EQ(json["vault"].asString(), "ops");
  EXPECT_EQ(json["problems"].size(), 0u);
}

TEST_F(CliCheck, VaultCaExpiringSoonThenExpiredNamesTheVaultAndTheFix) {
  ok({"ca", "create", "--replace", "--end-date", "+10d"});
  auto soon = check({});
  EXPECT_EQ(soon.exit_code, 1) << soon.out << soon.err;
  ASSERT_EQ(lines_of(soon.out).size(), 1u) << soon.out;
  EXPECT_TRUE(soon.out.starts_with("ops: vault CA (")) << soon.out;
  EXPECT_TRUE(contains(soon.out, "expires in 10 days")) << soon.out;
  EXPECT_TRUE(contains(soon.out, "certvault ca create --replace")) << soon.out;
  EXPECT_EQ(check({"--within", "5"}).exit_code, 0);

  auto json = check_json();
  ASSERT_EQ(kinds(json), std::vector<std::string>{"ca-expires-soon"});
  EXPECT_EQ(json["problems"][0]["days_left"].asInt(), 10);
  EXPECT_EQ(json["problems"][0]["vault"].asString(), "ops");
  EXPECT_TRUE(contains(json["problems"][0]["subject"].asString(), "CN=")) << json;

  // Eleven days on, the CA has expired: exit 2, as for an expired certificate.
  auto gone = check({"--within", "0"}, "+11d");
  EXPECT_EQ(gone.exit_code, 2) << gone.out << gone.err;
  EXPECT_TRUE(contains(gone.out, "vault CA (") && contains(gone.out, "expired on")) << gone.out;
  EXPECT_EQ(kinds(check_json({}, "+11d")), std::vector<std::string>{"ca-expired"});
  EXPECT_EQ(check_json({}, "+11d")["status"].asString(), "expired");
}

TEST_F(CliCheck, EntryWaitingForItsCertificateSaysToAttach) {
  ok({"csr", "partner", "-o", (tmp_ / "partner.csr").string()});
  auto r = check({});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_TRUE(r.out.starts_with("ops: partner: waiting for its certificate since ")) << r.out;
  EXPECT_TRUE(contains(r.out, "certvault attach partner CERT.pem")) << r.out;
  auto json = check_json();
  ASSERT_EQ(kinds(json), std::vector<std::string>{"pending"});
  EXPECT_EQ(json["problems"][0]["nickname"].asString(), "partner");
  EXPECT_FALSE(json["problems"][0]["active"].asBool());
  EXPECT_EQ(json["status"].asString(), "needs-attention");

  // A request for an entry that has a certificate: the new one waits, the old one serves.
  ok({"create", "api", "--end-date", "+200d"});
  ok({"csr", "api", "-o", (tmp_ / "api.csr").string()});
  json = check_json();
  ASSERT_EQ(kinds(json), (std::vector<std::string>{"pending", "pending"})) << json;
  bool api_seen = false;
  for (const auto& p : json["problems"]) {
    if (p["nickname"].asString() != "api") continue;
    api_seen = true;
    EXPECT_TRUE(p["active"].asBool());
    EXPECT_EQ(p["generation"].asUInt(), 2u);
  }
  EXPECT_TRUE(api_seen) << json;
}

TEST_F(CliCheck, FailedRenewalShowsItsCountReasonAndTime) {
  ok({"create", "api", "--end-date", "+200d"});
  fail_renewal("api", "the CA is down");
  fail_renewal("api", "the CA is still down");
  auto r = check({});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_TRUE(r.out.starts_with("ops: api: renewal failed 2 times in a row, last on ")) << r.out;
  EXPECT_TRUE(contains(r.out, ": the CA is still down")) << r.out;
  auto json = check_json();
  ASSERT_EQ(kinds(json), std::vector<std::string>{"renewal-failed"});
  const auto& p = json["problems"][0];
  EXPECT_EQ(p["failures"].asUInt(), 2u);
  EXPECT_EQ(p["failures_total"].asUInt64(), 2u);
  EXPECT_EQ(p["last_error"].asString(), "the CA is still down");
  EXPECT_FALSE(p["last_failure"].asString().empty());
  EXPECT_EQ(p["renewer"].asString(), "vault-ca");
}

TEST_F(CliCheck, DueEntryFromOutsideSaysToRenewByHandWithCsrAndAttach) {
  import_outside("partner", 40);
  ok({"create", "api", "--end-date", "+40d"});
  renew_rule("partner", "30d");
  renew_rule("api", "30d");
  // Not due yet: the window opens 10 days on (plus at most 3 days of spread).
  EXPECT_EQ(check({"--within", "7"}).exit_code, 0);

  auto due = check({"--within", "7"}, "+14d");
  EXPECT_EQ(due.exit_code, 1) << due.out << due.err;
  ASSERT_EQ(lines_of(due.out).size(), 1u) << "the vault renews api itself: " << due.out;
  EXPECT_TRUE(due.out.starts_with("ops: partner: due for renewal since ")) << due.out;
  EXPECT_TRUE(contains(due.out, "renew by hand")) << due.out;
  EXPECT_TRUE(contains(due.out, "certvault csr partner -o REQ.pem")) << due.out;
  EXPECT_TRUE(contains(due.out, "certvault attach partner CERT.pem")) << due.out;
  auto json = check_json({"--within", "7"}, "+14d");
  ASSERT_EQ(kinds(json), std::vector<std::string>{"renew-by-hand"});
  EXPECT_EQ(json["problems"][0]["renewer"].asString(), "by-hand");
  EXPECT_EQ(json["problems"][0]["steps"].size(), 2u);

  // Once the request is made, what remains is to attach its certificate.
  ok({"csr", "partner", "-o", (tmp_ / "partner.csr").string()});
  EXPECT_EQ(kinds(check_json({"--within", "7"}, "+14d")), std::vector<std::string>{"pending"});
}

TEST_F(CliCheck, ProblemsComeMostUrgentFirst) {
  auto key = generate_ec_key();
  auto old = make_self_signed(key.get(), "old", -60L * 86400, -2L * 86400);
  write_file(tmp_ / "old.pem", x509_to_pem(old.get()) + key_to_pem(key.get()));
  ok({"import", (tmp_ / "old.pem").string(), "--nickname", "old"});
  ok({"create", "in-ten", "--end-date", "+10d"});
  ok({"create", "in-three", "--end-date", "+3d"});
  ok({"create", "flaky", "--end-date", "+200d"});
  fail_renewal("flaky", "the CA is down");
  ok({"csr", "waiting", "-o", (tmp_ / "waiting.csr").string()});

  auto r = check({});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 5u) << r.out;
  EXPECT_TRUE(lines[0].starts_with("ops: old: expired on ")) << r.out;
  EXPECT_TRUE(lines[1].starts_with("ops: in-three: expires in 3 days")) << r.out;
  EXPECT_TRUE(lines[2].starts_with("ops: in-ten: expires in 10 days")) << r.out;
  EXPECT_TRUE(lines[3].starts_with("ops: flaky: renewal failed")) << r.out;
  EXPECT_TRUE(lines[4].starts_with("ops: waiting: waiting for its certificate")) << r.out;

  auto json = check_json();
  EXPECT_EQ(json["status"].asString(), "expired");
  EXPECT_EQ(kinds(json), (std::vector<std::string>{"expired", "expires-soon", "expires-soon",
                                                   "renewal-failed", "pending"}));
  // The fields scripts read before the new kinds stay as they were.
  const auto& first = json["problems"][0];
  EXPECT_EQ(first["nickname"].asString(), "old");
  EXPECT_TRUE(first["not_after"].isString());
  EXPECT_EQ(first["days_left"].asInt(), -2);
  EXPECT_EQ(json["within_days"].asInt(), 30);
  // --json, the global flag, is the same report.
  auto global = cv({"check"}, true);
  EXPECT_EQ(kinds(parse_json(global.out)), kinds(json));
}

// The sample line for `metric` whose labels contain `nickname="NAME"`, or "".
std::string sample_of(const std::string& text, const std::string& metric,
                      const std::string& labels) {
  for (const auto& line : lines_of(text))
    if (line.starts_with(metric + "{" + labels) || line.starts_with(metric + " ")) return line;
  return "";
}

bool have_promtool() {
  return run({"sh", "-c", "command -v promtool"}).exit_code == 0;
}

TEST_F(CliCheck, PrometheusMetricsPassPromtoolAndCarryEachEntry) {
  ok({"create", "api", "--end-date", "+90d"});
  ok({"create", "quiet", "--end-date", "+200d", "--self-signed"});
  renew_rule("api", "30d");
  fail_renewal("api", "the CA is down");
  fail_renewal("api", "the CA is down");
  ok({"csr", "waiting", "-o", (tmp_ / "waiting.csr").string()});

  auto r = check({"--format", "prometheus"});
  EXPECT_EQ(r.exit_code, 1) << "the failures and the pending entry still count: " << r.err;
  const std::string& text = r.out;
  for (const char* family :
       {"certvault_cert_not_after_seconds gauge", "certvault_cert_renewal_due_seconds gauge",
        "certvault_cert_renewal_failures_total counter", "certvault_ca_not_after_seconds gauge",
        "certvault_check_timestamp_seconds gauge"})
    EXPECT_TRUE(contains(text, std::string("# TYPE ") + family)) << family << "\n" << text;

  auto v = Vault::open(vault_);
  ASSERT_TRUE(v) << why(v);
  auto api = v->find("api");
  ASSERT_TRUE(api && api->current());
  const std::string api_labels = "vault=\"ops\",nickname=\"api\",issuer=\"vault-ca\"";
  EXPECT_EQ(sample_of(text, "certvault_cert_not_after_seconds", api_labels),
            "certvault_cert_not_after_seconds{" + api_labels + "} " +
                std::to_string(api->current()->not_after))
      << text;
  auto plan = certvault::plan_renewal(*api, v->policy());
  ASSERT_TRUE(plan && plan->due);
  EXPECT_EQ(sample_of(text, "certvault_cert_renewal_due_seconds", api_labels),
            "certvault_cert_renewal_due_seconds{" + api_labels + "} " + std::to_string(*plan->due))
      << text;
  EXPECT_EQ(sample_of(text, "certvault_cert_renewal_failures_total", api_labels),
            "certvault_cert_renewal_failures_total{" + api_labels + "} 2")
      << text;
  // No rule (the policy's is off): no due sample, but its end date and failures.
  const std::string quiet_labels = "vault=\"ops\",nickname=\"quiet\",issuer=\"self-signed\"";
  EXPECT_EQ(sample_of(text, "certvault_cert_renewal_due_seconds", quiet_labels), "") << text;
  EXPECT_NE(sample_of(text, "certvault_cert_not_after_seconds", quiet_labels), "") << text;
  EXPECT_EQ(sample_of(text, "certvault_cert_renewal_failures_total", quiet_labels),
            "certvault_cert_renewal_failures_total{" + quiet_labels + "} 0")
      << text;
  // Without an active certificate, nothing to measure.
  EXPECT_FALSE(contains(text, "nickname=\"waiting\"")) << text;
  EXPECT_EQ(
      sample_of(text, "certvault_ca_not_after_seconds", "vault=\"ops\"}"),
      "certvault_ca_not_after_seconds{vault=\"ops\"} " + std::to_string(v->active_ca()->not_after))
      << text;
  EXPECT_NE(sample_of(text, "certvault_check_timestamp_seconds", ""), "") << text;

  if (!have_promtool()) GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  auto lint = run({"promtool", "check", "metrics"}, text);
  EXPECT_EQ(lint.exit_code, 0) << lint.out << lint.err << "\n" << text;
}

TEST_F(CliCheck, PrometheusLabelsEscapeQuotesAndBackslashes) {
  vault_ = tmp_ / "odd";
  auto init = cv({"init", "--label", "team \"a\\b\"", "--kdf-ops", "1", "--kdf-mem-kib", "8"});
  ASSERT_EQ(init.exit_code, 0) << init.err;
  ok({"create", "api", "--end-date", "+90d", "--self-signed"});
  auto r = check({"--format", "prometheus"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "{vault=\"team \\\"a\\\\b\\\"\",nickname=\"api\"")) << r.out;
  if (!have_promtool()) GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  auto lint = run({"promtool", "check", "metrics"}, r.out);
  EXPECT_EQ(lint.exit_code, 0) << lint.out << lint.err << "\n" << r.out;
}

TEST_F(CliCheck, OutputFileIsReplacedWholeWithMode0644AndNoTempFileLeft) {
  auto dir = tmp_ / "textfile";
  fs::create_directory(dir);
  auto file = dir / "certvault.prom";
  ok({"create", "api", "--end-date", "+90d"});
  auto first = check({"--format", "prometheus", "-o", file.string()});
  EXPECT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(first.out, "") << "with -o, nothing on stdout";
  EXPECT_EQ(file_mode(file), 0644u);
  EXPECT_TRUE(contains(read_file(file), "nickname=\"api\""));

  // Written again with an expiring entry: the whole new report, and exit 1 all the same.
  ok({"create", "soon", "--end-date", "+5d"});
  auto second = check({"--format", "prometheus", "--output", file.string()});
  EXPECT_EQ(second.exit_code, 1) << second.err;
  EXPECT_EQ(file_mode(file), 0644u);
  auto text = read_file(file);
  EXPECT_TRUE(contains(text, "nickname=\"soon\"")) << text;
  EXPECT_TRUE(text.ends_with("\n") && contains(text, "certvault_check_timestamp_seconds")) << text;
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"certvault.prom"}) << "a temporary file was left";

  // Text goes to a file the same way.
  auto report = dir / "check.txt";
  EXPECT_EQ(check({"-o", report.string()}).exit_code, 1);
  EXPECT_TRUE(read_file(report).starts_with("ops: soon: expires in 5 days")) << read_file(report);
}

TEST_F(CliCheck, UnwritableOutputOrUnknownFormatFailsInOneLine) {
  auto r = check({"--format", "prometheus", "-o", (tmp_ / "no-such-dir" / "m.prom").string()});
  ExpectOneLineFailure(r, {4, 8});
  EXPECT_TRUE(contains(r.err, "no-such-dir")) << r.err;
  ExpectOneLineFailure(check({"--format", "xml"}), {3});
  EXPECT_TRUE(contains(check({"--format", "xml"}).err, "use text, json or prometheus"));
  ExpectOneLineFailure(cv({"check", "--format", "prometheus"}, true), {3});
}

}  // namespace
}  // namespace cvtest
