// The PKCS#11 module driven by OpenSC's pkcs11-tool, as a program would use it; signatures
// checked by the openssl binary against the certificate's public key.
#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include "pkcs11_support.h"
#include "support.h"
#include "test_vault.h"

namespace cvtest {
namespace {

class Pkcs11Tool : public VaultTest {
 protected:
  void SetUp() override {
    VaultTest::SetUp();
    if (HasFatalFailure()) return;
    ec_ = issue("api-prod", 100, certvault::KeyType::kEcP256);
    rsa_ = issue("rsa client", 100, certvault::KeyType::kRsa2048);
    ed_ = issue("ed", 100, certvault::KeyType::kEd25519);
  }

  // pkcs11-tool with the module and this test's vault; a sanitizer build preloads its
  // runtime, as the tool itself is not instrumented.
  RunResult tool(std::vector<std::string> args) {
    std::vector<std::string> argv = module_env(dir_);
    argv.insert(argv.end(), {"pkcs11-tool", "--module", kModule});
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, {}, std::chrono::seconds(60));
  }

  std::vector<std::string> login() { return {"--login", "--pin", std::string(kPin)}; }

  // Signs `data` with the key of `entry` and checks the signature with openssl.
  void expect_signature_verifies(const certvault::Entry& entry, const std::string& mechanism,
                                 const std::vector<std::string>& verify) {
    SCOPED_TRACE(entry.nickname + " " + mechanism);
    auto data = tmp_ / "data.txt";
    auto sig = tmp_ / ("sig-" + mechanism);
    write_file(data, "sign me, " + mechanism + "\n");
    auto args = login();
    args.insert(args.end(), {"--sign", "-m", mechanism, "--id", entry.current()->key_id, "-i",
                             data.string(), "-o", sig.string(), "--signature-format", "openssl"});
    auto signed_ = tool(args);
    ASSERT_EQ(signed_.exit_code, 0) << signed_.err;
    auto cert = vault().certificate_der(entry.nickname);
    ASSERT_TRUE(cert) << why(cert);
    auto pub = tmp_ / ("pub-" + mechanism + ".pem");
    write_file(tmp_ / "cert.pem", der_to_pem(*cert));
    auto extracted = run({"openssl", "x509", "-in", (tmp_ / "cert.pem").string(), "-pubkey",
                          "-noout", "-out", pub.string()});
    ASSERT_EQ(extracted.exit_code, 0) << extracted.err;
    std::vector<std::string> argv = verify;
    argv.insert(argv.end(), {"-verify", pub.string(), "-signature", sig.string(), data.string()});
    if (verify[1] == "pkeyutl")
      argv = {"openssl", "pkeyutl", "-verify",     "-pubin",   "-inkey",    pub.string(),
              "-rawin",  "-in",     data.string(), "-sigfile", sig.string()};
    auto checked = run(argv);
    EXPECT_EQ(checked.exit_code, 0) << checked.out << checked.err;
  }

