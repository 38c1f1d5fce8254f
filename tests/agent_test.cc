// The agent under real programs: an operator unlocks once, and `openssl` run as another
// user, with no PIN, no vault access and no key in its memory, signs and does mutual TLS
// by URI; the per-entry policy, lock, TTL, faults, systemd's interfaces and the audit log.
// Loopback only; each test has its own vault, agent, socket and port.
#include <fcntl.h>
#include <grp.h>
#include <json/json.h>
#include <poll.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <expected>
#include <fstream>
#include <regex>
#include <span>
#include <sstream>

#include "agent_client_support.h"
#include "agent_support.h"

namespace cvtest {
namespace {

using namespace std::chrono_literals;

class AgentSigning : public AgentTest {
 protected:
  void SetUp() override {
    AgentTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    issue("api", 100);
    data_ = run_dir_ / "data";
    write_file(data_, "the data a program signs\n", 0644);
    cert_ = write_certificate("api");
    ASSERT_FALSE(cert_.empty());
  }

  void allow_client() {
    auto r = cv({"access", "api", "allow", "--uid", std::to_string(client_uid_)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  // `openssl pkeyutl -sign` (or `program pkeyutl -sign`) as the client user; the
  // signature, checked against the public key of `cert` (default: 'api' of this test's
  // vault) with plain OpenSSL.
  RunResult sign_as_client(const std::string& uri = "certvault:api",
                           const std::string& program = "openssl", fs::path cert = {}) {
    if (cert.empty()) cert = cert_;
    const fs::path sig = out_ / "sig";
    fs::remove(sig);
    auto r = client_openssl("pkeyutl",
                            {"-sign", "-inkey", uri, "-rawin", "-digest", "sha256", "-in",
                             data_.string(), "-out", sig.string()},
                            {}, program);
    if (r.exit_code == 0) {
      auto check = verify_signature(cert, data_, sig, {"-digest", "sha256"});
      EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
    }
    return r;
  }

  fs::path data_, cert_;
};

TEST_F(AgentSigning, AnotherUserSignsByUriWithNoPinOnceUnlocked) {
  start_agent();
  allow_client();
  unlock();
  auto r = sign_as_client();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // The client could not have read the vault itself.
  auto peek = run(as_client({"ls", dir_.string()}));
  EXPECT_NE(peek.exit_code, 0);
}

// An agent that answers but does not serve the URI's vault ("not served"): the provider opens
// the vault in-process, as without an agent, and signs there with the PIN of the URI's
// pin-source (the agent audits no signature); without a PIN the key cannot be used, with the
// in-process provider's message.
TEST_F(AgentSigning, VaultTheAgentDoesNotServeIsUsedInProcessWithItsPinSource) {
  const fs::path other = tmp_ / "other";
  auto made = certvault::Vault::init(other, pin(), cheap_init("other"));
  ASSERT_TRUE(made) << why(made);
  start_agent({}, {}, other);
  if (HasFatalFailure()) return;
  const fs::path sig = tmp_ / "sig";
  auto sign = [&](const std::string& uri) {
    std::vector<std::string> argv = provider_env(dir_);
    argv.push_back("CERTVAULT_AGENT_SOCK=" + socket_.string());
    argv.insert(argv.end(), {"openssl", "pkeyutl"});
    for (const std::string& a : provider_args()) argv.push_back(a);
    argv.insert(argv.end(), {"-sign", "-inkey", uri, "-rawin", "-digest", "sha256", "-in",
                             data_.string(), "-out", sig.string()});
    return run(argv);
  };
  auto r = sign("certvault:api?pin-source=file:" + pin_file_.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto check = verify_signature(cert_, data_, sig, {"-digest", "sha256"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_EQ(audited_signatures("api", "ecdsa/sha256", 0), 0) << audit_log();
  auto no_pin = sign("certvault:api");
  EXPECT_NE(no_pin.exit_code, 0);
  EXPECT_TRUE(contains(no_pin.err, "needs the PIN of the vault in " + dir_.string())) << no_pin.err;
}

// The cores a task may run on ("Cpus_allowed_list" of its status).
std::string allowed_cores(const fs::path& status_file) {
  std::istringstream status(read_file(status_file));
  for (std::string line; std::getline(status, line);)
    if (line.starts_with("Cpus_allowed_list:")) return line.substr(line.find_last_of("\t ") + 1);
  return "";
}

// The thread the agent renews entries on, beside its serving threads (docs/lifecycle.md).
constexpr std::string_view kRenewThread = "certvault-renew";

// The cores each of the agent's serving threads may run on; the renewal thread is left out
// and, when `renewer` is given, its cores go there.
std::vector<std::string> cores_of_threads(pid_t pid, std::string* renewer = nullptr) {
  std::vector<std::string> out;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    std::string comm = read_file(task.path() / "comm");
    if (!comm.empty() && comm.back() == '\n') comm.pop_back();
    if (comm == kRenewThread) {
      if (renewer) *renewer = allowed_cores(task.path() / "status");
      continue;
    }
    std::istringstream status(read_file(task.path() / "status"));
    for (std::string line; std::getline(status, line);)
      if (line.starts_with("Cpus_allowed_list:"))
        out.push_back(line.substr(line.find_last_of("\t ") + 1));
  }
  return out;
}

// docs/agent.md, "Threads and cores": one serving thread per core the agent may use, each
// kept on one of them; never a thread outside the cores it was given (systemd's
// CPUAffinity=, taskset).
// Can fail: an agent that left a thread free to run anywhere shows a list of several cores
// (checked by turning the pinning off: this test then failed); on 3 cores or more, one that
// kept its threads on cores counted from 0, not on those it was given, runs outside the
// taskset of all but the first (on 2 cores that part cannot run: given one core, the agent
// leaves its threads to the scheduler, within that core).
TEST_F(AgentSigning, ThreadsStayOnTheCoresTheAgentWasGiven) {
  cpu_set_t given;
  CPU_ZERO(&given);
  ASSERT_EQ(::sched_getaffinity(0, sizeof given, &given), 0);
  std::vector<std::string> cores;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &given)) cores.push_back(std::to_string(c));
  if (cores.size() < 2 || cores.size() > 16) GTEST_SKIP() << "needs 2 to 16 cores";
  allow_client();
  // Given only its last core: every thread stays there, and it serves.
  start_agent({}, {"taskset", "-c", cores.back()});
  ASSERT_FALSE(HasFatalFailure());
  unlock();
  auto r = sign_as_client();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const std::string& list : cores_of_threads(agent_.pid())) EXPECT_EQ(list, cores.back());
  agent_.kill();
  // Given them all: one thread on each.
  start_agent();
  ASSERT_FALSE(HasFatalFailure());
  unlock();
  r = sign_as_client();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::string renewer;
  auto lists = cores_of_threads(agent_.pid(), &renewer);
  std::sort(lists.begin(), lists.end());
  auto sorted = cores;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(lists, sorted);
  // The renewal thread may run on any of them, as this test does.
  EXPECT_EQ(renewer, allowed_cores("/proc/self/status"));
  if (cores.size() < 3) return;
  // Given all but the first: one thread on each of those, none on the first.
  agent_.kill();
  std::string given_list;
  for (size_t i = 1; i < cores.size(); ++i) given_list += (i > 1 ? "," : "") + cores[i];
  start_agent({}, {"taskset", "-c", given_list});
  ASSERT_FALSE(HasFatalFailure());
  lists = cores_of_threads(agent_.pid());
  std::sort(lists.begin(), lists.end());
  sorted.assign(cores.begin() + 1, cores.end());
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(lists, sorted);
}

TEST_F(AgentSigning, LockedVaultTellsTheProgramToUnlockNotToGiveAPin) {
  start_agent();
  allow_client();
  auto r = sign_as_client();
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "vault 'ops' is locked; run certvault unlock")) << r.err;
  EXPECT_FALSE(contains(r.err, "PIN")) << r.err;
}

TEST_F(AgentSigning, UidNotInThePolicyIsRefusedNamingTheEntryAndTheRule) {
  start_agent();
  unlock();
  auto r = sign_as_client();
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "refuses uid " + std::to_string(client_uid_) + " the key 'api'"))
      << r.err;
  EXPECT_TRUE(contains(r.err, "no rule allows uid " + std::to_string(client_uid_))) << r.err;
  // A deny rule wins over an allow rule for the same peer, and says so.
  ASSERT_EQ(cv({"access", "api", "allow", "--gid", kAgentGroup}).exit_code, 0);
  ASSERT_EQ(cv({"access", "api", "deny", "--uid", std::to_string(client_uid_)}).exit_code, 0);
  auto denied = sign_as_client();
  EXPECT_NE(denied.exit_code, 0);
  EXPECT_TRUE(contains(denied.err, "deny uid " + std::to_string(client_uid_))) << denied.err;
  bool refused_in_audit = false;
  for (const auto& e : audit_events())
    refused_in_audit |= e["result"].asString() == "refused" &&
                        e["peer"]["uid"].asUInt() == client_uid_ &&
                        e["nickname"].asString() == "api";
  EXPECT_TRUE(refused_in_audit) << audit_log();
}

// docs/agent.md, "Audit": a refusal goes to the journal too, with structured fields, where
// journald's rate limit never drops it (signatures only go to the file).
// Can fail: without the refusal's sd_journal_send, the journal has no such line.
TEST_F(AgentSigning, RefusalIsInTheJournalAndASignatureIsNot) {
  JournalCapture journal(tmp_.path());
  if (!journal.usable()) GTEST_SKIP() << "cannot give the agent a journal of the test's own";
  start_agent({}, journal.runner());
  ASSERT_FALSE(HasFatalFailure());
  unlock();
  auto refused = sign_as_client();
  ASSERT_NE(refused.exit_code, 0);
  const std::string uid = std::to_string(client_uid_);
  EXPECT_TRUE(journal.said("certvault agent refused resolve of 'api' in vault 'ops' to uid " + uid))
      << journal.all();
  allow_client();
  ASSERT_EQ(sign_as_client().exit_code, 0);
  int about_api = 0;
  for (const auto& m : journal.messages()) about_api += contains(m, "'api'");
  EXPECT_EQ(about_api, 1) << "a signature went to the journal:\n" << journal.all();
}

// docs/agent.md, "Start the agent": a user's agent locks after 8 hours unless told
// otherwise (`--ttl`); the system instance has no TTL. Absolute: `status` counts down from
// the unlock.
// Can fail: with the default TTL given to the system instance, or none to a user agent.
TEST_F(AgentSigning, UserAgentLocksAfterEightHoursByDefaultAndTheSystemInstanceNever) {
  system_instance_ = false;
  socket_ = run_dir_ / "user" / "agent.sock";
  start_agent();
  ASSERT_FALSE(HasFatalFailure());
  unlock();
  auto user = cv({"status", "--json"}, false);
  ASSERT_EQ(user.exit_code, 0) << user.err;
  const Json::Value left = parse_json(user.out)["vaults"][0]["ttl_left"];
  ASSERT_TRUE(left.isIntegral()) << user.out;
  EXPECT_LE(left.asInt64(), 8 * 3600) << user.out;
  EXPECT_GT(left.asInt64(), 8 * 3600 - 600) << user.out;
  agent_.kill();

  system_instance_ = true;
  socket_ = run_dir_ / "agent.sock";
  start_agent();
  ASSERT_FALSE(HasFatalFailure());
  unlock();
  auto system = cv({"status", "--json"}, false);
  ASSERT_EQ(system.exit_code, 0) << system.err;
  EXPECT_TRUE(parse_json(system.out)["vaults"][0]["ttl_left"].isNull()) << system.out;
}

// A systemd unit is what the peer's cgroup says (sd_pid_get_unit). CI machines do not
// boot systemd, so the test puts the client into a cgroup named like a service itself, in
// every hierarchy systemd reads (the unified one, and the named v1 one of a hybrid setup).
class UnitCgroup {
 public:
  explicit UnitCgroup(const std::string& unit) {
    for (const char* root :
         {"/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup"}) {
      const fs::path dir = fs::path(root) / "system.slice" / unit;
      std::error_code ec;
      if (!fs::exists(fs::path(root) / "cgroup.procs", ec)) continue;
      if (fs::create_directories(dir, ec) || fs::exists(dir / "cgroup.procs", ec))
        dirs_.push_back(dir);
    }
  }
  ~UnitCgroup() {
    for (const auto& d : dirs_) ::rmdir(d.c_str());
  }
  bool usable() const { return !dirs_.empty(); }
  // `argv`, started inside the cgroup.
  std::vector<std::string> wrap(const std::vector<std::string>& argv) const {
    std::string join;
    for (const auto& d : dirs_) join += "echo $$ > '" + (d / "cgroup.procs").string() + "'; ";
    std::vector<std::string> out = {"sh", "-c", join + "exec \"$@\"", "sh"};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }

