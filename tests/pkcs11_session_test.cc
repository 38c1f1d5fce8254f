// Session objects (PKCS#11 v3.0 4.4, CKA_TOKEN false) and data objects (4.5), with the module
// loaded in-process as applications load it: what C_CreateObject and C_GenerateKeyPair make,
// who sees it, when it ends (5.6.2 C_CloseSession, 5.6.3 C_CloseAllSessions, 5.6.10 C_Logout,
// C_Finalize, fork), and that it signs like a vault key without ever reaching the vault.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <thread>

#include "ck.h"
#include "support.h"
#include "test_vault.h"

namespace cvtest {
namespace {

using Bytes = std::vector<uint8_t>;

const Bytes kP256 = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
const Bytes kP521 = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23};
const Bytes kEd25519 = {0x06, 0x03, 0x2b, 0x65, 0x70};

CK_BBOOL kTrue = CK_TRUE, kFalse = CK_FALSE;

struct Pkey {
  EVP_PKEY* p = nullptr;
  explicit Pkey(EVP_PKEY* k) : p(k) {}
  ~Pkey() { EVP_PKEY_free(p); }
};

Bytes bn_param(EVP_PKEY* k, const char* name, size_t width = 0) {
  BIGNUM* bn = nullptr;
  EXPECT_EQ(EVP_PKEY_get_bn_param(k, name, &bn), 1) << name;
  Bytes out(std::max<size_t>(width, static_cast<size_t>(BN_num_bytes(bn))));
  BN_bn2binpad(bn, out.data(), static_cast<int>(out.size()));
  BN_clear_free(bn);
  return out;
}

Bytes ec_point(EVP_PKEY* k) {
  Bytes point(200);
  size_t len = 0;
  EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point.data(), point.size(),
                                  &len);
  point.resize(len);
  // CKA_EC_POINT: the point in a DER OCTET STRING.
  Bytes der = {0x04, static_cast<uint8_t>(len)};
  der.insert(der.end(), point.begin(), point.end());
  return der;
}

