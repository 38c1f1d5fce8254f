// The PKCS#11 module loaded in-process (dlopen, as applications load it) while an agent
// serves its vault: what a program sees of the agent's objects through the C API, which
// pkcs11-tool does not show (tests/agent_pkcs11_test.cc runs the programs).
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <vector>

#include "agent_support.h"
#include "ck.h"

namespace cvtest {
namespace {

class Pkcs11Agent : public AgentTest {
 protected:
  void SetUp() override {
    AgentTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    issue("api", 100);
  }
  void TearDown() override {
    if (f_) f_->C_Finalize(nullptr);
    if (lib_) ::dlclose(lib_);
    AgentTest::TearDown();
  }

  // Loads the module with this test's vault as its only slot and `socket` as the agent.
  void load(const fs::path& socket) { load_with(socket, "/nonexistent"); }

  // The same, with `conf` as the module's configuration file.
  void load_with(const fs::path& socket, const fs::path& conf) {
    ::setenv("CERTVAULT_VAULT", dir_.c_str(), 1);
    ::setenv("CERTVAULT_PKCS11_CONF", conf.c_str(), 1);
    ::setenv("CERTVAULT_AGENT_SOCK", socket.c_str(), 1);
    lib_ = ::dlopen(CERTVAULT_PKCS11_MODULE, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(lib_, nullptr) << ::dlerror();
    auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(lib_, "C_GetFunctionList"));
    ASSERT_NE(get, nullptr);
    ASSERT_EQ(get(&f_), CKR_OK);
    ASSERT_EQ(f_->C_Initialize(nullptr), CKR_OK);
  }

  std::vector<CK_OBJECT_HANDLE> find(CK_SESSION_HANDLE s, std::vector<CK_ATTRIBUTE> templ) {
    std::vector<CK_OBJECT_HANDLE> out(16);
    CK_ULONG n = 0;
    EXPECT_EQ(f_->C_FindObjectsInit(s, templ.data(), templ.size()), CKR_OK);
    EXPECT_EQ(f_->C_FindObjects(s, out.data(), out.size(), &n), CKR_OK);
    EXPECT_EQ(f_->C_FindObjectsFinal(s), CKR_OK);
    out.resize(n);
    return out;
  }

