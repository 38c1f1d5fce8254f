// Making and changing objects through the PKCS#11 module: C_InitToken, C_GenerateKeyPair
// then C_CreateObject for the certificate (pkcs11-tool --keypairgen, --write-object),
// C_DestroyObject and C_SetAttributeValue. The results are checked where a user would look:
// pkcs11-tool's listing, the `certvault` command, and signatures checked by openssl.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <openssl/x509.h>

#include <cstdlib>
#include <optional>

#include "ck.h"
#include "pkcs11_support.h"
#include "support.h"
#include "test_vault.h"

namespace cvtest {
namespace {

// pkcs11-tool with the module showing `vault` as its only slot.
RunResult tool(const fs::path& vault, const std::vector<std::string>& args) {
  std::vector<std::string> argv = module_env(vault);
  argv.insert(argv.end(), {"pkcs11-tool", "--module", kModule});
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, {}, std::chrono::seconds(60));
}

bool has(const std::string& text, std::string_view what) {
  return text.find(what) != std::string::npos;
}

// An outside CA (as a portal would be) issuing a client certificate for the public key in
// `pub_der`, with the extensions certvault requires of a client certificate.
fs::path issue_outside(const fs::path& tmp, const fs::path& pub_der, const std::string& cn) {
  auto in = [&](const char* name) { return (tmp / name).string(); };
  const std::string pub_pem = in("pub.pem");
  std::vector<std::vector<std::string>> steps = {
      {"openssl", "pkey", "-pubin", "-inform", "DER", "-in", pub_der.string(), "-out", pub_pem},
      {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", in("ca.key"), "-out", in("ca.pem"), "-subj", "/CN=Outside CA", "-days", "30"},
      // A request is needed only to carry the subject; -force_pubkey puts the vault's key in.
      {"openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", in("throwaway.key"), "-out", in("req.csr"), "-subj", "/CN=" + cn},
      {"openssl", "x509", "-req", "-in", in("req.csr"), "-CA", in("ca.pem"), "-CAkey", in("ca.key"),
       "-CAcreateserial", "-force_pubkey", pub_pem, "-extfile", in("ext.cnf"), "-days", "20",
       "-out", in("cert.pem")},
  };
  write_file(tmp / "ext.cnf",
             "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
             "extendedKeyUsage=clientAuth\n");
  for (const auto& step : steps) {
    auto r = run(step);
    EXPECT_EQ(r.exit_code, 0) << step[1] << ": " << r.err;
  }
  return tmp / "cert.pem";
}

class Pkcs11Objects : public VaultTest {
 protected:
  RunResult tool(const std::vector<std::string>& args) { return cvtest::tool(dir_, args); }
  std::vector<std::string> login(std::vector<std::string> args) {
    args.insert(args.begin(), {"--login", "--pin", std::string(kPin)});
    return args;
  }

  // pkcs11-tool --keypairgen, then a certificate from an outside CA written with
  // --write-object: the two steps a PKCS#11 user takes to make an identity.
  void generate_and_certify(const std::string& label, const std::string& key_type) {
    auto made = tool(login({"--keypairgen", "--key-type", key_type, "--label", label}));
    ASSERT_EQ(made.exit_code, 0) << made.out << made.err;
    // The key waits for its certificate: it is in the vault, but not yet usable by URI.
    auto waiting = vault().find(label);
    ASSERT_TRUE(waiting);
    ASSERT_EQ(waiting->current(), nullptr);
    auto spki = vault().public_key_der(label, waiting->newest()->number);
    ASSERT_TRUE(spki) << why(spki);
    auto pub = tmp_ / (label + ".pub.der");
    write_file(pub, std::string(spki->begin(), spki->end()));
    auto cert = issue_outside(tmp_.path(), pub, label);
    auto written =
        tool(login({"--write-object", cert.string(), "--type", "cert", "--label", label}));
    ASSERT_EQ(written.exit_code, 0) << written.out << written.err;
  }

  // Signs with pkcs11-tool by CKA_ID (0.23 ignores --label when it picks a signing key)
  // and checks the signature with openssl against the certificate the vault now holds.
  void expect_usable(const std::string& label, const std::string& mechanism,
                     const std::vector<std::string>& verify) {
    auto entry = vault().find(label);
    ASSERT_TRUE(entry && entry->current()) << label << " has no active certificate";
    auto cert = vault().certificate_der(label);
    ASSERT_TRUE(cert) << why(cert);
    write_file(tmp_ / "current.pem", der_to_pem(*cert));
    auto pub = tmp_ / "current-pub.pem";
    ASSERT_EQ(run({"openssl", "x509", "-in", (tmp_ / "current.pem").string(), "-pubkey", "-noout",
                   "-out", pub.string()})
                  .exit_code,
              0);
    auto data = tmp_ / "data.txt";
    auto sig = tmp_ / "sig.bin";
    write_file(data, "signed by " + label + "\n");
    auto signed_ =
        tool(login({"--sign", "-m", mechanism, "--id", entry->current()->key_id, "-i",
                    data.string(), "-o", sig.string(), "--signature-format", "openssl"}));
    ASSERT_EQ(signed_.exit_code, 0) << signed_.err;
    std::vector<std::string> argv = verify;
    if (verify.size() == 2 && verify[1] == "pkeyutl") {
      argv = {"openssl", "pkeyutl", "-verify",     "-pubin",   "-inkey",    pub.string(),
              "-rawin",  "-in",     data.string(), "-sigfile", sig.string()};
    } else {
      argv.insert(argv.end(), {"-verify", pub.string(), "-signature", sig.string(), data.string()});
    }
    auto checked = run(argv);
    EXPECT_EQ(checked.exit_code, 0) << checked.out << checked.err;
  }
};

TEST_F(Pkcs11Objects, KeypairgenThenWriteObjectYieldsAUsableEcEntry) {
  generate_and_certify("made by p11", "EC:prime256v1");
  expect_usable("made by p11", "ECDSA-SHA256", {"openssl", "dgst", "-sha256"});
  // The CLI sees the same identity, issued by the outside CA.
  auto shown = run({cli(), "--vault", dir_.string(), "show", "made by p11"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_TRUE(has(shown.out, "Outside CA")) << shown.out;
}

TEST_F(Pkcs11Objects, KeypairgenThenWriteObjectYieldsUsableRsaAndEd25519Entries) {
  generate_and_certify("rsa-made", "rsa:2048");
  expect_usable("rsa-made", "SHA256-RSA-PKCS", {"openssl", "dgst", "-sha256"});
  generate_and_certify("ed-made", "EC:edwards25519");
  expect_usable("ed-made", "EDDSA", {"openssl", "pkeyutl"});
  auto entry = vault().find("ed-made");
  ASSERT_TRUE(entry && entry->current());
  EXPECT_EQ(entry->current()->key_type, certvault::KeyType::kEd25519);
}

// GnuTLS's p11tool writes the certificate for a key made by pkcs11-tool --keypairgen; its
// template (CKA_SUBJECT, CKA_ISSUER, CKA_SERIAL_NUMBER from the certificate, and CKA_ID from
// the key) is one the module takes.
TEST_F(Pkcs11Objects, P11toolWritesTheCertificateForAWaitingKey) {
  const std::string label = "written by p11tool";
  auto made = tool(login({"--keypairgen", "--key-type", "EC:prime256v1", "--label", label}));
  ASSERT_EQ(made.exit_code, 0) << made.out << made.err;
  auto waiting = vault().find(label);
  ASSERT_TRUE(waiting);
  auto spki = vault().public_key_der(label, waiting->newest()->number);
  ASSERT_TRUE(spki) << why(spki);
  auto pub = tmp_ / "p11tool.pub.der";
  write_file(pub, std::string(spki->begin(), spki->end()));
  auto cert = issue_outside(tmp_.path(), pub, label);
  std::vector<std::string> argv = module_env(dir_);
  argv.insert(argv.end(), {"GNUTLS_PIN=" + std::string(kPin), "p11tool", "--provider", kModule,
                           "--login", "--write", "--load-certificate", cert.string(), "--label",
                           label, "pkcs11:token=" + vault().label()});
  auto written = run(argv, {}, std::chrono::seconds(60));
  ASSERT_EQ(written.exit_code, 0) << "p11tool --write --load-certificate: " << written.out
                                  << written.err;
  expect_usable(label, "ECDSA-SHA256", {"openssl", "dgst", "-sha256"});
}

TEST_F(Pkcs11Objects, KeypairgenRefusesALabelThatHasACertificate) {
  issue("taken", 100);
  const auto before = snapshot(dir_);
  auto r = tool(login({"--keypairgen", "--key-type", "EC:prime256v1", "--label", "taken"}));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "CKR_TEMPLATE_INCONSISTENT")) << r.err;
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
}

TEST_F(Pkcs11Objects, KeypairgenRefusesAnUnsupportedCurveAndABadNickname) {
  const auto before = snapshot(dir_);
  auto curve = tool(login({"--keypairgen", "--key-type", "EC:secp521r1", "--label", "big"}));
  EXPECT_NE(curve.exit_code, 0);
  // pkcs11-tool 0.23 prints PKCS#11 3.0 codes by number: 0x140 is CKR_CURVE_NOT_SUPPORTED.
  EXPECT_TRUE(has(curve.err, "(0x140)")) << curve.err;
  auto name = tool(login({"--keypairgen", "--key-type", "EC:prime256v1", "--label", "a/b"}));
  EXPECT_NE(name.exit_code, 0);
  EXPECT_TRUE(has(name.err, "CKR_ATTRIBUTE_VALUE_INVALID")) << name.err;
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
}

TEST_F(Pkcs11Objects, WriteObjectRefusesACertificateForAKeyTheTokenDoesNotHold) {
  auto key = generate_ec_key();
  auto cert = make_self_signed(key.get(), "stranger", -60, 86400);
  write_file(tmp_ / "stranger.pem", x509_to_pem(cert.get()));
  const auto before = snapshot(dir_);
  auto r = tool(login({"--write-object", (tmp_ / "stranger.pem").string(), "--type", "cert",
                       "--label", "stranger"}));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "CKR_TEMPLATE_INCONSISTENT")) << r.err;
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
}

