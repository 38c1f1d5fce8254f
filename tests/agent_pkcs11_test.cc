// The PKCS#11 module as a client of the agent: programs run as another user, with no PIN
// anywhere and no access to the vault directory, list the token and sign by PKCS#11 URI
// (pkcs11-tool, gnutls-cli, curl through libp11, OpenSSH). Loopback only.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>

#include "agent_support.h"
#include "pkcs11_support.h"

namespace cvtest {
namespace {

using namespace std::chrono_literals;

// "header | label" -> CKA_UNIQUE_ID, for each object `pkcs11-tool -O` lists with one.
std::map<std::string, std::string> unique_ids(const std::string& listing) {
  std::map<std::string, std::string> out;
  std::istringstream in(listing);
  std::string object, label;
  auto value = [](const std::string& line, size_t from) {
    const size_t at = line.find_first_not_of(' ', from);
    return at == std::string::npos ? std::string() : line.substr(at);
  };
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != ' ') {
      object = line;
      label.clear();
    } else if (line.starts_with("  label:")) {
      label = value(line, 8);
    } else if (line.starts_with("  Unique ID:")) {
      out[object + " | " + label] = value(line, 12);
    }
  }
  return out;
}

class AgentPkcs11 : public AgentTest {
 protected:
  void SetUp() override {
    AgentTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    const auto entry = issue("api", 100);
    key_id_ = entry.current() ? entry.current()->key_id : "";
    cert_ = write_certificate("api");
    ASSERT_FALSE(cert_.empty());
    data_ = run_dir_ / "data";
    sig_ = out_ / "sig";
    write_file(data_, "signed through the agent by PKCS#11\n", 0644);
    start_agent();
    if (HasFatalFailure()) return;
    ASSERT_EQ(cv({"access", "api", "allow", "--uid", std::to_string(client_uid_)}).exit_code, 0);
  }

  RunResult client(const std::vector<std::string>& argv, std::string_view input = {}) {
    return run(as_client(argv), input, 60s);
  }

  // `pkcs11-tool --sign` of data_ into sig_ as the client, no PIN given; `options`: the
  // mechanism, the key and any more.
  RunResult pkcs11_tool_sign(const std::vector<std::string>& options) {
    fs::remove(sig_);
    std::vector<std::string> argv = {"pkcs11-tool",  "--module", module_.string(),
                                     "--login",      "--sign",   "-i",
                                     data_.string(), "-o",       sig_.string()};
    argv.insert(argv.end(), options.begin(), options.end());
    return client(argv);
  }

  // pkcs11-tool --sign with the api key as the client, no PIN given; the signature checked
  // with openssl.
  RunResult sign(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> options = {"-m",    "ECDSA-SHA256",       "--id",
                                        key_id_, "--signature-format", "openssl"};
    options.insert(options.end(), extra.begin(), extra.end());
    auto r = pkcs11_tool_sign(options);
    if (r.exit_code == 0) {
      auto check = run({"env", "OPENSSL_CONF=/dev/null", "openssl", "dgst", "-sha256", "-verify",
                        pubkey().string(), "-signature", sig_.string(), data_.string()});
      EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
    }
    return r;
  }

  fs::path pubkey() {
    const fs::path pub = run_dir_ / "api.pub";
    if (!fs::exists(pub)) {
      auto r = run({"env", "OPENSSL_CONF=/dev/null", "openssl", "x509", "-in", cert_.string(),
                    "-noout", "-pubkey"});
      EXPECT_EQ(r.exit_code, 0) << r.err;
      write_file(pub, r.out, 0644);
    }
    return pub;
  }

  std::string key_id_;
  fs::path cert_, data_, sig_;
};

TEST_F(AgentPkcs11, TokenSaysProtectedPathAndWriteProtected) {
  unlock();
  auto r = client({"pkcs11-tool", "--module", module_.string(), "-T"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "token label        : ops")) << r.out;
  EXPECT_TRUE(contains(r.out, "PIN pad present")) << r.out;  // CKF_PROTECTED_AUTHENTICATION_PATH
  EXPECT_TRUE(contains(r.out, "readonly")) << r.out;         // CKF_WRITE_PROTECTED
  // The owner changes the vault with the CLI, not through a program's module.
  auto made = client({"pkcs11-tool", "--module", module_.string(), "--login", "--keypairgen",
                      "--key-type", "EC:prime256v1", "--label", "sneaky"});
  EXPECT_NE(made.exit_code, 0) << made.out;
  EXPECT_FALSE(vault().find("sneaky"));
}