 private:
  std::vector<fs::path> dirs_;
};

TEST_F(AgentSigning, UnitRuleAdmitsTheServiceAndAnExeRuleRefusesTheProgram) {
  const std::string unit = "cvtest-" + std::to_string(::getpid()) + ".service";
  UnitCgroup cgroup(unit);
  if (!cgroup.usable()) GTEST_SKIP() << "no writable cgroup hierarchy to place a client in";
  start_agent();
  unlock();
  ASSERT_EQ(cv({"access", "api", "allow", "--unit", unit}).exit_code, 0);
  const fs::path sig = out_ / "sig";
  const std::vector<std::string> openssl = {"openssl",
                                            "pkeyutl",
                                            "-sign",
                                            "-provider-path",
                                            (run_dir_ / "ossl-modules").string(),
                                            "-provider",
                                            "certvault",
                                            "-provider",
                                            "default",
                                            "-inkey",
                                            "certvault:api",
                                            "-rawin",
                                            "-digest",
                                            "sha256",
                                            "-in",
                                            data_.string(),
                                            "-out",
                                            sig.string()};
  auto outside = run(as_client(openssl), {}, 60s);
  EXPECT_NE(outside.exit_code, 0);
  EXPECT_TRUE(contains(outside.err, "no rule allows uid")) << outside.err;
  auto inside = run(cgroup.wrap(as_client(openssl)), {}, 60s);
  ASSERT_EQ(inside.exit_code, 0) << inside.err;
  EXPECT_TRUE(contains(audit_log(), "\"unit\":\"" + unit + "\"")) << audit_log();
  // The agent runs as root, so it reads the program of another user's process.
  ASSERT_EQ(cv({"access", "api", "deny", "--exe", "/usr/bin/openssl"}).exit_code, 0);
  auto denied = run(cgroup.wrap(as_client(openssl)), {}, 60s);
  EXPECT_NE(denied.exit_code, 0);
  EXPECT_TRUE(contains(denied.err, "deny exe /usr/bin/openssl")) << denied.err;
}

TEST_F(AgentSigning, GroupRuleAdmitsItsMembers) {
  start_agent();
  ASSERT_EQ(cv({"access", "api", "allow", "--gid", kAgentGroup}).exit_code, 0);
  unlock();
  auto r = sign_as_client();
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// An `allow --exe` rule admits that program only: the same user running a copy of openssl
// from another path is refused. Can fail: an agent that matched an allow rule on the uid
// alone, or took an executable it could not tell apart for a match, lets the copy sign.
TEST_F(AgentSigning, AllowExeRuleAdmitsThatProgramAndRefusesAnotherOfTheSameUser) {
  start_agent();
  unlock();
  ASSERT_EQ(cv({"access", "api", "allow", "--exe", "/usr/bin/openssl"}).exit_code, 0);
  auto admitted = sign_as_client();
  EXPECT_EQ(admitted.exit_code, 0) << admitted.err;
  const fs::path copy = run_dir_ / "openssl-copy";
  fs::copy_file("/usr/bin/openssl", copy);
  ::chmod(copy.c_str(), 0755);
  auto refused = sign_as_client("certvault:api", copy.string());
  EXPECT_NE(refused.exit_code, 0);
  const std::string uid = std::to_string(client_uid_);
  EXPECT_TRUE(contains(refused.err, "refuses uid " + uid + " the key 'api'")) << refused.err;
  EXPECT_TRUE(contains(refused.err, "no rule allows uid " + uid)) << refused.err;
  bool copy_refused_in_audit = false;
  for (const auto& e : audit_events())
    copy_refused_in_audit |=
        e["result"].asString() == "refused" && e["peer"]["exe"].asString() == copy.string();
  EXPECT_TRUE(copy_refused_in_audit) << audit_log();
}

// docs/agent.md, "Who may use what": "`--exe PATH` ... is refused unless the vault's owner
// is root": an agent that runs as another user cannot read other users' /proc/PID/exe, so
// such a rule could never admit anyone. Can fail: a CLI, or an agent asked directly
// (kSetAccess), that stored the rule leaves the owner believing openssl alone may sign.
TEST_F(AgentSigning, ExeRuleIsRefusedWithTheReasonWhenTheVaultIsNotRoots) {
  // The vault's owner, and its agent: the client user, on its own copy of the vault.
  const fs::path home = start_agent_of("owner", client_uid_, client_gid_, {"--init-groups"});
  ASSERT_FALSE(HasFailure());
  const fs::path pin = write_secret_file(run_dir_ / "owner-pin", kPin);
  ASSERT_EQ(::chown(pin.c_str(), client_uid_, client_gid_), 0);
  auto as_owner = [&](const std::vector<std::string>& args) {
    std::vector<std::string> argv = {(home / "certvault").string(), "--vault",
                                     (home / "vault").string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(as_client(argv), {}, 60s);
  };
  auto unlocked = as_owner({"--pin-file", pin.string(), "unlock"});
  ASSERT_EQ(unlocked.exit_code, 0) << unlocked.err;
  const std::string reason = "--exe rules are honoured only by an agent running as root";
  for (const char* verdict : {"allow", "deny"}) {
    auto refused = as_owner({"access", "api", verdict, "--exe", "/usr/bin/openssl"});
    EXPECT_NE(refused.exit_code, 0) << verdict;
    EXPECT_TRUE(contains(refused.err, reason)) << refused.err;
    EXPECT_TRUE(contains(refused.err, "this vault belongs to uid " + std::to_string(client_uid_)))
        << refused.err;
  }
  // The agent refuses it too, asked directly by the owner.
  const pid_t child = fork_child(30s, [&]() -> std::string {
    if (!become(kClientUser, client_uid_, client_gid_)) return "cannot become the client user";
    certvault::agent::Client client(socket_);
    certvault::agent::Frame f(certvault::agent::Type::kSetAccess);
    f.add(certvault::agent::Tag::kVault, certvault::agent::vault_path_for_agent(home / "vault"));
    f.add(certvault::agent::Tag::kNickname, "api");
    f.add(certvault::agent::Tag::kJson,
          R"({"op":"allow","kind":"exe","value":"/usr/bin/openssl"})");
    auto reply = client.call(f);
    if (reply)
      return "the agent stored an --exe rule in a vault of uid " + std::to_string(::getuid());
    if (!contains(reply.error().message, reason)) return "refused saying: " + reply.error().message;
    return "";
  });
  auto status = wait_children({child}, 60s);
  EXPECT_TRUE(WIFEXITED(status[child]) && WEXITSTATUS(status[child]) == 0)
      << describe_status(status[child]);
  // Nothing was stored; a --uid rule is taken as ever.
  auto shown = as_owner({"access", "api", "show"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_FALSE(contains(shown.out, "exe")) << shown.out;
  auto by_uid = as_owner({"access", "api", "allow", "--uid", "12345"});
  EXPECT_EQ(by_uid.exit_code, 0) << by_uid.err;
  EXPECT_TRUE(contains(by_uid.out, "allow uid 12345")) << by_uid.out;
}

// docs/agent.md, "Who may use what": "An entry made `public` lets any peer list and resolve
// its certificate and public key; signing still needs a rule." Can fail: an agent that
// took `public` for an allow rule lets the peer sign; one that ignored it keeps the public
// key from it; `private` that left the mark keeps showing it.
TEST_F(AgentSigning, PublicEntryIsListedToAPeerWithNoRuleThatStillCannotSign) {
  start_agent();
  unlock();
  const std::string uid = std::to_string(client_uid_);
  auto public_key = [&] { return client_openssl("pkey", {"-in", "certvault:api", "-pubout"}); };
  auto hidden = public_key();
  EXPECT_NE(hidden.exit_code, 0);
  EXPECT_TRUE(contains(hidden.err, "no rule allows uid " + uid)) << hidden.err;

  auto made = cv({"access", "api", "public"}, false);
  ASSERT_EQ(made.exit_code, 0) << made.err;
  EXPECT_TRUE(
      contains(made.out, "listing of its certificate and public key: anyone who reaches the agent"))
      << made.out;
  auto listed = public_key();
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  auto expected = run({"env", "OPENSSL_CONF=/dev/null", "openssl", "x509", "-noout", "-pubkey",
                       "-in", cert_.string()});
  ASSERT_EQ(expected.exit_code, 0) << expected.err;
  EXPECT_EQ(listed.out, expected.out);
  auto certificate = client_openssl("storeutl", {"-certs", "-noout", "-text", "certvault:api"});
  EXPECT_EQ(certificate.exit_code, 0) << certificate.err;
  EXPECT_TRUE(contains(certificate.out, "Subject: CN=api")) << certificate.out;

  auto sign = sign_as_client();
  EXPECT_NE(sign.exit_code, 0);
  EXPECT_TRUE(contains(sign.err, "refuses uid " + uid + " the key 'api'")) << sign.err;

  auto unmade = cv({"access", "api", "private"}, false);
  ASSERT_EQ(unmade.exit_code, 0) << unmade.err;
  EXPECT_TRUE(contains(unmade.out, "listing of its certificate and public key: as for the key"))
      << unmade.out;
  EXPECT_NE(public_key().exit_code, 0);
}

// docs/cli.md, "certvault access": `show` prints the rules in order, `forget` drops the
// rule about one peer, `reset` every rule. Can fail: a `forget` that dropped the wrong
// rule (or none) leaves the client signing; `show` that printed the vault's rules in
// another order, or not at all, misleads the owner.
TEST_F(AgentSigning, AccessShowPrintsTheRulesAndForgetAndResetTakeThemAway) {
  start_agent();
  unlock();
  const std::string uid = std::to_string(client_uid_);
  allow_client();
  ASSERT_EQ(cv({"access", "api", "deny", "--gid", "12345"}).exit_code, 0);
  auto shown = cv({"access", "api", "show"}, false);
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_TRUE(contains(shown.out, "  allow uid " + uid + "\n  deny gid 12345\n")) << shown.out;
  auto json = cv({"--json", "access", "api", "show"}, false);
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const Json::Value rules = parse_json(json.out)["rules"];
  ASSERT_EQ(rules.size(), 2u) << json.out;
  EXPECT_EQ(rules[0]["verdict"].asString(), "allow");
  EXPECT_EQ(rules[0]["value"].asString(), uid);
  EXPECT_EQ(rules[1]["kind"].asString(), "gid");
  EXPECT_EQ(sign_as_client().exit_code, 0);

  auto forgot = cv({"access", "api", "forget", "--uid", uid}, false);
  ASSERT_EQ(forgot.exit_code, 0) << forgot.err;
  EXPECT_FALSE(contains(forgot.out, "allow uid")) << forgot.out;
  EXPECT_TRUE(contains(forgot.out, "deny gid 12345")) << forgot.out;
  auto refused = sign_as_client();
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_TRUE(contains(refused.err, "no rule allows uid " + uid)) << refused.err;
  auto again = cv({"access", "api", "forget", "--uid", uid}, false);
  EXPECT_NE(again.exit_code, 0);
  EXPECT_TRUE(contains(again.err, "'api' has no rule about uid " + uid)) << again.err;

  allow_client();
  ASSERT_EQ(sign_as_client().exit_code, 0);
  auto reset = cv({"access", "api", "reset"}, false);
  ASSERT_EQ(reset.exit_code, 0) << reset.err;
  EXPECT_TRUE(contains(reset.out, "(no other rule: everyone else is refused)")) << reset.out;
  EXPECT_FALSE(contains(reset.out, "gid 12345")) << reset.out;
  EXPECT_NE(sign_as_client().exit_code, 0);
  auto empty = cv({"--json", "access", "api", "show"}, false);
  EXPECT_EQ(parse_json(empty.out)["rules"].size(), 0u) << empty.out;
}

TEST_F(AgentSigning, AfterLockNothingSigns) {
  start_agent();
  allow_client();
  unlock();
  ASSERT_EQ(sign_as_client().exit_code, 0);
  auto locked = cv({"lock"}, false);
  ASSERT_EQ(locked.exit_code, 0) << locked.err;
  auto r = sign_as_client();
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "is locked; run certvault unlock")) << r.err;
}

TEST_F(AgentSigning, AfterTheTtlNothingSigns) {
  start_agent();
  allow_client();
  unlock();
  ASSERT_EQ(sign_as_client().exit_code, 0);
  // A new TTL, given again with the PIN, counts from now: a short one, after the first
  // signature, so that a slow (sanitizer) build cannot outlast it before the signature.
  unlock({"--ttl", "1s"});
  std::this_thread::sleep_for(2500ms);
  auto r = sign_as_client();
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "is locked")) << r.err;
  auto status = cv({"status", "--json"}, false);
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_FALSE(parse_json(status.out)["vaults"][0]["unlocked"].asBool()) << status.out;
}