TEST_F(Pkcs11Objects, DeletingThePrivateKeyDeletesTheEntryButACertificateCannotBeDeletedAlone) {
  issue("short-lived", 100);
  auto cert = tool(login({"--delete-object", "--type", "cert", "--label", "short-lived"}));
  EXPECT_NE(cert.exit_code, 0);
  EXPECT_TRUE(has(cert.err, "(0x1b)")) << "CKR_ACTION_PROHIBITED: " << cert.err;
  EXPECT_TRUE(vault().find("short-lived"));
  auto key = tool(login({"--delete-object", "--type", "privkey", "--label", "short-lived"}));
  EXPECT_EQ(key.exit_code, 0) << key.err;
  EXPECT_FALSE(vault().find("short-lived"));
  auto listed = tool({"-O"});
  EXPECT_FALSE(has(listed.out, "short-lived")) << listed.out;
}

TEST_F(Pkcs11Objects, ChangesNeedALogin) {
  const auto before = snapshot(dir_);
  auto no_login = tool({"--keypairgen", "--key-type", "EC:prime256v1", "--label", "nope"});
  EXPECT_NE(no_login.exit_code, 0);
  EXPECT_TRUE(has(no_login.err, "CKR_USER_NOT_LOGGED_IN")) << no_login.err;
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
}

