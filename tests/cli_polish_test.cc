// What a newcomer meets at the command line: hints for misspelt nicknames, commands and
// options, checks made before the PIN is asked for, confirmation before a delete, the
// minimum PIN length, list's sorting and filters, and the global options in every --help.
#include <gtest/gtest.h>

#include <sstream>

#include "support.h"
#include "test_cli.h"

using namespace cvtest;

namespace {

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

}  // namespace
