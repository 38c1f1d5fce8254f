// NSS with the PKCS#11 module: `modutil -add` puts it in an NSS database, `certutil -L/-K`
// lists the vault's certificates and keys, and `tstclnt` presents the vault certificate to
// `openssl s_server -Verify 1`; with a PIN in-process, and with none through the agent, as
// another user. Loopback only.
#include <gtest/gtest.h>

#include <functional>

#include "agent_support.h"
#include "client_support.h"
#include "pkcs11_support.h"

namespace cvtest {
namespace {

// What a test runs NSS's tools through: the module's environment, or another user's.
using Launcher = std::function<RunResult(std::vector<std::string>)>;

// An NSS database in `db` (no password of its own) with the module added as "certvault"
// (`-mechanisms FRIENDLY` when `friendly`: the slot holds public certificates) and the
// loopback server's certificate trusted as a peer.
void make_nss_db(const Launcher& nss, const fs::path& db, const fs::path& module,
                 const fs::path& server_cert, bool friendly) {
  const std::string d = "sql:" + db.string();
  auto made = nss({"certutil", "-N", "-d", d, "--empty-password"});
  ASSERT_EQ(made.exit_code, 0) << made.out << made.err;
  std::vector<std::string> add = {"modutil",  "-dbdir",        d,       "-add", "certvault",
                                  "-libfile", module.string(), "-force"};
  if (friendly) {
    add.push_back("-mechanisms");
    add.push_back("FRIENDLY");
  }
  auto added = nss(add);
  ASSERT_EQ(added.exit_code, 0) << added.out << added.err;
  ASSERT_TRUE(contains(added.out, "Module \"certvault\" added to database.")) << added.out;
  // modutil writes the slot flag into the database's module list.
  EXPECT_EQ(contains(read_file(db / "pkcs11.txt"), "slotFlags=PublicCerts"), friendly)
      << read_file(db / "pkcs11.txt");
  auto trusted =
      nss({"certutil", "-A", "-d", d, "-n", "loopback server", "-t", "P,,", "-i", server_cert});
  ASSERT_EQ(trusted.exit_code, 0) << trusted.out << trusted.err;
}

// tstclnt presenting "ops:api" to an s_server that demands a client certificate from the
// vault CA; `pin_args` (-W PINFILE) or none. The server must verify the vault certificate.
void expect_tstclnt_presents(const Launcher& nss, const fs::path& db, const fs::path& dir,
                             const fs::path& server_cert, const fs::path& server_key,
                             const fs::path& vault_ca, const std::vector<std::string>& pin_args) {
  auto server = TlsServer::start(dir, server_cert, server_key, vault_ca);
  ASSERT_TRUE(server);
  const fs::path request = db.parent_path() / "request";  // where the user running NSS reads
  write_file(request, "GET / HTTP/1.0\r\n\r\n", 0644);
  // -A: the request from a file (at the end of a standard input tstclnt spins).
  std::vector<std::string> argv = {"tstclnt",
                                   "-h",
                                   "127.0.0.1",
                                   "-p",
                                   std::to_string(server->port()),
                                   "-d",
                                   "sql:" + db.string(),
                                   "-n",
                                   "ops:api",
                                   "-A",
                                   request.string()};
  argv.insert(argv.end(), pin_args.begin(), pin_args.end());
  auto c = nss(argv);
  const std::string log = server->log();
  EXPECT_FALSE(c.timed_out);
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err << "\nserver:\n" << log;
  // The -www page is the server's view of the session, client certificate included.
  EXPECT_TRUE(contains(c.out, "Client certificate")) << c.out;
  EXPECT_TRUE(contains(log, "depth=0 CN = api\nverify return:1")) << log;
}

class Nss : public VaultTest {
 protected:
  void SetUp() override {
    VaultTest::SetUp();
    if (HasFatalFailure()) return;
    issue("api", 100);
    pin_file_ = write_secret_file(tmp_ / "pin", kPin);
    server_cert_ = tmp_ / "server.pem";
    server_key_ = tmp_ / "server.key";
    auto made = make_server_cert(server_cert_, server_key_);
    ASSERT_EQ(made.exit_code, 0) << made.err;
    auto ca = vault().ca_certificate_der();
    ASSERT_TRUE(ca) << why(ca);
    vault_ca_ = tmp_ / "vault-ca.pem";
    write_file(vault_ca_, der_to_pem(*ca));
    db_ = tmp_ / "nssdb";
    fs::create_directory(db_);
    // No terminal: NSS would ask there for a PIN nobody types.
    nss_ = [this](std::vector<std::string> argv) {
      std::vector<std::string> full = module_env(dir_);
      full.push_back("setsid");
      full.push_back("--wait");
      full.insert(full.end(), argv.begin(), argv.end());
      return run(full, {}, 60s);
    };
  }