// --- data objects (v3.0 4.5) in the vault ----------------------------------------------

TEST_F(Pkcs11Objects, DataObjectIsWrittenListedReadAndDeletedWithPkcs11Tool) {
  write_file(tmp_ / "note.bin", "deploy token 42\n");
  auto written = tool(login({"--write-object", (tmp_ / "note.bin").string(), "--type", "data",
                             "--application-label", "deployer", "--label", "note"}));
  ASSERT_EQ(written.exit_code, 0) << written.out << written.err;
  // Kept in the vault, as the keystore lists it; pkcs11-tool asks for a public one unless
  // told --private.
  auto kept = vault().data_objects();
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].label, "note");
  EXPECT_EQ(kept[0].application, "deployer");
  EXPECT_FALSE(kept[0].is_private);
  // Listed and read without login, by another process.
  auto listed = tool({"-O", "--type", "data"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_TRUE(has(listed.out, "Data object")) << listed.out;
  EXPECT_TRUE(has(listed.out, "deployer")) << listed.out;
  auto out = tmp_ / "read.bin";
  auto read = tool({"--read-object", "--type", "data", "--label", "note", "-o", out.string()});
  ASSERT_EQ(read.exit_code, 0) << read.out << read.err;
  EXPECT_EQ(read_file(out), "deploy token 42\n");
  auto deleted = tool(login({"--delete-object", "--type", "data", "--label", "note"}));
  ASSERT_EQ(deleted.exit_code, 0) << deleted.out << deleted.err;
  EXPECT_TRUE(vault().data_objects().empty());
  EXPECT_FALSE(has(tool({"-O"}).out, "Data object"));
}

TEST_F(Pkcs11Objects, PrivateDataObjectIsSeenAndReadOnlyAfterLogin) {
  write_file(tmp_ / "secret.bin", "s3cret");
  auto written = tool(login({"--write-object", (tmp_ / "secret.bin").string(), "--type", "data",
                             "--label", "secret-note", "--private"}));
  ASSERT_EQ(written.exit_code, 0) << written.out << written.err;
  auto kept = vault().data_objects();
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_TRUE(kept[0].is_private);
  EXPECT_FALSE(has(tool({"-O"}).out, "secret-note"));
  EXPECT_TRUE(has(tool(login({"-O"})).out, "secret-note"));
  auto out = tmp_ / "read.bin";
  auto refused =
      tool({"--read-object", "--type", "data", "--label", "secret-note", "-o", out.string()});
  EXPECT_NE(refused.exit_code, 0);
  auto read = tool(
      login({"--read-object", "--type", "data", "--label", "secret-note", "-o", out.string()}));
  ASSERT_EQ(read.exit_code, 0) << read.out << read.err;
  EXPECT_EQ(read_file(out), "s3cret");
}

// --- C_InitToken -----------------------------------------------------------------------

TEST(Pkcs11InitToken, MakesAVaultWhoseUserPinTheSecurityOfficerSets) {
  TempDir tmp;
  const fs::path dir = tmp / "new-vault";
  auto listed = tool(dir, {"-L"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_TRUE(has(listed.out, "uninitialized")) << listed.out;

  auto init = tool(dir, {"--init-token", "--label", "fresh ops", "--so-pin", "so-secret-1"});
  ASSERT_EQ(init.exit_code, 0) << init.out << init.err;
  EXPECT_EQ(file_mode(dir), 0700u);
  auto info = tool(dir, {"-T"});
  EXPECT_TRUE(has(info.out, "token label        : fresh ops")) << info.out;
  EXPECT_TRUE(has(info.out, "token initialized")) << info.out;
  EXPECT_FALSE(has(info.out, "PIN initialized")) << info.out;

  // No user PIN yet: the user cannot log in until the security officer sets one.
  auto early = tool(dir, {"--login", "--pin", "1234", "-O"});
  EXPECT_NE(early.exit_code, 0);
  EXPECT_TRUE(has(early.err, "CKR_USER_PIN_NOT_INITIALIZED")) << early.err;
  auto wrong_so = tool(
      dir, {"--init-pin", "--login", "--login-type", "so", "--so-pin", "nope", "--pin", "1234"});
  EXPECT_NE(wrong_so.exit_code, 0);
  EXPECT_TRUE(has(wrong_so.err, "CKR_PIN_INCORRECT")) << wrong_so.err;
  auto set = tool(dir, {"--init-pin", "--login", "--login-type", "so", "--so-pin", "so-secret-1",
                        "--pin", "user-pin-9"});
  ASSERT_EQ(set.exit_code, 0) << set.out << set.err;

  // The user PIN now opens the vault, through PKCS#11 and through the CLI alike.
  auto made = tool(dir, {"--login", "--pin", "user-pin-9", "--keypairgen", "--key-type",
                         "EC:prime256v1", "--label", "first"});
  EXPECT_EQ(made.exit_code, 0) << made.err;
  write_secret_file(tmp / "pin", "user-pin-9");
  auto passwd = run({cli(), "--vault", dir.string(), "--pin-file", (tmp / "pin").string(), "passwd",
                     "--new-pin-file", (tmp / "pin").string()});
  EXPECT_EQ(passwd.exit_code, 0) << passwd.err;
  // The security officer's PIN is the vault's recovery secret.
  write_secret_file(tmp / "so", "so-secret-1");
  write_secret_file(tmp / "pin2", "user-pin-10");
  auto reset = run({cli(), "--vault", dir.string(), "unlock-reset", "--recovery-file",
                    (tmp / "so").string(), "--new-pin-file", (tmp / "pin2").string()});
  EXPECT_EQ(reset.exit_code, 0) << reset.err;
  auto relogin = tool(dir, {"--login", "--pin", "user-pin-10", "-O"});
  EXPECT_EQ(relogin.exit_code, 0) << relogin.err;
  EXPECT_TRUE(has(relogin.out, "label:      first")) << relogin.out;
}

TEST_F(Pkcs11Objects, InitTokenNeverWipesAnExistingVault) {
  issue("keep me", 100);
  const auto before = snapshot(dir_);
  auto r = tool({"--init-token", "--label", "wiped", "--so-pin", std::string(recovery_.view())});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "CKR_TOKEN_WRITE_PROTECTED")) << r.err;
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
}

// --- in-process: C_SetAttributeValue and template rules --------------------------------

class Pkcs11Changes : public VaultTest {
 protected:
  void SetUp() override {
    VaultTest::SetUp();
    if (HasFatalFailure()) return;
    issue("old name", 100);
    ::setenv("CERTVAULT_VAULT", dir_.c_str(), 1);
    ::setenv("CERTVAULT_PKCS11_CONF", "/nonexistent", 1);
    lib_ = ::dlopen(kModule, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(lib_, nullptr) << ::dlerror();
    auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(lib_, "C_GetFunctionList"));
    ASSERT_NE(get, nullptr);
    ASSERT_EQ(get(&f_), CKR_OK);
    ASSERT_EQ(f_->C_Initialize(nullptr), CKR_OK);
    ASSERT_EQ(f_->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s_),
              CKR_OK);
    std::string p(kPin);
    ASSERT_EQ(f_->C_Login(s_, CKU_USER, reinterpret_cast<CK_UTF8CHAR_PTR>(p.data()), p.size()),
              CKR_OK);
  }
  void TearDown() override {
    if (f_) f_->C_Finalize(nullptr);
    if (lib_) ::dlclose(lib_);
  }
  std::vector<CK_OBJECT_HANDLE> find(std::string_view label) {
    CK_ATTRIBUTE t = {CKA_LABEL, const_cast<char*>(label.data()), label.size()};
    std::vector<CK_OBJECT_HANDLE> out(8);
    CK_ULONG n = 0;
    EXPECT_EQ(f_->C_FindObjectsInit(s_, &t, 1), CKR_OK);
    EXPECT_EQ(f_->C_FindObjects(s_, out.data(), out.size(), &n), CKR_OK);
    EXPECT_EQ(f_->C_FindObjectsFinal(s_), CKR_OK);
    out.resize(n);
    return out;
  }
  CK_RV set_label(CK_OBJECT_HANDLE o, std::string label) {
    CK_ATTRIBUTE t = {CKA_LABEL, label.data(), label.size()};
    return f_->C_SetAttributeValue(s_, o, &t, 1);
  }

  void* lib_ = nullptr;
  CK_FUNCTION_LIST_PTR f_ = nullptr;
  CK_SESSION_HANDLE s_ = 0;
};

