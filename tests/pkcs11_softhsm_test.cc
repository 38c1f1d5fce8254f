// Differential tests: the same pkcs11-tool scenario (list the objects, read a certificate,
// sign, verify) against SoftHSM2, the reference soft token, and against certvault, both
// holding the same keys and certificates. The vault issues them; `certvault export` and
// `openssl pkcs12` give the PKCS#8 key that softhsm2-util imports, and pkcs11-tool writes
// each certificate next to its key with the same label and id.
//
// What must agree is what a user sees: which objects there are (class, key type, label,
// id), the certificate bytes, and signatures that verify with the certificate's public key
// on either token. Legitimate differences, not compared: SoftHSM lists no allowed
// mechanisms and gives an imported RSA key encrypt/decrypt/wrap usages besides sign/verify
// (softhsm2-util's defaults; certvault keys only sign); certvault marks keys it generated
// CKA_LOCAL, SoftHSM was handed them; SoftHSM 2.6 has no CKM_ECDSA_SHA256, so ECDSA is
// compared with CKM_ECDSA over the hash; ECDSA and RSA-PSS signatures are randomised, so
// those are compared by verification only. One difference is not legitimate (see the last
// test): certvault's claim that an exported key never left it. Left out as well, because
// SoftHSM2 2.6 is a v2.40 token without them: certvault's profile object (v3.0 4.13) and the
// CKA_UNIQUE_ID of every object (v3.0 4.4.1); pkcs11_v3_test.cc tests both.
//
// The return codes of PKCS#11 calls that pkcs11-tool never makes (an operation used against
// the specification, a call in the wrong session state) are compared with both modules
// loaded in this process, each running the same script; where SoftHSM2 2.6 answers
// otherwise and certvault keeps its own answer, docs/pkcs11.md says so and why.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <json/json.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "ck.h"
#include "pkcs11_support.h"
#include "support.h"
#include "test_vault.h"

#if defined(__SANITIZE_ADDRESS__)
#define CERTVAULT_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CERTVAULT_LSAN 1
#endif
#endif
#ifdef CERTVAULT_LSAN
#include <sanitizer/lsan_interface.h>
#endif

namespace cvtest {
namespace {

// LeakSanitizer ignores what is allocated while one of these lives, when `on`: for calls
// into SoftHSM2 that leak inside SoftHSM2 itself (its own allocations, not certvault's),
// which would otherwise fail the ASan pass for a defect this project cannot fix.
class IgnoreLeaks {
 public:
  explicit IgnoreLeaks(bool on) : on_(on) {
#ifdef CERTVAULT_LSAN
    if (on_) __lsan_disable();
#endif
  }
  ~IgnoreLeaks() {
#ifdef CERTVAULT_LSAN
    if (on_) __lsan_enable();
#endif
  }
  IgnoreLeaks(const IgnoreLeaks&) = delete;
  IgnoreLeaks& operator=(const IgnoreLeaks&) = delete;

 private:
  bool on_;
};

using namespace std::chrono_literals;

constexpr const char* kSoftHsm = "/usr/lib/softhsm/libsofthsm2.so";
constexpr const char* kSoPin = "so-pin-0815";

enum class Side { kSoftHsm, kCertvault };

std::string side_name(Side s) {
  return s == Side::kSoftHsm ? "SoftHSM" : "certvault";
}

// One object as `pkcs11-tool -O` shows it: its header line ("Private Key Object; EC"),
// label and id. Not compared: "Unique ID:" lines and the "Profile object N" that only
// certvault lists (see the top of this file).
struct Listed {
  std::string header, label, id;
  auto operator<=>(const Listed&) const = default;
};

std::vector<Listed> parse_listing(const std::string& out) {
  std::vector<Listed> objects;
  std::istringstream in(out);
  std::string line;
  auto trim = [](std::string s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\r')) s.pop_back();
    return s;
  };
  while (std::getline(in, line)) {
    if (line.find(" Object; ") != std::string::npos && line[0] != ' ') {
      objects.push_back({trim(line), "", ""});
    } else if (!objects.empty() && line.starts_with("  label:")) {
      objects.back().label = trim(line.substr(line.find_first_not_of(' ', 8)));
    } else if (!objects.empty() && line.starts_with("  ID:")) {
      objects.back().id = trim(line.substr(line.find_first_not_of(' ', 5)));
    }
  }
  std::sort(objects.begin(), objects.end());
  return objects;
}

std::string describe(const std::vector<Listed>& objects) {
  std::string out;
  for (const auto& o : objects) out += o.header + " | " + o.label + " | " + o.id + "\n";
  return out;
}

std::string sha256(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), len);
}