// `sig` (PKCS#11's r || s for ECDSA) over `data` with SHA-256, or Ed25519 over `data`, checked
// by OpenSSL with `pub`.
bool openssl_verifies(EVP_PKEY* pub, std::string_view data, Bytes sig) {
  if (EVP_PKEY_is_a(pub, "EC")) {
    const size_t half = sig.size() / 2;
    ECDSA_SIG* s = ECDSA_SIG_new();
    ECDSA_SIG_set0(s, BN_bin2bn(sig.data(), static_cast<int>(half), nullptr),
                   BN_bin2bn(sig.data() + half, static_cast<int>(half), nullptr));
    Bytes der(static_cast<size_t>(i2d_ECDSA_SIG(s, nullptr)));
    unsigned char* p = der.data();
    i2d_ECDSA_SIG(s, &p);
    ECDSA_SIG_free(s);
    sig = std::move(der);
  }
  const bool ed = EVP_PKEY_is_a(pub, "ED25519");
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, ed ? nullptr : EVP_sha256(), nullptr, pub) == 1 &&
            EVP_DigestVerify(ctx, sig.data(), sig.size(),
                             reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

// CKA_SUBJECT of a certificate: the DER of its subject name.
Bytes subject_of(const Bytes& der) {
  const unsigned char* p = der.data();
  X509* x = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  if (!x) return {};
  unsigned char* out = nullptr;
  int len = i2d_X509_NAME(X509_get_subject_name(x), &out);
  Bytes subject(out, out + std::max(len, 0));
  OPENSSL_free(out);
  X509_free(x);
  return subject;
}

class SessionObjects : public VaultTest {
 protected:
  void SetUp() override {
    VaultTest::SetUp();
    if (HasFatalFailure()) return;
    entry_ = issue("api-prod", 100, certvault::KeyType::kEcP256);
    ::setenv("CERTVAULT_VAULT", dir_.c_str(), 1);
    ::setenv("CERTVAULT_PKCS11_CONF", "/nonexistent", 1);
    ::setenv("CERTVAULT_AGENT_SOCK", (tmp_ / "no-agent.sock").c_str(), 1);
    lib_ = ::dlopen(CERTVAULT_PKCS11_MODULE, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(lib_, nullptr) << ::dlerror();
    auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(lib_, "C_GetFunctionList"));
    ASSERT_NE(get, nullptr);
    ASSERT_EQ(get(&f_), CKR_OK);
    ASSERT_EQ(f_->C_Initialize(nullptr), CKR_OK);
  }
  void TearDown() override {
    if (f_) f_->C_Finalize(nullptr);
    if (lib_) ::dlclose(lib_);
    ::unsetenv("CERTVAULT_AGENT_SOCK");
  }

  CK_SESSION_HANDLE open(bool rw = false) {
    CK_SESSION_HANDLE s = 0;
    EXPECT_EQ(
        f_->C_OpenSession(0, CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0), nullptr, nullptr, &s),
        CKR_OK);
    return s;
  }
  CK_RV login(CK_SESSION_HANDLE s) {
    return f_->C_Login(s, CKU_USER,
                       reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(kPin.data())),
                       kPin.size());
  }
  // Every object of `cls` the session sees (with `label` when given).
  std::vector<CK_OBJECT_HANDLE> find(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls,
                                     std::optional<std::string_view> label = {}) {
    std::vector<CK_ATTRIBUTE> t = {{CKA_CLASS, &cls, sizeof cls}};
    if (label) t.push_back({CKA_LABEL, const_cast<char*>(label->data()), label->size()});
    std::vector<CK_OBJECT_HANDLE> out(64);
    CK_ULONG n = 0;
    EXPECT_EQ(f_->C_FindObjectsInit(s, t.data(), t.size()), CKR_OK);
    EXPECT_EQ(f_->C_FindObjects(s, out.data(), out.size(), &n), CKR_OK);
    EXPECT_EQ(f_->C_FindObjectsFinal(s), CKR_OK);
    out.resize(n);
    return out;
  }
  std::vector<CK_OBJECT_HANDLE> find_session_objects(CK_SESSION_HANDLE s) {
    CK_ATTRIBUTE t[] = {{CKA_TOKEN, &kFalse, sizeof kFalse}};
    std::vector<CK_OBJECT_HANDLE> out(64);
    CK_ULONG n = 0;
    EXPECT_EQ(f_->C_FindObjectsInit(s, t, 1), CKR_OK);
    EXPECT_EQ(f_->C_FindObjects(s, out.data(), out.size(), &n), CKR_OK);
    EXPECT_EQ(f_->C_FindObjectsFinal(s), CKR_OK);
    out.resize(n);
    return out;
  }
  CK_RV get(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, Bytes& out) {
    CK_ATTRIBUTE a = {type, nullptr, 0};
    if (CK_RV rv = f_->C_GetAttributeValue(s, o, &a, 1); rv != CKR_OK) return rv;
    out.resize(a.ulValueLen);
    a.pValue = out.data();
    return f_->C_GetAttributeValue(s, o, &a, 1);
  }
  Bytes attribute(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type) {
    Bytes v;
    EXPECT_EQ(get(s, o, type, v), CKR_OK) << "attribute 0x" << std::hex << type;
    return v;
  }
  bool flag(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type) {
    Bytes v = attribute(s, o, type);
    return v.size() == 1 && v[0] != 0;
  }
  // A session data object (CKA_TOKEN left to its default, false).
  CK_RV make_data(CK_SESSION_HANDLE s, std::string_view label, std::string_view value,
                  bool is_private, CK_OBJECT_HANDLE& out, std::vector<CK_ATTRIBUTE> extra = {}) {
    CK_OBJECT_CLASS cls = CKO_DATA;
    std::string app = "session test";
    CK_BBOOL priv = is_private ? CK_TRUE : CK_FALSE;
    std::vector<CK_ATTRIBUTE> t = {{CKA_CLASS, &cls, sizeof cls},
                                   {CKA_LABEL, const_cast<char*>(label.data()), label.size()},
                                   {CKA_APPLICATION, app.data(), app.size()},
                                   {CKA_VALUE, const_cast<char*>(value.data()), value.size()},
                                   {CKA_PRIVATE, &priv, sizeof priv}};
    t.insert(t.end(), extra.begin(), extra.end());
    return f_->C_CreateObject(s, t.data(), t.size(), &out);
  }
  CK_RV make_certificate(CK_SESSION_HANDLE s, const Bytes& der, std::string_view label,
                         CK_OBJECT_HANDLE& out, CK_BBOOL token = CK_FALSE) {
    CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
    CK_CERTIFICATE_TYPE type = CKC_X_509;
    Bytes subject = subject_of(der);
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},
                        {CKA_CERTIFICATE_TYPE, &type, sizeof type},
                        {CKA_VALUE, const_cast<uint8_t*>(der.data()), der.size()},
                        {CKA_LABEL, const_cast<char*>(label.data()), label.size()},
                        {CKA_TOKEN, &token, sizeof token},
                        {CKA_SUBJECT, subject.data(), subject.size()}};
    return f_->C_CreateObject(s, t, 6, &out);
  }
  // A session EC P-256 key pair from C_GenerateKeyPair.
  CK_RV generate(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE& pub, CK_OBJECT_HANDLE& priv,
                 CK_BBOOL priv_private = CK_TRUE) {
    CK_MECHANISM m = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    std::string label = "scratch";
    CK_ATTRIBUTE pt[] = {{CKA_EC_PARAMS, const_cast<uint8_t*>(kP256.data()), kP256.size()},
                         {CKA_LABEL, label.data(), label.size()},
                         {CKA_VERIFY, &kTrue, 1}};
    CK_ATTRIBUTE kt[] = {{CKA_LABEL, label.data(), label.size()},
                         {CKA_SIGN, &kTrue, 1},
                         {CKA_PRIVATE, &priv_private, 1}};
    return f_->C_GenerateKeyPair(s, &m, pt, 3, kt, 3, &pub, &priv);
  }
  CK_RV sign(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, CK_MECHANISM_TYPE mech,
             std::string_view data, Bytes& sig) {
    CK_MECHANISM m = {mech, nullptr, 0};
    if (CK_RV rv = f_->C_SignInit(s, &m, key); rv != CKR_OK) return rv;
    sig.resize(512);
    CK_ULONG len = sig.size();
    CK_RV rv = f_->C_Sign(s, reinterpret_cast<CK_BYTE_PTR>(const_cast<char*>(data.data())),
                          data.size(), sig.data(), &len);
    sig.resize(len);
    return rv;
  }
  CK_RV verify(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, CK_MECHANISM_TYPE mech,
               std::string_view data, Bytes sig) {
    CK_MECHANISM m = {mech, nullptr, 0};
    if (CK_RV rv = f_->C_VerifyInit(s, &m, key); rv != CKR_OK) return rv;
    return f_->C_Verify(s, reinterpret_cast<CK_BYTE_PTR>(const_cast<char*>(data.data())),
                        data.size(), sig.data(), sig.size());
  }
  Bytes entry_certificate() {
    auto der = vault().certificate_der("api-prod");
    EXPECT_TRUE(der) << why(der);
    return der ? *der : Bytes();
  }
  // The vault as another process sees it: what is committed.
  size_t vault_entries() {
    auto v = certvault::Vault::open(dir_);
    EXPECT_TRUE(v) << why(v);
    return v ? v->entries().size() : 0;
  }

  certvault::Entry entry_;
  void* lib_ = nullptr;
  CK_FUNCTION_LIST_PTR f_ = nullptr;
};