// docs/agent.md: "The TTL is **absolute**, like `ssh-add -t`: the vault locks that long
// after the unlock, whether it is used or not." Can fail: a TTL counted from the last
// request (an idle timer) never runs out while a client keeps signing: the loop below then
// signs on until the TTL and 8 s more have passed, and is never refused.
TEST_F(AgentSigning, TtlRunsOutFromTheUnlockEvenWhileAClientKeepsSigning) {
  JournalCapture journal(tmp_.path());  // the journal's line too, where it can be caught
  const bool journal_caught = journal.usable();
  start_agent({}, journal_caught ? journal.runner() : std::vector<std::string>{});
  allow_client();
  constexpr auto kTtl = 4s;
  const auto unlocking = std::chrono::steady_clock::now();
  unlock({"--ttl", "4s"});
  int signatures = 0;
  std::string refusal;
  while (refusal.empty() && signatures < 1000 &&
         std::chrono::steady_clock::now() < unlocking + kTtl + 8s) {
    auto r = sign_as_client();
    if (r.exit_code != 0)
      refusal = r.err.empty() ? "exit " + std::to_string(r.exit_code) : r.err;
    else
      ++signatures;
  }
  // Every signature until the lock went through, one after the other.
  EXPECT_GE(signatures, 2) << "the client did not keep signing during the TTL: " << refusal;
  ASSERT_FALSE(refusal.empty()) << "still signing after the TTL and 8 s more (" << signatures
                                << " signatures)";
  EXPECT_TRUE(contains(refusal, "vault 'ops' is locked; run certvault unlock")) << refusal;
  auto status = cv({"status", "--json"}, false);
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_FALSE(parse_json(status.out)["vaults"][0]["unlocked"].asBool()) << status.out;
  int audited = 0;
  for (const auto& e : audit_events())
    audited += e["action"].asString() == "sign" && e["result"].asString() == "ok";
  EXPECT_EQ(audited, signatures) << audit_log();
  if (journal_caught) {
    EXPECT_TRUE(journal.said("vault locked: its time to live ran out")) << journal.all();
  }
}

// docs/agent.md: the agent locks the vault "when it stops"; SIGTERM drops every decrypted
// key and the vault key, and the journal gets the lock and, at shutdown, one line per key
// used. Can fail: an agent that ended on SIGTERM without locking (or died of the signal)
// writes no such lines and does not exit 0.
TEST_F(AgentSigning, SigtermLocksSaysSoInTheJournalAndARestartedAgentServesTheVaultLocked) {
  JournalCapture journal(tmp_.path());
  if (!journal.usable()) GTEST_SKIP() << "cannot give the agent a journal of the test's own";
  allow_client();
  start_agent({}, journal.runner());
  ASSERT_FALSE(HasFatalFailure());
  unlock();
  ASSERT_EQ(sign_as_client().exit_code, 0);
  ASSERT_TRUE(journal.said("certvault agent: vault unlocked by uid 0")) << journal.all();
  ASSERT_EQ(::kill(agent_.pid(), SIGTERM), 0);
  ASSERT_TRUE(agent_.exited_within(30s)) << "the agent did not end within 30 s of SIGTERM";
  EXPECT_TRUE(WIFEXITED(agent_.status()) && WEXITSTATUS(agent_.status()) == 0)
      << describe_status(agent_.status()) << "\n"
      << read_file(tmp_ / "agent.err");
  EXPECT_TRUE(journal.said("certvault agent: every vault locked: SIGTERM")) << journal.all();
  EXPECT_TRUE(journal.said("1 signatures with 'api' in vault 'ops'")) << journal.all();
  // A program gets an error at once, not a hang.
  auto gone = sign_as_client();
  EXPECT_FALSE(gone.timed_out);
  EXPECT_NE(gone.exit_code, 0);
  // Started again, the agent serves the vault locked: nothing signs until the unlock.
  start_agent();
  ASSERT_FALSE(HasFatalFailure());
  auto locked = sign_as_client();
  EXPECT_NE(locked.exit_code, 0);
  EXPECT_TRUE(contains(locked.err, "vault 'ops' is locked; run certvault unlock")) << locked.err;
  auto status = cv({"status", "--json"}, false);
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_FALSE(parse_json(status.out)["vaults"][0]["unlocked"].asBool()) << status.out;
  unlock();
  EXPECT_EQ(sign_as_client().exit_code, 0);
}

// docs/agent.md, "Audit": while the agent runs, the journal gets one line per key used in
// each period (`--summary-every`, a quarter of an hour by default) with its count of
// signatures, and nothing for a period in which no key signed. Can fail: an agent that
// summarised only when it stops says nothing while it runs; one that did not start its
// counts again says more signatures than were made, period after period.
TEST_F(AgentSigning, WhileItRunsTheJournalSaysHowManySignaturesEachKeyMadeInEachPeriod) {
  JournalCapture journal(tmp_.path());
  if (!journal.usable()) GTEST_SKIP() << "cannot give the agent a journal of the test's own";
  allow_client();
  start_agent({"--summary-every", "1s"}, journal.runner());
  ASSERT_FALSE(HasFatalFailure());
  unlock();
  const int made = 3;
  for (int i = 0; i < made; ++i) ASSERT_EQ(sign_as_client().exit_code, 0);
  // The signatures the summaries so far count for 'api', and how many lines said them.
  const std::regex line("^certvault agent: ([0-9]+) signatures with 'api' in vault 'ops'$");
  auto counted = [&] {
    std::pair<int, int> sum_and_lines{0, 0};
    for (const auto& m : journal.messages()) {
      std::smatch match;
      if (!std::regex_match(m, match, line)) continue;
      sum_and_lines.first += std::stoi(match[1]);
      ++sum_and_lines.second;
    }
    return sum_and_lines;
  };
  for (int i = 0; i < 150 && counted().first < made; ++i) std::this_thread::sleep_for(100ms);
  EXPECT_EQ(counted().first, made) << journal.all();
  // Three more periods with no signature: no new line, and the counts do not come back.
  const int lines = counted().second;
  std::this_thread::sleep_for(3500ms);
  EXPECT_EQ(counted(), std::pair(made, lines)) << journal.all();
  EXPECT_FALSE(agent_.exited_within(0ms)) << "the summaries came from an agent that had stopped";
}

// docs/agent.md, "Rotation, disable, delete": `certvault delete` takes effect at once,
// also when another process deletes in-process (with --pin-file, not through the agent)
// while a program signs in a loop on one connection. Can fail: an agent that went on
// signing with the key its connection used last (its fast path without the vault's lock)
// after the manifest changed signs after the delete.
TEST_F(AgentSigning, EntryDeletedByAnotherProcessIsRefusedAtTheNextSignature) {
  start_agent();
  allow_client();
  unlock();
  int signing[2], deleted[2];  // the child: it has signed; the parent: it has deleted
  ASSERT_EQ(::pipe2(signing, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(deleted, O_CLOEXEC), 0);
  const fs::path refusal = out_ / "refusal";
  const pid_t child = fork_child(120s, [&]() -> std::string {
    ::close(signing[0]);
    ::close(deleted[1]);
    if (!become(kClientUser, client_uid_, client_gid_)) return "cannot become the client user";
    auto client = std::make_shared<certvault::agent::Client>(socket_);
    auto entry = certvault::agent::resolve(client, "", "api", std::nullopt);
    if (!entry || !*entry) return "cannot resolve 'api'";
    PkeyPtr pub = public_key_of((*entry)->spki);
    if (!pub) return "the resolved public key does not decode";
    bool told = false;  // the parent has deleted the entry
    for (int i = 0; i < 1'000'000; ++i) {
      pollfd p{deleted[0], POLLIN, 0};
      told = told || ::poll(&p, 1, 0) == 1;
      const std::string r = sign_and_verify((*entry)->key, pub.get(), 1, std::to_string(i));
      if (r.empty()) {
        if (told) return "signature " + std::to_string(i) + " went through after the delete";
        if (i == 0 && ::write(signing[1], "x", 1) != 1) return "cannot report";
        continue;
      }
      if (i == 0) return "the first signature failed: " + r;
      // Refused: the delete may have been committed before the parent says so.
      if (!told && ::poll(&p, 1, 60'000) != 1) return "refused before any delete: " + r;
      write_file(refusal, r);
      return "";
    }
    return "never refused";
  });
  ASSERT_GT(child, 0) << "fork failed";
  ::close(signing[1]);
  ::close(deleted[0]);
  pollfd p{signing[0], POLLIN, 0};
  char byte = 0;
  const bool signs = ::poll(&p, 1, 60'000) == 1 && ::read(signing[0], &byte, 1) == 1;
  auto removed = signs ? cv({"delete", "api", "--yes"}) : RunResult{};
  const bool told = ::write(deleted[1], "x", 1) == 1;
  ::close(signing[0]);
  ::close(deleted[1]);
  auto status = wait_children({child}, 90s);
  ASSERT_TRUE(signs) << "the program did not sign";
  ASSERT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_FALSE(contains(removed.err, "done by the agent")) << removed.err;
  ASSERT_TRUE(told);
  EXPECT_TRUE(WIFEXITED(status[child]) && WEXITSTATUS(status[child]) == 0)
      << describe_status(status[child]);
  const std::string said = fs::exists(refusal) ? read_file(refusal) : std::string();
  EXPECT_TRUE(contains(said, "'api'")) << said;
}

TEST_F(AgentSigning, DisabledEntryIsRefusedAtOnceAndRotationIsSeenWithoutRestart) {
  start_agent();
  allow_client();
  unlock();
  ASSERT_EQ(sign_as_client().exit_code, 0);
  const std::string old_serial = vault().find("api")->current()->serial;
  // Another process rotates: the agent signs with the new key at the next request.
  ASSERT_EQ(cv({"rotate", "api"}).exit_code, 0);
  cert_ = write_certificate("api");
  ASSERT_FALSE(cert_.empty());
  EXPECT_EQ(sign_as_client().exit_code, 0);
  // The superseded generation keeps signing for a program that still holds it.
  auto old = client_openssl("pkey", {"-in", "certvault:api?serial=" + old_serial, "-pubout"});
  EXPECT_EQ(old.exit_code, 0) << old.err;
  ASSERT_EQ(cv({"disable", "api"}).exit_code, 0);
  auto r = sign_as_client();
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "disabled")) << r.err;
}

TEST_F(AgentSigning, EverySignatureIsAuditedOnceWithItsPeer) {
  start_agent();
  allow_client();
  unlock();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(sign_as_client().exit_code, 0);
  int signatures = 0;
  for (const auto& e : audit_events()) {
    if (e["action"].asString() != "sign") continue;
    ++signatures;
    EXPECT_EQ(e["result"].asString(), "ok");
    EXPECT_EQ(e["peer"]["uid"].asUInt(), client_uid_);
    EXPECT_EQ(e["peer"]["exe"].asString(), "/usr/bin/openssl");
    EXPECT_EQ(e["nickname"].asString(), "api");
    EXPECT_EQ(e["generation"].asUInt(), 1u);
    EXPECT_EQ(e["mechanism"].asString(), "ecdsa/sha256");
  }
  EXPECT_EQ(signatures, 3) << audit_log();
  EXPECT_EQ(file_mode(audit_), 0600u);
  EXPECT_FALSE(contains(audit_log(), std::string(kPin)));
  auto listed = cv({"audit", "--audit-log", audit_.string(), "--nickname", "api", "--json"}, false);
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(parse_json(listed.out).size(), 3u) << listed.out;
}

// docs/agent.md, "Audit": "When a line would take it past `--audit-log-max` bytes ... it
// is renamed to `FILE.1` ... and a new file begun", and `certvault audit` "reads `FILE.1`
// (the older lines) and then `FILE`". Can fail: a rotation that renamed the file while a
// line was being written, or wrote the line that rotated it to neither file, loses or
// splits a line (the counts below differ, or a line does not parse); a reader that
// ignored FILE.1 lists only the newer signatures; a new file opened with the umask's mode
// lets others read who signed what.
TEST_F(AgentSigning, AuditLogRotatesBySizeKeepingEveryLineAndAuditReadsBothFiles) {
  constexpr uint64_t kMax = 4096;  // a dozen lines: one rotation within the bound below
  start_agent({"--audit-log-max", std::to_string(kMax)});
  allow_client();
  unlock();
  const fs::path rotated = audit_.string() + ".1";
  int signatures = 0, after_rotation = 0;
  while (signatures < 40 && after_rotation < 3) {
    ASSERT_EQ(sign_as_client().exit_code, 0) << "signature " << signatures;
    ++signatures;
    if (fs::exists(rotated)) ++after_rotation;
  }
  ASSERT_TRUE(fs::exists(rotated)) << signatures << " signatures and no " << rotated;
  EXPECT_EQ(file_mode(rotated), 0600u);
  EXPECT_EQ(file_mode(audit_), 0600u);
  const std::string older = read_file(rotated), newer = read_file(audit_);
  EXPECT_LE(older.size(), kMax);
  EXPECT_LE(newer.size(), kMax);
  // Every line whole, in one file or the other: the unlock and each signature once.
  int unlocks = 0, signed_ok = 0;
  for (const std::string* text : {&older, &newer}) {
    ASSERT_TRUE(!text->empty() && text->back() == '\n') << *text;
    for (const auto& e : audit_lines(text->substr(0, text->size() - 1))) {
      ASSERT_TRUE(e.isObject()) << "a line that does not parse in:\n" << *text;
      unlocks += e["action"].asString() == "unlock";
      signed_ok += e["action"].asString() == "sign" && e["result"].asString() == "ok";
    }
  }
  EXPECT_EQ(unlocks, 1) << older << newer;
  EXPECT_EQ(signed_ok, signatures) << older << newer;
  // `certvault audit` lists both files, the older lines first.
  auto listed = cv({"audit", "--audit-log", audit_.string(), "--nickname", "api", "--json"}, false);
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  const Json::Value all = parse_json(listed.out);
  ASSERT_EQ(all.size(), static_cast<unsigned>(signatures)) << listed.out;
  for (unsigned i = 1; i < all.size(); ++i)
    EXPECT_LE(all[i - 1]["time"].asString(), all[i]["time"].asString()) << listed.out;
}

// An audit line as the agent writes it, at `time` (ISO 8601 UTC, milliseconds).
std::string crafted_audit_line(const std::string& time, const std::string& nickname) {
  return R"({"time":")" + time + R"(","vault":"ops","action":"sign","nickname":")" + nickname +
         R"(","result":"ok","peer":{"uid":1000,"gid":1000,"pid":42}})" + "\n";
}

