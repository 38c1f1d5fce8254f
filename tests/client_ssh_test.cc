// OpenSSH with the PKCS#11 module: a real login to a throwaway sshd on 127.0.0.1 by the
// vault key, with `ssh -o PKCS11Provider=` and through `ssh-agent` loaded by `ssh-add -s`;
// the PIN from SSH_ASKPASS, or none at all through the certvault agent, as another user.
#include <gtest/gtest.h>

#include <algorithm>

#include "agent_support.h"
#include "client_support.h"
#include "pkcs11_support.h"

namespace cvtest {
namespace {

// The first line of `ssh-keygen -D` that names `comment` ("api", "/CN=ops CA"), without
// the comment: "ecdsa-sha2-nistp256 AAAA...".
std::string key_line(const std::string& listing, const std::string& comment) {
  size_t at = 0;
  while (at < listing.size()) {
    size_t nl = listing.find('\n', at);
    if (nl == std::string::npos) nl = listing.size();
    const std::string line = listing.substr(at, nl - at);
    const size_t space = line.rfind(' ');
    if (space != std::string::npos && line.substr(space + 1) == comment)
      return line.substr(0, space);
    at = nl + 1;
  }
  return {};
}

void expect_logged_in(const RunResult& r, const Sshd& sshd) {
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err << "\nsshd:\n" << sshd.log();
  EXPECT_EQ(r.out, std::string("logged in as ") + kLoginUser + "\n") << r.err;
  EXPECT_TRUE(contains(sshd.log(), std::string("Accepted publickey for ") + kLoginUser))
      << sshd.log();
}

class OpenSsh : public VaultTest {
 protected:
  void SetUp() override {
    VaultTest::SetUp();
    if (HasFatalFailure()) return;
    if (!login_user()) GTEST_SKIP() << "the sshd tests log in as a user they make, as root";
    issue("api", 100);
    pin_file_ = write_secret_file(tmp_ / "pin", kPin);
    // SSH_ASKPASS names a program that prints the PIN.
    askpass_ = tmp_ / "askpass";
    write_file(askpass_, "#!/bin/sh\nexec cat " + pin_file_.string() + "\n", 0700);
    ::chmod(sshd_dir_.path().c_str(), 0755);  // sshd reads the keys file as the login user
    listing_ = in_process({"ssh-keygen", "-D", kModule});
    ASSERT_EQ(listing_.exit_code, 0) << listing_.err;
    api_key_ = key_line(listing_.out, "api");
    ASSERT_FALSE(api_key_.empty()) << listing_.out;
    sshd_ = Sshd::start(sshd_dir_.path(), api_key_ + " vault key\n");
    ASSERT_TRUE(sshd_);
  }

  // A program with the module's environment, without a controlling terminal.
  RunResult in_process(const std::vector<std::string>& argv, std::string_view input = {}) {
    std::vector<std::string> full = module_env(dir_);
    full.push_back("setsid");
    full.push_back("--wait");
    full.insert(full.end(), argv.begin(), argv.end());
    return run(full, input, 60s);
  }

  std::vector<std::string> with_askpass(const std::vector<std::string>& argv) {
    std::vector<std::string> out = {"env", "SSH_ASKPASS=" + askpass_.string(),
                                    "SSH_ASKPASS_REQUIRE=force"};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }

  fs::path pin_file_, askpass_;
  TempDir sshd_dir_;
  RunResult listing_;
  std::string api_key_;
  std::optional<Sshd> sshd_;
};

TEST_F(OpenSsh, SshKeygenListsTheEntryKeyAndTheVaultCaKey) {
  // The vault CA's certificate has no private key in the token, but OpenSSH makes an
  // identity of every X.509 certificate's public key (docs/pkcs11.md, the vault CA).
  EXPECT_EQ(std::count(listing_.out.begin(), listing_.out.end(), '\n'), 2) << listing_.out;
  EXPECT_TRUE(contains(listing_.out, " CA\n")) << listing_.out;
}

TEST_F(OpenSsh, LogsInWithPkcs11ProviderAndThePinFromAskpass) {
  auto r = in_process(with_askpass(sshd_->ssh({"-o", std::string("PKCS11Provider=") + kModule})));
  expect_logged_in(r, *sshd_);
}

TEST_F(OpenSsh, WithoutAPinSourceTheLoginFails) {
  // No terminal, no SSH_ASKPASS: ssh reads an empty PIN from its standard input, the token
  // refuses it (not counted as a wrong PIN), and the key the server would take cannot sign.
  auto r = in_process(sshd_->ssh({"-o", std::string("PKCS11Provider=") + kModule}));
  EXPECT_FALSE(r.timed_out);
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_FALSE(contains(r.out, "logged in as")) << r.out;
  EXPECT_TRUE(contains(r.err, "signing failed for ECDSA \"api\"")) << r.err;
  EXPECT_TRUE(contains(r.err, "Permission denied (publickey)")) << r.err;
  EXPECT_EQ(vault().pin_failures(), 0);
}

TEST_F(OpenSsh, SshAddLoadsTheModuleIntoSshAgentAndSshLogsInThroughIt) {
#ifdef CERTVAULT_SANITIZER_RUNTIME
  GTEST_SKIP() << "ssh-pkcs11-helper cannot load a sanitizer-instrumented module";
#endif
  // ssh-agent loads the module in ssh-pkcs11-helper, with ssh-agent's environment (the
  // vault), and only from its -P allow list.
  const fs::path sock = tmp_ / "ssh-agent.sock";
  std::vector<std::string> agent = module_env(dir_);
  for (const std::string& a : {std::string("ssh-agent"), std::string("-D"), std::string("-P"),
                               std::string(kModule), std::string("-a"), sock.string()})
    agent.push_back(a);
  ChildGuard ssh_agent(spawn_quiet(agent));
  for (int i = 0; i < 400 && !fs::exists(sock); ++i) std::this_thread::sleep_for(25ms);
  ASSERT_TRUE(fs::exists(sock));
  const std::string auth_sock = "SSH_AUTH_SOCK=" + sock.string();

  // Without a terminal ssh-add takes the PIN from SSH_ASKPASS (SSH_ASKPASS_REQUIRE=force)...
  auto added = in_process(with_askpass({"env", auth_sock, "ssh-add", "-s", kModule}));
  ASSERT_EQ(added.exit_code, 0) << added.out << added.err;
  auto keys = run({"env", auth_sock, "ssh-add", "-L"});
  EXPECT_TRUE(contains(keys.out, api_key_)) << keys.out;
  auto r = run(sshd_->ssh({"-o", "IdentityAgent=" + sock.string()}), {}, 60s);
  expect_logged_in(r, *sshd_);

  // ...or, with no terminal at all, from its standard input.
  auto removed = in_process({"env", auth_sock, "ssh-add", "-e", kModule}, std::string(kPin) + "\n");
  ASSERT_EQ(removed.exit_code, 0) << removed.err;
  auto again = in_process({"env", auth_sock, "ssh-add", "-s", kModule}, std::string(kPin) + "\n");
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_TRUE(contains(run({"env", auth_sock, "ssh-add", "-L"}).out, api_key_));
  EXPECT_EQ(vault().pin_failures(), 0);
}

// Through the certvault agent, as an unprivileged user with no PIN and no access to the
// vault directory.
class AgentOpenSsh : public AgentTest {
 protected:
  void SetUp() override {
    AgentTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (!login_user()) GTEST_SKIP() << "the sshd tests log in as a user they make, as root";
    issue("api", 100);
    start_agent();
    if (HasFatalFailure()) return;
    ASSERT_EQ(cv({"access", "api", "allow", "--uid", std::to_string(client_uid_)}).exit_code, 0);
    unlock();
    auto listing = run(as_client({"ssh-keygen", "-D", module_.string()}), {}, 60s);
    ASSERT_EQ(listing.exit_code, 0) << listing.err;
    api_key_ = key_line(listing.out, "api");
    ASSERT_FALSE(api_key_.empty()) << listing.out;
    // The agent shows no vault CA certificate: the one key listed is the entry's. (Not a
    // search for "CA" in the listing: a key's base64 holds those letters one time in four.)
    EXPECT_EQ(std::count(listing.out.begin(), listing.out.end(), '\n'), 1) << listing.out;
    ::chmod(sshd_dir_.path().c_str(), 0755);
    sshd_ = Sshd::start(sshd_dir_.path(), api_key_ + " vault key\n");
    ASSERT_TRUE(sshd_);
  }

  RunResult client(const std::vector<std::string>& argv, std::string_view input = {}) {
    std::vector<std::string> full = {"setsid", "--wait"};
    full.insert(full.end(), argv.begin(), argv.end());
    return run(as_client(full), input, 60s);
  }

  TempDir sshd_dir_;
  std::string api_key_;
  std::optional<Sshd> sshd_;
};

TEST_F(AgentOpenSsh, LogsInWithPkcs11ProviderAndNoPin) {
  auto r = client(sshd_->ssh({"-o", "PKCS11Provider=" + module_.string()}));
  expect_logged_in(r, *sshd_);
}

TEST_F(AgentOpenSsh, SshAddWithNoPinAndSshLogsInThroughSshAgent) {
#ifdef CERTVAULT_SANITIZER_RUNTIME
  GTEST_SKIP() << "ssh-pkcs11-helper cannot load a sanitizer-instrumented module";
#endif
  const fs::path sock = out_ / "ssh-agent.sock";
  ChildGuard ssh_agent(
      spawn_quiet(as_client({"ssh-agent", "-D", "-P", module_.string(), "-a", sock.string()})));
  for (int i = 0; i < 400 && !fs::exists(sock); ++i) std::this_thread::sleep_for(25ms);
  ASSERT_TRUE(fs::exists(sock));
  // ssh-add asks for a PIN all the same; an empty answer does (the token needs none).
  auto added =
      client({"env", "SSH_AUTH_SOCK=" + sock.string(), "ssh-add", "-s", module_.string()}, "\n");
  ASSERT_EQ(added.exit_code, 0) << added.out << added.err;
  auto r = client(sshd_->ssh({"-o", "IdentityAgent=" + sock.string()}));
  expect_logged_in(r, *sshd_);
}

}  // namespace
}  // namespace cvtest