// v3.0 4.4, 5.18.2: a key pair with CKA_TOKEN false (the default) signs and verifies, and
// nothing reaches the vault.
TEST_F(SessionObjects, GeneratedSessionKeyPairSignsAndIsNeverWrittenToTheVault) {
  const size_t before = vault_entries();
  auto s = open();  // read-only: session objects only (v3.0 5.7.1)
  ASSERT_EQ(login(s), CKR_OK);
  CK_OBJECT_HANDLE pub = 0, priv = 0;
  ASSERT_EQ(generate(s, pub, priv), CKR_OK);
  EXPECT_FALSE(flag(s, pub, CKA_TOKEN));
  EXPECT_FALSE(flag(s, priv, CKA_TOKEN));
  EXPECT_TRUE(flag(s, priv, CKA_PRIVATE));
  EXPECT_TRUE(flag(s, priv, CKA_SENSITIVE));
  EXPECT_FALSE(flag(s, priv, CKA_EXTRACTABLE));
  EXPECT_TRUE(flag(s, priv, CKA_LOCAL));
  Bytes v;
  EXPECT_EQ(get(s, priv, CKA_VALUE, v), CKR_ATTRIBUTE_SENSITIVE);
  Bytes sig;
  ASSERT_EQ(sign(s, priv, CKM_ECDSA_SHA256, "scratch data", sig), CKR_OK);
  EXPECT_EQ(sig.size(), 64u);
  EXPECT_EQ(verify(s, pub, CKM_ECDSA_SHA256, "scratch data", sig), CKR_OK);
  EXPECT_EQ(verify(s, pub, CKM_ECDSA_SHA256, "other data", sig), CKR_SIGNATURE_INVALID);
  EXPECT_EQ(vault_entries(), before);
  EXPECT_EQ(find(s, CKO_PRIVATE_KEY, "scratch").size(), 1u);
  // A pair split between the token and the session is not made.
  CK_MECHANISM m = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  CK_ATTRIBUTE pt[] = {{CKA_EC_PARAMS, const_cast<uint8_t*>(kP256.data()), kP256.size()},
                       {CKA_TOKEN, &kTrue, 1}};
  EXPECT_EQ(f_->C_GenerateKeyPair(s, &m, pt, 2, nullptr, 0, &pub, &priv), CKR_SESSION_READ_ONLY);
  auto rw = open(true);
  EXPECT_EQ(f_->C_GenerateKeyPair(rw, &m, pt, 2, nullptr, 0, &pub, &priv),
            CKR_TEMPLATE_INCONSISTENT);
  // A session key is as sensitive as a vault key: it never leaves the keystore.
  CK_ATTRIBUTE extractable[] = {{CKA_EXTRACTABLE, &kTrue, 1}};
  EXPECT_EQ(f_->C_GenerateKeyPair(s, &m, pt, 1, extractable, 1, &pub, &priv),
            CKR_TEMPLATE_INCONSISTENT);
}

// v3.0 5.7.1: a read-only session creates session objects (a token object there is
// CKR_SESSION_READ_ONLY), and only public ones before login.
TEST_F(SessionObjects, ReadOnlySessionCreatesSessionObjectsAndPrivateOnesNeedLogin) {
  auto s = open();
  const Bytes der = entry_certificate();
  CK_OBJECT_HANDLE o = 0;
  EXPECT_EQ(make_certificate(s, der, "copy", o, CK_TRUE), CKR_SESSION_READ_ONLY);
  ASSERT_EQ(make_certificate(s, der, "copy", o), CKR_OK);
  EXPECT_EQ(attribute(s, o, CKA_SUBJECT), subject_of(der));
  EXPECT_EQ(attribute(s, o, CKA_VALUE), der);
  EXPECT_FALSE(flag(s, o, CKA_PRIVATE));
  CK_OBJECT_HANDLE d = 0;
  EXPECT_EQ(make_data(s, "secret", "s3cret", true, d), CKR_USER_NOT_LOGGED_IN);
  EXPECT_EQ(make_data(s, "note", "hello", false, d), CKR_OK);
  EXPECT_EQ(attribute(s, d, CKA_VALUE), Bytes({'h', 'e', 'l', 'l', 'o'}));
  ASSERT_EQ(login(s), CKR_OK);
  EXPECT_EQ(make_data(s, "secret", "s3cret", true, d), CKR_OK);
  EXPECT_EQ(find(s, CKO_DATA).size(), 2u);
}