TEST_F(Pkcs11Changes, SettingTheLabelRenamesTheEntryAndItsThreeObjects) {
  auto objects = find("old name");
  ASSERT_EQ(objects.size(), 3u);
  ASSERT_EQ(set_label(objects[0], "new name"), CKR_OK);
  EXPECT_TRUE(find("old name").empty());
  auto renamed = find("new name");
  EXPECT_EQ(renamed.size(), 3u);
  EXPECT_EQ(std::set(renamed.begin(), renamed.end()), std::set(objects.begin(), objects.end()))
      << "handles stay valid across a rename";
  EXPECT_TRUE(vault().find("new name"));
  EXPECT_FALSE(vault().find("old name"));
}

TEST_F(Pkcs11Changes, LabelChangesFollowTheNicknameRules) {
  issue("other", 100);
  auto objects = find("old name");
  ASSERT_FALSE(objects.empty());
  const auto before = snapshot(dir_);
  EXPECT_EQ(set_label(objects[0], "other"), CKR_ATTRIBUTE_VALUE_INVALID) << "taken";
  EXPECT_EQ(set_label(objects[0], "has/slash"), CKR_ATTRIBUTE_VALUE_INVALID);
  EXPECT_EQ(set_label(objects[0], std::string(65, 'x')), CKR_ATTRIBUTE_VALUE_INVALID);
  uint8_t id[] = {1, 2, 3};
  CK_ATTRIBUTE t = {CKA_ID, id, sizeof id};
  EXPECT_EQ(f_->C_SetAttributeValue(s_, objects[0], &t, 1), CKR_ATTRIBUTE_READ_ONLY);
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
}