// Verifies `sig` (PKCS#11 form: r || s for ECDSA) over `data` with the public key of the
// certificate `cert_der`, in this process with OpenSSL. The mechanism says how: SHA-256
// then the signature scheme, or for plain "ECDSA" `data` is already the hash.
bool verifies_with_certificate(const std::vector<uint8_t>& cert_der, const std::string& mechanism,
                               const std::string& data, std::vector<uint8_t> sig) {
  auto cert = x509_from_der(cert_der);
  if (!cert) return false;
  EVP_PKEY* pub = X509_get0_pubkey(cert.get());
  if (!pub) return false;
  if (mechanism.starts_with("ECDSA")) {
    const size_t half = sig.size() / 2;
    ECDSA_SIG* s = ECDSA_SIG_new();
    ECDSA_SIG_set0(s, BN_bin2bn(sig.data(), static_cast<int>(half), nullptr),
                   BN_bin2bn(sig.data() + half, static_cast<int>(half), nullptr));
    std::vector<uint8_t> der(static_cast<size_t>(i2d_ECDSA_SIG(s, nullptr)));
    unsigned char* p = der.data();
    i2d_ECDSA_SIG(s, &p);
    ECDSA_SIG_free(s);
    sig = std::move(der);
  }
  if (mechanism == "ECDSA") {
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> pctx(EVP_PKEY_CTX_new(pub, nullptr),
                                                                     EVP_PKEY_CTX_free);
    return pctx && EVP_PKEY_verify_init(pctx.get()) == 1 &&
           EVP_PKEY_verify(pctx.get(), sig.data(), sig.size(),
                           reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_PKEY_CTX* pctx = nullptr;
  if (!ctx ||
      EVP_DigestVerifyInit_ex(ctx.get(), &pctx, "SHA256", nullptr, nullptr, pub, nullptr) != 1)
    return false;
  if (mechanism.ends_with("-PSS") &&
      (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
       EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO) <= 0))
    return false;
  return EVP_DigestVerify(ctx.get(), sig.data(), sig.size(),
                          reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
}

// A PKCS#11 return code as the specification names it (the ones these scripts meet).
std::string rv_name(CK_RV rv) {
  switch (rv) {
#define CV_RV(name) \
  case name:        \
    return #name;
    CV_RV(CKR_OK)
    CV_RV(CKR_ARGUMENTS_BAD)
    CV_RV(CKR_FUNCTION_FAILED)
    CV_RV(CKR_FUNCTION_NOT_PARALLEL)
    CV_RV(CKR_OBJECT_HANDLE_INVALID)
    CV_RV(CKR_OPERATION_ACTIVE)
    CV_RV(CKR_OPERATION_NOT_INITIALIZED)
    CV_RV(CKR_SESSION_HANDLE_INVALID)
    CV_RV(CKR_SESSION_READ_ONLY)
    CV_RV(CKR_SESSION_READ_WRITE_SO_EXISTS)
    CV_RV(CKR_TEMPLATE_INCOMPLETE)
    CV_RV(CKR_TEMPLATE_INCONSISTENT)
    CV_RV(CKR_BUFFER_TOO_SMALL)
    CV_RV(CKR_USER_NOT_LOGGED_IN)
#undef CV_RV
    default: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "0x%lx", rv);
      return buf;
    }
  }
}

// One module loaded in this process, initialised, with the slot of the test's token.
struct Loaded {
  void* lib = nullptr;
  CK_FUNCTION_LIST_PTR f = nullptr;
  CK_SLOT_ID slot = 0;
  std::vector<std::string> trace;  // what the script saw, step by step

  ~Loaded() {
    if (f) f->C_Finalize(nullptr);
    if (lib) ::dlclose(lib);
  }
  // Records one step's return code.
  CK_RV note(const std::string& step, CK_RV rv) {
    trace.push_back(step + ": " + rv_name(rv));
    return rv;
  }
  CK_SESSION_HANDLE open(bool rw) {
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    CK_FLAGS flags = CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0);
    note(rw ? "C_OpenSession rw" : "C_OpenSession ro",
         f->C_OpenSession(slot, flags, nullptr, nullptr, &s));
    return s;
  }
  CK_RV login(CK_SESSION_HANDLE s, CK_USER_TYPE user, std::string_view pin) {
    return note(
        user == CKU_SO ? "C_Login so" : "C_Login user",
        f->C_Login(s, user, reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(pin.data())),
                   pin.size()));
  }
  CK_OBJECT_HANDLE find(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const std::string& label) {
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},
                        {CKA_LABEL, const_cast<char*>(label.data()), label.size()}};
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    CK_ULONG n = 0;
    if (f->C_FindObjectsInit(s, t, 2) == CKR_OK) {
      f->C_FindObjects(s, &o, 1, &n);
      f->C_FindObjectsFinal(s);
    }
    EXPECT_EQ(n, 1u) << label;
    return n == 1 ? o : CK_INVALID_HANDLE;
  }
};

std::string lines(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& l : v) out += l + "\n";
  return out;
}