// v3.0 5.6.2: every session of the application sees a session object; it ends with the
// session that made it, even while another session uses it.
TEST_F(SessionObjects, VisibleToEverySessionAndDestroyedWhenItsSessionCloses) {
  auto maker = open();
  auto other = open();
  CK_OBJECT_HANDLE d = 0;
  ASSERT_EQ(make_data(maker, "shared", "v", false, d), CKR_OK);
  ASSERT_EQ(find(other, CKO_DATA, "shared"), std::vector<CK_OBJECT_HANDLE>{d});
  ASSERT_EQ(f_->C_CloseSession(maker), CKR_OK);
  EXPECT_TRUE(find(other, CKO_DATA, "shared").empty());
  Bytes v;
  EXPECT_EQ(get(other, d, CKA_VALUE, v), CKR_OBJECT_HANDLE_INVALID);
  // The token's own objects stay.
  EXPECT_EQ(find(other, CKO_CERTIFICATE, "api-prod").size(), 1u);
}

// v3.0 5.6.3 and 5.4.2: C_CloseAllSessions and C_Finalize end every session object.
TEST_F(SessionObjects, CloseAllSessionsAndFinalizeDestroyThem) {
  auto s = open();
  CK_OBJECT_HANDLE d = 0;
  ASSERT_EQ(make_data(s, "a", "1", false, d), CKR_OK);
  ASSERT_EQ(f_->C_CloseAllSessions(0), CKR_OK);
  s = open();
  EXPECT_TRUE(find_session_objects(s).empty());
  ASSERT_EQ(make_data(s, "b", "2", false, d), CKR_OK);
  ASSERT_EQ(f_->C_Finalize(nullptr), CKR_OK);
  ASSERT_EQ(f_->C_Initialize(nullptr), CKR_OK);
  s = open();
  EXPECT_TRUE(find_session_objects(s).empty());
}

// v3.0 5.6.10: C_Logout destroys the application's private session objects (a later login
// does not bring them back); public ones stay.
TEST_F(SessionObjects, LogoutDestroysPrivateSessionObjectsOnly) {
  auto s = open();
  ASSERT_EQ(login(s), CKR_OK);
  CK_OBJECT_HANDLE secret = 0, note = 0, pub = 0, priv = 0;
  ASSERT_EQ(make_data(s, "secret", "s3cret", true, secret), CKR_OK);
  ASSERT_EQ(make_data(s, "note", "hello", false, note), CKR_OK);
  ASSERT_EQ(generate(s, pub, priv), CKR_OK);
  ASSERT_EQ(f_->C_Logout(s), CKR_OK);
  Bytes v;
  EXPECT_EQ(get(s, secret, CKA_VALUE, v), CKR_OBJECT_HANDLE_INVALID);
  EXPECT_EQ(get(s, note, CKA_VALUE, v), CKR_OK);
  EXPECT_EQ(get(s, pub, CKA_EC_POINT, v), CKR_OK);  // a public key is not private
  ASSERT_EQ(login(s), CKR_OK);
  EXPECT_EQ(get(s, secret, CKA_VALUE, v), CKR_OBJECT_HANDLE_INVALID);
  EXPECT_EQ(get(s, priv, CKA_KEY_TYPE, v), CKR_OBJECT_HANDLE_INVALID);
  EXPECT_EQ(find(s, CKO_DATA), std::vector<CK_OBJECT_HANDLE>{note});
}

// v3.0 5.6.10: after C_Logout the handle of a private token data object stays invalid, even
// after the next login, which finds the same object (its CKA_UNIQUE_ID) under a new handle; a
// public one keeps its handle throughout.
TEST_F(SessionObjects, LogoutInvalidatesPrivateTokenDataObjectHandles) {
  auto s = open(true);
  ASSERT_EQ(login(s), CKR_OK);
  std::vector<CK_ATTRIBUTE> token = {{CKA_TOKEN, &kTrue, 1}};
  CK_OBJECT_HANDLE secret = 0, note = 0;
  ASSERT_EQ(make_data(s, "secret", "s3cret", true, secret, token), CKR_OK);
  ASSERT_EQ(make_data(s, "note", "hello", false, note, token), CKR_OK);
  const Bytes unique = attribute(s, secret, CKA_UNIQUE_ID);
  ASSERT_EQ(f_->C_Logout(s), CKR_OK);
  Bytes v;
  EXPECT_EQ(get(s, secret, CKA_VALUE, v), CKR_OBJECT_HANDLE_INVALID);
  EXPECT_EQ(get(s, note, CKA_VALUE, v), CKR_OK);
  ASSERT_EQ(login(s), CKR_OK);
  EXPECT_EQ(get(s, secret, CKA_VALUE, v), CKR_OBJECT_HANDLE_INVALID)
      << "the private data object's handle from before C_Logout still names it";
  EXPECT_EQ(f_->C_DestroyObject(s, secret), CKR_OBJECT_HANDLE_INVALID);
  auto found = find(s, CKO_DATA, "secret");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_NE(found[0], secret) << "a handle given before C_Logout was reused";
  EXPECT_EQ(attribute(s, found[0], CKA_UNIQUE_ID), unique);
  EXPECT_EQ(attribute(s, found[0], CKA_VALUE), Bytes({'s', '3', 'c', 'r', 'e', 't'}));
  EXPECT_EQ(find(s, CKO_DATA, "note"), std::vector<CK_OBJECT_HANDLE>{note});
}