TEST_F(AgentPkcs11, ListsAndSignsWithNoPinAsAnotherUser) {
  unlock();
  auto listed = client({"pkcs11-tool", "--module", module_.string(), "--login", "-O"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_TRUE(contains(listed.out, "Private Key Object; EC")) << listed.out;
  EXPECT_TRUE(contains(listed.out, "label:      api")) << listed.out;
  auto r = sign();
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  // The agent recorded who signed: pkcs11-tool, as the client user.
  bool recorded = false;
  std::istringstream lines(audit_log());
  for (std::string line; std::getline(lines, line);)
    recorded |= contains(line, "\"action\":\"sign\"") &&
                contains(line, "\"uid\":" + std::to_string(client_uid_) + ",") &&
                contains(line, "\"exe\":\"/usr/bin/pkcs11-tool\"");
  EXPECT_TRUE(recorded) << audit_log();
}

// v3.0 4.4.1: CKA_UNIQUE_ID comes from the vault, the entry, the generation and the kind of
// object, so a program sees through the agent the ids the owner sees in-process; the profile
// object (v3.0 4.13) is listed there too.
TEST_F(AgentPkcs11, ObjectsHaveTheUniqueIdsTheyHaveInProcessAndTheProfileIsListed) {
  unlock();
  auto through_agent = client({"pkcs11-tool", "--module", module_.string(), "--login", "-O"});
  ASSERT_EQ(through_agent.exit_code, 0) << through_agent.err;
  std::vector<std::string> owner = module_env(dir_);
  owner.insert(owner.end(), {"CERTVAULT_AGENT_SOCK=/nonexistent", "pkcs11-tool", "--module",
                             module_.string(), "--login", "--pin", std::string(kPin), "-O"});
  auto in_process = run(owner, {}, 60s);
  ASSERT_EQ(in_process.exit_code, 0) << in_process.err;
  ASSERT_TRUE(contains(in_process.out, "label:      ops CA")) << "in-process\n" << in_process.out;

  const auto agent_ids = unique_ids(through_agent.out);
  const auto own_ids = unique_ids(in_process.out);
  EXPECT_EQ(agent_ids.size(), 3u) << "the entry's certificate and keys\n" << through_agent.out;
  for (const auto& [object, id] : agent_ids) {
    ASSERT_TRUE(own_ids.contains(object)) << object << "\n" << in_process.out;
    EXPECT_EQ(id, own_ids.at(object)) << object;
  }
  EXPECT_TRUE(contains(through_agent.out, "Profile object")) << through_agent.out;
  EXPECT_TRUE(contains(through_agent.out, "CKP_AUTHENTICATION_TOKEN")) << through_agent.out;
}

TEST_F(AgentPkcs11, LockedVaultRefusesTheSignature) {
  auto r = sign();
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_TRUE(contains(r.out + r.err, "CKR_USER_NOT_LOGGED_IN")) << r.out << r.err;
}

TEST_F(AgentPkcs11, APinGivenAnywayIsCheckedAndAWrongOneCounts) {
  unlock();
  EXPECT_EQ(sign({"--pin", std::string(kPin)}).exit_code, 0);
  EXPECT_EQ(vault().pin_failures(), 0);
  auto wrong = sign({"--pin", "not-the-pin"});
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_TRUE(contains(wrong.out + wrong.err, "CKR_PIN_INCORRECT")) << wrong.out << wrong.err;
  EXPECT_EQ(vault().pin_failures(), 1);
}

TEST_F(AgentPkcs11, OpenSshListsTheKeyWithSshKeygenAndSshAdd) {
  unlock();
  auto listed = client({"ssh-keygen", "-D", module_.string()});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_TRUE(contains(listed.out, "ecdsa-sha2-nistp256 ")) << listed.out;
#ifdef CERTVAULT_SANITIZER_RUNTIME
  // ssh-agent loads modules in ssh-pkcs11-helper, started with an environment of its own:
  // without the preloaded sanitizer runtime the instrumented module cannot be loaded there.
  GTEST_SKIP() << "ssh-pkcs11-helper cannot load a sanitizer-instrumented module";
#endif
  // ssh-agent loads the module (-P: it loads only modules on its allow list, by default
  // none outside /usr/lib); ssh-add -s asks for a PIN on stdin, left empty.
  const fs::path sock = out_ / "ssh-agent.sock";
  ChildGuard ssh_agent(
      spawn_quiet(as_client({"ssh-agent", "-D", "-P", module_.string(), "-a", sock.string()})));
  for (int i = 0; i < 200 && !fs::exists(sock); ++i) std::this_thread::sleep_for(25ms);
  ASSERT_TRUE(fs::exists(sock));
  auto added =
      client({"env", "SSH_AUTH_SOCK=" + sock.string(), "ssh-add", "-s", module_.string()}, "\n");
  EXPECT_EQ(added.exit_code, 0) << added.out << added.err;
  auto keys = client({"env", "SSH_AUTH_SOCK=" + sock.string(), "ssh-add", "-L"});
  EXPECT_EQ(keys.exit_code, 0) << keys.err;
  EXPECT_TRUE(contains(keys.out, listed.out.substr(0, listed.out.find(' ', 20))))
      << keys.out << "\nssh-keygen -D:\n"
      << listed.out;
}

// Ed25519 through the agent, as another user with no PIN: the provider by certvault: URI and
// the module by CKM_EDDSA each sign the message itself, plain OpenSSL verifies both signatures
// with the certificate's key, and the agent audited each, with its program.
TEST_F(AgentPkcs11, Ed25519KeySignsThroughTheProviderAndTheModule) {
  const auto entry = issue("ed", 100, certvault::KeyType::kEd25519);
  ASSERT_TRUE(entry.current());
  const fs::path cert = write_certificate("ed");
  ASSERT_EQ(cv({"access", "ed", "allow", "--uid", std::to_string(client_uid_)}).exit_code, 0);
  unlock();
  auto by_uri = client_openssl("pkeyutl", {"-sign", "-inkey", "certvault:ed", "-rawin", "-in",
                                           data_.string(), "-out", sig_.string()});
  ASSERT_EQ(by_uri.exit_code, 0) << by_uri.err;
  auto check = verify_signature(cert, data_, sig_);
  EXPECT_EQ(check.exit_code, 0) << "provider: " << check.out << check.err;
  auto by_module = pkcs11_tool_sign({"-m", "EDDSA", "--id", entry.current()->key_id});
  ASSERT_EQ(by_module.exit_code, 0) << by_module.out << by_module.err;
  check = verify_signature(cert, data_, sig_);
  EXPECT_EQ(check.exit_code, 0) << "module: " << check.out << check.err;
  std::set<std::string> programs;
  for (const auto& e : audit_events())
    if (e["action"].asString() == "sign" && e["nickname"].asString() == "ed" &&
        e["result"].asString() == "ok" && e["mechanism"].asString() == "ed25519" &&
        e["peer"]["uid"].asUInt() == client_uid_)
      programs.insert(e["peer"]["exe"].asString());
  EXPECT_EQ(programs, (std::set<std::string>{"/usr/bin/openssl", "/usr/bin/pkcs11-tool"}))
      << audit_log();
}

// docs/pkcs11.md, "With the agent": a program sees only the entries the access rules let it
// use, and public ones. A public entry's key is found, but its signature is refused at C_Sign
// with CKR_FUNCTION_REJECTED (v3.0 5.13.2: C_Sign's code for a signature request rejected;
// CKR_ACTION_PROHIBITED is for C_CopyObject, C_SetAttributeValue and C_DestroyObject), and the
// agent audits the refusal.
TEST_F(AgentPkcs11, PeerTheRulesRefuseSeesPublicEntriesOnlyAndItsSignatureIsRejected) {
  const auto shared = issue("shared", 100);
  ASSERT_TRUE(shared.current());
  issue("hidden", 100);
  ASSERT_EQ(cv({"access", "shared", "public"}).exit_code, 0);
  ASSERT_EQ(cv({"access", "shared", "allow", "--uid", "nobody"}).exit_code, 0);
  unlock();
  auto listed = client({"pkcs11-tool", "--module", module_.string(), "--login", "-O"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_TRUE(contains(listed.out, "label:      api")) << listed.out;
  EXPECT_TRUE(contains(listed.out, "label:      shared")) << listed.out;
  EXPECT_FALSE(contains(listed.out, "hidden")) << listed.out;
  // pkcs11-tool tries C_Sign, then C_SignUpdate and C_SignFinal, and names the last code by
  // its number: 0x200 is CKR_FUNCTION_REJECTED.
  auto r = pkcs11_tool_sign({"-m", "ECDSA-SHA256", "--id", shared.current()->key_id});
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_TRUE(contains(r.err, "C_SignFinal failed: rv = ")) << r.err;
  EXPECT_TRUE(contains(r.err, "(0x200)")) << "CKR_FUNCTION_REJECTED: " << r.err;
  EXPECT_GE(audited_signatures("shared", "ecdsa/sha256", client_uid_, false), 1) << audit_log();
  EXPECT_EQ(audited_signatures("shared", "ecdsa/sha256", client_uid_), 0) << audit_log();
}

class AgentPkcs11Tls : public AgentPkcs11 {
 protected:
  void SetUp() override {
#ifdef CERTVAULT_SANITIZER_RUNTIME
    // gnutls-cli and curl deadlock at exit under a preloaded sanitizer runtime, with or
    // without this module (see pkcs11_tls_test.cc).
    GTEST_SKIP() << "gnutls-cli and curl hang under a preloaded sanitizer runtime";
#endif
    AgentPkcs11::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    server_cert_ = run_dir_ / "server.pem";
    server_key_ = tmp_ / "server.key";
    auto made = make_server_cert(server_cert_, server_key_);
    ASSERT_EQ(made.exit_code, 0) << made.err;
    ::chmod(server_cert_.c_str(), 0644);
    unlock();
  }

  void expect_verified(TlsServer& server, const RunResult& c) {
    const std::string log = server.log();
    EXPECT_FALSE(c.timed_out);
    EXPECT_EQ(c.exit_code, 0) << c.out << c.err << "\nserver:\n" << log;
    EXPECT_TRUE(contains(log, "depth=0 CN = api\nverify return:1")) << log;
  }

  fs::path server_cert_, server_key_;
};

TEST_F(AgentPkcs11Tls, GnutlsCliPresentsTheCertificateByPkcs11Uri) {
  auto s = TlsServer::start(tmp_.path(), server_cert_, server_key_, vault_ca_);
  ASSERT_TRUE(s);
  auto c = client({"gnutls-cli", "--provider", module_.string(), "--x509certfile",
                   "pkcs11:token=ops;object=api;type=cert", "--x509keyfile",
                   "pkcs11:token=ops;object=api;type=private", "--x509cafile",
                   server_cert_.string(), "-p", std::to_string(s->port()), "127.0.0.1"},
                  "GET / HTTP/1.0\r\n\r\n");
  expect_verified(*s, c);
}

TEST_F(AgentPkcs11Tls, CurlThroughLibp11PresentsTheCertificateByPkcs11Uri) {
  auto dir = run({"openssl", "version", "-e"});  // ENGINESDIR: "/usr/lib/.../engines-3"
  const auto quote = dir.out.find('"');
  const fs::path engine =
      fs::path(dir.out.substr(quote + 1, dir.out.rfind('"') - quote - 1)) / "pkcs11.so";
  ASSERT_TRUE(fs::exists(engine)) << engine << ": install libengine-pkcs11-openssl";
  const fs::path conf = run_dir_ / "curl-pkcs11.cnf";
  write_file(conf,
             "openssl_conf = openssl_init\n[openssl_init]\nengines = engines\n[engines]\n"
             "pkcs11 = pkcs11_engine\n[pkcs11_engine]\ndynamic_path = " +
                 engine.string() + "\nMODULE_PATH = " + module_.string() + "\n",
             0644);
  auto s = TlsServer::start(tmp_.path(), server_cert_, server_key_, vault_ca_);
  ASSERT_TRUE(s);
  // No pin-source in the URI: the token's protected authentication path lets libp11 log in
  // with no PIN. setsid: no terminal for libp11 to ask on.
  auto c = client({"env",
                   "OPENSSL_CONF=" + conf.string(),
                   "setsid",
                   "--wait",
                   "curl",
                   "--silent",
                   "--show-error",
                   "--max-time",
                   "60",
                   "--cacert",
                   server_cert_.string(),
                   "--engine",
                   "pkcs11",
                   "--cert-type",
                   "ENG",
                   "--cert",
                   "pkcs11:token=ops;object=api;type=cert",
                   "--key-type",
                   "ENG",
                   "--key",
                   "pkcs11:token=ops;object=api;type=private",
                   "https://127.0.0.1:" + std::to_string(s->port()) + "/"});
  expect_verified(*s, c);
}

}  // namespace
}  // namespace cvtest