class SoftHsmDifferential : public VaultTest {
 protected:
  void SetUp() override {
    VaultTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_TRUE(fs::exists(kSoftHsm)) << kSoftHsm << ": install softhsm2";
    ec_ = issue("api-prod", 100, certvault::KeyType::kEcP256);
    rsa_ = issue("rsa client", 100, certvault::KeyType::kRsa2048);
    if (HasFailure()) return;
    pin_file_ = write_secret_file(tmp_ / "pin", kPin);

    // A private SoftHSM2 configuration: its tokens live in this test's directory.
    const fs::path tokens = tmp_ / "softhsm-tokens";
    fs::create_directory(tokens);
    softhsm_conf_ = tmp_ / "softhsm2.conf";
    write_file(softhsm_conf_, "directories.tokendir = " + tokens.string() +
                                  "\nobjectstore.backend = file\nlog.level = ERROR\n");
    label_ = vault().label();
    auto init = softhsm({"softhsm2-util", "--init-token", "--free", "--label", label_, "--pin",
                         std::string(kPin), "--so-pin", kSoPin});
    ASSERT_EQ(init.exit_code, 0) << init.out << init.err;

    for (const auto* entry : {&ec_, &rsa_}) {
      copy_to_softhsm(*entry);
      if (HasFatalFailure()) return;
    }
    // The vault CA's certificate, which certvault lists as "LABEL CA".
    auto ca = vault().active_ca();
    ASSERT_TRUE(ca);
    auto ca_der = vault().ca_certificate_der();
    ASSERT_TRUE(ca_der) << why(ca_der);
    write_object(tmp_ / "ca.der", *ca_der, label_ + " CA", ca->key_id);
  }

  // The entry's key (out of a `certvault export`, as PKCS#8 PEM) and certificate, into the
  // SoftHSM token under the entry's nickname and key id.
  void copy_to_softhsm(const certvault::Entry& entry) {
    SCOPED_TRACE(entry.nickname);
    const std::string id = entry.current()->key_id;
    const fs::path p12 = tmp_ / (id + ".p12");
    auto exported = run({cli(), "--vault", dir_.string(), "--pin-file", pin_file_.string(),
                         "--json", "export", entry.nickname, "-o", p12.string()});
    ASSERT_EQ(exported.exit_code, 0) << exported.err;
    Json::Value json;
    std::istringstream in(exported.out);
    ASSERT_TRUE(Json::parseFromStream(Json::CharReaderBuilder(), in, &json, nullptr))
        << exported.out;
    const fs::path password = write_secret_file(tmp_ / (id + ".pass"), json["password"].asString());
    const fs::path pem = tmp_ / (id + ".pem");
    auto opened = run({"openssl", "pkcs12", "-in", p12.string(), "-nodes", "-passin",
                       "file:" + password.string(), "-out", pem.string()});
    ASSERT_EQ(opened.exit_code, 0) << opened.err;
    const fs::path key = tmp_ / (id + ".key");
    auto pkcs8 = run({"openssl", "pkey", "-in", pem.string(), "-out", key.string()});
    ASSERT_EQ(pkcs8.exit_code, 0) << pkcs8.err;
    ASSERT_TRUE(read_file(key).starts_with("-----BEGIN PRIVATE KEY-----"));
    auto imported = softhsm({"softhsm2-util", "--import", key.string(), "--token", label_,
                             "--label", entry.nickname, "--id", id, "--pin", std::string(kPin)});
    ASSERT_EQ(imported.exit_code, 0) << imported.out << imported.err;
    auto cert = vault().certificate_der(entry.nickname);
    ASSERT_TRUE(cert) << why(cert);
    write_object(tmp_ / (id + ".der"), *cert, entry.nickname, id);
  }

  void write_object(const fs::path& file, const std::vector<uint8_t>& der, const std::string& label,
                    const std::string& id) {
    write_file(file, std::string(der.begin(), der.end()));
    auto written =
        tool(Side::kSoftHsm, {"--login", "--pin", std::string(kPin), "--write-object",
                              file.string(), "--type", "cert", "--label", label, "--id", id});
    ASSERT_EQ(written.exit_code, 0) << written.out << written.err;
  }

  // A SoftHSM2 utility with this test's configuration.
  RunResult softhsm(std::vector<std::string> args) {
    std::vector<std::string> argv = {"env", "SOFTHSM2_CONF=" + softhsm_conf_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, {}, 60s);
  }