// v3.0 4.4.1: every object has its own CKA_UNIQUE_ID, which no template sets.
TEST_F(SessionObjects, EachSessionObjectHasItsOwnUniqueId) {
  auto s = open();
  CK_OBJECT_HANDLE a = 0, b = 0;
  ASSERT_EQ(make_data(s, "a", "1", false, a), CKR_OK);
  ASSERT_EQ(make_data(s, "a", "1", false, b), CKR_OK);
  // As strings: g++ 12 at -O3 takes the memcmp of a set of byte vectors for an unbounded
  // read (-Wstringop-overread, a false positive).
  auto unique_id = [&](CK_OBJECT_HANDLE h) {
    const Bytes id = attribute(s, h, CKA_UNIQUE_ID);
    return std::string(id.begin(), id.end());
  };
  std::set<std::string> ids = {unique_id(a), unique_id(b)};
  for (auto h : find(s, CKO_CERTIFICATE)) ids.insert(unique_id(h));
  EXPECT_EQ(ids.size(), 4u);  // two data objects, the entry's and the CA's certificates
  EXPECT_EQ(attribute(s, a, CKA_UNIQUE_ID).size(), 32u);
  std::string id = "0123";
  CK_OBJECT_HANDLE c = 0;
  EXPECT_EQ(make_data(s, "c", "1", false, c, {{CKA_UNIQUE_ID, id.data(), id.size()}}),
            CKR_ATTRIBUTE_READ_ONLY);
}

// v3.0 5.7.3 and 5.7.6: a read-only session changes and destroys session objects, within
// CKA_MODIFIABLE and CKA_DESTROYABLE.
TEST_F(SessionObjects, ChangedAndDestroyedInAReadOnlySession) {
  auto s = open();
  CK_OBJECT_HANDLE d = 0, fixed = 0, kept = 0;
  ASSERT_EQ(make_data(s, "before", "1", false, d), CKR_OK);
  std::string label = "after", app = "other app", value = "new value";
  CK_ATTRIBUTE change[] = {{CKA_LABEL, label.data(), label.size()},
                           {CKA_APPLICATION, app.data(), app.size()},
                           {CKA_VALUE, value.data(), value.size()}};
  ASSERT_EQ(f_->C_SetAttributeValue(s, d, change, 3), CKR_OK);
  EXPECT_EQ(find(s, CKO_DATA, "after"), std::vector<CK_OBJECT_HANDLE>{d});
  EXPECT_EQ(attribute(s, d, CKA_VALUE), Bytes(value.begin(), value.end()));
  EXPECT_EQ(attribute(s, d, CKA_APPLICATION), Bytes(app.begin(), app.end()));
  CK_ATTRIBUTE make_private[] = {{CKA_PRIVATE, &kTrue, 1}};
  EXPECT_EQ(f_->C_SetAttributeValue(s, d, make_private, 1), CKR_ATTRIBUTE_READ_ONLY);
  ASSERT_EQ(make_data(s, "fixed", "1", false, fixed, {{CKA_MODIFIABLE, &kFalse, 1}}), CKR_OK);
  EXPECT_EQ(f_->C_SetAttributeValue(s, fixed, change, 1), CKR_ACTION_PROHIBITED);
  ASSERT_EQ(make_data(s, "kept", "1", false, kept, {{CKA_DESTROYABLE, &kFalse, 1}}), CKR_OK);
  EXPECT_EQ(f_->C_DestroyObject(s, kept), CKR_ACTION_PROHIBITED);
  EXPECT_EQ(f_->C_DestroyObject(s, d), CKR_OK);
  EXPECT_TRUE(find(s, CKO_DATA, "after").empty());
  // The vault's objects stay out of reach of a read-only session.
  auto certs = find(s, CKO_CERTIFICATE, "api-prod");
  ASSERT_EQ(certs.size(), 1u);
  EXPECT_EQ(f_->C_DestroyObject(s, certs[0]), CKR_SESSION_READ_ONLY);
  EXPECT_EQ(f_->C_SetAttributeValue(s, certs[0], change, 1), CKR_SESSION_READ_ONLY);
}

