// A slot whose vault the module will not open: the return codes of PKCS#11 v3.0 5.1 for
// it (CKR_TOKEN_NOT_RECOGNIZED for a vault refused for its permissions, a newer format or
// damage; CKR_DEVICE_ERROR when it cannot be read; never CKR_TOKEN_NOT_PRESENT, since the
// slot says its token is present), and nothing changed.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>

#include "ck.h"
#include "support.h"
#include "test_vault.h"

namespace cvtest {
namespace {

class Pkcs11VaultRefused : public VaultTest {
 protected:
  void SetUp() override {
    VaultTest::SetUp();
    if (HasFatalFailure()) return;
    issue("api-prod", 100);
  }
  void TearDown() override {
    if (f_) f_->C_Finalize(nullptr);
    if (lib_) ::dlclose(lib_);
  }

  // Loads the module with this test's vault as its only slot.
  void load() {
    ::setenv("CERTVAULT_VAULT", dir_.c_str(), 1);
    ::setenv("CERTVAULT_PKCS11_CONF", "/nonexistent", 1);
    ::setenv("CERTVAULT_AGENT_SOCK", "/nonexistent", 1);
    lib_ = ::dlopen(CERTVAULT_PKCS11_MODULE, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(lib_, nullptr) << ::dlerror();
    auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(lib_, "C_GetFunctionList"));
    ASSERT_NE(get, nullptr);
    ASSERT_EQ(get(&f_), CKR_OK);
    ASSERT_EQ(f_->C_Initialize(nullptr), CKR_OK);
  }

  // The slot says its token is present; the token and a session with it are refused with
  // `want`, and again on a second try (the refusal is not a one-off).
  void expect_refused(CK_RV want) {
    CK_SLOT_INFO slot{};
    ASSERT_EQ(f_->C_GetSlotInfo(0, &slot), CKR_OK);
    EXPECT_TRUE(slot.flags & CKF_TOKEN_PRESENT);
    for (int i = 0; i < 2; ++i) {
      SCOPED_TRACE("try " + std::to_string(i + 1));
      CK_TOKEN_INFO info{};
      EXPECT_EQ(f_->C_GetTokenInfo(0, &info), want);
      CK_SESSION_HANDLE s = 0;
      EXPECT_EQ(f_->C_OpenSession(0, CKF_SERIAL_SESSION, nullptr, nullptr, &s), want);
    }
  }

  std::string manifest() { return read_file(dir_ / "manifest"); }

  void* lib_ = nullptr;
  CK_FUNCTION_LIST_PTR f_ = nullptr;
};

TEST_F(Pkcs11VaultRefused, LoosePermissionsAreATokenNotRecognized) {
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
  const std::string before = manifest();
  load();
  if (HasFatalFailure()) return;
  expect_refused(CKR_TOKEN_NOT_RECOGNIZED);
  EXPECT_EQ(file_mode(dir_), 0755u) << "the module changes nothing";
  EXPECT_EQ(manifest(), before);
}

// The opt-in debug log (CERTVAULT_DEBUG, shared with the provider) says why the vault was
// refused, in the keystore's sentence, while the caller gets the specification's code.
TEST_F(Pkcs11VaultRefused, DebugLogSaysWhyTheVaultWasRefused) {
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
  const fs::path log = tmp_ / "debug.log";
  ::setenv("CERTVAULT_DEBUG", log.c_str(), 1);
  load();
  ::unsetenv("CERTVAULT_DEBUG");
  if (HasFatalFailure()) return;
  CK_SESSION_HANDLE s = 0;
  EXPECT_EQ(f_->C_OpenSession(0, CKF_SERIAL_SESSION, nullptr, nullptr, &s),
            CKR_TOKEN_NOT_RECOGNIZED);
  ASSERT_TRUE(fs::exists(log));
  EXPECT_EQ(file_mode(log), 0600u);
  const std::string text = read_file(log);
  EXPECT_TRUE(contains(text, "certvault-pkcs11: " + dir_.string() + " has mode 0755")) << text;
  EXPECT_TRUE(contains(text, "run chmod 0700 " + dir_.string())) << text;
  EXPECT_TRUE(contains(text, "(CKR_TOKEN_NOT_RECOGNIZED)")) << text;
  EXPECT_FALSE(contains(text, std::string(kPin))) << text;
}

TEST_F(Pkcs11VaultRefused, NewerFormatIsATokenNotRecognized) {
  std::string text = manifest();
  // Far beyond the current format, so that this test outlives the next format.
  text.replace(0, text.find('\n'), "certvault-vault 99");
  overwrite_in_place(dir_ / "manifest", text);
  load();
  if (HasFatalFailure()) return;
  expect_refused(CKR_TOKEN_NOT_RECOGNIZED);
  EXPECT_EQ(manifest(), text) << "the module changes nothing";
}

TEST_F(Pkcs11VaultRefused, DamagedManifestIsATokenNotRecognized) {
  std::string text = manifest();
  const size_t eol = text.find('\n');
  ASSERT_NE(eol, std::string::npos);
  ASSERT_EQ(text[eol + 1], '{');
  text[eol + 1] = '[';  // the header line is no longer a JSON object
  overwrite_in_place(dir_ / "manifest", text);
  load();
  if (HasFatalFailure()) return;
  expect_refused(CKR_TOKEN_NOT_RECOGNIZED);
  EXPECT_EQ(manifest(), text) << "the module changes nothing";
}

// A manifest the operating system will not read (here a directory in its place, which
// read(2) refuses with EISDIR) is an I/O failure, not an unknown token.
TEST_F(Pkcs11VaultRefused, UnreadableManifestIsADeviceError) {
  fs::remove(dir_ / "manifest");
  ASSERT_EQ(::mkdir((dir_ / "manifest").c_str(), 0700), 0);
  load();
  if (HasFatalFailure()) return;
  expect_refused(CKR_DEVICE_ERROR);
}

}  // namespace
}  // namespace cvtest
