// What the module states as a PKCS#11 v3.0 token, one test per fact, through the v3.0
// interface (C_GetInterface) as a v3.0 application reaches it: CKA_UNIQUE_ID, the profile
// object, CKF_INTERFACE_FORK_SAFE, C_SessionCancel, C_LoginUser, C_GetInfo's version; and the
// raw RSA mechanism it does not offer.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "ck.h"
#include "support.h"
#include "test_vault.h"

namespace cvtest {
namespace {

class V3 : public VaultTest {
 protected:
  void SetUp() override {
    VaultTest::SetUp();
    if (HasFatalFailure()) return;
    ec_ = issue("api-prod", 100, certvault::KeyType::kEcP256);
    rsa_ = issue("rsa client", 100, certvault::KeyType::kRsa2048);
    ::setenv("CERTVAULT_VAULT", dir_.c_str(), 1);
    ::setenv("CERTVAULT_PKCS11_CONF", "/nonexistent", 1);
    ::setenv("CERTVAULT_AGENT_SOCK", "/nonexistent", 1);  // in-process, whatever runs here
    lib_ = ::dlopen(CERTVAULT_PKCS11_MODULE, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(lib_, nullptr) << ::dlerror();
    auto get = reinterpret_cast<CK_C_GetInterface>(::dlsym(lib_, "C_GetInterface"));
    ASSERT_NE(get, nullptr);
    CK_VERSION v3 = {3, 0};
    CK_INTERFACE_PTR i = nullptr;
    ASSERT_EQ(get(reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>("PKCS 11")), &v3, &i, 0),
              CKR_OK);
    f_ = static_cast<CK_FUNCTION_LIST_3_0*>(i->pFunctionList);
    ASSERT_EQ(f_->C_Initialize(nullptr), CKR_OK);
  }
  void TearDown() override {
    if (f_) f_->C_Finalize(nullptr);
    if (lib_) ::dlclose(lib_);
  }

  CK_SESSION_HANDLE open_session(CK_FLAGS extra = 0) {
    CK_SESSION_HANDLE s = 0;
    EXPECT_EQ(f_->C_OpenSession(0, CKF_SERIAL_SESSION | extra, nullptr, nullptr, &s), CKR_OK);
    return s;
  }
  CK_RV login(CK_SESSION_HANDLE s) {
    return f_->C_Login(s, CKU_USER,
                       reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(kPin.data())),
                       kPin.size());
  }
  std::vector<CK_OBJECT_HANDLE> find(CK_SESSION_HANDLE s, std::vector<CK_ATTRIBUTE> templ) {
    std::vector<CK_OBJECT_HANDLE> out(64);
    CK_ULONG n = 0;
    EXPECT_EQ(f_->C_FindObjectsInit(s, templ.data(), templ.size()), CKR_OK);
    EXPECT_EQ(f_->C_FindObjects(s, out.data(), out.size(), &n), CKR_OK);
    EXPECT_EQ(f_->C_FindObjectsFinal(s), CKR_OK);
    out.resize(n);
    return out;
  }
  std::vector<CK_OBJECT_HANDLE> find(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls,
                                     const std::string& label) {
    return find(s, {{CKA_CLASS, &cls, sizeof cls},
                    {CKA_LABEL, const_cast<char*>(label.data()), label.size()}});
  }
  // One attribute's value, or its CK_RV.
  CK_RV attribute(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
                  std::vector<uint8_t>& out) {
    CK_ATTRIBUTE a = {type, nullptr, 0};
    if (CK_RV rv = f_->C_GetAttributeValue(s, o, &a, 1); rv != CKR_OK) return rv;
    out.resize(a.ulValueLen);
    a.pValue = out.data();
    return f_->C_GetAttributeValue(s, o, &a, 1);
  }
  std::string text(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type) {
    std::vector<uint8_t> v;
    EXPECT_EQ(attribute(s, o, type, v), CKR_OK) << "attribute " << type;
    return std::string(v.begin(), v.end());
  }
  CK_ULONG number(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type) {
    std::vector<uint8_t> v;
    CK_ULONG n = 0;
    EXPECT_EQ(attribute(s, o, type, v), CKR_OK) << "attribute " << type;
    if (v.size() == sizeof n) std::memcpy(&n, v.data(), sizeof n);
    return n;
  }
  // Every object the session sees (an empty template), by "class label": CKA_UNIQUE_ID.
  std::map<std::string, std::string> unique_ids(CK_SESSION_HANDLE s) {
    std::map<std::string, std::string> out;
    for (CK_OBJECT_HANDLE o : find(s, std::vector<CK_ATTRIBUTE>{})) {
      const CK_ULONG cls = number(s, o, CKA_CLASS);
      if (cls == CKO_PROFILE) continue;  // the module gives it no CKA_UNIQUE_ID
      out[std::to_string(cls) + " " + text(s, o, CKA_LABEL)] = text(s, o, CKA_UNIQUE_ID);
    }
    return out;
  }

