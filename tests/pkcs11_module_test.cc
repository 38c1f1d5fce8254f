// The PKCS#11 module loaded the way applications load it (dlopen + C_GetFunctionList /
// C_GetInterface), for what pkcs11-tool cannot show: threads, fork, attribute rules,
// operation lifetimes, and changes made by another process while the module is loaded.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "ck.h"
#include "support.h"
#include "test_vault.h"

namespace cvtest {
namespace {

class Module : public VaultTest {
 protected:
  void SetUp() override {
    VaultTest::SetUp();
    if (HasFatalFailure()) return;
    entry_ = issue("api-prod", 100, certvault::KeyType::kEcP256);
    ::setenv("CERTVAULT_VAULT", dir_.c_str(), 1);
    ::setenv("CERTVAULT_PKCS11_CONF", "/nonexistent", 1);
    lib_ = ::dlopen(CERTVAULT_PKCS11_MODULE, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(lib_, nullptr) << ::dlerror();
    auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(lib_, "C_GetFunctionList"));
    ASSERT_NE(get, nullptr);
    ASSERT_EQ(get(&f_), CKR_OK);
  }
  void TearDown() override {
    if (f_) f_->C_Finalize(nullptr);
    if (lib_) ::dlclose(lib_);
  }

  CK_SESSION_HANDLE open_session() {
    CK_SESSION_HANDLE s = 0;
    EXPECT_EQ(f_->C_OpenSession(0, CKF_SERIAL_SESSION, nullptr, nullptr, &s), CKR_OK);
    return s;
  }
  CK_RV login(CK_SESSION_HANDLE s, std::string_view pin = kPin) {
    return f_->C_Login(
        s, CKU_USER, reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(pin.data())), pin.size());
  }
  std::vector<CK_OBJECT_HANDLE> find(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls,
                                     std::string_view label) {
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},
                        {CKA_LABEL, const_cast<char*>(label.data()), label.size()}};
    std::vector<CK_OBJECT_HANDLE> out(16);
    CK_ULONG n = 0;
    EXPECT_EQ(f_->C_FindObjectsInit(s, t, 2), CKR_OK);
    EXPECT_EQ(f_->C_FindObjects(s, out.data(), out.size(), &n), CKR_OK);
    EXPECT_EQ(f_->C_FindObjectsFinal(s), CKR_OK);
    out.resize(n);
    return out;
  }
  std::vector<uint8_t> attribute(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type) {
    CK_ATTRIBUTE a = {type, nullptr, 0};
    EXPECT_EQ(f_->C_GetAttributeValue(s, o, &a, 1), CKR_OK);
    std::vector<uint8_t> v(a.ulValueLen);
    a.pValue = v.data();
    EXPECT_EQ(f_->C_GetAttributeValue(s, o, &a, 1), CKR_OK);
    return v;
  }
  // An ECDSA-SHA256 signature (r || s) over `data`.
  CK_RV sign(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, std::string_view data,
             std::vector<uint8_t>& sig) {
    CK_MECHANISM m = {CKM_ECDSA_SHA256, nullptr, 0};
    if (CK_RV rv = f_->C_SignInit(s, &m, key); rv != CKR_OK) return rv;
    sig.resize(64);
    CK_ULONG len = sig.size();
    CK_RV rv = f_->C_Sign(s, reinterpret_cast<CK_BYTE_PTR>(const_cast<char*>(data.data())),
                          data.size(), sig.data(), &len);
    sig.resize(len);
    return rv;
  }
  CK_RV verify(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub, std::string_view data,
               std::vector<uint8_t>& sig) {
    CK_MECHANISM m = {CKM_ECDSA_SHA256, nullptr, 0};
    if (CK_RV rv = f_->C_VerifyInit(s, &m, pub); rv != CKR_OK) return rv;
    return f_->C_Verify(s, reinterpret_cast<CK_BYTE_PTR>(const_cast<char*>(data.data())),
                        data.size(), sig.data(), sig.size());
  }

  certvault::Entry entry_;
  void* lib_ = nullptr;
  CK_FUNCTION_LIST_PTR f_ = nullptr;
};