  void* lib_ = nullptr;
  CK_FUNCTION_LIST_PTR f_ = nullptr;
};

// docs/pkcs11.md, "Which vaults": `agent-socket = PATH` in pkcs11.conf names the agent, before
// $CERTVAULT_AGENT_SOCK, as the provider's `agent-socket` does; without it, the variable.
// Can fail: with the line read as a vault directory, the module would show two slots and
// look for the agent where the variable says (nowhere), working in-process.
TEST_F(Pkcs11Agent, AgentSocketInTheConfigurationComesBeforeTheEnvironment) {
  start_agent();
  if (HasFatalFailure()) return;
  unlock();
  const fs::path conf = tmp_ / "pkcs11.conf";
  write_file(conf, "# the test's vault, through its agent\n" + dir_.string() +
                       "\n  agent-socket =  " + socket_.string() + "  # configured\n");
  load_with(tmp_ / "no-agent-here.sock", conf);
  if (HasFatalFailure()) return;
  CK_ULONG slots = 0;
  ASSERT_EQ(f_->C_GetSlotList(CK_TRUE, nullptr, &slots), CKR_OK);
  EXPECT_EQ(slots, 1u) << "the agent-socket line was taken for a vault";
  CK_TOKEN_INFO info{};
  ASSERT_EQ(f_->C_GetTokenInfo(0, &info), CKR_OK);
  EXPECT_TRUE(info.flags & CKF_PROTECTED_AUTHENTICATION_PATH) << "not through the agent";
  EXPECT_FALSE(info.flags & CKF_LOGIN_REQUIRED);
  CK_SESSION_HANDLE s = 0;
  ASSERT_EQ(f_->C_OpenSession(0, CKF_SERIAL_SESSION, nullptr, nullptr, &s), CKR_OK);
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  EXPECT_EQ(find(s, {{CKA_CLASS, &cls, sizeof cls}}).size(), 1u) << "no key without login";

  // The same file without the line: the variable's socket, where no agent is.
  ASSERT_EQ(f_->C_Finalize(nullptr), CKR_OK);
  write_file(conf, dir_.string() + "\n");
  ASSERT_EQ(f_->C_Initialize(nullptr), CKR_OK);
  ASSERT_EQ(f_->C_GetTokenInfo(0, &info), CKR_OK);
  EXPECT_TRUE(info.flags & CKF_LOGIN_REQUIRED) << "in-process, with a PIN";
  EXPECT_FALSE(info.flags & CKF_PROTECTED_AUTHENTICATION_PATH);
}

// v3.0 4.4: CKA_PRIVATE says whether a user must log in to see the object. Through the agent
// no one logs in and the key is not in the program, so the private key object says false, and
// a search for CKA_PRIVATE false finds it (it found nothing while searches took the in-process
// rule).
TEST_F(Pkcs11Agent, PrivateKeyIsFoundByTheCkaPrivateItReports) {
  start_agent();
  if (HasFatalFailure()) return;
  unlock();
  load(socket_);
  if (HasFatalFailure()) return;
  CK_SESSION_HANDLE s = 0;
  ASSERT_EQ(f_->C_OpenSession(0, CKF_SERIAL_SESSION, nullptr, nullptr, &s), CKR_OK);
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
  auto keys = find(s, {{CKA_CLASS, &cls, sizeof cls}});
  ASSERT_EQ(keys.size(), 1u) << "the agent's private key object, without login";
  CK_BBOOL reported = CK_TRUE;
  CK_ATTRIBUTE a = {CKA_PRIVATE, &reported, sizeof reported};
  ASSERT_EQ(f_->C_GetAttributeValue(s, keys[0], &a, 1), CKR_OK);
  EXPECT_EQ(reported, CK_FALSE);
  EXPECT_EQ(find(s, {{CKA_CLASS, &cls, sizeof cls}, {CKA_PRIVATE, &no, sizeof no}}), keys);
  EXPECT_TRUE(find(s, {{CKA_CLASS, &cls, sizeof cls}, {CKA_PRIVATE, &yes, sizeof yes}}).empty());
}

// v3.0 5.6.10: C_Logout invalidates the handles of private objects, through the agent as
// in-process. There the vault's key objects are not private (above): their handles outlive a
// logout and the next login (with an empty PIN), while a private session object made after
// that login is destroyed and its handle stays invalid.
TEST_F(Pkcs11Agent, LogoutInvalidatesPrivateObjectHandlesOnly) {
  start_agent();
  if (HasFatalFailure()) return;
  unlock();
  load(socket_);
  if (HasFatalFailure()) return;
  CK_SESSION_HANDLE s = 0;
  ASSERT_EQ(f_->C_OpenSession(0, CKF_SERIAL_SESSION, nullptr, nullptr, &s), CKR_OK);
  CK_OBJECT_CLASS key = CKO_PRIVATE_KEY, data = CKO_DATA;
  ASSERT_EQ(f_->C_Login(s, CKU_USER, nullptr, 0), CKR_OK);
  auto keys = find(s, {{CKA_CLASS, &key, sizeof key}});
  ASSERT_EQ(keys.size(), 1u);
  CK_BBOOL yes = CK_TRUE;
  std::string value = "secret";
  CK_ATTRIBUTE session_data[] = {{CKA_CLASS, &data, sizeof data},
                                 {CKA_PRIVATE, &yes, 1},
                                 {CKA_VALUE, value.data(), value.size()}};
  CK_OBJECT_HANDLE secret = 0;
  ASSERT_EQ(f_->C_CreateObject(s, session_data, 3, &secret), CKR_OK);
  ASSERT_EQ(f_->C_Logout(s), CKR_OK);
  ASSERT_EQ(f_->C_Login(s, CKU_USER, nullptr, 0), CKR_OK);
  CK_KEY_TYPE type = 0;
  CK_ATTRIBUTE a = {CKA_KEY_TYPE, &type, sizeof type};
  EXPECT_EQ(f_->C_GetAttributeValue(s, keys[0], &a, 1), CKR_OK)
      << "the agent's key object is not private; its handle should outlive C_Logout";
  EXPECT_EQ(find(s, {{CKA_CLASS, &key, sizeof key}}), keys);
  CK_ULONG size = 0;
  EXPECT_EQ(f_->C_GetObjectSize(s, secret, &size), CKR_OBJECT_HANDLE_INVALID)
      << "the private session object's handle from before C_Logout still names it";
  EXPECT_TRUE(find(s, {{CKA_CLASS, &data, sizeof data}}).empty());
}

// The agent serves no data objects (docs/agent-protocol.md): through it a program sees none
// of the vault's and cannot make one. Session objects stay in the program: a session key pair
// is made and signs in-process, though the vault's keys sign in the agent.
TEST_F(Pkcs11Agent, DataObjectsAreNotServedAndSessionKeysSignInTheProgram) {
  certvault::DataObjectRequest r;
  r.label = "note";
  r.is_private = false;
  r.value = certvault::SecureBytes::from("kept in the vault");
  ASSERT_TRUE(vault().create_data_object(r));
  start_agent();
  if (HasFatalFailure()) return;
  unlock();
  load(socket_);
  if (HasFatalFailure()) return;
  CK_SESSION_HANDLE s = 0;
  ASSERT_EQ(f_->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s),
            CKR_OK);
  CK_TOKEN_INFO info{};
  ASSERT_EQ(f_->C_GetTokenInfo(0, &info), CKR_OK);
  ASSERT_TRUE(info.flags & CKF_PROTECTED_AUTHENTICATION_PATH) << "through the agent";
  CK_OBJECT_CLASS data = CKO_DATA;
  EXPECT_TRUE(find(s, {{CKA_CLASS, &data, sizeof data}}).empty());
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  std::string value = "v";
  CK_ATTRIBUTE token_data[] = {{CKA_CLASS, &data, sizeof data},
                               {CKA_TOKEN, &yes, 1},
                               {CKA_PRIVATE, &no, 1},
                               {CKA_VALUE, value.data(), value.size()}};
  CK_OBJECT_HANDLE o = 0;
  EXPECT_EQ(f_->C_CreateObject(s, token_data, 4, &o), CKR_TOKEN_WRITE_PROTECTED);
  token_data[1].pValue = &no;
  ASSERT_EQ(f_->C_CreateObject(s, token_data, 4, &o), CKR_OK);
  EXPECT_EQ(find(s, {{CKA_CLASS, &data, sizeof data}}), std::vector<CK_OBJECT_HANDLE>{o});