// docs/agent.md, "Audit": "`--since` takes a day (`YYYY-MM-DD`, UTC, from its start) or `Nd`
// (the last N days)", over FILE.1 and FILE. The files are crafted with known times rather
// than waited for. Can fail: a day taken as its end (or in local time) drops the lines of
// that day, or keeps the last second of the day before; `Nd` counted from midnight or in
// hours keeps the line from three days ago or drops yesterday's.
TEST_F(AgentTest, AuditSinceKeepsTheLinesFromThatDayOnOverBothFiles) {
  const certvault::Time now = certvault::now();
  auto at = [](certvault::Time t) {  // "YYYY-MM-DDTHH:MM:SS.000Z"
    const std::string s = certvault::format_time(t);
    return s.substr(0, 19) + ".000Z";
  };
  write_file(audit_.string() + ".1", crafted_audit_line("2020-01-01T23:59:59.999Z", "before") +
                                         crafted_audit_line("2020-01-02T00:00:00.000Z", "first") +
                                         crafted_audit_line(at(now - 3 * kDay - 3600), "old"));
  write_file(audit_, crafted_audit_line(at(now - kDay + 3600), "yesterday") +
                         crafted_audit_line(at(now - 60), "recent"));
  auto nicknames = [&](const std::string& since) {
    auto r = cv({"audit", "--audit-log", audit_.string(), "--since", since, "--json"}, false);
    EXPECT_EQ(r.exit_code, 0) << since << ": " << r.err;
    std::string out;
    for (const auto& e : parse_json(r.out)) out += e["nickname"].asString() + " ";
    return out;
  };
  EXPECT_EQ(nicknames("2020-01-02"), "first old yesterday recent ");
  EXPECT_EQ(nicknames("2d"), "yesterday recent ");
  EXPECT_EQ(nicknames("1999-12-31"), "before first old yesterday recent ");
  EXPECT_EQ(nicknames(certvault::format_time(now + kDay).substr(0, 10)), "");
  // Not a date: refused, saying what to write.
  auto bad = cv({"audit", "--audit-log", audit_.string(), "--since", "yesterday"}, false);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_TRUE(contains(bad.err, "YYYY-MM-DD or Nd")) << bad.err;
  // With only the rotated file left (FILE removed by hand), its lines are still read.
  fs::remove(audit_);
  EXPECT_EQ(nicknames("2020-01-02"), "first old ");
}

TEST_F(AgentSigning, StatusShowsTheVaultAndWhatItServed) {
  start_agent();
  allow_client();
  unlock({"--ttl", "1h"});
  ASSERT_EQ(sign_as_client().exit_code, 0);
  auto r = cv({"status", "--json"}, false);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json::Value v = parse_json(r.out)["vaults"][0];
  EXPECT_EQ(v["label"].asString(), "ops");
  EXPECT_TRUE(v["unlocked"].asBool());
  EXPECT_TRUE(v["default"].asBool());
  EXPECT_GT(v["ttl_left"].asInt64(), 3500);
  EXPECT_LE(v["ttl_left"].asInt64(), 3600);
  EXPECT_EQ(v["signatures"].asUInt64(), 1u);
  auto text = cv({"status"}, false);
  EXPECT_TRUE(contains(text.out, "unlocked")) << text.out;
}

TEST_F(AgentSigning, WrongPinAtUnlockIsCountedAndSaysSo) {
  start_agent();
  const fs::path wrong = write_secret_file(tmp_ / "wrong", "not-the-pin");
  auto r = run({"env", "CERTVAULT_AGENT_SOCK=" + socket_.string(), cli(), "--vault", dir_.string(),
                "--pin-file", wrong.string(), "unlock"});
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_TRUE(contains(r.err, "wrong PIN")) << r.err;
  EXPECT_EQ(vault().pin_failures(), 1);
}

// --- mutual TLS -----------------------------------------------------------------------

class AgentTls : public AgentSigning {
 protected:
  void SetUp() override {
    AgentSigning::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    server_cert_ = tmp_ / "server.pem";
    server_key_ = tmp_ / "server.key";
    auto made = make_server_cert(server_cert_, server_key_);
    ASSERT_EQ(made.exit_code, 0) << made.err;
    write_file(run_dir_ / "server.pem", read_file(server_cert_), 0644);
  }

  void expect_handshake(const std::string& key, const std::vector<std::string>& server = {}) {
    auto s = TlsServer::start(tmp_.path(), server_cert_, server_key_, vault_ca_, server);
    ASSERT_TRUE(s);
    auto c = client_openssl(
        "s_client",
        {"-connect", "127.0.0.1:" + std::to_string(s->port()), "-cert", "certvault:api", "-key",
         key, "-CAfile", (run_dir_ / "server.pem").string(), "-verify_return_error", "-ign_eof"},
        "GET / HTTP/1.0\r\n\r\n");
    const std::string log = s->log();
    EXPECT_EQ(c.exit_code, 0) << c.out << c.err << "\nserver:\n" << log;
    EXPECT_TRUE(contains(c.out, "Subject: CN=api\n")) << c.out;
    EXPECT_TRUE(contains(log, "depth=0 CN = api\nverify return:1")) << log;
  }

  fs::path server_cert_, server_key_;
};

TEST_F(AgentTls, AnotherUserDoesMutualTlsByUriOverTls12And13) {
  start_agent();
  allow_client();
  unlock();
  expect_handshake("certvault:api", {"-tls1_3"});
  expect_handshake("certvault:api", {"-tls1_2"});
}

TEST_F(AgentTls, UriPemKeyFileWorksThroughTheAgent) {
  start_agent();
  allow_client();
  unlock();
  const fs::path key_file = run_dir_ / "api.key";
  auto made = cv({"uri", "api", "--pem", "-o", key_file.string()}, false);
  ASSERT_EQ(made.exit_code, 0) << made.err;
  ASSERT_EQ(::chown(key_file.c_str(), client_uid_, client_gid_), 0) << std::strerror(errno);
  expect_handshake(key_file.string());
}

TEST_F(AgentTls, RsaKeySignsPssAndPkcs1ThroughTheAgent) {
  issue("rsa", 100, certvault::KeyType::kRsa2048);
  start_agent();
  ASSERT_EQ(cv({"access", "rsa", "allow", "--uid", std::to_string(client_uid_)}).exit_code, 0);
  unlock();
  const fs::path cert = write_certificate("rsa");
  ASSERT_FALSE(cert.empty());
  for (const std::vector<std::string>& opts :
       {std::vector<std::string>{},
        {"-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", "rsa_pss_saltlen:digest"}}) {
    const fs::path sig = out_ / "rsa.sig";
    std::vector<std::string> args = {"-sign",  "-inkey", "certvault:rsa", "-rawin", "-digest",
                                     "sha256", "-in",    data_.string(),  "-out",   sig.string()};
    args.insert(args.end(), opts.begin(), opts.end());
    auto r = client_openssl("pkeyutl", args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> verify_opts = {"-digest", "sha256"};
    verify_opts.insert(verify_opts.end(), opts.begin(), opts.end());
    auto check = verify_signature(cert, data_, sig, verify_opts);
    EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  }
}

// --- faults -----------------------------------------------------------------------------

int connect_raw(const fs::path& socket) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// What connect() to `socket` gives a process of `uid`:`gid` with only the supplementary
// `groups`: 0, or its errno; -1 when the child could not take that identity.
int connect_errno_as(const fs::path& socket, uid_t uid, gid_t gid,
                     const std::vector<gid_t>& groups) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::alarm(30);
    if (::setgroups(groups.size(), groups.data()) != 0 || ::setresgid(gid, gid, gid) != 0 ||
        ::setresuid(uid, uid, uid) != 0)
      ::_exit(255);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket.c_str(), sizeof addr.sun_path - 1);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::_exit(ok ? 0 : errno);
  }
  if (pid < 0) return -1;
  const int status = wait_children({pid}, 60s)[pid];
  if (!WIFEXITED(status) || WEXITSTATUS(status) == 255) return -1;
  return WEXITSTATUS(status);
}