TEST_F(Module, InitializeFromManyThreadsSucceedsExactlyOnce) {
  std::atomic<int> ok{0}, already{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] {
      CK_RV rv = f_->C_Initialize(nullptr);
      (rv == CKR_OK ? ok : rv == CKR_CRYPTOKI_ALREADY_INITIALIZED ? already : other)++;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(already, 7);
  EXPECT_EQ(other, 0);
}

TEST_F(Module, InitializeRefusesReservedPointer) {
  CK_C_INITIALIZE_ARGS args{};
  args.pReserved = &args;
  EXPECT_EQ(f_->C_Initialize(&args), CKR_ARGUMENTS_BAD);
  CK_ULONG n = 0;
  EXPECT_EQ(f_->C_GetSlotList(CK_FALSE, nullptr, &n), CKR_CRYPTOKI_NOT_INITIALIZED);
  args.pReserved = nullptr;
  args.flags = CKF_OS_LOCKING_OK;
  EXPECT_EQ(f_->C_Initialize(&args), CKR_OK);
  EXPECT_EQ(f_->C_Finalize(&args), CKR_ARGUMENTS_BAD) << "C_Finalize's argument is reserved";
}

TEST_F(Module, OffersTheV3AndV240Interfaces) {
  auto list = reinterpret_cast<CK_C_GetInterfaceList>(::dlsym(lib_, "C_GetInterfaceList"));
  auto get = reinterpret_cast<CK_C_GetInterface>(::dlsym(lib_, "C_GetInterface"));
  ASSERT_NE(list, nullptr);
  ASSERT_NE(get, nullptr);
  CK_ULONG n = 0;
  ASSERT_EQ(list(nullptr, &n), CKR_OK);
  ASSERT_EQ(n, 2u);
  std::vector<CK_INTERFACE> ifs(n);
  ASSERT_EQ(list(ifs.data(), &n), CKR_OK);
  for (const auto& i : ifs)
    EXPECT_STREQ(reinterpret_cast<const char*>(i.pInterfaceName), "PKCS 11");
  CK_INTERFACE_PTR i = nullptr;
  CK_VERSION v3 = {3, 0};
  ASSERT_EQ(get(reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>("PKCS 11")), &v3, &i, 0),
            CKR_OK);
  EXPECT_EQ(static_cast<CK_VERSION*>(i->pFunctionList)->major, 3);
  CK_VERSION v2 = {2, 40};
  ASSERT_EQ(get(nullptr, &v2, &i, 0), CKR_OK);
  EXPECT_EQ(i->pFunctionList, static_cast<void*>(f_)) << "the same, stable, v2.40 list";
}

TEST_F(Module, AttributeRulesFollowTheSpecification) {
  ASSERT_EQ(f_->C_Initialize(nullptr), CKR_OK);
  auto s = open_session();
  ASSERT_EQ(login(s), CKR_OK);
  auto keys = find(s, CKO_PRIVATE_KEY, "api-prod");
  ASSERT_EQ(keys.size(), 1u);
  uint8_t small[2];
  CK_BBOOL sign_flag = CK_FALSE;
  CK_ATTRIBUTE t[] = {{CKA_VALUE, nullptr, 0},
                      {CKA_LABEL, small, sizeof small},
                      {0x7fff0001UL, nullptr, 0},
                      {CKA_SIGN, &sign_flag, sizeof sign_flag}};
  CK_RV rv = f_->C_GetAttributeValue(s, keys[0], t, 4);
  EXPECT_TRUE(rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_BUFFER_TOO_SMALL ||
              rv == CKR_ATTRIBUTE_TYPE_INVALID)
      << rv;
  EXPECT_EQ(t[0].ulValueLen, CK_UNAVAILABLE_INFORMATION) << "private value is sensitive";
  EXPECT_EQ(t[1].ulValueLen, CK_UNAVAILABLE_INFORMATION) << "buffer too small";
  EXPECT_EQ(t[2].ulValueLen, CK_UNAVAILABLE_INFORMATION) << "unknown attribute";
  EXPECT_EQ(t[3].ulValueLen, sizeof sign_flag);
  EXPECT_EQ(sign_flag, CK_TRUE) << "valid attributes are still filled in";
  // Certificate, public and private key share CKA_ID and CKA_LABEL.
  auto certs = find(s, CKO_CERTIFICATE, "api-prod");
  auto pubs = find(s, CKO_PUBLIC_KEY, "api-prod");
  ASSERT_EQ(certs.size(), 1u);
  ASSERT_EQ(pubs.size(), 1u);
  EXPECT_EQ(attribute(s, certs[0], CKA_ID), attribute(s, keys[0], CKA_ID));
  EXPECT_EQ(attribute(s, pubs[0], CKA_ID), attribute(s, keys[0], CKA_ID));
}