// v3.0 4.9 and current mechanisms 2.3.4: an EC private key given by value signs; what it
// signs verifies with OpenSSL's own key; the value is never read back.
TEST_F(SessionObjects, EcPrivateKeyGivenByValueSigns) {
  Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  ASSERT_NE(key.p, nullptr);
  auto s = open();
  ASSERT_EQ(login(s), CKR_OK);
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  CK_KEY_TYPE kt = CKK_EC;
  Bytes scalar = bn_param(key.p, OSSL_PKEY_PARAM_PRIV_KEY, 32);
  Bytes id = {1, 2, 3};
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},
                      {CKA_KEY_TYPE, &kt, sizeof kt},
                      {CKA_EC_PARAMS, const_cast<uint8_t*>(kP256.data()), kP256.size()},
                      {CKA_VALUE, scalar.data(), scalar.size()},
                      {CKA_ID, id.data(), id.size()}};
  CK_OBJECT_HANDLE priv = 0;
  ASSERT_EQ(f_->C_CreateObject(s, t, 5, &priv), CKR_OK);
  EXPECT_FALSE(flag(s, priv, CKA_LOCAL));
  EXPECT_FALSE(flag(s, priv, CKA_ALWAYS_SENSITIVE));
  EXPECT_EQ(attribute(s, priv, CKA_ID), id);
  Bytes v;
  EXPECT_EQ(get(s, priv, CKA_VALUE, v), CKR_ATTRIBUTE_SENSITIVE);
  Bytes sig;
  ASSERT_EQ(sign(s, priv, CKM_ECDSA_SHA256, "by value", sig), CKR_OK);
  EXPECT_TRUE(openssl_verifies(key.p, "by value", sig));

  // Its public half given by value verifies it.
  CK_OBJECT_CLASS pub_cls = CKO_PUBLIC_KEY;
  Bytes point = ec_point(key.p);
  CK_ATTRIBUTE pt[] = {{CKA_CLASS, &pub_cls, sizeof pub_cls},
                       {CKA_KEY_TYPE, &kt, sizeof kt},
                       {CKA_EC_PARAMS, const_cast<uint8_t*>(kP256.data()), kP256.size()},
                       {CKA_EC_POINT, point.data(), point.size()}};
  CK_OBJECT_HANDLE pub = 0;
  ASSERT_EQ(f_->C_CreateObject(s, pt, 4, &pub), CKR_OK);
  EXPECT_EQ(verify(s, pub, CKM_ECDSA_SHA256, "by value", sig), CKR_OK);
  EXPECT_EQ(attribute(s, pub, CKA_EC_POINT), point);

  // Values that make no key of a vault's kinds are refused, and nothing is made.
  const size_t objects = find_session_objects(s).size();
  Bytes zero(32, 0);
  t[3] = {CKA_VALUE, zero.data(), zero.size()};
  EXPECT_EQ(f_->C_CreateObject(s, t, 5, &priv), CKR_ATTRIBUTE_VALUE_INVALID);
  t[2] = {CKA_EC_PARAMS, const_cast<uint8_t*>(kP521.data()), kP521.size()};
  EXPECT_EQ(f_->C_CreateObject(s, t, 5, &priv), CKR_CURVE_NOT_SUPPORTED);
  t[2] = {CKA_EC_PARAMS, const_cast<uint8_t*>(kP256.data()), kP256.size()};
  EXPECT_EQ(f_->C_CreateObject(s, t, 3, &priv), CKR_TEMPLATE_INCOMPLETE);  // no CKA_VALUE
  EXPECT_EQ(find_session_objects(s).size(), objects);
}

TEST_F(SessionObjects, Ed25519PrivateKeyGivenByValueSigns) {
  Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  ASSERT_NE(key.p, nullptr);
  Bytes seed(32);
  size_t len = seed.size();
  ASSERT_EQ(EVP_PKEY_get_raw_private_key(key.p, seed.data(), &len), 1);
  auto s = open();
  ASSERT_EQ(login(s), CKR_OK);
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  CK_KEY_TYPE kt = CKK_EC_EDWARDS;
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},
                      {CKA_KEY_TYPE, &kt, sizeof kt},
                      {CKA_EC_PARAMS, const_cast<uint8_t*>(kEd25519.data()), kEd25519.size()},
                      {CKA_VALUE, seed.data(), seed.size()}};
  CK_OBJECT_HANDLE priv = 0;
  ASSERT_EQ(f_->C_CreateObject(s, t, 4, &priv), CKR_OK);
  Bytes sig;
  ASSERT_EQ(sign(s, priv, CKM_EDDSA, "ed25519 by value", sig), CKR_OK);
  EXPECT_TRUE(openssl_verifies(key.p, "ed25519 by value", sig));
}

TEST_F(SessionObjects, RsaPrivateKeyGivenByValueSigns) {
  Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
  ASSERT_NE(key.p, nullptr);
  auto s = open();
  ASSERT_EQ(login(s), CKR_OK);
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  CK_KEY_TYPE kt = CKK_RSA;
  Bytes n = bn_param(key.p, OSSL_PKEY_PARAM_RSA_N), e = bn_param(key.p, OSSL_PKEY_PARAM_RSA_E),
        d = bn_param(key.p, OSSL_PKEY_PARAM_RSA_D),
        p = bn_param(key.p, OSSL_PKEY_PARAM_RSA_FACTOR1),
        q = bn_param(key.p, OSSL_PKEY_PARAM_RSA_FACTOR2),
        dp = bn_param(key.p, OSSL_PKEY_PARAM_RSA_EXPONENT1),
        dq = bn_param(key.p, OSSL_PKEY_PARAM_RSA_EXPONENT2),
        qinv = bn_param(key.p, OSSL_PKEY_PARAM_RSA_COEFFICIENT1);
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},
                      {CKA_KEY_TYPE, &kt, sizeof kt},
                      {CKA_MODULUS, n.data(), n.size()},
                      {CKA_PUBLIC_EXPONENT, e.data(), e.size()},
                      {CKA_PRIVATE_EXPONENT, d.data(), d.size()},
                      {CKA_PRIME_1, p.data(), p.size()},
                      {CKA_PRIME_2, q.data(), q.size()},
                      {CKA_EXPONENT_1, dp.data(), dp.size()},
                      {CKA_EXPONENT_2, dq.data(), dq.size()},
                      {CKA_COEFFICIENT, qinv.data(), qinv.size()}};
  CK_OBJECT_HANDLE priv = 0;
  ASSERT_EQ(f_->C_CreateObject(s, t, 10, &priv), CKR_OK);
  EXPECT_EQ(attribute(s, priv, CKA_MODULUS), n);
  Bytes sig;
  ASSERT_EQ(sign(s, priv, CKM_SHA256_RSA_PKCS, "rsa by value", sig), CKR_OK);
  EXPECT_TRUE(openssl_verifies(key.p, "rsa by value", sig));
  // A prime that does not belong to the modulus makes no key.
  p.back() ^= 2;
  EXPECT_EQ(f_->C_CreateObject(s, t, 10, &priv), CKR_ATTRIBUTE_VALUE_INVALID);
}