  // pkcs11-tool on one side's token, chosen by label as a user would.
  RunResult tool(Side side, std::vector<std::string> args) {
    std::vector<std::string> argv =
        side == Side::kSoftHsm
            ? std::vector<std::string>{"env", "SOFTHSM2_CONF=" + softhsm_conf_.string()}
            : module_env(dir_);
    argv.insert(argv.end(), {"pkcs11-tool", "--module", side == Side::kSoftHsm ? kSoftHsm : kModule,
                             "--token-label", label_});
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, {}, 60s);
  }

  // The signature of `data` by `entry`'s key on one side (raw PKCS#11 form).
  std::vector<uint8_t> sign(Side side, const certvault::Entry& entry, const std::string& mechanism,
                            const fs::path& data) {
    const fs::path sig =
        tmp_ / ("sig-" + side_name(side) + "-" + entry.current()->key_id + "-" + mechanism);
    auto r = tool(side, {"--login", "--pin", std::string(kPin), "--sign", "-m", mechanism, "--id",
                         entry.current()->key_id, "-i", data.string(), "-o", sig.string()});
    EXPECT_EQ(r.exit_code, 0) << side_name(side) << ": " << r.out << r.err;
    return r.exit_code == 0 ? read_bytes(sig) : std::vector<uint8_t>{};
  }

  // pkcs11-tool --verify on one side, for a signature made on either.
  bool token_verifies(Side side, const certvault::Entry& entry, const std::string& mechanism,
                      const fs::path& data, const std::vector<uint8_t>& sig) {
    const fs::path file = tmp_ / "to-verify.sig";
    write_file(file, std::string(sig.begin(), sig.end()));
    auto r = tool(side, {"--verify", "-m", mechanism, "--id", entry.current()->key_id, "-i",
                         data.string(), "--signature-file", file.string()});
    EXPECT_EQ(r.out.find("Invalid signature"), std::string::npos) << side_name(side) << r.out;
    return r.exit_code == 0 && r.out.find("Signature is valid") != std::string::npos;
  }

  // Signs `text` on both tokens and checks every signature against the certificate and on
  // both tokens. Returns the two signatures (SoftHSM, certvault).
  std::pair<std::vector<uint8_t>, std::vector<uint8_t>> sign_on_both(const certvault::Entry& entry,
                                                                     const std::string& mechanism,
                                                                     const std::string& text) {
    SCOPED_TRACE(entry.nickname + " " + mechanism);
    const fs::path data = tmp_ / "data.txt";
    write_file(data, text);
    auto cert = vault().certificate_der(entry.nickname);
    EXPECT_TRUE(cert) << why(cert);
    if (!cert) return {};
    std::pair<std::vector<uint8_t>, std::vector<uint8_t>> sigs = {
        sign(Side::kSoftHsm, entry, mechanism, data),
        sign(Side::kCertvault, entry, mechanism, data)};
    for (const auto& [made_by, sig] :
         {std::pair{Side::kSoftHsm, sigs.first}, {Side::kCertvault, sigs.second}}) {
      SCOPED_TRACE("signed by " + side_name(made_by));
      EXPECT_FALSE(sig.empty());
      EXPECT_TRUE(verifies_with_certificate(*cert, mechanism, text, sig))
          << "with the certificate's public key";
      EXPECT_TRUE(token_verifies(Side::kSoftHsm, entry, mechanism, data, sig)) << "on SoftHSM";
      EXPECT_TRUE(token_verifies(Side::kCertvault, entry, mechanism, data, sig)) << "on certvault";
    }
    return sigs;
  }

  // One side's module loaded in this process, with its configuration in the environment
  // (both read it at C_Initialize) and the slot of the token labelled label_.
  std::unique_ptr<Loaded> load(Side side) {
    ::setenv("SOFTHSM2_CONF", softhsm_conf_.c_str(), 1);
    ::setenv("CERTVAULT_VAULT", dir_.c_str(), 1);
    ::setenv("CERTVAULT_PKCS11_CONF", "/nonexistent", 1);
    auto m = std::make_unique<Loaded>();
    m->lib = ::dlopen(side == Side::kSoftHsm ? kSoftHsm : kModule, RTLD_NOW | RTLD_LOCAL);
    EXPECT_NE(m->lib, nullptr) << ::dlerror();
    if (!m->lib) return nullptr;
    auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(m->lib, "C_GetFunctionList"));
    if (!get || get(&m->f) != CKR_OK || m->f->C_Initialize(nullptr) != CKR_OK) {
      ADD_FAILURE() << side_name(side) << ": does not initialise";
      m->f = nullptr;
      return nullptr;
    }
    std::vector<CK_SLOT_ID> slots(16);
    CK_ULONG n = slots.size();
    EXPECT_EQ(m->f->C_GetSlotList(CK_TRUE, slots.data(), &n), CKR_OK);
    std::string padded = label_;
    padded.resize(32, ' ');
    for (CK_ULONG i = 0; i < n; ++i) {
      CK_TOKEN_INFO info{};
      if (m->f->C_GetTokenInfo(slots[i], &info) == CKR_OK &&
          std::memcmp(info.label, padded.data(), 32) == 0) {
        m->slot = slots[i];
        return m;
      }
    }
    ADD_FAILURE() << side_name(side) << ": no token labelled " << label_;
    return nullptr;
  }

  // Runs `script` against each module and expects the same trace from both.
  template <typename F>
  void same_on_both(F&& script) {
    std::vector<std::string> traces[2];
    for (Side side : {Side::kSoftHsm, Side::kCertvault}) {
      auto m = load(side);
      ASSERT_TRUE(m);
      script(side, *m);
      traces[side == Side::kCertvault] = m->trace;
    }
    EXPECT_FALSE(traces[0].empty());
    EXPECT_EQ(lines(traces[1]), lines(traces[0])) << "certvault, then SoftHSM";
  }

  // The security officer's PIN on each side: certvault's is the vault's recovery secret.
  std::string so_pin(Side side) const {
    return side == Side::kSoftHsm ? kSoPin : std::string(recovery_.view());
  }

  certvault::Entry ec_, rsa_;
  fs::path pin_file_, softhsm_conf_;
  std::string label_;
};