// docs/agent.md, "Start the agent": a user's agent listens on "a socket of mode 0600 in a
// directory of mode 0700"; "The system instance": its socket is "mode 0660, group
// certvault" (the group client_user() makes, as sysusers.d does), so that services in the
// group connect. Can fail: a user agent whose socket took the group's bits lets another
// user of that group connect; a system instance that left the socket in root's group
// keeps every service out.
TEST_F(AgentTest, UserAgentsSocketIsItsOwnersAloneAndTheSystemInstancesIsItsGroups) {
  const group* agent_group = ::getgrnam(kAgentGroup);
  ASSERT_TRUE(agent_group);
  const gid_t socket_gid = agent_group->gr_gid;
  const uid_t stranger = 61020;  // no passwd entry and no group: the kernel's ids suffice

  system_instance_ = false;
  socket_ = run_dir_ / "user" / "agent.sock";  // a directory the agent makes
  start_agent();
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(file_mode(socket_), 0600u);
  EXPECT_EQ(file_mode(socket_.parent_path()), 0700u);
  auto status = cv({"status"}, false);
  EXPECT_EQ(status.exit_code, 0) << status.err;
  // With the directory opened, the socket alone keeps a member of certvault out.
  ASSERT_EQ(::chmod(socket_.parent_path().c_str(), 0755), 0);
  EXPECT_EQ(connect_errno_as(socket_, client_uid_, client_gid_, {socket_gid}), EACCES);
  agent_.kill();

  system_instance_ = true;
  socket_ = run_dir_ / "agent.sock";
  start_agent();
  ASSERT_FALSE(HasFatalFailure());
  struct stat st {};
  ASSERT_EQ(::stat(socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(st.st_gid, socket_gid);
  EXPECT_EQ(connect_errno_as(socket_, client_uid_, client_gid_, {socket_gid}), 0);
  EXPECT_EQ(connect_errno_as(socket_, stranger, stranger, {}), EACCES);
}

// The system instance on a machine without the certvault group (cmd_agent.cc looks it up
// by name; here the agent alone is given an /etc/group without it, in a mount namespace of
// its own): the socket stays 0660, in the agent's own group, so no service gets in by the
// group. Can fail: an agent that chose a group by some other rule, or opened the mode
// wider to make up for the missing group, lets the client user connect.
TEST_F(AgentTest, SystemInstanceWithoutTheCertvaultGroupKeepsItsSocketToItsOwnGroup) {
  if (run({"unshare", "--mount", "true"}).exit_code != 0)
    GTEST_SKIP() << "cannot give the agent an /etc/group of its own (no mount namespace)";
  const group* agent_group = ::getgrnam(kAgentGroup);
  ASSERT_TRUE(agent_group);
  const gid_t socket_gid = agent_group->gr_gid;
  std::istringstream lines(read_file("/etc/group"));
  std::string without;
  for (std::string line; std::getline(lines, line);)
    if (!line.starts_with(std::string(kAgentGroup) + ":")) without += line + "\n";
  const fs::path etc_group = tmp_ / "group";
  write_file(etc_group, without, 0644);
  start_agent({}, {"unshare", "--mount", "sh", "-c",
                   "mount --bind '" + etc_group.string() + "' /etc/group && exec \"$@\"", "sh"});
  ASSERT_FALSE(HasFatalFailure());
  struct stat st {};
  ASSERT_EQ(::stat(socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(st.st_gid, ::getegid());
  EXPECT_EQ(connect_errno_as(socket_, client_uid_, client_gid_, {socket_gid}), EACCES);
  auto status = cv({"status"}, false);
  EXPECT_EQ(status.exit_code, 0) << status.err;
}

TEST_F(AgentSigning, GarbageHalfMessagesAndAThousandIdleConnectionsStopNobody) {
  start_agent();
  allow_client();
  unlock();
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = std::min<rlim_t>(files.rlim_max, 4096);
  ::setrlimit(RLIMIT_NOFILE, &files);
  std::vector<int> held;
  // Garbage: an oversized length, then a frame of an unknown version.
  int garbage = connect_raw(socket_);
  ASSERT_GE(garbage, 0);
  const unsigned char huge[] = {0x7f, 0xff, 0xff, 0xff, 1, 2, 3};
  ASSERT_EQ(::write(garbage, huge, sizeof huge), static_cast<ssize_t>(sizeof huge));
  held.push_back(garbage);
  // Half a message, then silence.
  int half = connect_raw(socket_);
  const unsigned char start[] = {0, 0, 0, 40, 1, 1, 2};
  ASSERT_EQ(::write(half, start, sizeof start), static_cast<ssize_t>(sizeof start));
  held.push_back(half);
  for (int i = 0; i < 1000; ++i) {
    int fd = connect_raw(socket_);
    ASSERT_GE(fd, 0) << "connection " << i;
    held.push_back(fd);
  }
  auto r = sign_as_client();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // The garbage connection was closed by the agent: reading gives end of file.
  char byte = 0;
  timeval tv{5, 0};
  ::setsockopt(garbage, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  // Closed with bytes unread: end of file, or a reset.
  const ssize_t got = ::read(garbage, &byte, 1);
  EXPECT_TRUE(got == 0 || (got < 0 && errno == ECONNRESET)) << got << " " << std::strerror(errno);
  for (int fd : held) ::close(fd);
}

// Can fail: without a cap per uid, the one user's connections take all 8192 the agent
// accepts, and it closes the signing program's connection at once ("did not answer").
TEST_F(AgentSigning, OneUserOpeningMoreConnectionsThanItsShareStopsNoOtherUserFromSigning) {
  const passwd* hog_user = ::getpwnam("nobody");
  const group* agent_group = ::getgrnam(kAgentGroup);
  if (!hog_user || !agent_group) GTEST_SKIP() << "no user 'nobody' to open the connections";
  const uid_t hog_uid = hog_user->pw_uid;
  const gid_t hog_gid = hog_user->pw_gid, socket_gid = agent_group->gr_gid;
  constexpr int kConnections = 8192 + 100;  // more than the agent takes in all
  start_agent();
  allow_client();
  unlock();
  int ready[2], release[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(release, O_CLOEXEC), 0);
  // Another user (in the socket's group) opens connections and holds them until released.
  const pid_t hog = fork_child(120s, [&]() -> std::string {
    ::close(ready[0]);
    ::close(release[1]);
    const rlimit files{kConnections + 100, kConnections + 100};
    const gid_t groups[] = {socket_gid};
    if (::setrlimit(RLIMIT_NOFILE, &files) != 0 || ::setgroups(1, groups) != 0 ||
        ::setresgid(hog_gid, hog_gid, hog_gid) != 0 || ::setresuid(hog_uid, hog_uid, hog_uid) != 0)
      return "cannot become nobody with room for the connections";
    std::vector<int> held;
    for (int i = 0; i < kConnections; ++i) {
      const int fd = connect_raw(socket_);
      if (fd < 0) break;
      held.push_back(fd);
    }
    const std::string opened = std::to_string(held.size()) + "\n";
    if (::write(ready[1], opened.data(), opened.size()) != static_cast<ssize_t>(opened.size()))
      return "cannot report";
    char byte = 0;
    while (::read(release[0], &byte, 1) < 0 && errno == EINTR) {
    }
    for (int fd : held) ::close(fd);
    return "";
  });
  ASSERT_GT(hog, 0) << "fork failed";
  ::close(ready[1]);
  ::close(release[0]);
  struct Release {
    pid_t pid;
    int ready, release;
    ~Release() {
      ::close(release);  // the other user lets go of its connections and ends
      ::close(ready);
      wait_children({pid}, 60s);
    }
  } guard{hog, ready[0], release[1]};

  std::string opened;
  pollfd p{ready[0], POLLIN, 0};
  char byte = 0;
  while (opened.find('\n') == std::string::npos && ::poll(&p, 1, 90'000) == 1 &&
         ::read(ready[0], &byte, 1) == 1)
    opened += byte;
  ASSERT_EQ(opened, std::to_string(kConnections) + "\n") << "the other user's connections";
  // The agent kept 1024 of them; the client user, behind them in the queue, still signs.
  auto r = sign_as_client();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto status = cv({"status", "--json"}, false);
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_LE(parse_json(status.out)["connections"].asUInt(), 1024u + 1) << status.out;
}

// Can fail: with only a cap per user, four users at their share fill every connection the
// agent takes, and the owner's own `certvault status` (or `lock`) is closed at once.
TEST_F(AgentSigning, SeveralUsersTogetherCannotKeepTheOwnerOut) {
  const group* agent_group = ::getgrnam(kAgentGroup);
  ASSERT_TRUE(agent_group);
  const gid_t socket_gid = agent_group->gr_gid;
  // 64 in all: users other than root and the agent's own hold at most 60 together.
  start_agent({"--max-connections", "64", "--max-connections-per-user", "16"});
  constexpr int kUsers = 4, kEach = 20;
  struct Hog {
    pid_t pid;
    int ready, release;
  };
  std::vector<Hog> hogs;
  for (int u = 0; u < kUsers; ++u) {
    int ready[2], release[2];
    ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(release, O_CLOEXEC), 0);
    const uid_t uid = 61001 + u;  // users with no passwd entry: the kernel's uids are enough
    const pid_t pid = fork_child(120s, [&]() -> std::string {
      ::close(ready[0]);
      ::close(release[1]);
      const gid_t groups[] = {socket_gid};
      if (::setgroups(1, groups) != 0 || ::setresgid(uid, uid, uid) != 0 ||
          ::setresuid(uid, uid, uid) != 0)
        return "cannot become uid " + std::to_string(uid);
      std::vector<int> held;
      for (int i = 0; i < kEach; ++i)
        if (const int fd = connect_raw(socket_); fd >= 0) held.push_back(fd);
      if (::write(ready[1], "x", 1) != 1) return "cannot report";
      char byte = 0;
      while (::read(release[0], &byte, 1) < 0 && errno == EINTR) {
      }
      for (int fd : held) ::close(fd);
      return "";
    });
    ASSERT_GT(pid, 0) << "fork failed";
    ::close(ready[1]);
    ::close(release[0]);
    hogs.push_back({pid, ready[0], release[1]});
  }
  struct Release {
    std::vector<Hog>& hogs;
    ~Release() {
      std::vector<pid_t> pids;
      for (const Hog& h : hogs) {
        ::close(h.release);  // each lets go of its connections and ends
        ::close(h.ready);
        pids.push_back(h.pid);
      }
      wait_children(pids, 60s);
    }
  } guard{hogs};
  for (const Hog& h : hogs) {
    pollfd p{h.ready, POLLIN, 0};
    char byte = 0;
    ASSERT_TRUE(::poll(&p, 1, 60'000) == 1 && ::read(h.ready, &byte, 1) == 1)
        << "a user's connections";
  }
  // Their 80 connections are queued before the owner's: the agent kept 60, and the owner
  // still gets in.
  auto status = cv({"status", "--json"}, false);
  ASSERT_EQ(status.exit_code, 0) << status.err;
  const auto connections = parse_json(status.out)["connections"].asUInt();
  EXPECT_LE(connections, 60u + 1) << status.out;
  EXPECT_GE(connections, 48u + 1) << status.out;
  EXPECT_EQ(cv({"lock"}, false).exit_code, 0);
}

TEST_F(AgentSigning, KilledAgentGivesAnErrorAndAClientWorksAgainAfterARestart) {
  start_agent();
  allow_client();
  unlock();
  ASSERT_EQ(sign_as_client().exit_code, 0);
  agent_.kill();
  auto r = sign_as_client();
  EXPECT_FALSE(r.timed_out);
  EXPECT_NE(r.exit_code, 0);
  start_agent();
  unlock();
  EXPECT_EQ(sign_as_client().exit_code, 0);
}

TEST_F(AgentTest, RefusesASocketInADirectoryOthersCanWrite) {
  TempDir open_dir;
  ::chmod(open_dir.path().c_str(), 0777);
  auto r = run({cli(), "agent", "--vault", dir_.string(), "--socket",
                (open_dir / "agent.sock").string(), "--audit-log", (tmp_ / "a.log").string()},
               {}, 30s);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "can be written by another user")) << r.err;
  EXPECT_FALSE(fs::exists(open_dir / "agent.sock"));
}

TEST_F(AgentTest, SecondAgentOnTheSameSocketIsRefused) {
  start_agent();
  auto r = run({cli(), "agent", "--vault", dir_.string(), "--socket", socket_.string(),
                "--audit-log", (tmp_ / "b.log").string()},
               {}, 30s);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "already listens")) << r.err;
}

// Can fail: a client that does not check whom it talks to sends `certvault unlock`'s PIN
// to an agent another user runs (which then audits the refused unlock of the third uid),
// and reports that agent's refusal instead of its own.
TEST_F(AgentTest, ClientRefusesAnAgentRunByAnotherUserAndSendsItNothing) {
  const passwd* third = ::getpwnam("nobody");
  if (!third) GTEST_SKIP() << "no user 'nobody' to run the client as";
  // The agent runs as the client user, on its own copy of the vault.
  const fs::path home = start_agent_of("other", client_uid_, client_gid_, {"--init-groups"});
  ASSERT_FALSE(HasFailure());
  const fs::path pin = run_dir_ / "third-pin";  // the third user's own PIN file
  write_file(pin, "the third user's own PIN", 0600);
  ASSERT_EQ(::chown(pin.c_str(), third->pw_uid, third->pw_gid), 0);
  const fs::path other_audit = home / "audit.log";

  auto r =
      run({"setpriv", "--reuid=" + std::to_string(third->pw_uid),
           "--regid=" + std::to_string(third->pw_gid), "--clear-groups", "env", "-i",
           "PATH=/usr/bin:/bin", "HOME=/nonexistent", "CERTVAULT_AGENT_SOCK=" + socket_.string(),
           (home / "certvault").string(), "unlock", "--pin-file", pin.string()},
          {}, 30s);
  EXPECT_FALSE(r.timed_out);
  EXPECT_NE(r.exit_code, 0);
  ASSERT_EQ(r.err_lines().size(), 1u) << r.err;
  EXPECT_TRUE(contains(r.err, "the certvault agent socket " + socket_.string() +
                                  " is served by uid " + std::to_string(client_uid_)))
      << r.err;
  EXPECT_TRUE(contains(r.err, "nothing was sent to it")) << r.err;
  // The agent heard nothing from the third user: no refused unlock in its audit log.
  const std::string heard = fs::exists(other_audit) ? read_file(other_audit) : std::string();
  EXPECT_FALSE(contains(heard, "\"uid\":" + std::to_string(third->pw_uid))) << heard;
}

// docs/agent.md, "How programs find the agent": a program talks to an agent run by root,
// by its own user, or by the system instance's user, `certvault`.
// Can fail: a client that left the certvault user out of its check refuses the system
// instance (every program of every user would then work without the agent, or not at
// all); checked by dropping it from check_agent_uid: this test then failed.
TEST_F(AgentTest, ClientTalksToTheSystemInstanceRunByTheCertvaultUser) {
  const auto system = system_agent_user();
  ASSERT_TRUE(system) << "cannot make the certvault user";
  ASSERT_NE(system->first, client_uid_);
  // The system instance: the certvault user's agent, on its own copy of the vault.
  const fs::path home =
      start_agent_of("system", system->first, system->second, {"--clear-groups"}, {"--system"});
  ASSERT_FALSE(HasFailure());
  // Another user's program asks it for its status: answered, the vault listed.
  auto r = run(as_client({"env", "CERTVAULT_AGENT_SOCK=" + socket_.string(),
                          (home / "certvault").string(), "status"}),
               {}, 30s);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "uid " + std::to_string(system->first))) << r.out;
  EXPECT_TRUE(contains(r.out, "ops")) << r.out;
  EXPECT_FALSE(contains(r.err, "is served by uid")) << r.err;
}

// --- framing, over a raw socket -------------------------------------------------------------

using certvault::agent::Frame;
using certvault::agent::Reply;
using certvault::agent::Tag;
using certvault::agent::Type;

// A program's connection as a raw socket has it: frames built with the protocol's own
// Frame, replies read with its header rule and decoder. Every wait is bounded.
class RawConnection {
 public:
  explicit RawConnection(const fs::path& socket) : fd_(connect_raw(socket)) {}
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return fd_ >= 0; }

  // All of `bytes`, as the socket takes them (the agent reads meanwhile); false when it
  // takes no more within `limit`.
  bool send(std::span<const uint8_t> bytes, std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    size_t sent = 0;
    while (sent < bytes.size()) {
      if (!wait_for(POLLOUT, deadline)) return false;
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  // All of `bytes` in one send(): false when the socket took fewer.
  bool send_in_one_write(std::span<const uint8_t> bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }

  // The next reply, decoded; else what came instead.
  std::expected<Reply, std::string> reply(std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    std::array<uint8_t, certvault::agent::kHeaderSize> header{};
    if (auto r = read_exact(header.data(), header.size(), deadline); !r.empty())
      return std::unexpected("no reply header: " + r);
    auto length = certvault::agent::body_length(header);
    if (!length) return std::unexpected("a reply header out of bounds: " + length.error().message);
    Reply reply;
    reply.body.resize(*length);
    if (auto r = read_exact(reply.body.data(), reply.body.size(), deadline); !r.empty())
      return std::unexpected("no reply body: " + r);
    auto message = certvault::agent::decode(reply.body);
    if (!message)
      return std::unexpected("a reply that does not decode: " + message.error().message);
    reply.message = std::move(*message);
    return reply;
  }

  // True when the agent closes the connection within `limit` without sending a byte
  // (end of file, or a reset when it closed with our bytes unread).
  bool closed_by_agent_within(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    if (!wait_for(POLLIN, deadline)) return false;
    return is_closed_now();
  }

  // Whether the agent has closed it already (not waiting); false while it is open.
  bool is_closed_now() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) != 1) return false;
    char byte = 0;
    const ssize_t got = ::recv(fd_, &byte, 1, MSG_DONTWAIT);
    return got == 0 || (got < 0 && errno == ECONNRESET);
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  bool wait_for(short events, std::chrono::steady_clock::time_point deadline) {
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, events, 0};
      const int r = ::poll(&p, 1, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR) continue;
      return r == 1;
    }
  }

  // "" once `n` bytes are in, else why not.
  std::string read_exact(uint8_t* out, size_t n, std::chrono::steady_clock::time_point deadline) {
    size_t got = 0;
    while (got < n) {
      if (!wait_for(POLLIN, deadline)) return "nothing within the time limit";
      const ssize_t r = ::recv(fd_, out + got, n - got, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r == 0) return "the agent closed the connection";
      if (r < 0) return std::string("recv: ") + std::strerror(errno);
      got += static_cast<size_t>(r);
    }
    return {};
  }

  int fd_ = -1;
};