TEST_F(Pkcs11Changes, KeyPairTemplatesThatAVaultCannotHonourAreRefused) {
  const auto before = snapshot(dir_);
  CK_MECHANISM ec = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  const uint8_t p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  char label[] = "tmpl";
  CK_OBJECT_HANDLE pub = 0, priv = 0;
  auto generate = [&](CK_ATTRIBUTE* extra_priv, CK_ULONG n_extra, bool with_label = true) {
    CK_ATTRIBUTE pub_t[] = {{CKA_TOKEN, &yes, 1},
                            {CKA_EC_PARAMS, const_cast<uint8_t*>(p256), sizeof p256},
                            {CKA_LABEL, label, with_label ? sizeof label - 1 : 0}};
    std::vector<CK_ATTRIBUTE> priv_t = {{CKA_TOKEN, &yes, 1}};
    priv_t.insert(priv_t.end(), extra_priv, extra_priv + n_extra);
    return f_->C_GenerateKeyPair(s_, &ec, pub_t, with_label ? 3 : 2, priv_t.data(), priv_t.size(),
                                 &pub, &priv);
  };
  CK_ATTRIBUTE extractable = {CKA_EXTRACTABLE, &yes, 1};
  EXPECT_EQ(generate(&extractable, 1), CKR_TEMPLATE_INCONSISTENT) << "keys never leave";
  CK_ATTRIBUTE not_sensitive = {CKA_SENSITIVE, &no, 1};
  EXPECT_EQ(generate(&not_sensitive, 1), CKR_TEMPLATE_INCONSISTENT);
  CK_ATTRIBUTE session_only = {CKA_TOKEN, &no, 1};
  EXPECT_EQ(generate(&session_only, 1), CKR_TEMPLATE_INCONSISTENT);
  uint8_t id[] = {7};
  CK_ATTRIBUTE chosen_id = {CKA_ID, id, 1};
  EXPECT_EQ(generate(&chosen_id, 1), CKR_ATTRIBUTE_READ_ONLY) << "the key id is certvault's";
  EXPECT_EQ(generate(nullptr, 0, false), CKR_TEMPLATE_INCOMPLETE) << "no nickname";
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
  EXPECT_EQ(generate(nullptr, 0), CKR_OK);
  EXPECT_TRUE(vault().find("tmpl"));
}