TEST_F(SoftHsmDifferential, BothTokensListTheSameObjects) {
  for (bool logged_in : {false, true}) {
    SCOPED_TRACE(logged_in ? "after login" : "before login");
    std::vector<std::string> args = {"--list-objects"};
    if (logged_in) args.insert(args.begin(), {"--login", "--pin", std::string(kPin)});
    auto softhsm = tool(Side::kSoftHsm, args);
    auto certvault = tool(Side::kCertvault, args);
    ASSERT_EQ(softhsm.exit_code, 0) << softhsm.err;
    ASSERT_EQ(certvault.exit_code, 0) << certvault.err;
    auto expected = parse_listing(softhsm.out);
    auto seen = parse_listing(certvault.out);
    // Per entry a certificate, a public key and, after login, a private key; and the CA.
    EXPECT_EQ(expected.size(), logged_in ? 7u : 5u) << softhsm.out;
    // What is left out of the comparison is there on certvault's side.
    EXPECT_NE(certvault.out.find("Profile object"), std::string::npos) << certvault.out;
    EXPECT_NE(certvault.out.find("  Unique ID:"), std::string::npos) << certvault.out;
    EXPECT_EQ(describe(seen), describe(expected)) << "certvault:\n"
                                                  << certvault.out << "\nSoftHSM:\n"
                                                  << softhsm.out;
  }
}

TEST_F(SoftHsmDifferential, BothTokensReadTheSameCertificateBytes) {
  for (const auto* entry : {&ec_, &rsa_}) {
    SCOPED_TRACE(entry->nickname);
    std::vector<std::vector<uint8_t>> read;
    for (Side side : {Side::kSoftHsm, Side::kCertvault}) {
      const fs::path out = tmp_ / ("read-" + side_name(side) + ".der");
      auto r = tool(side, {"--read-object", "--type", "cert", "--label", entry->nickname, "-o",
                           out.string()});
      ASSERT_EQ(r.exit_code, 0) << side_name(side) << ": " << r.err;
      read.push_back(read_bytes(out));
    }
    auto expected = vault().certificate_der(entry->nickname);
    ASSERT_TRUE(expected) << why(expected);
    EXPECT_EQ(read[0], *expected) << "SoftHSM";
    EXPECT_EQ(read[1], *expected) << "certvault";
  }
}

const std::string kMessage = "the same message for both tokens\n";

TEST_F(SoftHsmDifferential, EcdsaSignaturesFromEachTokenVerifyOnBoth) {
  // SoftHSM 2.6 has no CKM_ECDSA_SHA256: both sign the SHA-256 hash with CKM_ECDSA.
  sign_on_both(ec_, "ECDSA", sha256(kMessage));
  // certvault's CKM_ECDSA_SHA256 signature is the same thing, as SoftHSM confirms.
  const fs::path data = tmp_ / "message.txt";
  const fs::path hash = tmp_ / "message.sha256";
  write_file(data, kMessage);
  write_file(hash, sha256(kMessage));
  auto sig = sign(Side::kCertvault, ec_, "ECDSA-SHA256", data);
  EXPECT_TRUE(token_verifies(Side::kSoftHsm, ec_, "ECDSA", hash, sig));
}

TEST_F(SoftHsmDifferential, RsaPkcs1SignaturesAreByteForByteEqual) {
  // PKCS#1 v1.5 is deterministic: the same key and data give the same signature.
  auto [softhsm, certvault] = sign_on_both(rsa_, "SHA256-RSA-PKCS", kMessage);
  EXPECT_FALSE(certvault.empty());
  EXPECT_EQ(certvault, softhsm);
}

TEST_F(SoftHsmDifferential, RsaPssSignaturesFromEachTokenVerifyOnBoth) {
  sign_on_both(rsa_, "SHA256-RSA-PKCS-PSS", kMessage);
}

// FAILS until pkcs11/token.cc is fixed (bug found by this test). Both tokens hold a key that
// has left the vault in a PKCS#12 file; SoftHSM, which was handed it, says "sensitive" and no
// more, while certvault claims CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE. PKCS#11 v2.40
// 4.9: those say the key never existed outside the token in the clear, which a relying
// party uses to trust the key; after an export (Generation::exported_at) they are false.
TEST_F(SoftHsmDifferential, ExportedKeyIsNotClaimedNeverExtractable) {
  const std::vector<std::string> args = {"--login",        "--pin",  std::string(kPin),
                                         "--list-objects", "--type", "privkey"};
  auto access_lines = [](const std::string& out) {
    std::vector<std::string> lines;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);)
      if (line.starts_with("  Access:")) lines.push_back(line);
    return lines;
  };
  auto softhsm = tool(Side::kSoftHsm, args);
  auto certvault = tool(Side::kCertvault, args);
  ASSERT_EQ(softhsm.exit_code, 0) << softhsm.err;
  ASSERT_EQ(certvault.exit_code, 0) << certvault.err;
  ASSERT_EQ(access_lines(softhsm.out).size(), 2u) << softhsm.out;
  ASSERT_EQ(access_lines(certvault.out).size(), 2u) << certvault.out;
  for (const auto& line : access_lines(softhsm.out))
    EXPECT_EQ(line.find("never extractable"), std::string::npos) << line;
  for (const auto& line : access_lines(certvault.out)) {
    EXPECT_NE(line.find("sensitive"), std::string::npos) << line;
    EXPECT_EQ(line.find("always sensitive"), std::string::npos) << line;
    EXPECT_EQ(line.find("never extractable"), std::string::npos) << line;
  }
}

