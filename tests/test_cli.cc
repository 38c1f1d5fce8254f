#include "test_cli.h"

#include <json/json.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <sstream>

#include "test_vault.h"
#include "vault.h"

namespace cvtest {

std::string recovery_from_init_output(const std::string& out) {
  Json::CharReaderBuilder builder;
  Json::Value root;
  std::string errs;
  std::unique_ptr<Json::CharReader> reader(builder.newCharReader());
  if (reader->parse(out.data(), out.data() + out.size(), &root, &errs) && root.isObject()) {
    for (const auto& name : root.getMemberNames()) {
      std::string lower = name;
      std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
      if (lower.find("recovery") != std::string::npos && root[name].isString())
        return root[name].asString();
    }
  }
  std::istringstream in(out);
  std::string line, chosen, last;
  while (std::getline(in, line)) {
    // Keep only lines with a word on them.
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    last = line;
    std::string lower = line;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    if (chosen.empty() && lower.find("recovery") != std::string::npos) chosen = line;
  }
  if (chosen.empty()) chosen = last;
  // Trailing word; when the recovery line ends with ':' the secret is on the next line.
  while (!chosen.empty() && std::isspace(static_cast<unsigned char>(chosen.back())))
    chosen.pop_back();
  if (!chosen.empty() && chosen.back() == ':') {
    auto pos = out.find(chosen);
    std::istringstream rest(out.substr(pos + chosen.size()));
    std::string next;
    while (std::getline(rest, next))
      if (next.find_first_not_of(" \t\r") != std::string::npos) {
        chosen = next;
        break;
      }
  }
  // "Recovery secret (shown once): SECRET": everything after the colon.
  auto colon = chosen.find(": ");
  auto start = colon != std::string::npos ? colon + 1 : chosen.find_last_of(" \t");
  std::string word = start == std::string::npos ? chosen : chosen.substr(start + 1);
  while (!word.empty() && std::isspace(static_cast<unsigned char>(word.front())))
    word.erase(word.begin());
  while (!word.empty() && std::isspace(static_cast<unsigned char>(word.back()))) word.pop_back();
  return word;
}

void CliTest::SetUp() {
  vault_ = tmp_ / "vault";
  pin_file_ = write_secret_file(tmp_ / "pin", kPin);
  auto init = cv({"init", "--label", "ops", "--kdf-ops", "1", "--kdf-mem-kib", "8"}, true);
  ASSERT_EQ(init.exit_code, 0) << init.err;
  recovery_ = recovery_from_init_output(init.out);
  ASSERT_FALSE(recovery_.empty()) << "no recovery secret in: " << init.out;
  auto ca = cv({"ca", "create", "--end-date", "+3650d"});
  ASSERT_EQ(ca.exit_code, 0) << ca.err;
}

RunResult CliTest::cv(const std::vector<std::string>& args, bool json) const {
  return cv_pin(pin_file_, json ? [&] {
    std::vector<std::string> with{"--json"};
    with.insert(with.end(), args.begin(), args.end());
    return with;
  }()
                                : args);
}

RunResult CliTest::cv_pin(const fs::path& pin_file, const std::vector<std::string>& args) const {
  std::vector<std::string> argv{cli(), "--vault", vault_.string(), "--pin-file", pin_file.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv);
}

RunResult CliTest::ok(const std::vector<std::string>& args, bool json) const {
  auto r = cv(args, json);
  std::string cmd;
  for (const auto& a : args) cmd += a + " ";
  EXPECT_EQ(r.exit_code, 0) << "certvault " << cmd << "failed: " << r.err;
  return r;
}

fs::path CliTest::cert_file(const std::string& nickname, const std::string& file_name) const {
  auto path = tmp_ / (file_name.empty() ? nickname + ".crt.pem" : file_name);
  auto vault = certvault::Vault::open(vault_);
  EXPECT_TRUE(vault) << why(vault);
  if (!vault) return path;
  auto der = vault->certificate_der(nickname);
  EXPECT_TRUE(der) << nickname << ": " << why(der);
  if (der) write_file(path, der_to_pem(*der));
  return path;
}

fs::path CliTest::ca_file() const {
  auto r = cv({"ca", "show"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto pem = pem_block(r.out);
  EXPECT_FALSE(pem.empty()) << "`ca show` printed no PEM certificate: " << r.out;
  auto path = tmp_ / "ca.pem";
  write_file(path, pem);
  return path;
}

void CliTest::ExpectOneLineFailure(const RunResult& r, const std::set<int>& codes) {
  std::string allowed;
  for (int c : codes) allowed += std::to_string(c) + " ";
  EXPECT_TRUE(codes.contains(r.exit_code))
      << "exit code " << r.exit_code << " (signal " << r.signal << "), expected one of " << allowed
      << "; stderr: " << r.err;
  auto lines = r.err_lines();
  ASSERT_EQ(lines.size(), 1u) << "stderr must be exactly one line, was:\n" << r.err;
  EXPECT_EQ(lines[0].rfind("certvault: ", 0), 0u) << lines[0];
  EXPECT_GT(lines[0].size(), std::string("certvault: ").size() + 10) << "not a clear sentence";
}

RunResult CliTest::ExpectRefusedUnchanged(const std::vector<std::string>& args,
                                          const std::set<int>& codes) const {
  auto before = snapshot(vault_);
  auto r = cv(args);
  std::string cmd;
  for (const auto& a : args) cmd += a + " ";
  SCOPED_TRACE("certvault " + cmd);
  ExpectOneLineFailure(r, codes);
  EXPECT_EQ(describe_difference(before, snapshot(vault_)), "") << "vault changed";
  return r;
}

}  // namespace cvtest