// v3.0 4.4: login guards private objects; a session key made public signs without one.
TEST_F(SessionObjects, PublicSessionKeySignsWithoutLogin) {
  auto s = open();
  CK_OBJECT_HANDLE pub = 0, priv = 0;
  EXPECT_EQ(generate(s, pub, priv), CKR_USER_NOT_LOGGED_IN);  // private by default
  ASSERT_EQ(generate(s, pub, priv, CK_FALSE), CKR_OK);
  Bytes sig;
  ASSERT_EQ(sign(s, priv, CKM_ECDSA, std::string(32, 'h'), sig), CKR_OK);
  EXPECT_EQ(verify(s, pub, CKM_ECDSA, std::string(32, 'h'), sig), CKR_OK);
  // The vault's keys still need the login.
  auto vault_keys = find(s, CKO_PRIVATE_KEY, "api-prod");
  EXPECT_TRUE(vault_keys.empty());
}

// A forked child sees the module uninitialised; after its own C_Initialize it has none of
// its parent's session objects, and the parent keeps them.
TEST_F(SessionObjects, ForkedChildDoesNotInheritSessionObjects) {
  auto s = open();
  CK_OBJECT_HANDLE d = 0;
  ASSERT_EQ(make_data(s, "parent's", "p", false, d), CKR_OK);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int code = 0;
    CK_ATTRIBUTE a = {CKA_VALUE, nullptr, 0};
    if (f_->C_GetAttributeValue(s, d, &a, 1) != CKR_CRYPTOKI_NOT_INITIALIZED) code |= 1;
    if (f_->C_Initialize(nullptr) != CKR_OK) code |= 2;
    CK_SESSION_HANDLE cs = 0;
    if (f_->C_OpenSession(0, CKF_SERIAL_SESSION, nullptr, nullptr, &cs) != CKR_OK) code |= 4;
    CK_ATTRIBUTE t[] = {{CKA_TOKEN, &kFalse, 1}};
    CK_OBJECT_HANDLE found[4];
    CK_ULONG n = 99;
    if (f_->C_FindObjectsInit(cs, t, 1) != CKR_OK ||
        f_->C_FindObjects(cs, found, 4, &n) != CKR_OK || n != 0)
      code |= 8;
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(find(s, CKO_DATA, "parent's"), std::vector<CK_OBJECT_HANDLE>{d});
}