Frame resolve_request(const std::string& nickname) {
  Frame f(Type::kResolve);
  f.add(Tag::kVault, "");  // the agent's default vault
  f.add(Tag::kNickname, nickname);
  return f;
}

Frame status_request() {
  return Frame(Type::kStatus);
}

// The wire bytes of several frames, one after the other.
std::vector<uint8_t> concatenated(std::initializer_list<Frame*> frames) {
  std::vector<uint8_t> out;
  for (Frame* f : frames) {
    auto bytes = f->bytes();
    out.insert(out.end(), bytes.begin(), bytes.end());
  }
  return out;
}

class AgentProtocol : public AgentSigning {
 protected:
  void SetUp() override {
    AgentSigning::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    start_agent();  // locked: status and resolve need no PIN
    ASSERT_FALSE(HasFatalFailure());
    auto api = vault().find("api");
    ASSERT_TRUE(api && api->current());
    api_serial_ = api->current()->serial;
  }

  // "" when `reply` is the agent's resolution of "api", else what it is.
  std::string check_api_resolved(const std::expected<Reply, std::string>& reply) {
    if (!reply) return reply.error();
    const auto& m = reply->message;
    if (m.type != Type::kOk) return "not kOk: " + certvault::agent::error_of(m).message;
    if (m.get_u64(Tag::kGeneration) != 1u || m.text(Tag::kSerial) != api_serial_ ||
        !m.get(Tag::kCertificate) || !m.get(Tag::kSpki))
      return "not the resolution of 'api' (generation 1, serial " + api_serial_ + ")";
    return {};
  }

  // "" when `reply` is the agent's status, else what it is.
  std::string check_status(const std::expected<Reply, std::string>& reply) {
    if (!reply) return reply.error();
    const auto& m = reply->message;
    if (m.type != Type::kOk) return "not kOk: " + certvault::agent::error_of(m).message;
    const Json::Value v = parse_json(m.text(Tag::kJson));
    if (v["pid"].asInt() != agent_.pid() || v["vaults"][0]["label"].asString() != "ops")
      return "not the agent's status: " + m.text(Tag::kJson);
    return {};
  }

  std::string api_serial_;
};

// Can fail: an agent that answered only the first frame of what one recv brought (and
// then waited for bytes that never come) leaves the second and third unanswered; one that
// answered them out of order gives the status first.
TEST_F(AgentProtocol, RequestsInOneWriteAreAllAnsweredInOrder) {
  RawConnection c(socket_);
  ASSERT_TRUE(c.connected());
  Frame first = resolve_request("api");
  Frame second = resolve_request("missing");
  Frame third = status_request();
  ASSERT_TRUE(c.send_in_one_write(concatenated({&first, &second, &third})));
  EXPECT_EQ(check_api_resolved(c.reply()), "");
  auto missing = c.reply();
  ASSERT_TRUE(missing) << missing.error();
  ASSERT_EQ(missing->message.type, Type::kError);
  const certvault::Error e = certvault::agent::error_of(missing->message);
  EXPECT_EQ(e.code, certvault::Code::kNotFound) << e.message;
  EXPECT_TRUE(contains(e.message, "no entry 'missing'")) << e.message;
  EXPECT_EQ(check_status(c.reply()), "");
}

// Can fail: an agent that took a short read for a whole header, or lost the bytes it had
// while it waited for the rest, never answers, or answers garbage.
TEST_F(AgentProtocol, RequestSentOneByteAtATimeIsAnswered) {
  RawConnection c(socket_);
  ASSERT_TRUE(c.connected());
  Frame request = resolve_request("api");
  const auto bytes = request.bytes();
  for (uint8_t byte : bytes) {
    ASSERT_TRUE(c.send(std::span(&byte, 1)));
    std::this_thread::sleep_for(20ms);  // each byte its own read in the agent
  }
  EXPECT_EQ(check_api_resolved(c.reply()), "");
  // The connection goes on as before: the next request, sent whole, is answered too.
  Frame status = status_request();
  ASSERT_TRUE(c.send(status.bytes()));
  EXPECT_EQ(check_status(c.reply()), "");
}

// The limit is kMaxBody (docs/agent-protocol.md, "Limits"), and "a header announcing a
// body ... longer than kMaxBody: closed without a reply" ("What closes a connection").
// Can fail: an off-by-one in the bound, or a buffer that does not grow to a whole
// maximal frame, refuses (or never completes) the first request, and the one after it.
TEST_F(AgentProtocol, FrameOfTheMaximumBodyIsAnsweredAndOneByteMoreClosesTheConnection) {
  RawConnection c(socket_);
  ASSERT_TRUE(c.connected());
  // A status request with a field it does not use ("ignored"), to exactly the limit.
  Frame largest = status_request();
  largest.add(Tag::kData, std::string(certvault::agent::kMaxBody - 2 - 5, 'x'));
  ASSERT_TRUE(largest.fits());
  ASSERT_EQ(largest.bytes().size(), certvault::agent::kHeaderSize + certvault::agent::kMaxBody);
  Frame after = resolve_request("api");
  ASSERT_TRUE(c.send(concatenated({&largest, &after})));
  EXPECT_EQ(check_status(c.reply()), "");
  EXPECT_EQ(check_api_resolved(c.reply()), "");

  // One byte more: the header alone ends that connection, with no reply.
  RawConnection over(socket_);
  ASSERT_TRUE(over.connected());
  const uint32_t n = certvault::agent::kMaxBody + 1;
  const uint8_t header[] = {static_cast<uint8_t>(n >> 24),
                            static_cast<uint8_t>(n >> 16),
                            static_cast<uint8_t>(n >> 8),
                            static_cast<uint8_t>(n),
                            1,
                            static_cast<uint8_t>(Type::kStatus)};
  ASSERT_TRUE(over.send(header));
  EXPECT_TRUE(over.closed_by_agent_within(10s));
  // The first connection is still served.
  Frame status = status_request();
  ASSERT_TRUE(c.send(status.bytes()));
  EXPECT_EQ(check_status(c.reply()), "");
}

// docs/agent-protocol.md: "a body not completed within 10 seconds of its header: closed
// without a reply"; a connection "may stay idle between requests for as long as the
// client likes". Can fail: an agent without the deadline keeps the stalled connection
// (and its buffer) for ever; one that applies it to idle connections too closes the idle
// one; one that waits for the stalled connection on its loop stops answering the other.
TEST_F(AgentProtocol, StalledHeaderIsClosedWithinTheDeadlineWhileOthersAreServed) {
  RawConnection idle(socket_);
  RawConnection stalled(socket_);
  RawConnection busy(socket_);
  ASSERT_TRUE(idle.connected() && stalled.connected() && busy.connected());
  const uint8_t three[] = {0, 0, 0};
  ASSERT_TRUE(stalled.send(three));
  int answered = 0;
  bool closed = false;
  const auto give_up = std::chrono::steady_clock::now() + 15s;
  while (!closed && std::chrono::steady_clock::now() < give_up) {
    Frame status = status_request();
    ASSERT_TRUE(busy.send(status.bytes()));
    ASSERT_EQ(check_status(busy.reply()), "") << "after " << answered << " answers";
    ++answered;
    closed = stalled.closed_by_agent_within(250ms);
  }
  EXPECT_TRUE(closed) << "the stalled connection was still open after 15 s";
  EXPECT_GE(answered, 1);
  // The idle connection, as old as the stalled one, is open and answered.
  EXPECT_FALSE(idle.is_closed_now());
  Frame request = resolve_request("api");
  ASSERT_TRUE(idle.send(request.bytes()));
  EXPECT_EQ(check_api_resolved(idle.reply()), "");
}

