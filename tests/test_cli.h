// A fixture for CLI tests: runs the real `certvault` binary on a fresh vault made with
// `init` (cheap Argon2id) and `ca create`, and helpers to judge its output.
#pragma once

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "support.h"

namespace cvtest {

// The recovery secret that `init` prints once: from JSON when it printed JSON, else the
// last word of the line that mentions it (or of the last line).
std::string recovery_from_init_output(const std::string& out);

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override;

  // certvault --vault DIR --pin-file PIN [--json] ARGS...
  RunResult cv(const std::vector<std::string>& args, bool json = false) const;
  RunResult cv_pin(const fs::path& pin_file, const std::vector<std::string>& args) const;
  // Runs a command that must succeed.
  RunResult ok(const std::vector<std::string>& args, bool json = false) const;

  // The certificate of an entry (current generation), as a PEM file, read through the
  // keystore API the way the provider would.
  fs::path cert_file(const std::string& nickname, const std::string& file_name = "") const;
  // The CA certificate as `ca show` prints it, written to a file.
  fs::path ca_file() const;

  // Asserts the shape of a failure: exit code among `codes`, exactly one line on stderr
  // starting "certvault: ".
  static void ExpectOneLineFailure(const RunResult& r, const std::set<int>& codes);
  // Runs a command that must fail that way and leave the vault byte-for-byte unchanged.
  RunResult ExpectRefusedUnchanged(const std::vector<std::string>& args,
                                   const std::set<int>& codes) const;

  TempDir tmp_;
  fs::path vault_;
  fs::path pin_file_;
  std::string recovery_;
};

}  // namespace cvtest