// Threads each make, use and end their own session objects while the others do.
TEST_F(SessionObjects, ThreadsMakeSignAndCloseConcurrently) {
  auto watcher = open();
  ASSERT_EQ(login(watcher), CKR_OK);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i)
    threads.emplace_back([&, i] {
      for (int round = 0; round < 5; ++round) {
        auto s = open();
        CK_OBJECT_HANDLE pub = 0, priv = 0, d = 0;
        Bytes sig;
        const std::string data = "thread " + std::to_string(i) + " round " + std::to_string(round);
        if (generate(s, pub, priv) != CKR_OK ||
            sign(s, priv, CKM_ECDSA_SHA256, data, sig) != CKR_OK ||
            verify(s, pub, CKM_ECDSA_SHA256, data, sig) != CKR_OK ||
            make_data(s, data, data, true, d) != CKR_OK || f_->C_CloseSession(s) != CKR_OK)
          ++failures;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_TRUE(find_session_objects(watcher).empty());
}

// v3.0 5.6.2: a session closed while another thread makes objects in it leaves none behind,
// whichever comes first.
TEST_F(SessionObjects, SessionClosedWhileAnotherThreadCreatesLeavesNoObject) {
  auto watcher = open();
  for (int round = 0; round < 10; ++round) {
    auto s = open();
    std::thread maker([&] {
      for (int i = 0; i < 2000; ++i) {
        CK_OBJECT_HANDLE d = 0;
        const CK_RV rv = make_data(s, "racing", "x", false, d);
        if (rv == CKR_OK) continue;
        EXPECT_EQ(rv, CKR_SESSION_HANDLE_INVALID);
        break;
      }
    });
    EXPECT_EQ(f_->C_CloseSession(s), CKR_OK);
    maker.join();
    EXPECT_TRUE(find_session_objects(watcher).empty()) << "round " << round;
  }
}

// --- data objects kept in the vault (v3.0 4.5, CKA_TOKEN true) ---------------------------

// A token data object is one commit to the vault: another process sees it, it survives
// C_Finalize with the same CKA_UNIQUE_ID, and its private value is read only after login.
TEST_F(SessionObjects, TokenDataObjectIsKeptInTheVault) {
  auto rw = open(true);
  CK_OBJECT_HANDLE d = 0;
  std::vector<CK_ATTRIBUTE> token = {{CKA_TOKEN, &kTrue, 1}};
  EXPECT_EQ(make_data(rw, "kept", "k3pt", true, d, token), CKR_USER_NOT_LOGGED_IN);
  ASSERT_EQ(login(rw), CKR_OK);
  auto ro = open();
  EXPECT_EQ(make_data(ro, "kept", "k3pt", true, d, token), CKR_SESSION_READ_ONLY);
  ASSERT_EQ(make_data(rw, "kept", "k3pt", true, d, token), CKR_OK);
  EXPECT_TRUE(flag(rw, d, CKA_TOKEN));
  EXPECT_TRUE(flag(rw, d, CKA_PRIVATE));
  EXPECT_FALSE(flag(rw, d, CKA_MODIFIABLE));
  EXPECT_EQ(attribute(rw, d, CKA_VALUE), Bytes({'k', '3', 'p', 't'}));
  const Bytes unique = attribute(rw, d, CKA_UNIQUE_ID);
  CK_ULONG size = 0;
  EXPECT_EQ(f_->C_GetObjectSize(rw, d, &size), CKR_OK);
  EXPECT_GE(size, 4u);
  // The vault holds it, sealed: the keystore lists it only once unlocked.
  auto other = certvault::Vault::open(dir_);
  ASSERT_TRUE(other) << why(other);
  EXPECT_TRUE(other->data_objects().empty());
  ASSERT_TRUE(other->unlock(pin()));
  ASSERT_EQ(other->data_objects().size(), 1u);
  EXPECT_EQ(other->data_objects()[0].label, "kept");
  // The vault stores it unchangeable.
  std::string label = "renamed";
  CK_ATTRIBUTE rename[] = {{CKA_LABEL, label.data(), label.size()}};
  EXPECT_EQ(f_->C_SetAttributeValue(rw, d, rename, 1), CKR_ACTION_PROHIBITED);
  CK_OBJECT_HANDLE e = 0;
  std::vector<CK_ATTRIBUTE> modifiable = {{CKA_TOKEN, &kTrue, 1}, {CKA_MODIFIABLE, &kTrue, 1}};
  EXPECT_EQ(make_data(rw, "x", "x", false, e, modifiable), CKR_TEMPLATE_INCONSISTENT);
  // Another start sees the same object, private ones after login only.
  ASSERT_EQ(f_->C_Finalize(nullptr), CKR_OK);
  ASSERT_EQ(f_->C_Initialize(nullptr), CKR_OK);
  auto s = open(true);
  EXPECT_TRUE(find(s, CKO_DATA).empty());
  ASSERT_EQ(login(s), CKR_OK);
  auto found = find(s, CKO_DATA, "kept");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(attribute(s, found[0], CKA_UNIQUE_ID), unique);
  CK_ATTRIBUTE by_id[] = {{CKA_UNIQUE_ID, const_cast<uint8_t*>(unique.data()), unique.size()}};
  CK_OBJECT_HANDLE hit = 0;
  CK_ULONG n = 0;
  ASSERT_EQ(f_->C_FindObjectsInit(s, by_id, 1), CKR_OK);
  ASSERT_EQ(f_->C_FindObjects(s, &hit, 1, &n), CKR_OK);
  ASSERT_EQ(f_->C_FindObjectsFinal(s), CKR_OK);
  EXPECT_EQ(n, 1u);
  ASSERT_EQ(f_->C_DestroyObject(s, found[0]), CKR_OK);
  EXPECT_TRUE(find(s, CKO_DATA).empty());
  ASSERT_TRUE(other->refresh());
  EXPECT_TRUE(other->data_objects().empty());
}

// A value over the vault's limit (64 KiB) is refused, as bad input, and the vault is unchanged;
// a session data object keeps to the same limit.
TEST_F(SessionObjects, DataObjectOverTheVaultLimitChangesNothing) {
  auto s = open(true);
  ASSERT_EQ(login(s), CKR_OK);
  const auto before = snapshot(dir_);
  const std::string big(64 * 1024 + 1, 'x');
  CK_OBJECT_HANDLE d = 0;
  EXPECT_EQ(make_data(s, "big", big, true, d, {{CKA_TOKEN, &kTrue, 1}}),
            CKR_ATTRIBUTE_VALUE_INVALID);
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
  EXPECT_EQ(make_data(s, "big", big, true, d), CKR_ATTRIBUTE_VALUE_INVALID);
  EXPECT_TRUE(find(s, CKO_DATA).empty());
  EXPECT_EQ(make_data(s, "big enough", big.substr(1), true, d), CKR_OK);
}

// A public token data object is listed and read without login; a search by
// CKA_APPLICATION finds it.
TEST_F(SessionObjects, PublicTokenDataObjectIsReadWithoutLogin) {
  certvault::DataObjectRequest r;
  r.application = "deployer";
  r.label = "public note";
  r.is_private = false;
  r.value = certvault::SecureBytes::from("visible");
  ASSERT_TRUE(vault().create_data_object(r));
  auto s = open();
  std::string app = "deployer";
  CK_ATTRIBUTE t[] = {{CKA_APPLICATION, app.data(), app.size()}};
  CK_OBJECT_HANDLE hit = 0;
  CK_ULONG n = 0;
  ASSERT_EQ(f_->C_FindObjectsInit(s, t, 1), CKR_OK);
  ASSERT_EQ(f_->C_FindObjects(s, &hit, 1, &n), CKR_OK);
  ASSERT_EQ(f_->C_FindObjectsFinal(s), CKR_OK);
  ASSERT_EQ(n, 1u);
  EXPECT_EQ(attribute(s, hit, CKA_VALUE), Bytes({'v', 'i', 's', 'i', 'b', 'l', 'e'}));
  EXPECT_EQ(attribute(s, hit, CKA_LABEL), Bytes(r.label.begin(), r.label.end()));
  EXPECT_FALSE(flag(s, hit, CKA_PRIVATE));
}

}  // namespace
}  // namespace cvtest