  Launcher nss_;
  fs::path pin_file_, server_cert_, server_key_, vault_ca_, db_;
};

TEST_F(Nss, CertutilListsCertificatesWithoutLoginAndKeysWithThePin) {
  make_nss_db(nss_, db_, kModule, server_cert_, true);
  if (HasFatalFailure()) return;
  auto certs = nss_({"certutil", "-L", "-d", "sql:" + db_.string(), "-h", "ops"});
  ASSERT_EQ(certs.exit_code, 0) << certs.out << certs.err;
  EXPECT_TRUE(contains(certs.out, "ops:api ")) << certs.out;
  EXPECT_TRUE(contains(certs.out, "ops:ops CA ")) << certs.out;
  auto keys =
      nss_({"certutil", "-K", "-d", "sql:" + db_.string(), "-h", "ops", "-f", pin_file_.string()});
  ASSERT_EQ(keys.exit_code, 0) << keys.out << keys.err;
  EXPECT_TRUE(contains(keys.out, "ec ")) << keys.out;
  EXPECT_TRUE(contains(keys.out, " api\n")) << keys.out;
  EXPECT_EQ(vault().pin_failures(), 0);
}

TEST_F(Nss, WithoutPublicCertsTheTokenNeedsALoginToListCertificates) {
  make_nss_db(nss_, db_, kModule, server_cert_, false);
  if (HasFatalFailure()) return;
  auto certs = nss_({"certutil", "-L", "-d", "sql:" + db_.string(), "-h", "ops"});
  EXPECT_NE(certs.exit_code, 0) << certs.out;
  EXPECT_FALSE(contains(certs.out, "ops:api")) << certs.out;
  EXPECT_TRUE(contains(certs.err, "could not authenticate to token ops")) << certs.err;
}

TEST_F(Nss, TstclntPresentsTheVaultCertificateToOpensslSServer) {
  make_nss_db(nss_, db_, kModule, server_cert_, true);
  if (HasFatalFailure()) return;
  expect_tstclnt_presents(nss_, db_, tmp_.path(), server_cert_, server_key_, vault_ca_,
                          {"-W", pin_file_.string()});
  EXPECT_EQ(vault().pin_failures(), 0);
}

class AgentNss : public AgentTest {
 protected:
  void SetUp() override {
    AgentTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    issue("api", 100);
    start_agent();
    if (HasFatalFailure()) return;
    ASSERT_EQ(cv({"access", "api", "allow", "--uid", std::to_string(client_uid_)}).exit_code, 0);
    unlock();
    server_cert_ = run_dir_ / "server.pem";
    server_key_ = tmp_ / "server.key";
    auto made = make_server_cert(server_cert_, server_key_);
    ASSERT_EQ(made.exit_code, 0) << made.err;
    ::chmod(server_cert_.c_str(), 0644);
    db_ = out_ / "nssdb";
    nss_ = [this](std::vector<std::string> argv) {
      std::vector<std::string> full = {"setsid", "--wait"};
      full.insert(full.end(), argv.begin(), argv.end());
      return run(as_client(full), {}, 60s);
    };
    ASSERT_EQ(nss_({"mkdir", db_.string()}).exit_code, 0);
  }

  Launcher nss_;
  fs::path server_cert_, server_key_, db_;
};

TEST_F(AgentNss, ListsAndPresentsWithNoPinAsAnotherUser) {
  make_nss_db(nss_, db_, module_, server_cert_, true);
  if (HasFatalFailure()) return;
  auto certs = nss_({"certutil", "-L", "-d", "sql:" + db_.string(), "-h", "ops"});
  ASSERT_EQ(certs.exit_code, 0) << certs.out << certs.err;
  EXPECT_TRUE(contains(certs.out, "ops:api ")) << certs.out;
  auto keys = nss_({"certutil", "-K", "-d", "sql:" + db_.string(), "-h", "ops"});
  ASSERT_EQ(keys.exit_code, 0) << keys.out << keys.err;
  EXPECT_TRUE(contains(keys.out, " api\n")) << keys.out;
  expect_tstclnt_presents(nss_, db_, tmp_.path(), server_cert_, server_key_, vault_ca_, {});
}

}  // namespace
}  // namespace cvtest
