// Shell completion as a shell runs it: the bash script is sourced and its function called
// with COMP_WORDS/COMP_CWORD set; the zsh function runs with `words`/CURRENT set and
// compadd, _files and _directories standing in for zsh's completion system. Both ask the
// CLI under test for its commands and the vault's nicknames.
#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include "support.h"
#include "test_cli.h"

using namespace cvtest;

namespace {

#ifndef CERTVAULT_COMPLETION_DIR
#error "CERTVAULT_COMPLETION_DIR must name completion/"
#endif

std::set<std::string> lines(const std::string& text) {
  std::set<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.insert(line);
  return out;
}

class Completion : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    ok({"create", "api-prod", "--self-signed", "--end-date", "+30d"});
    ok({"create", "api-test", "--self-signed", "--end-date", "+30d"});
    ok({"create", "web one", "--self-signed", "--end-date", "+30d"});
  }

  // The replies to completing the last of `words` (after `certvault`).
  std::set<std::string> bash(const std::vector<std::string>& words) const {
    std::vector<std::string> argv{"bash",
                                  "--norc",
                                  "-c",
                                  "source \"$0\"; COMP_WORDS=(\"$@\"); "
                                  "COMP_CWORD=$(($# - 1)); _certvault; "
                                  "printf '%s\\n' \"${COMPREPLY[@]}\"",
                                  std::string(CERTVAULT_COMPLETION_DIR) + "/certvault.bash",
                                  cli()};
    argv.insert(argv.end(), words.begin(), words.end());
    auto r = run(argv);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err, "");
    return lines(r.out);
  }

  std::set<std::string> zsh(const std::vector<std::string>& words) const {
    std::vector<std::string> argv{
        "zsh",
        "-f",
        "-c",
        "compadd() { [[ $1 == -- ]] && shift; print -rl -- \"$@\" }; "
        "_files() { print FILES }; _directories() { print DIRECTORIES }; _message() { :; }; "
        "functions[_certvault]=$(<$0); words=(\"$@\"); CURRENT=$#; _certvault",
        std::string(CERTVAULT_COMPLETION_DIR) + "/_certvault",
        cli()};
    argv.insert(argv.end(), words.begin(), words.end());
    auto r = run(argv);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err, "");
    return lines(r.out);
  }
};

TEST_F(Completion, BashCompletesACommandFromItsPrefix) {
  EXPECT_EQ(bash({"ren"}), (std::set<std::string>{"renew", "renew-rule"}));
  EXPECT_EQ(bash({"ca", "c"}), (std::set<std::string>{"create", "crl"}));
}

TEST_F(Completion, BashCompletesTheOptionsOfTheCommandAndTheGlobalOnes) {
  auto replies = bash({"export", "api-prod", "--"});
  EXPECT_TRUE(replies.contains("--encryption"));
  EXPECT_TRUE(replies.contains("--out"));
  EXPECT_TRUE(replies.contains("--vault"));
  EXPECT_FALSE(replies.contains("--kdf-ops"));  // hidden stays hidden
  EXPECT_EQ(bash({"init", "--l"}), (std::set<std::string>{"--label"}));
}

TEST_F(Completion, BashCompletesKeyTypesAndHashes) {
  EXPECT_EQ(bash({"create", "x", "--key-type", "ec"}),
            (std::set<std::string>{"ec-p256", "ec-p384"}));
  EXPECT_EQ(bash({"csr", "x", "--hash", "sha"}),
            (std::set<std::string>{"sha256", "sha384", "sha512"}));
}

TEST_F(Completion, BashCompletesTheNicknamesOfTheVaultNamedOnTheLine) {
  EXPECT_EQ(bash({"--vault", vault_.string(), "show", "api-"}),
            (std::set<std::string>{"api-prod", "api-test"}));
  // A nickname with a space comes quoted for the command line.
  EXPECT_EQ(bash({"rotate", "--vault", vault_.string(), "w"}),
            (std::set<std::string>{"web\\ one"}));
  // Another vault, other names: none here.
  EXPECT_EQ(bash({"--vault", (tmp_ / "none").string(), "show", "api-"}), std::set<std::string>{});
}

TEST_F(Completion, ZshCompletesCommandsOptionsValuesAndNicknames) {
  if (run({"sh", "-c", "command -v zsh"}).exit_code != 0) GTEST_SKIP() << "no zsh";
  EXPECT_TRUE(zsh({""}).contains("renew-rule"));
  EXPECT_EQ(zsh({"ca", ""}), (std::set<std::string>{"create", "crl", "import", "show"}));
  EXPECT_TRUE(zsh({"export", "x", "-"}).contains("--encryption"));
  EXPECT_TRUE(zsh({"create", "x", "--key-type", ""}).contains("ed25519"));
  EXPECT_EQ(zsh({"--vault", vault_.string(), "show", ""}),
            (std::set<std::string>{"api-prod", "api-test", "web one"}));
}

TEST_F(Completion, ListNamesPrintsOneNicknameALineWithoutThePin) {
  auto r = run({cli(), "--vault", vault_.string(), "list", "--names"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "api-prod\napi-test\nweb one\n");
}

}  // namespace