// Can fail: an agent that wrote to a closed connection without MSG_NOSIGNAL dies of
// SIGPIPE (checked by taking MSG_NOSIGNAL from its send: this test then failed); one
// that stopped its loop on the failed write answers no one else.
TEST_F(AgentProtocol, PeerThatClosesWithoutReadingItsAnswersStopsNoOne) {
  // Two others first: a new connection goes to the loop with the fewest, so one of them
  // shares the greedy peer's loop (the agent runs at least two).
  RawConnection others[2] = {RawConnection(socket_), RawConnection(socket_)};
  for (auto& c : others) ASSERT_TRUE(c.connected());
  // About 2 MB of answers (resolutions carry two certificates): more than a socket holds,
  // so the agent is still writing them when the peer goes away.
  constexpr int kRequests = 1500;
  for (int round = 0; round < 4; ++round) {
    RawConnection greedy(socket_);
    ASSERT_TRUE(greedy.connected());
    std::vector<uint8_t> wire;
    for (int i = 0; i < kRequests; ++i) {
      Frame f = resolve_request("api");
      auto bytes = f.bytes();
      wire.insert(wire.end(), bytes.begin(), bytes.end());
    }
    ASSERT_TRUE(greedy.send(wire));
    // The peer closes at once (the agent finds it gone while it answers), or after the
    // first answer (the agent is waiting for room to write the rest).
    if (round % 2 == 1) {
      ASSERT_EQ(check_api_resolved(greedy.reply()), "") << "round " << round;
    }
    greedy.close();
    for (auto& c : others) {
      Frame status = status_request();
      ASSERT_TRUE(c.send(status.bytes())) << "round " << round;
      ASSERT_EQ(check_status(c.reply()), "")
          << "round " << round << (agent_.exited_within(0ms) ? "; the agent has died" : "");
    }
  }
  EXPECT_FALSE(agent_.exited_within(0ms)) << read_file(tmp_ / "agent.err");
  // A new connection is served too.
  RawConnection fresh(socket_);
  ASSERT_TRUE(fresh.connected());
  Frame request = resolve_request("api");
  ASSERT_TRUE(fresh.send(request.bytes()));
  EXPECT_EQ(check_api_resolved(fresh.reply()), "");
}

// docs/agent.md, "Unlock, check, lock": `certvault status` (or `--json`) shows "locked or
// not, since when, TTL left, clients using it now". Can fail: a count that missed a
// connection that used the vault, or kept it after it closed; an unlock time that is not
// the unlock's.
TEST_F(AgentProtocol, StatusCountsTheClientsConnectedAndSaysSinceWhenTheVaultIsUnlocked) {
  auto vault_status = [&] {
    auto r = cv({"status", "--json"}, false);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return parse_json(r.out)["vaults"][0];
  };
  // The row of the vault in `certvault status`, split at its blanks: VAULT is two words
  // ("ops (default)"), then STATE, SINCE, TTL LEFT, CLIENTS...
  auto status_row = [&] {
    auto r = cv({"status"}, false);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);)
      if (line.starts_with("ops (default)")) {
        std::istringstream words(line);
        std::vector<std::string> row;
        for (std::string w; words >> w;) row.push_back(w);
        return row;
      }
    ADD_FAILURE() << "no row for ops in:\n" << r.out;
    return std::vector<std::string>(11);
  };
  // Polls (bounded) until the vault's status shows `clients`; the number last seen.
  auto await_clients = [&](uint64_t clients) {
    uint64_t seen = 0;
    for (int i = 0; i < 200; ++i) {
      seen = vault_status()["clients"].asUInt64();
      if (seen == clients) break;
      std::this_thread::sleep_for(50ms);
    }
    return seen;
  };
  EXPECT_EQ(await_clients(0), 0u);
  EXPECT_FALSE(vault_status().isMember("unlocked_at"));
  EXPECT_EQ(status_row()[3], "-");  // SINCE

  RawConnection held(socket_);
  ASSERT_TRUE(held.connected());
  Frame request = resolve_request("api");
  ASSERT_TRUE(held.send(request.bytes()));
  ASSERT_EQ(check_api_resolved(held.reply()), "");
  EXPECT_EQ(await_clients(1), 1u);

  const certvault::Time before = certvault::now();
  unlock();
  const certvault::Time after = certvault::now();
  EXPECT_EQ(await_clients(1), 1u);  // the unlock's own connection has gone
  const Json::Value v = vault_status();
  EXPECT_TRUE(v["unlocked"].asBool());
  EXPECT_GE(v["unlocked_at"].asInt64(), before) << v;
  EXPECT_LE(v["unlocked_at"].asInt64(), after) << v;
  const auto row = status_row();
  EXPECT_EQ(row[2], "unlocked");
  EXPECT_EQ(row[3], certvault::format_time(v["unlocked_at"].asInt64()));
  EXPECT_EQ(row[5], "1");  // CLIENTS

  held.close();
  EXPECT_EQ(await_clients(0), 0u);
  EXPECT_EQ(status_row()[5], "0");
}

// --- naming a vault -----------------------------------------------------------------------

// docs/agent.md, "How programs find the agent": "`vault=` may name the vault by its
// **label**, its **id** or its **path** (an absolute path matches however it is spelled)";
// `--default DIR`: "the vault a URI without `vault=` means". Both vaults hold an entry
// 'api', each with its own key: every signature is checked against the certificate of
// the vault the URI names. Can fail: an agent that took any name it did not match for its
// default (or matched a path only as spelled) signs with the other vault's key, and the
// check fails; one that ignored --default signs with the first served.
TEST_F(AgentSigning, UriNamesOneOfTwoServedVaultsByLabelOrPathAndWithoutOneMeansTheDefault) {
  const fs::path ci_dir = tmp_ / "ci";
  auto made = certvault::Vault::init(ci_dir, pin(), cheap_init("ci"));
  ASSERT_TRUE(made) << why(made);
  certvault::Vault& ci = made->first;
  certvault::CaRequest ca;
  ca.not_after = certvault::now() + 3650 * kDay;
  ASSERT_TRUE(ci.create_ca(ca));
  certvault::IssueRequest req;
  req.nickname = "api";
  req.not_after = end_of_day_utc(date_in_days(100));
  auto issued = ci.create(req);
  ASSERT_TRUE(issued) << why(issued);
  auto der = ci.certificate_der("api");
  ASSERT_TRUE(der) << why(der);
  const fs::path ci_cert = run_dir_ / "ci-api.crt";
  write_file(ci_cert, der_to_pem(*der), 0644);

  start_agent({"--serve", ci_dir.string(), "--default", ci_dir.string()});
  ASSERT_FALSE(HasFatalFailure());
  allow_client();
  auto allowed = cv({"access", "api", "allow", "--uid", std::to_string(client_uid_)}, true, ci_dir);
  ASSERT_EQ(allowed.exit_code, 0) << allowed.err;
  unlock();
  auto unlocked = cv({"unlock"}, true, ci_dir);
  ASSERT_EQ(unlocked.exit_code, 0) << unlocked.err;
  auto status = cv({"status", "--json"}, false);
  ASSERT_EQ(status.exit_code, 0) << status.err;
  const Json::Value vaults = parse_json(status.out)["vaults"];
  ASSERT_EQ(vaults.size(), 2u) << status.out;
  EXPECT_EQ(vaults[0]["label"].asString(), "ops");
  EXPECT_FALSE(vaults[0]["default"].asBool()) << status.out;
  EXPECT_EQ(vaults[1]["label"].asString(), "ci");
  EXPECT_TRUE(vaults[1]["default"].asBool()) << status.out;

  // The URIs `certvault uri` writes: the vault's canonical path.
  auto ops_uri = cv({"uri", "api"}, false);
  auto ci_uri = cv({"uri", "api"}, false, ci_dir);
  ASSERT_EQ(ops_uri.exit_code, 0) << ops_uri.err;
  ASSERT_EQ(ci_uri.exit_code, 0) << ci_uri.err;
  auto first_line = [](const std::string& out) { return out.substr(0, out.find('\n')); };
  const struct {
    std::string uri;
    fs::path cert;
  } cases[] = {
      {"certvault:api", ci_cert},  // the --default one
      {"certvault:api?vault=ops", cert_},
      {"certvault:api?vault=ci", ci_cert},
      {first_line(ops_uri.out), cert_},
      {first_line(ci_uri.out), ci_cert},
      {"certvault:api?vault=" + (ci_dir / ".." / "ci").string(), ci_cert},
  };
  for (const auto& c : cases) {
    auto r = sign_as_client(c.uri, "openssl", c.cert);
    EXPECT_EQ(r.exit_code, 0) << c.uri << ": " << r.err;
  }
  EXPECT_TRUE(contains(first_line(ci_uri.out), "vault=" + ci_dir.string())) << ci_uri.out;
  auto after = cv({"status", "--json"}, false);
  const Json::Value counted = parse_json(after.out)["vaults"];
  EXPECT_EQ(counted[0]["signatures"].asUInt64(), 2u) << after.out;
  EXPECT_EQ(counted[1]["signatures"].asUInt64(), 4u) << after.out;

  // A vault the agent does not serve is not taken for one it does: the program works
  // in-process, as without an agent, and says what it could not open (the name, taken for
  // a directory there) and that the agent does not serve it either.
  auto unknown = sign_as_client("certvault:api?vault=nosuch");
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_TRUE(contains(unknown.err, "no vault at ")) << unknown.err;
  EXPECT_TRUE(contains(unknown.err, "/nosuch")) << unknown.err;
  EXPECT_TRUE(contains(unknown.err,
                       "the agent at " + socket_.string() + " serves no vault 'nosuch' either"))
      << "a mistyped vault= read as an agent not asked: " << unknown.err;
  EXPECT_FALSE(contains(unknown.err, "certvault init")) << "the CLI's advice, in a program";
  auto counted_after = parse_json(cv({"status", "--json"}, false).out)["vaults"];
  EXPECT_EQ(counted_after[0]["signatures"].asUInt64(), 2u);
  EXPECT_EQ(counted_after[1]["signatures"].asUInt64(), 4u);
}