  certvault::Entry ec_, rsa_;
  void* lib_ = nullptr;
  CK_FUNCTION_LIST_3_0* f_ = nullptr;
};

// v3.0 4.4.1: every storage object has a CKA_UNIQUE_ID that the token sets, unique among the
// token's objects and unchanged for the object's life: the same after the module starts again.
TEST_F(V3, EveryStorageObjectHasAUniqueIdStableAcrossRestarts) {
  auto s = open_session();
  ASSERT_EQ(login(s), CKR_OK);
  const auto ids = unique_ids(s);
  // Per entry a certificate, a public and a private key; the vault CA's certificate.
  ASSERT_EQ(ids.size(), 7u);
  std::set<std::string> distinct;
  for (const auto& [object, id] : ids) {
    EXPECT_EQ(id.size(), 32u) << object << ": " << id;
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << object << ": " << id;
    distinct.insert(id);
  }
  EXPECT_EQ(distinct.size(), ids.size()) << "no two objects share an id";
  // A search by CKA_UNIQUE_ID finds that object and no other.
  const std::string id = ids.at(std::to_string(CKO_PRIVATE_KEY) + " api-prod");
  auto found = find(s, {{CKA_UNIQUE_ID, const_cast<char*>(id.data()), id.size()}});
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(number(s, found[0], CKA_CLASS), CKO_PRIVATE_KEY);
  EXPECT_EQ(text(s, found[0], CKA_LABEL), "api-prod");

  ASSERT_EQ(f_->C_Finalize(nullptr), CKR_OK);
  ASSERT_EQ(f_->C_Initialize(nullptr), CKR_OK);
  s = open_session();
  ASSERT_EQ(login(s), CKR_OK);
  EXPECT_EQ(unique_ids(s), ids) << "the same ids after a restart";
}

// v3.0 4.4.1 (and table "Common Storage Object Attributes", footnotes 2, 4 and 6): CKA_UNIQUE_ID
// is never given when an object is made, and (4.1.2) a read-only attribute cannot be set.
TEST_F(V3, UniqueIdIsReadOnly) {
  auto s = open_session(CKF_RW_SESSION);
  ASSERT_EQ(login(s), CKR_OK);
  auto cert = find(s, CKO_CERTIFICATE, "api-prod");
  ASSERT_EQ(cert.size(), 1u);
  const std::string before = text(s, cert[0], CKA_UNIQUE_ID);
  std::string chosen = "0123456789abcdef0123456789abcdef";
  CK_ATTRIBUTE set = {CKA_UNIQUE_ID, chosen.data(), chosen.size()};
  EXPECT_EQ(f_->C_SetAttributeValue(s, cert[0], &set, 1), CKR_ATTRIBUTE_READ_ONLY);
  EXPECT_EQ(text(s, cert[0], CKA_UNIQUE_ID), before);

  CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  const uint8_t p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
  std::string label = "chosen id";
  CK_ATTRIBUTE pub[] = {{CKA_EC_PARAMS, const_cast<uint8_t*>(p256), sizeof p256},
                        {CKA_LABEL, label.data(), label.size()}};
  CK_ATTRIBUTE priv[] = {{CKA_LABEL, label.data(), label.size()},
                         {CKA_UNIQUE_ID, chosen.data(), chosen.size()}};
  CK_OBJECT_HANDLE pub_key = 0, priv_key = 0;
  EXPECT_EQ(f_->C_GenerateKeyPair(s, &gen, pub, 2, priv, 2, &pub_key, &priv_key),
            CKR_ATTRIBUTE_READ_ONLY);
  EXPECT_FALSE(vault().find(label)) << "nothing was made";
}

// The id is derived from the entry, the generation and the kind of object: a rotation makes
// new objects with new ids under the same CKA_LABEL, and a rename keeps the ids.
TEST_F(V3, RotationGivesNewUniqueIdsUnderTheSameLabelAndARenameKeepsThem) {
  auto s = open_session(CKF_RW_SESSION);
  ASSERT_EQ(login(s), CKR_OK);
  const auto before = unique_ids(s);
  auto other = certvault::Vault::open(dir_);  // another writer, as another process would be
  ASSERT_TRUE(other) << why(other);
  ASSERT_TRUE(other->unlock(pin()));
  auto rotated = other->rotate("api-prod", std::nullopt);
  ASSERT_TRUE(rotated) << why(rotated);
  const auto after = unique_ids(s);
  ASSERT_EQ(after.size(), before.size());
  for (CK_OBJECT_CLASS cls : {CKO_CERTIFICATE, CKO_PUBLIC_KEY, CKO_PRIVATE_KEY}) {
    const std::string object = std::to_string(cls) + " api-prod";
    EXPECT_NE(after.at(object), before.at(object)) << object << ": a new generation";
    const std::string untouched = std::to_string(cls) + " rsa client";
    EXPECT_EQ(after.at(untouched), before.at(untouched)) << untouched;
  }

  auto key = find(s, CKO_PRIVATE_KEY, "rsa client");
  ASSERT_EQ(key.size(), 1u);
  std::string name = "rsa renamed";
  CK_ATTRIBUTE relabel = {CKA_LABEL, name.data(), name.size()};
  ASSERT_EQ(f_->C_SetAttributeValue(s, key[0], &relabel, 1), CKR_OK);
  const auto renamed = unique_ids(s);
  for (CK_OBJECT_CLASS cls : {CKO_CERTIFICATE, CKO_PUBLIC_KEY, CKO_PRIVATE_KEY})
    EXPECT_EQ(renamed.at(std::to_string(cls) + " rsa renamed"),
              before.at(std::to_string(cls) + " rsa client"));
}

// v3.0 4.13: a profile object names the profile the token implements, here the
// authentication token (PKCS#11 Profiles v3.0). The module's choice: it has a class and a
// profile id and no storage object attribute (docs/pkcs11.md), is visible before login, and
// cannot be changed.
TEST_F(V3, ProfileObjectNamesTheAuthenticationTokenProfile) {
  auto s = open_session(CKF_RW_SESSION);  // not logged in
  CK_OBJECT_CLASS cls = CKO_PROFILE;
  CK_PROFILE_ID profile = CKP_AUTHENTICATION_TOKEN;
  auto found = find(s, {{CKA_CLASS, &cls, sizeof cls}, {CKA_PROFILE_ID, &profile, sizeof profile}});
  ASSERT_EQ(found.size(), 1u);
  const CK_OBJECT_HANDLE o = found[0];
  EXPECT_EQ(number(s, o, CKA_PROFILE_ID), CKP_AUTHENTICATION_TOKEN);
  std::vector<uint8_t> v;
  for (CK_ATTRIBUTE_TYPE storage : {CKA_TOKEN, CKA_PRIVATE, CKA_LABEL, CKA_UNIQUE_ID, CKA_ID})
    EXPECT_EQ(attribute(s, o, storage, v), CKR_ATTRIBUTE_TYPE_INVALID) << "attribute " << storage;
  CK_PROFILE_ID other = CKP_BASELINE_PROVIDER;
  EXPECT_TRUE(
      find(s, {{CKA_CLASS, &cls, sizeof cls}, {CKA_PROFILE_ID, &other, sizeof other}}).empty());

  // A listing of everything shows it once; a search for token objects or by label does not.
  auto all = find(s, std::vector<CK_ATTRIBUTE>{});
  EXPECT_EQ(std::count(all.begin(), all.end(), o), 1);
  EXPECT_EQ(all.size(), 6u) << "two certificates, two public keys, the CA, the profile";
  CK_BBOOL yes = CK_TRUE;
  auto token = find(s, {{CKA_TOKEN, &yes, sizeof yes}});
  EXPECT_EQ(std::count(token.begin(), token.end(), o), 0);
  EXPECT_EQ(token.size(), 5u);
  EXPECT_TRUE(find(s, {{CKA_LABEL, nullptr, 0}}).empty()) << "it has no (empty) label";

  ASSERT_EQ(login(s), CKR_OK);
  EXPECT_EQ(f_->C_DestroyObject(s, o), CKR_ACTION_PROHIBITED);
  std::string name = "mine";
  CK_ATTRIBUTE relabel = {CKA_LABEL, name.data(), name.size()};
  EXPECT_EQ(f_->C_SetAttributeValue(s, o, &relabel, 1), CKR_ACTION_PROHIBITED);
  EXPECT_EQ(find(s, {{CKA_CLASS, &cls, sizeof cls}}), found) << "still there, the same handle";
}

// v3.0 3.6, CK_INTERFACE: CKF_INTERFACE_FORK_SAFE would promise a child its parent's sessions
// and login. A child sees the module uninitialised instead, so no interface carries the flag.
TEST_F(V3, NoInterfaceIsForkSafeAsAChildSeesTheModuleUninitialised) {
  auto list = reinterpret_cast<CK_C_GetInterfaceList>(::dlsym(lib_, "C_GetInterfaceList"));
  auto get = reinterpret_cast<CK_C_GetInterface>(::dlsym(lib_, "C_GetInterface"));
  ASSERT_NE(list, nullptr);
  CK_ULONG n = 0;
  ASSERT_EQ(list(nullptr, &n), CKR_OK);
  std::vector<CK_INTERFACE> interfaces(n);
  ASSERT_EQ(list(interfaces.data(), &n), CKR_OK);
  for (const auto& i : interfaces) EXPECT_EQ(i.flags & CKF_INTERFACE_FORK_SAFE, 0u);
  CK_INTERFACE_PTR i = nullptr;
  EXPECT_EQ(get(nullptr, nullptr, &i, CKF_INTERFACE_FORK_SAFE), CKR_ARGUMENTS_BAD)
      << "no fork-safe interface to give";

  auto s = open_session();
  ASSERT_EQ(login(s), CKR_OK);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int code = 0;
    CK_SESSION_INFO info;
    if (f_->C_GetSessionInfo(s, &info) != CKR_CRYPTOKI_NOT_INITIALIZED) code |= 1;
    CK_INFO about;
    if (f_->C_GetInfo(&about) != CKR_CRYPTOKI_NOT_INITIALIZED) code |= 2;
    if (f_->C_SessionCancel(s, CKF_SIGN) != CKR_CRYPTOKI_NOT_INITIALIZED) code |= 4;
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "child failure bits";
  CK_SESSION_INFO info;
  EXPECT_EQ(f_->C_GetSessionInfo(s, &info), CKR_OK) << "the parent keeps its session";
}

// v3.0 5.6, C_SessionCancel: the operations named by the flags end, the others go on; a flag
// for an operation that is not active is ignored, and no flag changes nothing.
TEST_F(V3, SessionCancelEndsTheNamedOperationsOnly) {
  auto s = open_session();
  ASSERT_EQ(login(s), CKR_OK);
  auto key = find(s, CKO_PRIVATE_KEY, "api-prod");
  auto pub = find(s, CKO_PUBLIC_KEY, "api-prod");
  ASSERT_EQ(key.size(), 1u);
  ASSERT_EQ(pub.size(), 1u);
  CK_MECHANISM ecdsa = {CKM_ECDSA_SHA256, nullptr, 0}, sha = {CKM_SHA256, nullptr, 0};
  ASSERT_EQ(f_->C_SignInit(s, &ecdsa, key[0]), CKR_OK);
  ASSERT_EQ(f_->C_VerifyInit(s, &ecdsa, pub[0]), CKR_OK);
  ASSERT_EQ(f_->C_DigestInit(s, &sha), CKR_OK);
  ASSERT_EQ(f_->C_FindObjectsInit(s, nullptr, 0), CKR_OK);

  EXPECT_EQ(f_->C_SessionCancel(s, 0), CKR_OK);
  EXPECT_EQ(f_->C_SessionCancel(s, CKF_DIGEST | CKF_ENCRYPT | CKF_MESSAGE_SIGN), CKR_OK);
  uint8_t out[64];
  CK_ULONG len = sizeof out;
  EXPECT_EQ(f_->C_DigestFinal(s, out, &len), CKR_OPERATION_NOT_INITIALIZED) << "cancelled";
  EXPECT_EQ(f_->C_SignInit(s, &ecdsa, key[0]), CKR_OPERATION_ACTIVE) << "signing goes on";
  EXPECT_EQ(f_->C_VerifyInit(s, &ecdsa, pub[0]), CKR_OPERATION_ACTIVE) << "verifying goes on";
  EXPECT_EQ(f_->C_FindObjectsInit(s, nullptr, 0), CKR_OPERATION_ACTIVE) << "the search goes on";

  EXPECT_EQ(f_->C_SessionCancel(s, CKF_SIGN | CKF_VERIFY | CKF_FIND_OBJECTS), CKR_OK);
  uint8_t data[] = "data";
  len = sizeof out;
  EXPECT_EQ(f_->C_Sign(s, data, 4, out, &len), CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_EQ(f_->C_Verify(s, data, 4, out, 64), CKR_OPERATION_NOT_INITIALIZED);
  CK_OBJECT_HANDLE h = 0;
  CK_ULONG n = 0;
  EXPECT_EQ(f_->C_FindObjects(s, &h, 1, &n), CKR_OPERATION_NOT_INITIALIZED);
  // And each starts again.
  ASSERT_EQ(f_->C_SignInit(s, &ecdsa, key[0]), CKR_OK);
  len = sizeof out;
  EXPECT_EQ(f_->C_Sign(s, data, 4, out, &len), CKR_OK);
  EXPECT_EQ(f_->C_SessionCancel(s + 100, CKF_SIGN), CKR_SESSION_HANDLE_INVALID);
}

// v3.0 5.6, C_LoginUser. A vault's user has no name: without one this is C_Login; a name is
// refused with CKR_ARGUMENTS_BAD before the PIN is tried, so it costs no try.
TEST_F(V3, LoginUserWithoutANameIsLoginAndANameIsRefusedWithoutATry) {
  auto s = open_session();
  auto* pin = reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(kPin.data()));
  std::string wrong = "not-the-pin", alice = "alice";
  auto* wrong_pin = reinterpret_cast<CK_UTF8CHAR_PTR>(wrong.data());
  auto* name = reinterpret_cast<CK_UTF8CHAR_PTR>(alice.data());
  CK_SESSION_INFO info;

  EXPECT_EQ(f_->C_LoginUser(s, CKU_USER, pin, kPin.size(), name, alice.size()), CKR_ARGUMENTS_BAD);
  EXPECT_EQ(f_->C_LoginUser(s, CKU_USER, wrong_pin, wrong.size(), name, alice.size()),
            CKR_ARGUMENTS_BAD);
  ASSERT_EQ(f_->C_GetSessionInfo(s, &info), CKR_OK);
  EXPECT_EQ(info.state, CKS_RO_PUBLIC_SESSION) << "not logged in";
  ASSERT_TRUE(vault().refresh());
  EXPECT_EQ(vault().pin_failures(), 0) << "no PIN was tried";

  EXPECT_EQ(f_->C_LoginUser(s, CKU_USER, wrong_pin, wrong.size(), nullptr, 0), CKR_PIN_INCORRECT);
  ASSERT_TRUE(vault().refresh());
  EXPECT_EQ(vault().pin_failures(), 1) << "a PIN tried without a name counts, as with C_Login";
  EXPECT_EQ(f_->C_LoginUser(s, CKU_USER, pin, kPin.size(), nullptr, 0), CKR_OK);
  ASSERT_EQ(f_->C_GetSessionInfo(s, &info), CKR_OK);
  EXPECT_EQ(info.state, CKS_RO_USER_FUNCTIONS);
  EXPECT_EQ(f_->C_Logout(s), CKR_OK);
  std::string empty;
  EXPECT_EQ(f_->C_LoginUser(s, CKU_USER, pin, kPin.size(),
                            reinterpret_cast<CK_UTF8CHAR_PTR>(empty.data()), 0),
            CKR_OK)
      << "an empty name is no name";
  EXPECT_EQ(f_->C_LoginUser(s, CKU_CONTEXT_SPECIFIC, pin, kPin.size(), nullptr, 0),
            CKR_OPERATION_NOT_INITIALIZED)
      << "as C_Login: no key asks for it";
}

// v3.0 5.4, C_GetInfo: cryptokiVersion is the version of the interface the caller uses.
TEST_F(V3, GetInfoStatesTheVersionOfTheInterfaceItWasReachedThrough) {
  CK_INFO info;
  ASSERT_EQ(f_->C_GetInfo(&info), CKR_OK);
  EXPECT_EQ(info.cryptokiVersion.major, 3);
  EXPECT_EQ(info.cryptokiVersion.minor, 0);
  CK_FUNCTION_LIST_PTR v2 = nullptr;
  auto get_list = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(lib_, "C_GetFunctionList"));
  ASSERT_EQ(get_list(&v2), CKR_OK);
  ASSERT_EQ(v2->C_GetInfo(&info), CKR_OK);
  EXPECT_EQ(info.cryptokiVersion.major, 2);
  EXPECT_EQ(info.cryptokiVersion.minor, 40);
  auto exported = reinterpret_cast<CK_C_GetInfo>(::dlsym(lib_, "C_GetInfo"));
  ASSERT_EQ(exported(&info), CKR_OK);
  EXPECT_EQ(info.cryptokiVersion.minor, 40) << "the exported symbol is the v2.40 list's";
}