// v3.0 5.13 and 5.15: C_Sign and C_Verify cannot terminate a multi-part operation. Both
// tokens refuse and end the operation; the code differs (certvault CKR_FUNCTION_FAILED,
// SoftHSM CKR_OPERATION_NOT_INITIALIZED; see docs/pkcs11.md), so only the refusal is compared.
TEST_F(SoftHsmDifferential, SignAndVerifyAfterUpdateAreRefusedAndEndTheOperation) {
  same_on_both([&](Side, Loaded& m) {
    auto s = m.open(true);
    m.login(s, CKU_USER, kPin);
    auto key = m.find(s, CKO_PRIVATE_KEY, rsa_.nickname);
    auto pub = m.find(s, CKO_PUBLIC_KEY, rsa_.nickname);
    CK_MECHANISM mech = {CKM_SHA256_RSA_PKCS, nullptr, 0};
    uint8_t ab[] = "ab", cd[] = "cd";
    std::vector<uint8_t> sig(256);
    CK_ULONG len = sig.size();
    auto refused = [](CK_RV rv) { return rv == CKR_OK ? CKR_OK : CKR_FUNCTION_FAILED; };
    m.note("C_SignInit", m.f->C_SignInit(s, &mech, key));
    m.note("C_SignUpdate", m.f->C_SignUpdate(s, ab, 2));
    m.note("C_Sign refused", refused(m.f->C_Sign(s, cd, 2, sig.data(), &len)));
    m.note("C_SignFinal", m.f->C_SignFinal(s, sig.data(), &len));
    m.note("C_SignInit", m.f->C_SignInit(s, &mech, key));
    len = sig.size();
    m.note("C_Sign", m.f->C_Sign(s, ab, 2, sig.data(), &len));
    m.note("C_VerifyInit", m.f->C_VerifyInit(s, &mech, pub));
    m.note("C_VerifyUpdate", m.f->C_VerifyUpdate(s, ab, 2));
    m.note("C_Verify refused", refused(m.f->C_Verify(s, cd, 0, sig.data(), len)));
    m.note("C_VerifyFinal", m.f->C_VerifyFinal(s, sig.data(), len));
  });
}

// v3.0 5.12.5: a length query and CKR_BUFFER_TOO_SMALL keep a digest going on both tokens.
// (A NULL length pointer ends it in certvault and not in SoftHSM: see docs/pkcs11.md.)
TEST_F(SoftHsmDifferential, DigestFinalLengthQueryAndShortBufferKeepTheOperation) {
  same_on_both([&](Side, Loaded& m) {
    auto s = m.open(false);
    CK_MECHANISM sha = {CKM_SHA256, nullptr, 0};
    uint8_t out[64];
    CK_ULONG len = 0;
    m.note("C_DigestInit", m.f->C_DigestInit(s, &sha));
    m.note("C_DigestFinal length", m.f->C_DigestFinal(s, nullptr, &len));
    m.note("C_DigestInit again", m.f->C_DigestInit(s, &sha));
    len = 1;
    m.note("C_DigestFinal short", m.f->C_DigestFinal(s, out, &len));
    len = sizeof out;
    m.note("C_DigestFinal", m.f->C_DigestFinal(s, out, &len));
    m.note("C_DigestFinal after", m.f->C_DigestFinal(s, out, &len));
  });
}

// Current mechanisms v3.0, tables "Mechanisms vs. Functions" of 2.1 and 2.3: CKM_ECDSA,
// CKM_RSA_PKCS and CKM_RSA_PKCS_PSS sign and verify in a single part only; C_SignUpdate and
// C_VerifyUpdate are refused and end the operation, with the same code on both tokens.
TEST_F(SoftHsmDifferential, SinglePartMechanismsRefuseUpdate) {
  same_on_both([&](Side, Loaded& m) {
    auto s = m.open(true);
    m.login(s, CKU_USER, kPin);
    CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, 32};
    struct Case {
      CK_MECHANISM mech;
      const certvault::Entry* entry;
    } cases[] = {{{CKM_ECDSA, nullptr, 0}, &ec_},
                 {{CKM_RSA_PKCS, nullptr, 0}, &rsa_},
                 {{CKM_RSA_PKCS_PSS, &pss, sizeof pss}, &rsa_}};
    uint8_t hash[32] = {1, 2, 3};
    std::vector<uint8_t> sig(256);
    for (auto& c : cases) {
      auto key = m.find(s, CKO_PRIVATE_KEY, c.entry->nickname);
      auto pub = m.find(s, CKO_PUBLIC_KEY, c.entry->nickname);
      const std::string name = "mechanism " + std::to_string(c.mech.mechanism) + " ";
      CK_ULONG len = sig.size();
      m.note(name + "C_SignInit", m.f->C_SignInit(s, &c.mech, key));
      m.note(name + "C_SignUpdate", m.f->C_SignUpdate(s, hash, 16));
      m.note(name + "C_Sign", m.f->C_Sign(s, hash, 32, sig.data(), &len));
      m.note(name + "C_SignInit", m.f->C_SignInit(s, &c.mech, key));
      m.note(name + "C_Sign", m.f->C_Sign(s, hash, 32, sig.data(), &len));
      m.note(name + "C_VerifyInit", m.f->C_VerifyInit(s, &c.mech, pub));
      m.note(name + "C_VerifyUpdate", m.f->C_VerifyUpdate(s, hash, 16));
      m.note(name + "C_VerifyFinal", m.f->C_VerifyFinal(s, sig.data(), len));
      m.note(name + "C_VerifyInit", m.f->C_VerifyInit(s, &c.mech, pub));
      m.note(name + "C_Verify", m.f->C_Verify(s, hash, 32, sig.data(), len));
    }
  });
}