  ASSERT_EQ(f_->C_Login(s, CKU_USER, nullptr, 0), CKR_OK);  // no PIN through the agent
  const std::vector<uint8_t> p256 = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
  CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  CK_ATTRIBUTE pt[] = {{CKA_EC_PARAMS, const_cast<uint8_t*>(p256.data()), p256.size()}};
  CK_OBJECT_HANDLE pub = 0, priv = 0;
  ASSERT_EQ(f_->C_GenerateKeyPair(s, &gen, pt, 1, nullptr, 0, &pub, &priv), CKR_OK);
  CK_MECHANISM ecdsa = {CKM_ECDSA_SHA256, nullptr, 0};
  std::string msg = "signed in the program";
  std::vector<uint8_t> sig(64);
  CK_ULONG len = sig.size();
  ASSERT_EQ(f_->C_SignInit(s, &ecdsa, priv), CKR_OK);
  ASSERT_EQ(f_->C_Sign(s, reinterpret_cast<CK_BYTE_PTR>(msg.data()), msg.size(), sig.data(), &len),
            CKR_OK);
  ASSERT_EQ(f_->C_VerifyInit(s, &ecdsa, pub), CKR_OK);
  EXPECT_EQ(f_->C_Verify(s, reinterpret_cast<CK_BYTE_PTR>(msg.data()), msg.size(), sig.data(), len),
            CKR_OK);
}

// A program sends nothing to an agent run by a user other than root, itself or the certvault
// user (docs/agent.md): the module declines it and works in-process, and the debug log says
// so and why (before, the fallback was silent).
TEST_F(Pkcs11Agent, AgentRunByAnotherUserIsDeclinedAndTheDebugLogSaysWhy) {
  start_agent_of("other", client_uid_, client_gid_, {"--init-groups"});
  ASSERT_FALSE(HasFailure());
  const fs::path log = tmp_ / "debug.log";
  ::setenv("CERTVAULT_DEBUG", log.c_str(), 1);
  load(socket_);
  ::unsetenv("CERTVAULT_DEBUG");
  if (HasFatalFailure()) return;
  CK_TOKEN_INFO info{};
  ASSERT_EQ(f_->C_GetTokenInfo(0, &info), CKR_OK);
  EXPECT_TRUE(info.flags & CKF_LOGIN_REQUIRED) << "in-process, with a PIN";
  EXPECT_FALSE(info.flags & CKF_PROTECTED_AUTHENTICATION_PATH);
  const std::string text = fs::exists(log) ? read_file(log) : std::string();
  EXPECT_TRUE(contains(
      text, "certvault-pkcs11: the certvault agent at " + socket_.string() + " is not used: "))
      << text;
  EXPECT_TRUE(contains(text, "is served by uid " + std::to_string(client_uid_))) << text;
  EXPECT_TRUE(contains(text, "vault " + dir_.string() + " is used in-process")) << text;
}

}  // namespace
}  // namespace cvtest