// v3.0 4.6.3, footnote 1 of its table: an X.509 certificate is made with CKA_SUBJECT and
// CKA_VALUE (CKR_TEMPLATE_INCOMPLETE without either); 4.1.1: a subject that is no DER name is
// CKR_ATTRIBUTE_VALUE_INVALID, another certificate's CKR_TEMPLATE_INCONSISTENT. Nothing is
// written until the template is right.
TEST_F(Pkcs11Changes, CertificateTemplateNeedsItsSubjectAndMustDescribeTheCertificate) {
  CK_MECHANISM ec = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  const uint8_t p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
  CK_BBOOL yes = CK_TRUE;
  std::string label = "pending";
  CK_ATTRIBUTE pub_t[] = {{CKA_TOKEN, &yes, 1},
                          {CKA_EC_PARAMS, const_cast<uint8_t*>(p256), sizeof p256},
                          {CKA_LABEL, label.data(), label.size()}};
  CK_ATTRIBUTE priv_t[] = {{CKA_TOKEN, &yes, 1}};
  CK_OBJECT_HANDLE pub = 0, priv = 0;
  ASSERT_EQ(f_->C_GenerateKeyPair(s_, &ec, pub_t, 3, priv_t, 1, &pub, &priv), CKR_OK);
  auto waiting = vault().find(label);
  ASSERT_TRUE(waiting);
  auto spki = vault().public_key_der(label, waiting->newest()->number);
  ASSERT_TRUE(spki) << why(spki);
  write_file(tmp_ / "pending.pub.der", std::string(spki->begin(), spki->end()));
  auto pem = read_file(issue_outside(tmp_.path(), tmp_ / "pending.pub.der", label));
  auto cert = x509_from_pem(pem);
  ASSERT_TRUE(cert);
  auto name_der = [](const X509_NAME* name) {
    unsigned char* p = nullptr;
    const int n = i2d_X509_NAME(name, &p);
    std::vector<uint8_t> out(p, p + std::max(n, 0));
    OPENSSL_free(p);
    return out;
  };
  unsigned char* cert_der = nullptr;
  const int cert_len = i2d_X509(cert.get(), &cert_der);
  std::vector<uint8_t> der(cert_der, cert_der + std::max(cert_len, 0));
  OPENSSL_free(cert_der);
  std::vector<uint8_t> subject = name_der(X509_get_subject_name(cert.get()));
  std::vector<uint8_t> issuer = name_der(X509_get_issuer_name(cert.get()));
  std::vector<uint8_t> not_a_name = {0x30, 0x03, 0x01};
  CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
  CK_CERTIFICATE_TYPE type = CKC_X_509;
  auto create = [&](std::optional<std::vector<uint8_t>> subject_given, bool with_value = true) {
    std::vector<CK_ATTRIBUTE> t = {{CKA_CLASS, &cls, sizeof cls},
                                   {CKA_TOKEN, &yes, 1},
                                   {CKA_CERTIFICATE_TYPE, &type, sizeof type},
                                   {CKA_LABEL, label.data(), label.size()}};
    if (with_value) t.push_back({CKA_VALUE, der.data(), der.size()});
    if (subject_given) t.push_back({CKA_SUBJECT, subject_given->data(), subject_given->size()});
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    return f_->C_CreateObject(s_, t.data(), t.size(), &o);
  };
  const auto before = snapshot(dir_);
  EXPECT_EQ(create(std::nullopt), CKR_TEMPLATE_INCOMPLETE) << "no CKA_SUBJECT";
  EXPECT_EQ(create(subject, false), CKR_TEMPLATE_INCOMPLETE) << "no CKA_VALUE";
  EXPECT_EQ(create(issuer), CKR_TEMPLATE_INCONSISTENT) << "the issuer's name as the subject";
  EXPECT_EQ(create(not_a_name), CKR_ATTRIBUTE_VALUE_INVALID) << "a subject that is no name";
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "") << "a refused template wrote";
  ASSERT_EQ(create(subject), CKR_OK);
  auto entry = vault().find(label);
  ASSERT_TRUE(entry && entry->current()) << label << " has no active certificate";
}