// v3.0 5.6, C_OpenSession: no read-only session while the security officer is logged in.
TEST_F(SoftHsmDifferential, ReadOnlySessionIsRefusedWhileTheSecurityOfficerIsLoggedIn) {
  same_on_both([&](Side side, Loaded& m) {
    auto rw = m.open(true);
    m.login(rw, CKU_SO, so_pin(side));
    m.open(false);
    m.note("C_Logout", m.f->C_Logout(rw));
    m.open(false);
  });
}

// v3.0 5.7.1, C_CreateObject, 4.1.1 item 4, and 4.2: a template without CKA_CLASS is
// incomplete.
TEST_F(SoftHsmDifferential, CreateObjectWithoutAClassIsAnIncompleteTemplate) {
  same_on_both([&](Side, Loaded& m) {
    auto rw = m.open(true);
    auto ro = m.open(false);
    m.login(rw, CKU_USER, kPin);
    CK_ATTRIBUTE t[] = {{CKA_LABEL, const_cast<char*>(ec_.nickname.data()), ec_.nickname.size()}};
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    m.note("C_CreateObject rw", m.f->C_CreateObject(rw, t, 1, &o));
    m.note("C_CreateObject ro", m.f->C_CreateObject(ro, t, 1, &o));
  });
}

// v3.0 5.7.1, C_CreateObject: a read-only session cannot create a token object, and creates
// session objects (a certificate, a data object), which it may also change and destroy
// (5.7.6, 5.7.3).
TEST_F(SoftHsmDifferential, ReadOnlySessionCreatesOnlySessionObjects) {
  auto der = vault().certificate_der(ec_.nickname);
  ASSERT_TRUE(der) << why(der);
  same_on_both([&](Side, Loaded& m) {
    auto ro = m.open(false);
    m.login(ro, CKU_USER, kPin);
    CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
    CK_CERTIFICATE_TYPE type = CKC_X_509;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},
                        {CKA_CERTIFICATE_TYPE, &type, sizeof type},
                        {CKA_VALUE, der->data(), der->size()},
                        {CKA_TOKEN, &yes, sizeof yes}};
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    m.note("C_CreateObject token certificate", m.f->C_CreateObject(ro, t, 4, &o));
    // v3.0 4.6.3: a certificate object is made with its subject.
    m.note("C_CreateObject session certificate without a subject",
           m.f->C_CreateObject(ro, t, 3, &o));
    CK_BBOOL no = CK_FALSE;
    auto cert = x509_from_der(*der);
    unsigned char* name = nullptr;
    const int name_len = i2d_X509_NAME(X509_get_subject_name(cert.get()), &name);
    std::vector<uint8_t> subject(name, name + name_len);
    OPENSSL_free(name);
    CK_ATTRIBUTE session_cert[] = {t[0],
                                   t[1],
                                   t[2],
                                   {CKA_TOKEN, &no, sizeof no},
                                   {CKA_SUBJECT, subject.data(), subject.size()}};
    m.note("C_CreateObject session certificate", m.f->C_CreateObject(ro, session_cert, 5, &o));
    m.note("C_DestroyObject session certificate", m.f->C_DestroyObject(ro, o));
    CK_OBJECT_CLASS data = CKO_DATA;
    std::string label = "scratch", value = "session data";
    CK_ATTRIBUTE d[] = {{CKA_CLASS, &data, sizeof data},
                        {CKA_LABEL, label.data(), label.size()},
                        {CKA_VALUE, value.data(), value.size()}};
    m.note("C_CreateObject session data", m.f->C_CreateObject(ro, d, 3, &o));
    std::string renamed = "renamed";
    CK_ATTRIBUTE rename[] = {{CKA_LABEL, renamed.data(), renamed.size()}};
    m.note("C_SetAttributeValue session data", m.f->C_SetAttributeValue(ro, o, rename, 1));
    m.note("C_DestroyObject session data", m.f->C_DestroyObject(ro, o));
  });
}

