// What a newcomer meets at the command line: hints for misspelt nicknames, commands and
// options, checks made before the PIN is asked for, confirmation before a delete, the
// minimum PIN length, list's sorting and filters, and the global options in every --help.
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <sstream>

#include "support.h"
#include "test_cli.h"

using namespace cvtest;

namespace {

// Runs argv on a new terminal (a pty, its controlling terminal), answering each prompt of
// `dialogue` once it has appeared, in order. Output is stdout and stderr together.
// Bounded: after `limit` the program is killed and the result says timed out.
RunResult run_on_terminal(const std::vector<std::string>& argv,
                          const std::vector<std::pair<std::string, std::string>>& dialogue,
                          std::chrono::seconds limit = std::chrono::seconds(60)) {
  RunResult result;
  int master = -1;
  pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
  if (pid < 0) return result;
  if (pid == 0) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + limit;
  size_t next = 0, seen = 0;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    pollfd p{master, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[4096];
    ssize_t n = read(master, buf, sizeof buf);
    if (n <= 0) break;  // EIO: the program has ended and closed the terminal
    result.out.append(buf, static_cast<size_t>(n));
    if (next < dialogue.size()) {
      auto at = result.out.find(dialogue[next].first, seen);
      if (at != std::string::npos) {
        seen = at + dialogue[next].first.size();
        std::string line = dialogue[next].second + "\n";
        EXPECT_EQ(write(master, line.data(), line.size()), static_cast<ssize_t>(line.size()));
        ++next;
      }
    }
  }
  close(master);
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

class CliPolish : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    ok({"create", "api-prod", "--end-date", "+30d"});
    ok({"create", "api-test", "--end-date", "+60d"});
  }
  // certvault --vault DIR ARGS..., without a PIN file.
  RunResult bare(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{cli(), "--vault", vault_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }
};

TEST_F(CliPolish, UnknownNicknameSuggestsTheClosestOnes) {
  auto r = ExpectRefusedUnchanged({"rotate", "api-prd"}, {4});
  EXPECT_TRUE(contains(r.err, "no entry named 'api-prd'")) << r.err;
  EXPECT_TRUE(contains(r.err, "did you mean 'api-prod'?")) << r.err;
  r = bare({"show", "api-tset"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_TRUE(contains(r.err, "did you mean 'api-test'?")) << r.err;
  // Nothing close: the usual pointer to the list.
  r = bare({"show", "billing"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_FALSE(contains(r.err, "did you mean")) << r.err;
  EXPECT_TRUE(contains(r.err, "certvault list")) << r.err;
}

TEST_F(CliPolish, MisspeltCommandAndOptionSuggestTheRightOnes) {
  auto r = bare({"lsit"});
  ExpectOneLineFailure(r, {3});
  EXPECT_TRUE(contains(r.err, "unknown command 'lsit'; did you mean 'list'?")) << r.err;
  r = bare({"ca", "crate"});
  ExpectOneLineFailure(r, {3});
  EXPECT_TRUE(contains(r.err, "did you mean 'create'?")) << r.err;
  r = bare({"list", "--expring", "30"});
  ExpectOneLineFailure(r, {3});
  EXPECT_TRUE(contains(r.err,
                       "unknown option '--expring' for 'certvault list'; did you mean "
                       "'--expiring'?"))
      << r.err;
  r = bare({"create", "x", "--key-typ", "ec-p256"});
  ExpectOneLineFailure(r, {3});
  EXPECT_TRUE(contains(r.err, "did you mean '--key-type'?")) << r.err;
}

// With a wrong PIN in the PIN file, a command that reached the PIN would fail with exit 6
// and count a wrong PIN in the vault; these stop at the check before, changing nothing.
TEST_F(CliPolish, WhatNeedsNoPinIsCheckedBeforeThePin) {
  const auto wrong = write_secret_file(tmp_ / "wrong.pin", "not-the-pin-1");
  write_file(tmp_ / "taken.p12", "already here");
  struct Case {
    std::vector<std::string> args;
    int code;
  };
  const std::vector<Case> cases{
      {{"export", "api-prd", "-o", (tmp_ / "new.p12").string()}, 4},
      {{"export", "api-prod", "-o", (tmp_ / "taken.p12").string()}, 5},
      {{"rotate", "api-prd"}, 4},
      {{"rotate", "api-prod", "--end-date", "2027-02-30"}, 3},
      {{"disable", "api-prd"}, 4},
      {{"enable", "api-prd"}, 4},
      {{"revoke", "api-prd", "--reason", "superseded"}, 4},
      {{"delete", "api-prd", "--yes"}, 4},
      {{"renew", "api-prd"}, 4},
      {{"renew-rule", "api-prd", "--off"}, 4},
      {{"publish", "api-prd", "--cert", (tmp_ / "c.pem").string()}, 4},
      {{"attach", "api-prd", (tmp_ / "taken.p12").string()}, 4},
      {{"create", "new", "--end-date", "tomorrow"}, 3},
  };
  for (const auto& c : cases) {
    std::string cmd;
    for (const auto& a : c.args) cmd += a + " ";
    SCOPED_TRACE("certvault " + cmd);
    auto before = snapshot(vault_);
    auto r = cv_pin(wrong, c.args);
    ExpectOneLineFailure(r, {c.code});
    EXPECT_FALSE(contains(r.err, "PIN")) << r.err;
    EXPECT_EQ(describe_difference(before, snapshot(vault_)), "") << "vault changed";
  }
  // A recovery secret that cannot be one is refused before the new PIN is read or tried.
  const auto recovery = write_secret_file(tmp_ / "recovery", "1234-abcd");
  const auto new_pin = write_secret_file(tmp_ / "new.pin", "another-pin-1");
  auto before = snapshot(vault_);
  auto r = bare(
      {"unlock-reset", "--recovery-file", recovery.string(), "--new-pin-file", new_pin.string()});
  ExpectOneLineFailure(r, {3});
  EXPECT_TRUE(contains(r.err, "64 hex digits")) << r.err;
  EXPECT_EQ(describe_difference(before, snapshot(vault_)), "") << "vault changed";
}

TEST_F(CliPolish, ListSortsAndFiltersByStatusAndIssuer) {
  ok({"create", "zeta", "--end-date", "+10d"});
  ok({"create", "self", "--self-signed", "--end-date", "+20d"});
  ok({"disable", "api-test"});
  auto names = [&](const std::vector<std::string>& args) {
    std::vector<std::string> with{"list", "--names"};
    with.insert(with.end(), args.begin(), args.end());
    auto r = bare(with);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  };
  // Soonest end first; an entry without an active certificate last.
  EXPECT_EQ(names({"--sort", "expiry"}), "zeta\nself\napi-prod\napi-test\n");
  EXPECT_EQ(names({"--sort", "name"}), "api-prod\napi-test\nself\nzeta\n");
  EXPECT_EQ(names({"--sort", "created"}), "api-prod\napi-test\nzeta\nself\n");
  EXPECT_EQ(names({"--status", "disabled"}), "api-test\n");
  EXPECT_EQ(names({"--status", "active", "--sort", "name"}), "api-prod\nself\nzeta\n");
  EXPECT_EQ(names({"--issuer", "self-signed"}), "self\n");
  EXPECT_EQ(names({"--issuer", "vault-ca", "--status", "active", "--sort", "expiry"}),
            "zeta\napi-prod\n");
  // The table takes them too.
  auto table = bare({"list", "--status", "disabled"});
  EXPECT_TRUE(contains(table.out, "api-test")) << table.out;
  EXPECT_FALSE(contains(table.out, "api-prod")) << table.out;
  // A value outside the choices: one line naming them.
  auto r = bare({"list", "--status", "activ"});
  ExpectOneLineFailure(r, {3});
  EXPECT_TRUE(contains(r.err, "did you mean 'active'?")) << r.err;
  ExpectOneLineFailure(bare({"list", "--sort", "size"}), {3});
  ExpectOneLineFailure(bare({"list", "--issuer", "corp"}), {3});
}

TEST_F(CliPolish, EveryCommandsHelpShowsTheGlobalOptions) {
  auto commands = run({cli(), "--list-commands"});
  ASSERT_EQ(commands.exit_code, 0) << commands.err;
  std::istringstream in(commands.out);
  int checked = 0;
  for (std::string line; std::getline(in, line);) {
    std::string path = line.substr(0, line.find('\t'));
    if (path.empty()) continue;
    std::vector<std::string> argv{cli()};
    std::istringstream words(path);
    for (std::string w; words >> w;) argv.push_back(w);
    argv.push_back("--help");
    auto help = run(argv);
    EXPECT_EQ(help.exit_code, 0) << path << ": " << help.err;
    for (const char* global : {"--vault DIR", "--pin-file FILE", "--json"})
      EXPECT_TRUE(contains(help.out, global)) << "certvault " << path << " --help lacks " << global;
    ++checked;
  }
  EXPECT_GT(checked, 30);
}

TEST_F(CliPolish, DeleteAsksOnATerminalAndScriptsSayYes) {
  const std::string question = "Delete 'api-prod' and all its keys from vault 'ops'? [y/N] ";
  auto before = snapshot(vault_);
  auto no = run_on_terminal(
      {cli(), "--vault", vault_.string(), "--pin-file", pin_file_.string(), "delete", "api-prod"},
      {{question, "n"}});
  EXPECT_FALSE(no.timed_out);
  EXPECT_EQ(no.exit_code, 5) << no.out;
  EXPECT_TRUE(contains(no.out, "was not deleted")) << no.out;
  EXPECT_EQ(describe_difference(before, snapshot(vault_)), "");

  auto yes = run_on_terminal(
      {cli(), "--vault", vault_.string(), "--pin-file", pin_file_.string(), "delete", "api-prod"},
      {{question, "y"}});
  EXPECT_EQ(yes.exit_code, 0) << yes.out;
  EXPECT_EQ(bare({"list", "--names"}).out, "api-test\n");

  // Without a terminal and without --yes: refused, saying what to add.
  auto r = ExpectRefusedUnchanged({"delete", "api-test"}, {3});
  EXPECT_TRUE(contains(r.err, "add --yes")) << r.err;
  ok({"delete", "api-test", "--yes"});
  EXPECT_EQ(bare({"list", "--names"}).out, "");
}

TEST_F(CliPolish, PinMismatchAtThePromptAsksAgain) {
  const auto dir = tmp_ / "second";
  auto made = run_on_terminal(
      {cli(), "--vault", dir.string(), "init", "--kdf-ops", "1", "--kdf-mem-kib", "8"},
      {{"New PIN: ", "first-pin-1"},
       {"Repeat the new PIN: ", "other-pin-1"},
       {"New PIN: ", "short"},
       {"New PIN: ", "chosen-pin-1"},
       {"Repeat the new PIN: ", "chosen-pin-1"}});
  EXPECT_FALSE(made.timed_out);
  ASSERT_EQ(made.exit_code, 0) << made.out;
  EXPECT_TRUE(contains(made.out, "the two PINs differ; try again")) << made.out;
  EXPECT_TRUE(contains(made.out, "shorter than 8 characters")) << made.out;
  const auto pin = write_secret_file(tmp_ / "chosen.pin", "chosen-pin-1");
  auto r = run({cli(), "--vault", dir.string(), "--pin-file", pin.string(), "create", "x",
                "--self-signed", "--end-date", "+30d"});
  EXPECT_EQ(r.exit_code, 0) << r.err;

  // Three misses end it, with no vault made.
  const auto third = tmp_ / "third";
  auto failed = run_on_terminal(
      {cli(), "--vault", third.string(), "init", "--kdf-ops", "1", "--kdf-mem-kib", "8"},
      {{"New PIN: ", "first-pin-1"},
       {"Repeat the new PIN: ", "other-pin-1"},
       {"New PIN: ", "first-pin-1"},
       {"Repeat the new PIN: ", "other-pin-2"},
       {"New PIN: ", "first-pin-1"},
       {"Repeat the new PIN: ", "other-pin-3"}});
  EXPECT_EQ(failed.exit_code, 3) << failed.out;
  EXPECT_TRUE(contains(failed.out, "the two PINs differ (3 tries)")) << failed.out;
  EXPECT_FALSE(fs::exists(third / "manifest"));
}

TEST_F(CliPolish, NewPinsHaveTheMinimumLengthThePolicySets) {
  const auto short_pin = write_secret_file(tmp_ / "short.pin", "1234567");
  auto r = ExpectRefusedUnchanged({"passwd", "--new-pin-file", short_pin.string()}, {3});
  EXPECT_TRUE(contains(r.err, "shorter than 8 characters")) << r.err;
  auto init = run({cli(), "--vault", (tmp_ / "other").string(), "--pin-file", short_pin.string(),
                   "init", "--kdf-ops", "1", "--kdf-mem-kib", "8"});
  ExpectOneLineFailure(init, {3});
  EXPECT_FALSE(fs::exists(tmp_ / "other" / "manifest"));
  // The policy may ask for less (or more).
  auto shown = ok({"policy", "set", "--min-pin-length", "4"}, true);
  EXPECT_EQ(parse_json(shown.out)["min_pin_length"].asUInt(), 4u) << shown.out;
  ok({"passwd", "--new-pin-file", short_pin.string()});
  ExpectOneLineFailure(cv_pin(short_pin, {"policy", "set", "--min-pin-length", "65"}), {3});
  // Back to the default: the short PIN (now the vault's) may not be chosen again.
  auto cleared = cv_pin(short_pin, {"policy", "clear"});
  ASSERT_EQ(cleared.exit_code, 0) << cleared.err;
  auto again = cv_pin(short_pin, {"passwd", "--new-pin-file", short_pin.string()});
  ExpectOneLineFailure(again, {3});
}

}  // namespace
