// What a newcomer meets at the command line: hints for misspelt nicknames, commands and
// options, checks made before the PIN is asked for, confirmation before a delete, the
// minimum PIN length, list's sorting and filters, and the global options in every --help.
#include <gtest/gtest.h>

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

}  // namespace
