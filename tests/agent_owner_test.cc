// The vault owner's CLI commands while the agent holds the vault unlocked: carried out by
// the agent with no PIN asked (and stdin empty, so no prompt could have answered), said so
// on stderr, stdout as in-process; with the agent locked, or with an explicit --pin-file,
// the CLI works itself as before; and nobody but the owner (or root) may send the request.
#include <json/json.h>

#include "agent_client.h"
#include "agent_client_support.h"
#include "agent_support.h"
#include "cmp_test_server.h"
#include "renewal.h"

namespace cvtest {
namespace {

using namespace std::chrono_literals;

class AgentOwner : public AgentTest {
 protected:
  // The owner's command with no --pin-file and an empty stdin.
  RunResult owner(const std::vector<std::string>& args) { return cv(args, false); }

  std::string done_by_agent() const {
    return "certvault: done by the agent at " + socket_.string() +
           ", which holds vault 'ops' unlocked (no PIN asked)";
  }

  // The entry as the vault now holds it (another process changed it).
  std::optional<certvault::Entry> entry(const std::string& nickname) {
    auto fresh = vault().refresh();
    EXPECT_TRUE(fresh) << why(fresh);
    return vault().find(nickname);
  }

  bool audited(const std::string& action, const std::string& nickname) {
    const std::string log = audit_log();
    size_t at = 0;
    while (at < log.size()) {
      size_t nl = log.find('\n', at);
      if (nl == std::string::npos) nl = log.size();
      Json::Value v = parse_json(log.substr(at, nl - at));
      if (v["action"].asString() == action && v["nickname"].asString() == nickname &&
          v["result"].asString() == "ok")
        return true;
      at = nl + 1;
    }
    return false;
  }
};

TEST_F(AgentOwner, CreateRotateDisableEnableDeleteNeedNoPinWhileTheAgentHoldsTheVault) {
  start_agent();
  unlock();

  auto created = owner({"create", "web", "--end-date", "+30d"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_TRUE(contains(created.err, done_by_agent())) << created.err;
  EXPECT_TRUE(contains(created.out, "Created 'web' (generation 1).")) << created.out;
  ASSERT_TRUE(entry("web"));

  auto rotated = owner({"rotate", "web"});
  ASSERT_EQ(rotated.exit_code, 0) << rotated.err;
  EXPECT_TRUE(contains(rotated.err, done_by_agent())) << rotated.err;
  EXPECT_TRUE(contains(rotated.out, "Rotated 'web' (generation 2).")) << rotated.out;
  ASSERT_TRUE(entry("web"));
  EXPECT_EQ(entry("web")->generations.size(), 2u);

  auto disabled = owner({"disable", "web"});
  ASSERT_EQ(disabled.exit_code, 0) << disabled.err;
  EXPECT_TRUE(contains(disabled.err, done_by_agent())) << disabled.err;
  EXPECT_EQ(entry("web")->current(), nullptr);

  auto enabled = owner({"enable", "web"});
  ASSERT_EQ(enabled.exit_code, 0) << enabled.err;
  EXPECT_TRUE(contains(enabled.err, done_by_agent())) << enabled.err;
  EXPECT_NE(entry("web")->current(), nullptr);

  auto deleted = owner({"delete", "web", "--yes"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_TRUE(contains(deleted.err, done_by_agent())) << deleted.err;
  EXPECT_FALSE(entry("web"));

  for (const char* op : {"create", "rotate", "disable", "enable", "delete"})
    EXPECT_TRUE(audited(std::string("owner:") + op, "web")) << op << "\n" << audit_log();
}

// Can fail: a request that lost --san on its way to the agent (owner_request.cc) would
// issue a certificate without the names.
TEST_F(AgentOwner, CreateWithAlternativeNamesThroughTheAgentCarriesThem) {
  start_agent();
  unlock();
  auto created =
      owner({"create", "web", "--end-date", "+30d", "--san", "DNS:web.example,IP:192.0.2.7"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_TRUE(contains(created.err, done_by_agent())) << created.err;
  const fs::path cert = tmp_ / "web.pem";
  write_file(cert, owner({"show", "web", "--pem"}).out);
  auto names = run({"openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", cert.string()});
  EXPECT_TRUE(contains(names.out, "DNS:web.example, IP Address:192.0.2.7")) << names.out;
}

// Can fail: an ACME issuer that lost its dns-01 hook on its way to the agent
// (owner_request.cc) would prove no DNS name by dns-01.
TEST_F(AgentOwner, AnAcmeIssuersDns01HookReachesTheVaultThroughTheAgent) {
  ASSERT_EQ(make_server_cert(tmp_ / "anchor.pem", tmp_ / "anchor.key").exit_code, 0);
  start_agent();
  unlock();
  auto added = owner({"issuer", "add", "le", "--acme", "https://127.0.0.1:1/dir", "--trust",
                      (tmp_ / "anchor.pem").string(), "--dns01-hook",
                      "/usr/local/bin/dns-hook --zone example.test"});
  ASSERT_EQ(added.exit_code, 0) << added.err;
  EXPECT_TRUE(contains(added.err, done_by_agent())) << added.err;
  ASSERT_TRUE(vault().refresh());
  auto issuer = vault().find_issuer("le");
  ASSERT_TRUE(issuer);
  EXPECT_EQ(issuer->dns01_hook, "/usr/local/bin/dns-hook --zone example.test");
}

TEST_F(AgentOwner, StdoutIsWhatTheInProcessCommandPrints) {
  issue("api", 100);
  start_agent();
  unlock();
  auto via_agent = owner({"--json", "disable", "api"});
  ASSERT_EQ(via_agent.exit_code, 0) << via_agent.err;
  ASSERT_TRUE(contains(via_agent.err, done_by_agent())) << via_agent.err;
  ASSERT_EQ(cv({"enable", "api"}).exit_code, 0);
  auto here = cv({"--json", "disable", "api"});
  ASSERT_EQ(here.exit_code, 0) << here.err;
  EXPECT_FALSE(contains(here.err, "done by the agent")) << here.err;
  EXPECT_EQ(via_agent.out, here.out);
}

// Can fail: an agent that sent the keystore's message without its remedy (or a CLI that
// dropped it) prints "'api' is disabled" with no command to run, unlike in-process.
TEST_F(AgentOwner, ARefusalCarriedOutByTheAgentGetsTheSameAdviceAsInProcess) {
  issue("api", 100);
  ASSERT_EQ(cv({"disable", "api"}).exit_code, 0);
  const std::string advice = "'api' is disabled; run `certvault enable api` to use it again";
  auto here = cv({"export", "api", "-o", (tmp_ / "here.p12").string()});
  EXPECT_EQ(here.exit_code, 5) << here.err;
  EXPECT_TRUE(contains(here.err, advice)) << here.err;
  start_agent();
  unlock();
  auto via_agent = owner({"export", "api", "-o", (tmp_ / "agent.p12").string()});
  EXPECT_EQ(via_agent.exit_code, 5) << via_agent.err;
  EXPECT_TRUE(contains(via_agent.err, advice)) << via_agent.err;
  EXPECT_FALSE(fs::exists(tmp_ / "agent.p12"));
}

TEST_F(AgentOwner, ExportWritesTheFile0600ItsPasswordOpensItAndASecondExportIsRefused) {
  issue("api", 100);
  start_agent();
  unlock();
  const fs::path p12 = run_dir_ / "api.p12";
  auto exported = owner({"--json", "export", "api", "-o", p12.string()});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  EXPECT_TRUE(contains(exported.err, done_by_agent())) << exported.err;
  ASSERT_TRUE(fs::exists(p12));
  EXPECT_EQ(file_mode(p12), 0600);
  const std::string password = parse_json(exported.out)["password"].asString();
  ASSERT_FALSE(password.empty()) << exported.out;
  auto info = run({"env", "OPENSSL_CONF=/dev/null", "openssl", "pkcs12", "-info", "-noout", "-in",
                   p12.string(), "-passin", "pass:" + password});
  EXPECT_EQ(info.exit_code, 0) << info.err;
  auto wrong = run({"env", "OPENSSL_CONF=/dev/null", "openssl", "pkcs12", "-info", "-noout", "-in",
                    p12.string(), "-passin", "pass:not-" + password});
  EXPECT_NE(wrong.exit_code, 0);

  const fs::path again = run_dir_ / "again.p12";
  auto second = owner({"export", "api", "-o", again.string()});
  EXPECT_EQ(second.exit_code, 5) << second.err;
  EXPECT_TRUE(contains(second.err, "was already exported")) << second.err;
  EXPECT_FALSE(fs::exists(again));
  // An existing file is never overwritten.
  const fs::path taken = run_dir_ / "taken.p12";
  write_file(taken, "mine", 0644);
  ASSERT_EQ(owner({"rotate", "api"}).exit_code, 0);
  auto over = owner({"export", "api", "-o", taken.string()});
  EXPECT_NE(over.exit_code, 0);
  EXPECT_EQ(read_file(taken), "mine");
}

// Can fail: a CLI that asked the agent for the export before it knew it could write the
// file would lose it: the agent records the one export when it returns the bytes, and the
// export that follows is refused ("was already exported").
TEST_F(AgentOwner, ExportThatCannotWriteItsFileLeavesTheExportUnspent) {
  issue("api", 100);
  start_agent();
  unlock();
  const fs::path taken = run_dir_ / "taken.p12";
  write_file(taken, "mine", 0644);
  auto over = owner({"export", "api", "-o", taken.string()});
  EXPECT_EQ(over.exit_code, 5) << over.err;
  EXPECT_EQ(over.err_lines().size(), 1u) << over.err;
  EXPECT_EQ(read_file(taken), "mine");

  const fs::path nowhere = run_dir_ / "no-such-directory" / "api.p12";
  auto lost = owner({"export", "api", "-o", nowhere.string()});
  EXPECT_NE(lost.exit_code, 0);
  EXPECT_EQ(lost.err_lines().size(), 1u) << lost.err;
  EXPECT_TRUE(contains(lost.err, nowhere.string())) << lost.err;

  // A disk too full for the PKCS#12 (a file size limit, as a quota would give).
  const fs::path full = run_dir_ / "full.p12";
  auto no_room = run({"sh", "-c", "trap '' XFSZ; exec prlimit --fsize=512 \"$@\"", "sh", "env",
                      "CERTVAULT_AGENT_SOCK=" + socket_.string(), cli(), "--vault", dir_.string(),
                      "export", "api", "-o", full.string()});
  EXPECT_NE(no_room.exit_code, 0);
  EXPECT_EQ(no_room.err_lines().size(), 1u) << no_room.err;
  EXPECT_TRUE(contains(no_room.err, "free some space")) << no_room.err;
  EXPECT_FALSE(fs::exists(full));

  // None of them spent the export.
  ASSERT_TRUE(entry("api"));
  EXPECT_EQ(entry("api")->current()->exported_at, 0);
  const fs::path p12 = run_dir_ / "api.p12";
  auto exported = owner({"export", "api", "-o", p12.string()});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  EXPECT_TRUE(contains(exported.err, done_by_agent())) << exported.err;
  EXPECT_GT(fs::file_size(p12), 0u);
}

TEST_F(AgentOwner, ImportReadsTheFileAndPasswordHereAndNeedsNoPin) {
  issue("api", 100);
  const fs::path p12 = run_dir_ / "api.p12";
  auto exported = cv({"--json", "export", "api", "-o", p12.string()});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  const fs::path password =
      write_secret_file(run_dir_ / "p12-password", parse_json(exported.out)["password"].asString());
  ASSERT_EQ(cv({"delete", "api", "--yes"}).exit_code, 0);
  start_agent();
  unlock();
  auto imported =
      owner({"import", p12.string(), "--nickname", "back", "--password-file", password.string()});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_TRUE(contains(imported.err, done_by_agent())) << imported.err;
  EXPECT_TRUE(contains(imported.out, "Imported 'back'")) << imported.out;
  auto back = entry("back");
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->generations.at(0).key_imported);
  EXPECT_TRUE(audited("owner:import", "back")) << audit_log();
}

TEST_F(AgentOwner, LockedAgentLeavesTheCommandToThePinAsBefore) {
  start_agent();
  auto no_pin = owner({"create", "web", "--end-date", "+30d"});
  EXPECT_NE(no_pin.exit_code, 0);
  EXPECT_TRUE(contains(no_pin.err, "cannot ask for the PIN")) << no_pin.err;
  EXPECT_FALSE(contains(no_pin.err, "done by the agent")) << no_pin.err;
  EXPECT_FALSE(entry("web"));

  auto with_pin = cv({"create", "web", "--end-date", "+30d"});
  ASSERT_EQ(with_pin.exit_code, 0) << with_pin.err;
  EXPECT_FALSE(contains(with_pin.err, "done by the agent")) << with_pin.err;
  EXPECT_TRUE(entry("web"));
}

TEST_F(AgentOwner, ExplicitPinFileMeansTheCliDoesItItself) {
  start_agent();
  unlock();
  auto r = cv({"create", "web", "--end-date", "+30d"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(contains(r.err, "done by the agent")) << r.err;
  EXPECT_TRUE(entry("web"));
  EXPECT_FALSE(audited("owner:create", "web")) << audit_log();
}

TEST_F(AgentOwner, AnotherUserIsRefusedTheOwnerRequest) {
  issue("api", 100);
  start_agent();
  unlock();
  const pid_t child = fork_child(30s, [&]() -> std::string {
    if (!become(kClientUser, client_uid_, client_gid_)) return "cannot become the client user";
    certvault::agent::Client client(socket_);
    certvault::agent::Frame f(certvault::agent::Type::kOwner);
    f.add(certvault::agent::Tag::kVault, dir_.string());
    f.add(certvault::agent::Tag::kJson, R"({"op":"delete","nickname":"api"})");
    certvault::agent::ErrorCode code{};
    auto reply = client.call(f, &code);
    if (reply) return "the agent deleted 'api' for uid " + std::to_string(::getuid());
    if (code != certvault::agent::ErrorCode::kRefused)
      return "refused with code " + std::to_string(static_cast<int>(code)) + ": " +
             reply.error().message;
    if (!contains(reply.error().message, "only the owner of vault 'ops' or root"))
      return "refused saying: " + reply.error().message;
    return "";
  });
  auto status = wait_children({child}, 60s);
  EXPECT_TRUE(WIFEXITED(status[child]) && WEXITSTATUS(status[child]) == 0)
      << describe_status(status[child]);
  EXPECT_TRUE(entry("api"));
}

// --- renewal (docs/lifecycle.md) ---------------------------------------------------------

class AgentRenewal : public AgentOwner {
 protected:
  // An entry of 40 days renewed 30 days before its end, with a command that appends its
  // environment to `log`: due after 10 to 13 days.
  void forty_days(const std::string& nickname, const fs::path& log) {
    certvault::IssueRequest req;
    req.nickname = nickname;
    req.not_after = certvault::now() + 40 * kDay;
    ASSERT_TRUE(vault().create(req));
    ASSERT_TRUE(vault().update_renewal(nickname, [&](certvault::Vault::RenewalSettings& s) {
      s.rule = certvault::parse_renew_before("30d").value();
      s.hook =
          "echo \"$CERTVAULT_NICKNAME $CERTVAULT_GENERATION $(id -u)${NOTIFY_SOCKET}"
          "${CREDENTIALS_DIRECTORY}\" >> " +
          log.string();
    }));
  }
  uint32_t generation(const std::string& nickname) {
    auto e = entry(nickname);
    return e && e->current() ? e->current()->number : 0;
  }
  // Polls (bounded, 60 s: CI machines run other tests beside) until `done` holds.
  template <typename F>
  bool eventually(F done) {
    for (int i = 0; i < 600; ++i) {
      if (done()) return true;
      std::this_thread::sleep_for(100ms);
    }
    return done();
  }
  std::string agent_log() { return read_file(tmp_ / "agent.err"); }
  Json::Value vault_status() {
    auto r = cv({"--json", "status"}, false);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return parse_json(r.out)["vaults"][0];
  }
};

TEST_F(AgentRenewal, RenewByNameNeedsNoPinAndTheAgentRunsTheCommand) {
  const fs::path log = tmp_ / "hook.log";
  forty_days("api", log);
  // As under systemd: the command must not see the agent's readiness socket or credentials.
  start_agent({"--renew-every", "none"}, {"env", "NOTIFY_SOCKET=/nonexistent/notify",
                                          "CREDENTIALS_DIRECTORY=" + tmp_.path().string()});
  unlock();
  auto r = owner({"renew", "api"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, done_by_agent())) << r.err;
  EXPECT_TRUE(contains(r.out, "Renewed 'api': generation 2")) << r.out;
  EXPECT_TRUE(contains(r.err, "the agent rewrites the files of 'api' and runs its command"))
      << r.err;
  EXPECT_EQ(generation("api"), 2u);
  ASSERT_TRUE(eventually([&] { return fs::exists(log) && !read_file(log).empty(); }))
      << read_file(tmp_ / "agent.err");
  EXPECT_EQ(read_file(log), "api 2 " + std::to_string(::getuid()) + "\n");
  EXPECT_TRUE(audited("owner:renew", ""));
}

// The agent's renewal clock runs 13 days ahead while certificates are issued on the real
// clock, so a renewed entry is due again at once by that clock: while unlocked, each pass
// renews it again. What counts: renewals happen while unlocked, each runs the command once,
// and none happens while locked.
TEST_F(AgentRenewal, TheAgentRenewsWhatIsDueWhileUnlockedAndNothingWhileLocked) {
  const fs::path log = tmp_ / "hook.log";
  forty_days("api", log);
  start_agent({"--renew-every", "1s"}, {"env", "CERTVAULT_TEST_NOW=+13d"});
  auto locked_passes = [&] { return vault_status()["renewal"]["passes_while_locked"].asUInt64(); };
  // Locked: passes come and go and renew nothing.
  ASSERT_TRUE(eventually([&] { return locked_passes() >= 2; })) << agent_log();
  EXPECT_EQ(generation("api"), 1u) << agent_log();
  EXPECT_EQ(vault_status()["due_for_renewal"].asUInt64(), 1u) << "due, and counted while locked";
  // Unlocked: renewed right away; the command ran for the new generation.
  unlock();
  ASSERT_TRUE(eventually([&] { return generation("api") >= 2; })) << read_file(tmp_ / "agent.err");
  const std::string uid = std::to_string(::getuid());
  ASSERT_TRUE(eventually([&] {
    return fs::exists(log) && read_file(log).starts_with("api 2 " + uid + "\n");
  })) << read_file(log);
  EXPECT_TRUE(audited("renew", "api")) << audit_log();
  EXPECT_FALSE(vault_status()["renewal"]["last_pass"].isNull());
  // Locked again: nothing is renewed until the next unlock.
  ASSERT_EQ(cv({"lock"}, false).exit_code, 0);
  forty_days("web", tmp_ / "web.log");
  auto skipped = locked_passes();
  ASSERT_TRUE(eventually([&] { return locked_passes() >= skipped + 2; })) << agent_log();
  const uint32_t api_locked = generation("api");
  skipped = locked_passes();
  ASSERT_TRUE(eventually([&] { return locked_passes() >= skipped + 2; })) << agent_log();
  EXPECT_EQ(generation("api"), api_locked) << agent_log();
  EXPECT_EQ(generation("web"), 1u) << agent_log();
  unlock();
  ASSERT_TRUE(eventually([&] { return generation("web") >= 2; })) << agent_log();
  // One line per renewal of api, in order.
  std::string expected;
  for (uint32_t g = 2; g <= api_locked; ++g)
    expected += "api " + std::to_string(g) + " " + uid + "\n";
  EXPECT_TRUE(read_file(log).starts_with(expected)) << read_file(log);
}

// An outside CA through the agent: `issuer add`, `create --issuer` and `issuer remove` need
// no PIN while the agent holds the vault, the protocol exchange runs in the agent, and its
// schedule renews the entry there by a key update (kur). Can fail: an issuer that lost its
// shared secret or anchor on the way to the agent could not enroll; an agent that renewed
// outside entries in the vault instead of at the CA would send no key update.
TEST_F(AgentRenewal, AnOutsideCaIsAddedEnrolledAndRenewedThroughTheAgent) {
  PkeyPtr ca_key = generate_ec_key();
  X509Ptr ca(make_test_ca(ca_key.get(), "Test CMP CA"));
  ASSERT_TRUE(ca);
  const fs::path ca_pem = tmp_ / "cmp-ca.pem";
  write_file(ca_pem, x509_to_pem(ca.get()));
  const fs::path secret = write_secret_file(tmp_ / "cmp-secret", "cmp-shared-secret-0815");
  CmpTestServer::Options o;
  o.ca_key = ca_key.get();
  o.ca_cert = ca.get();
  o.reference = "ref-4711";
  o.secret = "cmp-shared-secret-0815";
  o.lifetime = 40L * 86400;
  CmpTestServer server(o);
  ASSERT_TRUE(server.listening());
  // The agent's renewal clock 13 days ahead: an entry of 40 days, renewed 30 days before
  // its end, is due for the agent as soon as it exists. It passes only after an unlock.
  start_agent({"--renew-every", "none"}, {"env", "CERTVAULT_TEST_NOW=+13d"});
  unlock();
  for (const char* name : {"ca1", "spare"}) {
    auto added = owner({"issuer", "add", name, "--cmp", server.url(), "--cmp-ref", "ref-4711",
                        "--cmp-secret-file", secret.string(), "--trust", ca_pem.string()});
    ASSERT_EQ(added.exit_code, 0) << added.err;
    EXPECT_TRUE(contains(added.err, done_by_agent())) << added.err;
    EXPECT_TRUE(contains(added.out, std::string("Added issuer '") + name + "'")) << added.out;
  }
  auto removed = owner({"issuer", "remove", "spare"});
  ASSERT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_TRUE(contains(removed.err, done_by_agent())) << removed.err;
  ASSERT_TRUE(vault().refresh());
  EXPECT_FALSE(vault().find_issuer("spare"));
  auto created = owner({"create", "api", "--issuer", "ca1", "--san", "DNS:api.example.com"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_TRUE(contains(created.err, done_by_agent())) << created.err;
  EXPECT_TRUE(contains(created.out, "Enrolled 'api' at issuer 'ca1' (generation 1)"))
      << created.out;
  auto e = entry("api");
  ASSERT_TRUE(e && e->current());
  EXPECT_EQ(e->issuer, "ca1");
  EXPECT_EQ(e->current()->issuer_name, "CN=Test CMP CA");
  auto rule = owner({"renew-rule", "api", "--before", "30d"});
  ASSERT_EQ(rule.exit_code, 0) << rule.err;
  EXPECT_EQ(generation("api"), 1u);
  ASSERT_EQ(cv({"lock"}, false).exit_code, 0);
  unlock();  // the pass after the unlock renews it, once
  ASSERT_TRUE(eventually([&] { return generation("api") >= 2; })) << agent_log();
  EXPECT_EQ(server.key_updates(), 1);
  e = entry("api");
  ASSERT_TRUE(e && e->current());
  EXPECT_EQ(e->generations[0].status, certvault::Status::kSuperseded);
  EXPECT_NE(e->generations[0].key_id, e->current()->key_id);
  EXPECT_EQ(e->current()->issuer_name, "CN=Test CMP CA");
  EXPECT_TRUE(audited("owner:enroll", "api")) << audit_log();
  // The pass records its renewals once it is over, after the vault's commit.
  EXPECT_TRUE(eventually([&] { return audited("renew", "api"); })) << audit_log();
}

}  // namespace
}  // namespace cvtest