// v3.0 4.6.3, footnote 1 of its table: a token X.509 certificate is made with CKA_SUBJECT and
// CKA_VALUE; without either the template is incomplete on both tokens. (A subject that is not
// the certificate's is refused by certvault only: see docs/pkcs11.md.)
TEST_F(SoftHsmDifferential, TokenCertificateWithoutSubjectOrValueIsAnIncompleteTemplate) {
  auto der = vault().certificate_der(ec_.nickname);
  ASSERT_TRUE(der) << why(der);
  same_on_both([&](Side side, Loaded& m) {
    auto rw = m.open(true);
    m.login(rw, CKU_USER, kPin);
    CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
    CK_CERTIFICATE_TYPE type = CKC_X_509;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},
                        {CKA_CERTIFICATE_TYPE, &type, sizeof type},
                        {CKA_TOKEN, &yes, sizeof yes},
                        {CKA_LABEL, const_cast<char*>(ec_.nickname.data()), ec_.nickname.size()},
                        {CKA_VALUE, der->data(), der->size()}};
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    // SoftHSM2 2.6 leaks about 180 bytes of its own for each template it refuses here.
    auto create = [&] {
      IgnoreLeaks softhsm_leaks(side == Side::kSoftHsm);
      return m.f->C_CreateObject(rw, t, 5, &o);
    };
    m.note("C_CreateObject token certificate without a subject", create());
    auto cert = x509_from_der(*der);
    unsigned char* name = nullptr;
    const int name_len = i2d_X509_NAME(X509_get_subject_name(cert.get()), &name);
    std::vector<uint8_t> subject(name, name + name_len);
    OPENSSL_free(name);
    t[4] = {CKA_SUBJECT, subject.data(), subject.size()};
    m.note("C_CreateObject token certificate without a value", create());
  });
}

// v3.0 5.6.10, C_Logout: "any of the application's handles to private objects become invalid
// (even if a user is later logged back into the token, those handles remain invalid)". On both
// tokens the private key's old handle names nothing after the next login, the key is found
// under a new handle, and the public certificate keeps its handle.
TEST_F(SoftHsmDifferential, LogoutInvalidatesPrivateKeyHandlesEvenAfterTheNextLogin) {
  same_on_both([&](Side, Loaded& m) {
    auto s = m.open(false);
    m.login(s, CKU_USER, kPin);
    auto key = m.find(s, CKO_PRIVATE_KEY, ec_.nickname);
    auto cert = m.find(s, CKO_CERTIFICATE, ec_.nickname);
    m.note("C_Logout", m.f->C_Logout(s));
    m.login(s, CKU_USER, kPin);
    CK_KEY_TYPE type = 0;
    CK_ATTRIBUTE a = {CKA_KEY_TYPE, &type, sizeof type};
    m.note("C_GetAttributeValue old private key handle", m.f->C_GetAttributeValue(s, key, &a, 1));
    CK_CERTIFICATE_TYPE cert_type = 0;
    CK_ATTRIBUTE c = {CKA_CERTIFICATE_TYPE, &cert_type, sizeof cert_type};
    m.note("C_GetAttributeValue certificate handle", m.f->C_GetAttributeValue(s, cert, &c, 1));
    auto again = m.find(s, CKO_PRIVATE_KEY, ec_.nickname);
    m.note("found again under a new handle",
           again != CK_INVALID_HANDLE && again != key ? CKR_OK : CKR_GENERAL_ERROR);
    m.note("C_GetAttributeValue new private key handle", m.f->C_GetAttributeValue(s, again, &a, 1));
  });
}

// v3.0 5.20: C_GetFunctionStatus and C_CancelFunction return CKR_FUNCTION_NOT_PARALLEL.
TEST_F(SoftHsmDifferential, FunctionStatusAndCancelAreNotParallel) {
  same_on_both([&](Side, Loaded& m) {
    auto s = m.open(false);
    m.note("C_GetFunctionStatus", m.f->C_GetFunctionStatus(s));
    m.note("C_CancelFunction", m.f->C_CancelFunction(s));
    m.note("C_GetFunctionStatus closed", m.f->C_GetFunctionStatus(s + 100));
    m.note("C_CancelFunction closed", m.f->C_CancelFunction(s + 100));
  });
}

// v3.0 5.19: C_SeedRandom without a seed, in a valid session, is CKR_ARGUMENTS_BAD. (With a
// handle that is not valid, and with a seed, they differ: see docs/pkcs11.md.)
TEST_F(SoftHsmDifferential, SeedRandomWithoutASeedIsABadArgument) {
  same_on_both([&](Side, Loaded& m) {
    auto s = m.open(false);
    m.note("C_SeedRandom", m.f->C_SeedRandom(s, nullptr, 8));
  });
}

// v3.0 5.7, C_GetObjectSize: both answer for an object, and refuse a NULL pointer and a handle
// that names no object. (The sizes differ: see docs/pkcs11.md.)
TEST_F(SoftHsmDifferential, ObjectSizeIsAnsweredForAnObject) {
  same_on_both([&](Side, Loaded& m) {
    auto s = m.open(false);
    auto cert = m.find(s, CKO_CERTIFICATE, ec_.nickname);
    CK_ULONG size = 0;
    m.note("C_GetObjectSize", m.f->C_GetObjectSize(s, cert, &size));
    m.note("C_GetObjectSize NULL", m.f->C_GetObjectSize(s, cert, nullptr));
    m.note("C_GetObjectSize no object", m.f->C_GetObjectSize(s, 0x7fffff, &size));
  });
}

}  // namespace
}  // namespace cvtest