  certvault::Entry ec_, rsa_, ed_;
};

TEST_F(Pkcs11Tool, ListsTheVaultAsAnInitialisedTokenNeedingLogin) {
  auto r = tool({"-L"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("token label        : " + vault().label()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("login required"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("token initialized"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(vault().id().substr(0, 16)), std::string::npos) << "serial = vault id";
}

TEST_F(Pkcs11Tool, CertificatesAreListedBeforeLoginAndPrivateKeysOnlyAfter) {
  auto before = tool({"-O"});
  ASSERT_EQ(before.exit_code, 0) << before.err;
  EXPECT_NE(before.out.find("label:      api-prod"), std::string::npos) << before.out;
  EXPECT_NE(before.out.find("label:      rsa client"), std::string::npos) << before.out;
  EXPECT_EQ(before.out.find("Private Key Object"), std::string::npos) << before.out;
  auto args = login();
  args.push_back("-O");
  auto after = tool(args);
  ASSERT_EQ(after.exit_code, 0) << after.err;
  // Certificate, public and private key of an entry share its key id and nickname.
  const std::string id_line = "ID:         " + ec_.current()->key_id;
  size_t count = 0;
  for (size_t at = after.out.find(id_line); at != std::string::npos;
       at = after.out.find(id_line, at + 1))
    ++count;
  EXPECT_EQ(count, 3u) << after.out;
  EXPECT_NE(after.out.find("Private Key Object; EC"), std::string::npos) << after.out;
  EXPECT_NE(after.out.find("never extractable"), std::string::npos) << after.out;
}

// pkcs11-tool 0.23 shows the v3.0 facts: each object's CKA_UNIQUE_ID (v3.0 4.4.1), distinct,
// and the profile object (v3.0 4.13), listed once, before login too.
TEST_F(Pkcs11Tool, ListsAUniqueIdForEveryObjectAndTheProfileObject) {
  auto before = tool({"-O"});
  ASSERT_EQ(before.exit_code, 0) << before.err;
  EXPECT_NE(before.out.find("Profile object"), std::string::npos) << before.out;
  auto args = login();
  args.push_back("-O");
  auto after = tool(args);
  ASSERT_EQ(after.exit_code, 0) << after.err;
  std::set<std::string> ids;
  size_t lines = 0, profiles = 0;
  std::istringstream in(after.out);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("  Unique ID:")) {
      ++lines;
      ids.insert(line.substr(line.find_first_not_of(' ', 12)));
    }
    if (line.starts_with("Profile object")) ++profiles;
  }
  EXPECT_EQ(lines, 10u) << "three entries of three objects, and the CA\n" << after.out;
  EXPECT_EQ(ids.size(), lines) << after.out;
  EXPECT_EQ(profiles, 1u) << after.out;
  EXPECT_NE(after.out.find("profile_id:          CKP_AUTHENTICATION_TOKEN"), std::string::npos)
      << after.out;
}

TEST_F(Pkcs11Tool, ReadsTheCertificateByLabel) {
  auto out = tmp_ / "cert.der";
  auto r = tool({"--read-object", "--type", "cert", "--label", "api-prod", "-o", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto expected = vault().certificate_der("api-prod");
  ASSERT_TRUE(expected) << why(expected);
  EXPECT_EQ(read_bytes(out), *expected);
}

TEST_F(Pkcs11Tool, EcdsaSignaturesVerify) {
  expect_signature_verifies(ec_, "ECDSA-SHA256", {"openssl", "dgst", "-sha256"});
  expect_signature_verifies(ec_, "ECDSA-SHA384", {"openssl", "dgst", "-sha384"});
}

TEST_F(Pkcs11Tool, RsaPkcs1AndPssSignaturesVerify) {
  expect_signature_verifies(rsa_, "SHA256-RSA-PKCS", {"openssl", "dgst", "-sha256"});
  expect_signature_verifies(rsa_, "SHA384-RSA-PKCS-PSS",
                            {"openssl", "dgst", "-sha384", "-sigopt", "rsa_padding_mode:pss",
                             "-sigopt", "rsa_pss_saltlen:-1"});
}

TEST_F(Pkcs11Tool, Ed25519SignaturesVerify) {
  expect_signature_verifies(ed_, "EDDSA", {"openssl", "pkeyutl"});
}

TEST_F(Pkcs11Tool, VerifiesItsOwnSignaturesAndRejectsChangedData) {
  for (const auto& [entry, mechanism] :
       {std::pair{&ec_, "ECDSA-SHA256"}, {&rsa_, "SHA256-RSA-PKCS-PSS"}, {&ed_, "EDDSA"}}) {
    SCOPED_TRACE(mechanism);
    const std::string id = entry->current()->key_id;
    auto data = tmp_ / "data.txt";
    auto sig = tmp_ / "sig.bin";
    write_file(data, "verify me\n");
    auto args = login();
    args.insert(args.end(),
                {"--sign", "-m", mechanism, "--id", id, "-i", data.string(), "-o", sig.string()});
    ASSERT_EQ(tool(args).exit_code, 0);
    // Verification needs no login: it uses the public key.
    std::vector<std::string> verify = {"--verify",  "-m", mechanism,     "--id",
                                       id,          "-i", data.string(), "--signature-file",
                                       sig.string()};
    auto good = tool(verify);
    EXPECT_NE(good.out.find("Signature is valid"), std::string::npos) << good.out << good.err;
    write_file(data, "verify me, changed\n");
    auto bad = tool(verify);
    // OpenSC 0.23 prints "Invalid signature" on stdout; 0.26 "error: Invalid signature" on
    // stderr, and exits non-zero.
    EXPECT_NE((bad.out + bad.err).find("Invalid signature"), std::string::npos)
        << bad.out << bad.err;
  }
}

TEST_F(Pkcs11Tool, SignWithoutLoginIsRefused) {
  auto data = tmp_ / "data.txt";
  write_file(data, "x");
  auto r = tool({"--sign", "-m", "ECDSA-SHA256", "--id", ec_.current()->key_id, "-i", data.string(),
                 "-o", (tmp_ / "sig").string()});
  EXPECT_NE(r.exit_code, 0) << r.out;
}

TEST_F(Pkcs11Tool, WrongPinIsRefusedAndShowsInTokenFlags) {
  auto bad = tool({"--login", "--pin", "not-the-pin", "-O"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE((bad.out + bad.err).find("CKR_PIN_INCORRECT"), std::string::npos) << bad.out << bad.err;
  auto listed = tool({"-L"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("user PIN count low"), std::string::npos) << listed.out;
}

TEST_F(Pkcs11Tool, LockedVaultReportsPinLocked) {
  for (int i = 0; i < certvault::Vault::kMaxPinFailures; ++i)
    (void)tool({"--login", "--pin", "wrong", "-O"});
  auto listed = tool({"-L"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("user PIN locked"), std::string::npos) << listed.out;
  auto args = login();
  args.push_back("-O");
  auto right = tool(args);
  EXPECT_NE(right.exit_code, 0);
  EXPECT_NE((right.out + right.err).find("CKR_PIN_LOCKED"), std::string::npos) << right.err;
}

TEST_F(Pkcs11Tool, DisabledEntryIsNotVisible) {
  ASSERT_TRUE(vault().disable("rsa client"));
  auto r = tool({"-O"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("rsa client"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("api-prod"), std::string::npos) << r.out;
}

TEST_F(Pkcs11Tool, VaultCaCertificateIsListed) {
  auto r = tool({"-O", "--type", "cert"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("label:      " + vault().label() + " CA"), std::string::npos) << r.out;
}

TEST_F(Pkcs11Tool, SelfTestFindsNoErrors) {
  auto args = login();
  args.push_back("--test");
  auto r = tool(args);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("No errors"), std::string::npos) << r.out;
}

// pkcs11-tool --test-threads (OpenSC 0.23 and later): each option starts a thread that runs its
// two-letter commands (IN C_Initialize(NULL), IL C_Initialize with CKF_OS_LOCKING_OK, GI
// C_GetInfo, SL C_GetSlotList, T0 C_GetTokenInfo of the first slot) while the main thread
// initialises too and runs the whole --test suite with login. Every thread starts with an
// initialisation: before one, C_GetInfo must return CKR_CRYPTOKI_NOT_INITIALIZED. Only one
// of the C_Initialize calls wins; the others get CKR_CRYPTOKI_ALREADY_INITIALIZED, which
// the tool accepts.
TEST_F(Pkcs11Tool, ConcurrentThreadsOfTheTestThreadsModeSeeNoErrors) {
  const std::vector<std::string> threads = {"IN:GI:SL:T0", "IL:GI:SL:T0", "IN:SL:T0:GI",
                                            "IL:SL:T0:GI:SL:T0"};
  std::vector<std::string> args;
  for (const auto& t : threads) args.insert(args.end(), {"--test-threads", t});
  auto with_login = login();
  args.insert(args.end(), with_login.begin(), with_login.end());
  args.push_back("--test");
  auto r = tool(args);
  ASSERT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("No errors"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("test_threads cleanup finished"), std::string::npos) << r.err;
  // OpenSC 0.23 (Debian 12) ends each thread with "returning rv = 0" and sums them up per
  // thread; 0.26 (Debian 13) ends each with "returning rv:CKR_OK" and has no summary.
  const bool v023 = r.err.find(" returning rv = ") != std::string::npos;
  if (v023) {
    EXPECT_NE(r.err.find("test_threads all threads have ended with CKR_OK"), std::string::npos)
        << r.err;
  }
  for (size_t i = 0; i < threads.size(); ++i) {
    const std::string n = std::to_string(i);
    const std::string ok = v023 ? " returning rv = 0\n" : " returning rv:CKR_OK\n";
    EXPECT_NE(r.err.find("Test thread " + n + ok), std::string::npos) << r.err;
    if (v023) {
      EXPECT_NE(r.err.find("test_threads thread:" + n + " state:-1, rv:CKR_OK\n"),
                std::string::npos)
          << r.err;
    }
  }
  // Each thread's T0 showed the vault's token.
  size_t shown = 0;
  for (auto at = r.out.find("token label        : " + vault().label()); at != std::string::npos;
       at = r.out.find("token label        : " + vault().label(), at + 1))
    ++shown;
  EXPECT_GE(shown, threads.size()) << r.out;
}

TEST_F(Pkcs11Tool, SecurityOfficerWithRecoverySecretSetsANewPinAfterLockout) {
  for (int i = 0; i < certvault::Vault::kMaxPinFailures; ++i)
    (void)tool({"--login", "--pin", "wrong", "-O"});
  ASSERT_NE(tool({"-L"}).out.find("user PIN locked"), std::string::npos);
  const std::string recovery(recovery_.view());
  auto bad = tool({"--login", "--login-type", "so", "--so-pin", "0000", "--init-pin", "--new-pin",
                   "fresh-pin"});
  EXPECT_NE(bad.exit_code, 0) << "a wrong recovery secret is not the SO PIN";
  auto init = tool({"--login", "--login-type", "so", "--so-pin", recovery, "--init-pin",
                    "--new-pin", "fresh-pin"});
  ASSERT_EQ(init.exit_code, 0) << init.out << init.err;
  auto listed = tool({"-L"});
  EXPECT_EQ(listed.out.find("user PIN locked"), std::string::npos) << listed.out;
  auto in = tool({"--login", "--pin", "fresh-pin", "-O"});
  EXPECT_EQ(in.exit_code, 0) << in.err;
  EXPECT_NE(in.out.find("Private Key Object"), std::string::npos) << in.out;
  EXPECT_NE(tool({"--login", "--pin", std::string(kPin), "-O"}).exit_code, 0)
      << "the old PIN no longer works";
}

TEST_F(Pkcs11Tool, ChangePinNeedsTheOldPin) {
  auto wrong = tool({"--change-pin", "--pin", "not-the-pin", "--new-pin", "new-pin-1"});
  EXPECT_NE(wrong.exit_code, 0);
  auto changed = tool({"--change-pin", "--pin", std::string(kPin), "--new-pin", "new-pin-1"});
  ASSERT_EQ(changed.exit_code, 0) << changed.out << changed.err;
  EXPECT_EQ(tool({"--login", "--pin", "new-pin-1", "-O"}).exit_code, 0);
  auto reopened = certvault::Vault::open(dir_);
  ASSERT_TRUE(reopened);
  EXPECT_TRUE(reopened->unlock(certvault::SecureBytes::from("new-pin-1")))
      << "the vault itself has the new PIN";
}

}  // namespace
}  // namespace cvtest