// docs/agent.md, "Who may use what": right after accept() the agent opens a pidfd on the
// peer's pid and reads its start time, and checks both again once it has read the peer's
// unit and executable; a peer that ends meanwhile, its pid taken by another program, counts
// by its uid and gid alone. gdb holds the agent inside that reading (at sd_pid_get_unit)
// while the test ends the peer and starts /usr/bin/sleep, which an `allow --exe` rule
// admits, under the same pid (by /proc/sys/kernel/ns_last_pid). Can fail: an agent that
// did not check again takes sleep's executable for the peer's and answers its request.
TEST_F(AgentSigning, PeerWhosePidIsTakenWhileItIsBeingIdentifiedCountsByItsUidAlone) {
  const fs::path last_pid = "/proc/sys/kernel/ns_last_pid";
  if (::access(last_pid.c_str(), W_OK) != 0) GTEST_SKIP() << "cannot choose the next pid here";
  start_agent();
  ASSERT_FALSE(HasFatalFailure());
  unlock();
  ASSERT_EQ(cv({"access", "api", "allow", "--exe", "/usr/bin/sleep"}).exit_code, 0);

  // gdb stops the agent in the peer's identification, says so, and lets it go on (and
  // detaches) when told to: each wait is bounded.
  const fs::path stopped = tmp_ / "stopped", go = tmp_ / "go", script = tmp_ / "gdb.cmd";
  write_file(script, "set pagination off\nbreak sd_pid_get_unit\ncommands\nshell touch '" +
                         stopped.string() + "'; i=0; while [ ! -e '" + go.string() +
                         "' ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done\ndetach\n"
                         "quit\nend\ncontinue\n");
  ChildGuard gdb(spawn_logged(
      {"gdb", "-nx", "-batch", "-p", std::to_string(agent_.pid()), "-x", script.string()},
      tmp_ / "gdb.out", tmp_ / "gdb.err"));
  // Once the breakpoint is set, a connection waits for it (gdb lets the agent go on).
  for (int i = 0; i < 600 && !contains(read_file(tmp_ / "gdb.out"), "Breakpoint 1 at"); ++i)
    std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(contains(read_file(tmp_ / "gdb.out"), "Breakpoint 1 at"))
      << read_file(tmp_ / "gdb.out") << read_file(tmp_ / "gdb.err");

  // The peer: the client user, whom no rule admits, asks for 'api' and waits to be ended.
  int end_peer[2];
  ASSERT_EQ(::pipe2(end_peer, O_CLOEXEC), 0);
  const pid_t peer = fork_child(60s, [&]() -> std::string {
    ::close(end_peer[1]);
    if (!become(kClientUser, client_uid_, client_gid_)) return "cannot become the client user";
    RawConnection c(socket_);
    if (!c.connected()) return "cannot connect";
    if (!c.send(resolve_request("api").bytes())) return "cannot send";
    char byte;
    (void)!::read(end_peer[0], &byte, 1);
    return {};
  });
  ::close(end_peer[0]);
  for (int i = 0; i < 600 && !fs::exists(stopped); ++i) std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(fs::exists(stopped)) << "gdb did not stop the agent at the peer";
  ::close(end_peer[1]);
  ASSERT_EQ(wait_children({peer}, 30s).at(peer), 0);

  // /usr/bin/sleep under the peer's pid, run before the agent reads the executable.
  ChildGuard sleeper;
  for (int attempt = 0; attempt < 50 && sleeper.pid() != peer; ++attempt) {
    sleeper.kill();
    std::ofstream(last_pid) << peer - 1 << std::flush;
    sleeper =
        ChildGuard(spawn_logged({"/usr/bin/sleep", "60"}, tmp_ / "sleep.out", tmp_ / "sleep.err"));
  }
  if (sleeper.pid() != peer) {
    write_file(go, "");
    // Another test's process took the pid first (ctest runs tests side by side).
    if (fs::exists("/proc/" + std::to_string(peer)))
      GTEST_SKIP() << "pid " << peer << " went to another process before sleep";
    FAIL() << "the peer's pid " << peer << " could not be given to sleep";
  }
  const fs::path exe = "/proc/" + std::to_string(peer) + "/exe";
  std::error_code ec;
  for (int i = 0; i < 200 && fs::read_symlink(exe, ec) != "/usr/bin/sleep"; ++i)
    std::this_thread::sleep_for(10ms);
  ASSERT_EQ(fs::read_symlink(exe, ec), "/usr/bin/sleep");
  write_file(go, "");
  ASSERT_TRUE(gdb.exited_within(30s)) << read_file(tmp_ / "gdb.out");

  // The agent audits its answer to that request: refused, by the peer's uid, with no
  // executable.
  auto refusal = [&]() -> std::optional<Json::Value> {
    for (const auto& e : audit_events())
      if (e["peer"]["pid"].asInt() == peer) return e;
    return std::nullopt;
  };
  for (int i = 0; i < 200 && !refusal(); ++i) std::this_thread::sleep_for(50ms);
  const auto e = refusal();
  ASSERT_TRUE(e) << "no refusal audited for pid " << peer
                 << ": sleep's executable was taken for the peer's, and its request answered\n"
                 << audit_log();
  EXPECT_EQ((*e)["result"].asString(), "refused") << audit_log();
  EXPECT_EQ((*e)["peer"]["uid"].asUInt(), client_uid_) << audit_log();
  EXPECT_EQ((*e)["peer"]["exe"].asString(), "") << "sleep's executable taken for the peer's";
}

// --- systemd's interfaces -----------------------------------------------------------------

TEST_F(AgentSigning, SocketActivationAndACredentialUnlockAtStart) {
  // systemd-socket-activate passes the socket as systemd does (LISTEN_FDS, LISTEN_PID);
  // $CREDENTIALS_DIRECTORY holds the PIN as LoadCredentialEncrypted= delivers it.
  const fs::path creds = write_pin_credential(kPin);
  allow_client();
  agent_ = ChildGuard(
      spawn_logged({"systemd-socket-activate", "-E", "CREDENTIALS_DIRECTORY=" + creds.string(),
                    "-l", socket_.string(), cli(), "agent", "--system", "--vault", dir_.string(),
                    "--audit-log", audit_.string()},
                   tmp_ / "agent.out", tmp_ / "agent.err"));
  for (int i = 0; i < 200 && !fs::exists(socket_); ++i) std::this_thread::sleep_for(25ms);
  ASSERT_TRUE(fs::exists(socket_)) << read_file(tmp_ / "agent.err");
  ::chmod(socket_.c_str(), 0666);  // systemd's SocketMode=; the policy still decides
  auto r = sign_as_client();
  EXPECT_EQ(r.exit_code, 0) << r.err << read_file(tmp_ / "agent.err");
}

// docs/agent.md, "Unattended unlock at boot": the agent reads the credential "when it
// starts (one trailing newline is dropped)", so a PIN written with `echo` unlocks. Can
// fail: a credential read whole takes the newline for part of the PIN, counts a wrong
// PIN at every start and leaves the vault locked.
TEST_F(AgentSigning, CredentialPinEndingInOneNewlineUnlocksAtStart) {
  allow_client();
  start_agent({}, {"env", "CREDENTIALS_DIRECTORY=" +
                              write_pin_credential(std::string(kPin) + "\n").string()});
  ASSERT_FALSE(HasFatalFailure());
  auto status = cv({"status", "--json"}, false);
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_TRUE(parse_json(status.out)["vaults"][0]["unlocked"].asBool())
      << status.out << read_file(tmp_ / "agent.err");
  EXPECT_EQ(vault().pin_failures(), 0);
  int unlocks = 0;
  for (const auto& e : audit_events())
    unlocks += e["action"].asString() == "unlock" && e["result"].asString() == "ok";
  EXPECT_EQ(unlocks, 1) << audit_log();
  auto r = sign_as_client();
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// docs/agent.md, "Unattended unlock at boot": "A PIN that does not unlock the vault is
// counted as a wrong PIN, logged (journal, priority error: \"the certvault-pin credential
// did not unlock the vault: ...\", and the audit log), and the agent goes on serving with
// the vault locked until `certvault unlock`." Can fail: an agent that exited on the wrong
// PIN no longer answers (socket activation would restart it and count a wrong PIN at each
// connection); one that did not count it hides a guessing; one that left no line in the
// journal or the audit log leaves the operator wondering why the vault is locked.
// systemd writes a credential 0400; where the file system takes ACLs and the service runs
// as another user, the file stays root's with a read entry for that user, and stat() shows
// 0440 (the ACL's mask). Such a credential unlocks; one whose ACL lets another user read
// it does not, and costs no PIN try. (The agent here runs as root: the entry for "its
// user" is root's, and the file another user's.)
// Can fail: with the PIN file rule applied as is (group bits refused), the first agent
// refuses systemd's file and the vault stays locked.
TEST_F(AgentSigning, CredentialWithSystemdsReadAclForTheAgentsUserUnlocks) {
  allow_client();
  const fs::path creds = write_pin_credential(kPin);
  const fs::path pin = creds / "certvault-pin";
  // Owned by another user than the agent's, as systemd's file is (root's, the agent's user
  // named in the ACL): the rule is "the ACL names this process's user", not its owner.
  ASSERT_EQ(::chown(pin.c_str(), 65534, 65534), 0);
  auto acl = run({"setfacl", "-m", "u:" + std::to_string(::geteuid()) + ":r", pin.string()});
  if (acl.exit_code != 0 && contains(acl.err, "not supported"))
    GTEST_SKIP() << "no ACLs on this file system: " << acl.err;
  ASSERT_EQ(acl.exit_code, 0) << acl.err;
  ASSERT_EQ(file_mode(pin), 0440u) << "no ACL mask in the group bits";
  start_agent({}, {"env", "CREDENTIALS_DIRECTORY=" + creds.string()});
  ASSERT_FALSE(HasFatalFailure());
  auto r = sign_as_client();
  EXPECT_EQ(r.exit_code, 0) << r.err << read_file(tmp_ / "agent.err");
  agent_.kill();

  // The same file readable by another user too: refused as a PIN file of mode 0440 is.
  ASSERT_EQ(::chown(pin.c_str(), 0, 0), 0);
  ASSERT_EQ(run({"setfacl", "-m", "u:65534:r", pin.string()}).exit_code, 0);
  start_agent({}, {"env", "CREDENTIALS_DIRECTORY=" + creds.string()});
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_TRUE(contains(read_file(tmp_ / "agent.err"),
                       "the certvault-pin credential can be read or written by other users"))
      << read_file(tmp_ / "agent.err");
  EXPECT_EQ(vault().pin_failures(), 0);
  auto locked = sign_as_client();
  EXPECT_NE(locked.exit_code, 0);
  EXPECT_TRUE(contains(locked.err, "is locked")) << locked.err;
}

TEST_F(AgentSigning, WrongPinInTheCredentialIsCountedOnceLoggedAndTheAgentServesLocked) {
  JournalCapture journal(tmp_.path());
  const bool journal_caught = journal.usable();
  std::vector<std::string> runner = journal_caught ? journal.runner() : std::vector<std::string>{};
  for (const std::string& a :
       {std::string("env"),
        "CREDENTIALS_DIRECTORY=" + write_pin_credential("not-the-pin").string()})
    runner.push_back(a);
  allow_client();
  start_agent({}, runner);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(vault().pin_failures(), 1);
  EXPECT_TRUE(contains(read_file(tmp_ / "agent.err"),
                       "the certvault-pin credential did not unlock the vault"))
      << read_file(tmp_ / "agent.err");
  if (journal_caught) {
    EXPECT_TRUE(journal.said("the certvault-pin credential did not unlock the vault: "))
        << journal.all();
  }
  int refused_unlocks = 0;
  for (const auto& e : audit_events())
    refused_unlocks += e["action"].asString() == "unlock" && e["result"].asString() == "refused";
  EXPECT_EQ(refused_unlocks, 1) << audit_log();
  // Serving, locked: a program is told to unlock; status answers.
  auto locked = sign_as_client();
  EXPECT_NE(locked.exit_code, 0);
  EXPECT_TRUE(contains(locked.err, "vault 'ops' is locked; run certvault unlock")) << locked.err;
  auto status = cv({"status", "--json"}, false);
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_FALSE(parse_json(status.out)["vaults"][0]["unlocked"].asBool()) << status.out;
  EXPECT_EQ(vault().pin_failures(), 1);  // tried once, not again at each connection
  // The right PIN, by hand, unlocks it.
  unlock();
  EXPECT_EQ(sign_as_client().exit_code, 0);
  EXPECT_EQ(vault().pin_failures(), 0);
  EXPECT_FALSE(agent_.exited_within(0ms)) << read_file(tmp_ / "agent.err");
}

// packaging/systemd/certvault-agent.service: Type=notify. systemd starts what waits for the
// agent (ExecStartPost=certvault unlock, services ordered after it) once it says READY=1:
// by then its socket must take a connection. On SIGTERM it says STOPPING=1. Can fail: an
// agent that said READY=1 before it listened (or never) leaves the first client refused,
// or systemd waiting until its start times out; one that did not say STOPPING=1 is seen
// by systemd as dying rather than stopping.
TEST_F(AgentSigning, TellsSystemdItIsReadyOnceItListensAndThatItStopsOnSigterm) {
  NotifyCapture notify(tmp_.path());
  ASSERT_TRUE(notify.usable()) << "cannot bind a datagram socket in " << tmp_.path();
  allow_client();
  spawn_agent({}, notify.runner());
  ASSERT_TRUE(notify.await("READY=1", 30s))
      << "no READY=1 within 30 s: " << notify.all() << read_file(tmp_ / "agent.err");
  // Ready means listening: the first connection after it is taken, with no wait.
  EXPECT_TRUE(answers()) << "READY=1 came before the socket took a connection";
  EXPECT_TRUE(notify.said_prefix("STATUS=")) << notify.all();
  EXPECT_FALSE(notify.said("STOPPING=1")) << notify.all();
  auto status = cv({"status", "--json"}, false);
  EXPECT_EQ(status.exit_code, 0) << status.err;
  unlock();
  EXPECT_EQ(sign_as_client().exit_code, 0);
  ASSERT_EQ(::kill(agent_.pid(), SIGTERM), 0);
  EXPECT_TRUE(notify.await("STOPPING=1", 30s)) << "no STOPPING=1 within 30 s: " << notify.all();
  ASSERT_TRUE(agent_.exited_within(30s)) << "the agent did not end within 30 s of SIGTERM";
  EXPECT_TRUE(WIFEXITED(agent_.status()) && WEXITSTATUS(agent_.status()) == 0)
      << describe_status(agent_.status()) << "\n"
      << read_file(tmp_ / "agent.err");
}

}  // namespace
}  // namespace cvtest