// v3.0 4.1.1: an object is made with what its template says, or not at all. Every entry's
// object can be renamed (CKA_MODIFIABLE true, attributes.cc), so a template asking for an
// object that cannot be changed is refused; before the attribute tables it was accepted and
// the objects made said CKA_MODIFIABLE true.
TEST_F(Pkcs11Changes, KeyPairTemplateAskingForUnmodifiableKeysIsInconsistent) {
  const auto before = snapshot(dir_);
  CK_MECHANISM ec = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  const uint8_t p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
  CK_BBOOL yes = CK_TRUE;
  char label[] = "fixed";
  CK_OBJECT_HANDLE pub = 0, priv = 0;
  auto generate = [&](CK_BBOOL pub_modifiable, CK_BBOOL priv_modifiable) {
    CK_ATTRIBUTE pub_t[] = {{CKA_TOKEN, &yes, 1},
                            {CKA_EC_PARAMS, const_cast<uint8_t*>(p256), sizeof p256},
                            {CKA_LABEL, label, sizeof label - 1},
                            {CKA_MODIFIABLE, &pub_modifiable, 1}};
    CK_ATTRIBUTE priv_t[] = {{CKA_TOKEN, &yes, 1}, {CKA_MODIFIABLE, &priv_modifiable, 1}};
    return f_->C_GenerateKeyPair(s_, &ec, pub_t, 4, priv_t, 2, &pub, &priv);
  };
  EXPECT_EQ(generate(CK_FALSE, CK_TRUE), CKR_TEMPLATE_INCONSISTENT);
  EXPECT_EQ(generate(CK_TRUE, CK_FALSE), CKR_TEMPLATE_INCONSISTENT);
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "") << "nothing made";
  ASSERT_EQ(generate(CK_TRUE, CK_TRUE), CKR_OK);
  for (CK_OBJECT_HANDLE o : {pub, priv}) {
    CK_BBOOL modifiable = CK_FALSE;
    CK_ATTRIBUTE a = {CKA_MODIFIABLE, &modifiable, sizeof modifiable};
    ASSERT_EQ(f_->C_GetAttributeValue(s_, o, &a, 1), CKR_OK);
    EXPECT_EQ(modifiable, CK_TRUE);
  }
}

}  // namespace
}  // namespace cvtest
