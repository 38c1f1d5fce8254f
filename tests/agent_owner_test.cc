// The vault owner's CLI commands while the agent holds the vault unlocked: carried out by
// the agent with no PIN asked (and stdin empty, so no prompt could have answered), said so
// on stderr, stdout as in-process; with the agent locked, or with an explicit --pin-file,
// the CLI works itself as before; and nobody but the owner (or root) may send the request.
#include <json/json.h>

#include "agent_client.h"
#include "agent_client_support.h"
#include "agent_support.h"

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

  auto deleted = owner({"delete", "web"});
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
  ASSERT_EQ(cv({"delete", "api"}).exit_code, 0);
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

}  // namespace
}  // namespace cvtest