TEST_F(Module, PrivateKeysAreInvisibleBeforeLogin) {
  ASSERT_EQ(f_->C_Initialize(nullptr), CKR_OK);
  auto s = open_session();
  EXPECT_TRUE(find(s, CKO_PRIVATE_KEY, "api-prod").empty());
  EXPECT_EQ(find(s, CKO_CERTIFICATE, "api-prod").size(), 1u);
  ASSERT_EQ(login(s), CKR_OK);
  EXPECT_EQ(find(s, CKO_PRIVATE_KEY, "api-prod").size(), 1u);
}

TEST_F(Module, LogoutEndsTheSigningOperation) {
  ASSERT_EQ(f_->C_Initialize(nullptr), CKR_OK);
  auto s = open_session();
  ASSERT_EQ(login(s), CKR_OK);
  auto keys = find(s, CKO_PRIVATE_KEY, "api-prod");
  ASSERT_EQ(keys.size(), 1u);
  CK_MECHANISM m = {CKM_ECDSA_SHA256, nullptr, 0};
  ASSERT_EQ(f_->C_SignInit(s, &m, keys[0]), CKR_OK);
  ASSERT_EQ(f_->C_Logout(s), CKR_OK);
  uint8_t data[] = "x";
  uint8_t sig[64];
  CK_ULONG len = sizeof sig;
  EXPECT_EQ(f_->C_Sign(s, data, 1, sig, &len), CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_EQ(f_->C_SignInit(s, &m, keys[0]), CKR_USER_NOT_LOGGED_IN);
}

TEST_F(Module, ShortSignatureBufferKeepsTheOperation) {
  ASSERT_EQ(f_->C_Initialize(nullptr), CKR_OK);
  auto s = open_session();
  ASSERT_EQ(login(s), CKR_OK);
  auto keys = find(s, CKO_PRIVATE_KEY, "api-prod");
  auto pubs = find(s, CKO_PUBLIC_KEY, "api-prod");
  ASSERT_EQ(keys.size(), 1u);
  CK_MECHANISM m = {CKM_ECDSA_SHA256, nullptr, 0};
  ASSERT_EQ(f_->C_SignInit(s, &m, keys[0]), CKR_OK);
  uint8_t data[] = "hello";
  CK_ULONG len = 0;
  ASSERT_EQ(f_->C_Sign(s, data, 5, nullptr, &len), CKR_OK);
  EXPECT_EQ(len, 64u);
  std::vector<uint8_t> sig(10);
  len = sig.size();
  ASSERT_EQ(f_->C_Sign(s, data, 5, sig.data(), &len), CKR_BUFFER_TOO_SMALL);
  sig.resize(len);
  ASSERT_EQ(f_->C_Sign(s, data, 5, sig.data(), &len), CKR_OK);
  EXPECT_EQ(verify(s, pubs[0], "hello", sig), CKR_OK);
  EXPECT_EQ(f_->C_Sign(s, data, 5, sig.data(), &len), CKR_OPERATION_NOT_INITIALIZED);
}

TEST_F(Module, ManyThreadsSignAtOnce) {
  ASSERT_EQ(f_->C_Initialize(nullptr), CKR_OK);
  auto s0 = open_session();
  ASSERT_EQ(login(s0), CKR_OK);
  auto keys = find(s0, CKO_PRIVATE_KEY, "api-prod");
  auto pubs = find(s0, CKO_PUBLIC_KEY, "api-prod");
  ASSERT_EQ(keys.size(), 1u);
  std::atomic<int> good{0}, bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      CK_SESSION_HANDLE s = 0;
      if (f_->C_OpenSession(0, CKF_SERIAL_SESSION, nullptr, nullptr, &s) != CKR_OK) {
        ++bad;
        return;
      }
      for (int i = 0; i < 50; ++i) {
        std::string data = "thread " + std::to_string(t) + " message " + std::to_string(i);
        std::vector<uint8_t> sig;
        bool ok = sign(s, keys[0], data, sig) == CKR_OK && verify(s, pubs[0], data, sig) == CKR_OK;
        (ok ? good : bad)++;
      }
      f_->C_CloseSession(s);
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(good, 200);
  EXPECT_EQ(bad, 0);
}

TEST_F(Module, ChildMustInitializeAgainAndThenWorks) {
  ASSERT_EQ(f_->C_Initialize(nullptr), CKR_OK);
  auto s = open_session();
  ASSERT_EQ(login(s), CKR_OK);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // In the child: nothing inherited is usable until its own C_Initialize.
    CK_ULONG n = 0;
    int code = 0;
    if (f_->C_GetSlotList(CK_FALSE, nullptr, &n) != CKR_CRYPTOKI_NOT_INITIALIZED) code |= 1;
    CK_SESSION_INFO info;
    if (f_->C_GetSessionInfo(s, &info) != CKR_CRYPTOKI_NOT_INITIALIZED) code |= 2;
    if (f_->C_Initialize(nullptr) != CKR_OK) code |= 4;
    CK_SESSION_HANDLE cs = 0;
    if (f_->C_OpenSession(0, CKF_SERIAL_SESSION, nullptr, nullptr, &cs) != CKR_OK) code |= 8;
    if (f_->C_GetSessionInfo(cs, &info) != CKR_OK || info.state != CKS_RO_PUBLIC_SESSION)
      code |= 16;  // a fresh start: not logged in
    if (login(cs) != CKR_OK) code |= 32;
    std::vector<uint8_t> sig;
    auto keys = find(cs, CKO_PRIVATE_KEY, "api-prod");
    if (keys.size() != 1 || sign(cs, keys[0], "from the child", sig) != CKR_OK) code |= 64;
    f_->C_Finalize(nullptr);
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "child failure bits";
  // The parent is untouched.
  std::vector<uint8_t> sig;
  auto keys = find(s, CKO_PRIVATE_KEY, "api-prod");
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(sign(s, keys[0], "from the parent", sig), CKR_OK);
}

TEST_F(Module, RotationInAnotherHandleIsSeenAtTheNextFind) {
  ASSERT_EQ(f_->C_Initialize(nullptr), CKR_OK);
  auto s = open_session();
  auto before = find(s, CKO_CERTIFICATE, "api-prod");
  ASSERT_EQ(before.size(), 1u);
  auto old_value = attribute(s, before[0], CKA_VALUE);
  // Another writer (here another vault handle; the same as another process).
  auto other = certvault::Vault::open(dir_);
  ASSERT_TRUE(other) << why(other);
  ASSERT_TRUE(other->unlock(pin()));
  auto rotated = other->rotate("api-prod", std::nullopt);
  ASSERT_TRUE(rotated) << why(rotated);
  auto after = find(s, CKO_CERTIFICATE, "api-prod");
  ASSERT_EQ(after.size(), 1u);
  auto new_value = attribute(s, after[0], CKA_VALUE);
  EXPECT_NE(new_value, old_value);
  auto expected = other->certificate_der("api-prod");
  ASSERT_TRUE(expected);
  EXPECT_EQ(new_value, *expected);
}

TEST_F(Module, ChangesByAnotherProcessAreSeenWithoutRestart) {
  ASSERT_EQ(f_->C_Initialize(nullptr), CKR_OK);
  auto s = open_session();
  ASSERT_EQ(login(s), CKR_OK);
  auto before = find(s, CKO_CERTIFICATE, "api-prod");
  ASSERT_EQ(before.size(), 1u);
  auto old_value = attribute(s, before[0], CKA_VALUE);
  auto pin_file = write_secret_file(tmp_ / "pin", kPin);
  auto cv = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {cli(), "--vault", dir_.string(), "--pin-file",
                                     pin_file.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  };
  auto rotated = cv({"rotate", "api-prod"});
  ASSERT_EQ(rotated.exit_code, 0) << rotated.err;
  auto created = cv({"create", "batch-7", "--end-date", "+30d"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  // The running program sees the new generation and the new entry, and signs with both.
  auto after = find(s, CKO_CERTIFICATE, "api-prod");
  ASSERT_EQ(after.size(), 1u);
  EXPECT_NE(attribute(s, after[0], CKA_VALUE), old_value);
  for (const char* nick : {"api-prod", "batch-7"}) {
    SCOPED_TRACE(nick);
    auto keys = find(s, CKO_PRIVATE_KEY, nick);
    auto pubs = find(s, CKO_PUBLIC_KEY, nick);
    ASSERT_EQ(keys.size(), 1u);
    ASSERT_EQ(pubs.size(), 1u);
    std::vector<uint8_t> sig;
    ASSERT_EQ(sign(s, keys[0], "after the change", sig), CKR_OK);
    EXPECT_EQ(verify(s, pubs[0], "after the change", sig), CKR_OK);
  }
}

}  // namespace
}  // namespace cvtest