// No raw RSA (CKM_RSA_X_509): it would sign any block, unpadded. Java's NONEwithRSA signs with
// CKM_RSA_PKCS over the DigestInfo it builds, which gives an ordinary PKCS#1 v1.5 signature.
TEST_F(V3, RawRsaIsNotOfferedAndRsaPkcsSignsADigestInfo) {
  CK_ULONG n = 0;
  ASSERT_EQ(f_->C_GetMechanismList(0, nullptr, &n), CKR_OK);
  std::vector<CK_MECHANISM_TYPE> mechanisms(n);
  ASSERT_EQ(f_->C_GetMechanismList(0, mechanisms.data(), &n), CKR_OK);
  EXPECT_EQ(std::count(mechanisms.begin(), mechanisms.end(), CKM_RSA_X_509), 0);
  EXPECT_EQ(std::count(mechanisms.begin(), mechanisms.end(), CKM_RSA_PKCS), 1);
  CK_MECHANISM_INFO info;
  EXPECT_EQ(f_->C_GetMechanismInfo(0, CKM_RSA_X_509, &info), CKR_MECHANISM_INVALID);

  auto s = open_session();
  ASSERT_EQ(login(s), CKR_OK);
  auto key = find(s, CKO_PRIVATE_KEY, "rsa client");
  ASSERT_EQ(key.size(), 1u);
  std::vector<uint8_t> allowed;
  ASSERT_EQ(attribute(s, key[0], CKA_ALLOWED_MECHANISMS, allowed), CKR_OK);
  std::vector<CK_MECHANISM_TYPE> listed(allowed.size() / sizeof(CK_MECHANISM_TYPE));
  std::memcpy(listed.data(), allowed.data(), listed.size() * sizeof(CK_MECHANISM_TYPE));
  EXPECT_EQ(std::count(listed.begin(), listed.end(), CKM_RSA_X_509), 0);
  CK_MECHANISM raw = {CKM_RSA_X_509, nullptr, 0};
  EXPECT_EQ(f_->C_SignInit(s, &raw, key[0]), CKR_MECHANISM_INVALID);

  // DigestInfo for SHA-256 (RFC 8017 9.2, note 1) followed by the hash of the message.
  const std::string message = "signed as NONEwithRSA signs";
  std::vector<uint8_t> digest_info = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                      0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
  unsigned char md[32];
  unsigned int md_len = 0;
  ASSERT_EQ(EVP_Digest(message.data(), message.size(), md, &md_len, EVP_sha256(), nullptr), 1);
  digest_info.insert(digest_info.end(), md, md + md_len);
  CK_MECHANISM pkcs = {CKM_RSA_PKCS, nullptr, 0};
  ASSERT_EQ(f_->C_SignInit(s, &pkcs, key[0]), CKR_OK);
  std::vector<uint8_t> sig(512);
  CK_ULONG sig_len = sig.size();
  ASSERT_EQ(f_->C_Sign(s, digest_info.data(), digest_info.size(), sig.data(), &sig_len), CKR_OK);
  sig.resize(sig_len);

  auto der = vault().certificate_der("rsa client");
  ASSERT_TRUE(der) << why(der);
  auto cert = x509_from_der(*der);
  ASSERT_TRUE(cert);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  ASSERT_EQ(
      EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, X509_get0_pubkey(cert.get())),
      1);
  EXPECT_EQ(
      EVP_DigestVerify(ctx.get(), sig.data(), sig.size(),
                       reinterpret_cast<const unsigned char*>(message.data()), message.size()),
      1)
      << "a SHA256withRSA signature of the message";
}

}  // namespace
}  // namespace cvtest
