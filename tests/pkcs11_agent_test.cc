// The PKCS#11 module loaded in-process (dlopen, as applications load it) while an agent
// serves its vault: what a program sees of the agent's objects through the C API, which
// pkcs11-tool does not show (tests/agent_pkcs11_test.cc runs the programs).
#include <dlfcn.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <optional>
#include <vector>

#include "agent_client_support.h"
#include "agent_support.h"
#include "ck.h"

namespace cvtest {
namespace {

std::vector<uint8_t> bytes_of(std::string_view s) {
  return {s.begin(), s.end()};
}

std::vector<uint8_t> sha256(std::string_view message) {
  std::vector<uint8_t> out(32);
  unsigned int len = 0;
  EXPECT_EQ(EVP_Digest(message.data(), message.size(), out.data(), &len, EVP_sha256(), nullptr), 1);
  return out;
}

// How plain OpenSSL checks a signature of a message: whether `sig` is one of `message` by the
// key of the certificate `cert_der`. `md`: the digest ("SHA256"; none for Ed25519);
// `pss_salt` >= 0 for RSA-PSS, with that salt length exactly and MGF1 with `mgf1_md`. An
// ECDSA signature is taken as PKCS#11 gives it, r || s.
bool verifies(const std::vector<uint8_t>& cert_der, std::string_view message,
              const std::vector<uint8_t>& sig, const char* md, int pss_salt = -1,
              const char* mgf1_md = "SHA256") {
  X509Ptr cert = x509_from_der(cert_der);
  EVP_PKEY* key = cert ? X509_get0_pubkey(cert.get()) : nullptr;
  if (!key) return false;
  std::vector<uint8_t> checked = sig;
  if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
    if (sig.empty() || sig.size() % 2 != 0) return false;  // r || s, of one length each
    const int half = static_cast<int>(sig.size() / 2);
    ECDSA_SIG* ec = ECDSA_SIG_new();
    ECDSA_SIG_set0(ec, BN_bin2bn(sig.data(), half, nullptr),
                   BN_bin2bn(sig.data() + half, half, nullptr));
    unsigned char* der = nullptr;
    const int len = i2d_ECDSA_SIG(ec, &der);
    checked.assign(der, der + std::max(len, 0));
    OPENSSL_free(der);
    ECDSA_SIG_free(ec);
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_PKEY_CTX* pctx = nullptr;
  bool ok =
      ctx && EVP_DigestVerifyInit_ex(ctx.get(), &pctx, md, nullptr, nullptr, key, nullptr) == 1;
  if (ok && pss_salt >= 0)
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, pss_salt) > 0 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, mgf1_md, nullptr) > 0;
  ok = ok && EVP_DigestVerify(ctx.get(), checked.data(), checked.size(),
                              reinterpret_cast<const unsigned char*>(message.data()),
                              message.size()) == 1;
  ERR_clear_error();
  return ok;
}

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

  // The agent started on this test's vault and unlocked, and the module loaded with it.
  void serve_and_load() {
    start_agent();
    if (HasFatalFailure()) return;
    unlock();
    if (HasFatalFailure()) return;
    load(socket_);
  }

  // Loads the module with this test's vault (or `vault`; none when empty) as its only slot
  // and `socket` as the agent; `module`: the module's file; `conf`: its configuration file.
  void load(const fs::path& socket, std::optional<fs::path> vault = std::nullopt,
            const fs::path& module = CERTVAULT_PKCS11_MODULE,
            const fs::path& conf = "/nonexistent") {
    const fs::path named = vault.value_or(dir_);
    if (named.empty())
      ::unsetenv("CERTVAULT_VAULT");
    else
      ::setenv("CERTVAULT_VAULT", named.c_str(), 1);
    ::setenv("CERTVAULT_PKCS11_CONF", conf.c_str(), 1);
    ::setenv("CERTVAULT_AGENT_SOCK", socket.c_str(), 1);
    lib_ = ::dlopen(module.c_str(), RTLD_NOW | RTLD_LOCAL);
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

  // The one object of class `cls` labelled `label` (a failure when there is not exactly one).
  CK_OBJECT_HANDLE find_one(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, std::string label) {
    auto found = find(s, {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, label.data(), label.size()}});
    EXPECT_EQ(found.size(), 1u) << label << ", class " << cls;
    return found.size() == 1 ? found[0] : CK_INVALID_HANDLE;
  }

  // An attribute's value, read in the two calls of v3.0 5.7.5; empty when it cannot be read.
  std::vector<uint8_t> attribute(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type) {
    CK_ATTRIBUTE a = {type, nullptr, 0};
    EXPECT_EQ(f_->C_GetAttributeValue(s, o, &a, 1), CKR_OK);
    if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION) return {};
    std::vector<uint8_t> value(a.ulValueLen);
    a.pValue = value.data();
    EXPECT_EQ(f_->C_GetAttributeValue(s, o, &a, 1), CKR_OK);
    value.resize(a.ulValueLen);
    return value;
  }

  // C_SignInit and C_Sign (its length asked first) of `data`; the return code of the first
  // that fails, or CKR_OK and the signature.
  CK_RV sign(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, CK_MECHANISM mechanism,
             std::vector<uint8_t> data, std::vector<uint8_t>& sig) {
    sig.clear();
    if (CK_RV rv = f_->C_SignInit(s, &mechanism, key); rv != CKR_OK) return rv;
    CK_ULONG len = 0;
    if (CK_RV rv = f_->C_Sign(s, data.data(), data.size(), nullptr, &len); rv != CKR_OK) return rv;
    sig.resize(len);
    CK_RV rv = f_->C_Sign(s, data.data(), data.size(), sig.data(), &len);
    sig.resize(rv == CKR_OK ? len : 0);
    return rv;
  }

  // Runs `body` in a child process that became the client user (its uid, gid and groups) and
  // loaded the module as a service run as that user does: no vault named, only the agent's
  // socket. `body` may call its argument to have this process run `at_pause` (the owner
  // changing the vault) before it goes on. The return codes `body` gives, or none when the
  // child could not run it.
  std::vector<CK_RV> in_client_process(
      const std::function<std::vector<CK_RV>(const std::function<void()>&)>& body,
      const std::function<void()>& at_pause = {}) {
    int up[2], down[2];  // child to parent, parent to child
    if (::pipe2(up, O_CLOEXEC) != 0 || ::pipe2(down, O_CLOEXEC) != 0) return {};
    const pid_t pid = ::fork();
    if (pid == 0) {
      // A child that hangs dies of SIGALRM: its end of the pipe closes, and the parent's
      // reads and wait end.
      ::alarm(60);
      ::close(up[0]);
      ::close(down[1]);
      if (!become(kClientUser, client_uid_, client_gid_)) ::_exit(2);
      ::setenv("HOME", "/nonexistent", 1);
      ::unsetenv("XDG_DATA_HOME");
      ::unsetenv("XDG_RUNTIME_DIR");
      load(socket_, fs::path(), module_);
      if (!f_) ::_exit(3);
      auto pause = [&] {
        char c = 'p';
        if (::write(up[1], &c, 1) != 1 || ::read(down[0], &c, 1) != 1) ::_exit(4);
      };
      const std::vector<CK_RV> rvs = body(pause);
      const char tag = 'r';
      const uint32_t n = static_cast<uint32_t>(rvs.size());
      bool sent = ::write(up[1], &tag, 1) == 1 && ::write(up[1], &n, sizeof n) == sizeof n;
      for (CK_RV rv : rvs) sent = sent && ::write(up[1], &rv, sizeof rv) == sizeof rv;
      ::_exit(sent ? 0 : 5);  // no exit handlers: the test's directories belong to the parent
    }
    ::close(up[1]);
    ::close(down[0]);
    std::vector<CK_RV> out;
    for (int events = 0; pid > 0 && events < 16; ++events) {  // a few pauses, then the codes
      char c = 0;
      if (::read(up[0], &c, 1) != 1) break;
      if (c == 'p') {
        if (at_pause) at_pause();
        if (::write(down[1], &c, 1) != 1) break;
        continue;
      }
      uint32_t n = 0;
      if (c != 'r' || ::read(up[0], &n, sizeof n) != sizeof n || n > 64) break;
      out.resize(n);
      for (CK_RV& rv : out)
        if (::read(up[0], &rv, sizeof rv) != sizeof rv) rv = CKR_GENERAL_ERROR;
      break;
    }
    ::close(up[0]);
    ::close(down[1]);
    int status = 0;
    if (pid > 0) ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the client process: " << status;
    return out;
  }

  CK_SESSION_HANDLE open_session() {
    CK_SESSION_HANDLE s = 0;
    EXPECT_EQ(f_->C_OpenSession(0, CKF_SERIAL_SESSION, nullptr, nullptr, &s), CKR_OK);
    return s;
  }

  // The token's flags: CKF_PROTECTED_AUTHENTICATION_PATH through the agent, CKF_LOGIN_REQUIRED
  // in-process.
  CK_FLAGS token_flags() {
    CK_TOKEN_INFO info{};
    EXPECT_EQ(f_->C_GetTokenInfo(0, &info), CKR_OK);
    return info.flags;
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
  load(tmp_ / "no-agent-here.sock", std::nullopt, CERTVAULT_PKCS11_MODULE, conf);
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
  serve_and_load();
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
  serve_and_load();
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
  serve_and_load();
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

// RSA through the agent by the mechanisms that take a prepared input and by hash-and-sign:
// CKM_RSA_PKCS over a DigestInfo the program made, CKM_RSA_PKCS_PSS over a SHA-256 digest with
// its parameters, CKM_SHA256_RSA_PKCS and CKM_SHA256_RSA_PKCS_PSS over the message. Each
// signature verifies with the certificate's key as OpenSSL checks a signature of the message
// (PSS with the salt length and MGF1 digest the parameters asked for, exactly), and the agent
// audited each with its mechanism: it signed, not the program.
TEST_F(Pkcs11Agent, RsaPkcs1OverADigestInfoAndPssWithItsParametersSignInTheAgent) {
  issue("rsa", 100, certvault::KeyType::kRsa2048);
  serve_and_load();
  if (HasFatalFailure()) return;
  const CK_SESSION_HANDLE s = open_session();
  ASSERT_TRUE(token_flags() & CKF_PROTECTED_AUTHENTICATION_PATH) << "through the agent";
  const CK_OBJECT_HANDLE key = find_one(s, CKO_PRIVATE_KEY, "rsa");
  auto cert = vault().certificate_der("rsa");
  ASSERT_TRUE(cert) << why(cert);
  const std::string message = "signed in the agent for a PKCS#11 program";
  const std::vector<uint8_t> digest = sha256(message);
  // RFC 8017 9.2, note 1: the DER of DigestInfo for SHA-256, then the digest.
  std::vector<uint8_t> digest_info = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                      0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
  digest_info.insert(digest_info.end(), digest.begin(), digest.end());
  std::vector<uint8_t> sig;

  ASSERT_EQ(sign(s, key, {CKM_RSA_PKCS, nullptr, 0}, digest_info, sig), CKR_OK);
  EXPECT_EQ(sig.size(), 256u);
  EXPECT_TRUE(verifies(*cert, message, sig, "SHA256")) << "CKM_RSA_PKCS over a DigestInfo";

  CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, 32};
  ASSERT_EQ(sign(s, key, {CKM_RSA_PKCS_PSS, &pss, sizeof pss}, digest, sig), CKR_OK);
  EXPECT_TRUE(verifies(*cert, message, sig, "SHA256", 32, "SHA256")) << "CKM_RSA_PKCS_PSS";

  ASSERT_EQ(sign(s, key, {CKM_SHA256_RSA_PKCS, nullptr, 0}, bytes_of(message), sig), CKR_OK);
  EXPECT_TRUE(verifies(*cert, message, sig, "SHA256")) << "CKM_SHA256_RSA_PKCS";

  // Parameters other than the defaults, which a module passing on none would not meet.
  CK_RSA_PKCS_PSS_PARAMS other = {CKM_SHA256, CKG_MGF1_SHA384, 20};
  ASSERT_EQ(sign(s, key, {CKM_SHA256_RSA_PKCS_PSS, &other, sizeof other}, bytes_of(message), sig),
            CKR_OK);
  EXPECT_TRUE(verifies(*cert, message, sig, "SHA256", 20, "SHA384")) << "CKM_SHA256_RSA_PKCS_PSS";
  EXPECT_FALSE(verifies(*cert, message, sig, "SHA256", 32, "SHA256"));

  EXPECT_EQ(audited_signatures("rsa", "rsa-pkcs1", 0), 1) << audit_log();
  EXPECT_EQ(audited_signatures("rsa", "rsa-pkcs1/sha256", 0), 1) << audit_log();
  EXPECT_EQ(audited_signatures("rsa", "rsa-pss/sha256", 0), 2) << audit_log();
}

// A program keeps the module loaded while the owner rotates an entry with the CLI: its next
// search finds the new certificate, and the private key it finds signs with the new key.
TEST_F(Pkcs11Agent, RotationByTheOwnerIsSeenAtTheNextSearch) {
  serve_and_load();
  if (HasFatalFailure()) return;
  const CK_SESSION_HANDLE s = open_session();
  auto old_cert = vault().certificate_der("api");
  ASSERT_TRUE(old_cert) << why(old_cert);
  EXPECT_EQ(attribute(s, find_one(s, CKO_CERTIFICATE, "api"), CKA_VALUE), *old_cert);
  const std::string message = "signed before and after a rotation";
  std::vector<uint8_t> sig;
  ASSERT_EQ(sign(s, find_one(s, CKO_PRIVATE_KEY, "api"), {CKM_ECDSA_SHA256, nullptr, 0},
                 bytes_of(message), sig),
            CKR_OK);
  EXPECT_TRUE(verifies(*old_cert, message, sig, "SHA256"));

  auto rotated = cv({"rotate", "api"});
  ASSERT_EQ(rotated.exit_code, 0) << rotated.err;
  auto new_cert = vault().certificate_der("api");
  ASSERT_TRUE(new_cert) << why(new_cert);
  ASSERT_NE(*new_cert, *old_cert);
  EXPECT_EQ(attribute(s, find_one(s, CKO_CERTIFICATE, "api"), CKA_VALUE), *new_cert)
      << "the search after the rotation found the old certificate";
  ASSERT_EQ(sign(s, find_one(s, CKO_PRIVATE_KEY, "api"), {CKM_ECDSA_SHA256, nullptr, 0},
                 bytes_of(message), sig),
            CKR_OK);
  EXPECT_TRUE(verifies(*new_cert, message, sig, "SHA256")) << "not signed by the new key";
  EXPECT_FALSE(verifies(*old_cert, message, sig, "SHA256"));
}

// An agent that answers but does not serve the token's vault ("not served"): the module uses
// the vault in-process, as without an agent: the token asks for the PIN, C_Login with it
// opens the vault, the key signs in this process (the agent audits no signature), and the
// debug log says why.
TEST_F(Pkcs11Agent, VaultTheAgentDoesNotServeIsUsedInProcessWithThePin) {
  const fs::path other = tmp_ / "other";
  auto made = certvault::Vault::init(other, pin(), cheap_init("other"));
  ASSERT_TRUE(made) << why(made);
  start_agent({}, {}, other);
  if (HasFatalFailure()) return;
  const fs::path log = tmp_ / "debug.log";
  ::setenv("CERTVAULT_DEBUG", log.c_str(), 1);
  load(socket_);
  ::unsetenv("CERTVAULT_DEBUG");
  if (HasFatalFailure()) return;
  const CK_SESSION_HANDLE s = open_session();
  EXPECT_TRUE(token_flags() & CKF_LOGIN_REQUIRED) << "in-process, with a PIN";
  EXPECT_FALSE(token_flags() & CKF_PROTECTED_AUTHENTICATION_PATH);
  const CK_OBJECT_HANDLE cert = find_one(s, CKO_CERTIFICATE, "api");
  std::vector<uint8_t> sig;
  const std::string message = "signed in the program";
  std::string pin_text(kPin);
  ASSERT_EQ(
      f_->C_Login(s, CKU_USER, reinterpret_cast<CK_UTF8CHAR_PTR>(pin_text.data()), pin_text.size()),
      CKR_OK);
  ASSERT_EQ(sign(s, find_one(s, CKO_PRIVATE_KEY, "api"), {CKM_ECDSA_SHA256, nullptr, 0},
                 bytes_of(message), sig),
            CKR_OK);
  EXPECT_TRUE(verifies(attribute(s, cert, CKA_VALUE), message, sig, "SHA256"));
  EXPECT_EQ(audited_signatures("api", "ecdsa/sha256", 0), 0) << audit_log();
  const std::string text = fs::exists(log) ? read_file(log) : std::string();
  EXPECT_TRUE(contains(text, "certvault-pkcs11: the certvault agent at " + socket_.string() +
                                 " does not serve vault " + dir_.string()))
      << text;
}

// docs/pkcs11.md, "With the agent", in a program run as a user the access rules refuse: it
// finds the key of a public entry and C_SignInit takes it, but C_Sign and C_SignFinal return
// CKR_FUNCTION_REJECTED (v3.0 5.13.2 and 5.13.4), and an entry that is not public is not found.
// A key it found while a rule allowed it, refused since by the owner, is refused at C_SignInit
// with CKR_KEY_HANDLE_INVALID: the object is gone for this program, as its next search shows,
// and so are the certificate and public key found with it (CKR_OBJECT_HANDLE_INVALID at
// C_GetAttributeValue, CKR_KEY_HANDLE_INVALID at C_VerifyInit: the codes v3.0 lists there).
TEST_F(Pkcs11Agent, RefusedPeerGetsFunctionRejectedAtCSignAndLosesAKeyDeniedSince) {
  issue("shared", 100);
  ASSERT_EQ(cv({"access", "shared", "public"}).exit_code, 0);
  ASSERT_EQ(cv({"access", "api", "allow", "--uid", std::to_string(client_uid_)}).exit_code, 0);
  start_agent();
  if (HasFatalFailure()) return;
  unlock();
  const std::string message = "refused";
  auto rvs = in_client_process(
      [&](const std::function<void()>& pause) {
        std::vector<CK_RV> out;
        const CK_SESSION_HANDLE s = open_session();
        CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
        std::vector<uint8_t> sig;
        std::vector<uint8_t> data = bytes_of(message);
        CK_MECHANISM ecdsa = {CKM_ECDSA_SHA256, nullptr, 0};
        out.push_back(find(s, {{CKA_CLASS, &cls, sizeof cls}}).size());
        const CK_OBJECT_HANDLE shared = find_one(s, CKO_PRIVATE_KEY, "shared");
        out.push_back(sign(s, shared, ecdsa, data, sig));
        out.push_back(f_->C_SignInit(s, &ecdsa, shared));
        out.push_back(f_->C_SignUpdate(s, data.data(), data.size()));
        CK_BYTE buffer[128];
        CK_ULONG len = sizeof buffer;
        out.push_back(f_->C_SignFinal(s, buffer, &len));
        const CK_OBJECT_HANDLE api = find_one(s, CKO_PRIVATE_KEY, "api");
        const CK_OBJECT_HANDLE api_cert = find_one(s, CKO_CERTIFICATE, "api");
        const CK_OBJECT_HANDLE api_pub = find_one(s, CKO_PUBLIC_KEY, "api");
        pause();  // the owner denies the program the key
        // Its certificate and public key, found before the denial and not read yet.
        CK_ATTRIBUTE value = {CKA_VALUE, nullptr, 0};
        out.push_back(f_->C_GetAttributeValue(s, api_cert, &value, 1));
        out.push_back(f_->C_VerifyInit(s, &ecdsa, api_pub));
        out.push_back(sign(s, api, ecdsa, data, sig));
        out.push_back(find(s, {{CKA_CLASS, &cls, sizeof cls}}).size());
        return out;
      },
      [&] {
        auto denied = cv({"access", "api", "deny", "--uid", std::to_string(client_uid_)});
        EXPECT_EQ(denied.exit_code, 0) << denied.err;
      });
  ASSERT_EQ(rvs.size(), 9u);
  EXPECT_EQ(rvs[0], 2u) << "the private keys of api (allowed) and shared (public)";
  EXPECT_EQ(rvs[1], CKR_FUNCTION_REJECTED) << "C_Sign";
  EXPECT_EQ(rvs[2], CKR_OK) << "C_SignInit";
  EXPECT_EQ(rvs[3], CKR_OK) << "C_SignUpdate";
  EXPECT_EQ(rvs[4], CKR_FUNCTION_REJECTED) << "C_SignFinal";
  EXPECT_EQ(rvs[5], CKR_OBJECT_HANDLE_INVALID) << "C_GetAttributeValue of its certificate";
  EXPECT_EQ(rvs[6], CKR_KEY_HANDLE_INVALID) << "C_VerifyInit with its public key";
  EXPECT_EQ(rvs[7], CKR_KEY_HANDLE_INVALID) << "C_SignInit with a key denied since";
  EXPECT_EQ(rvs[8], 1u) << "only shared's key is found after the denial";
}

// Current mechanisms v3.0 2.3.14: CKM_EDDSA's parameter, when given, chooses the RFC 8032
// scheme. The module signs Ed25519 (through the agent, which signs the message): with no
// parameter, or one asking for no prehash and no context; a parameter asking for Ed25519ph or
// Ed25519ctx is refused (CKR_MECHANISM_PARAM_INVALID), not answered with a plain Ed25519
// signature that no verifier of those schemes accepts.
TEST_F(Pkcs11Agent, EddsaSignsEd25519AndRefusesThePrehashAndContextParameters) {
  issue("ed", 100, certvault::KeyType::kEd25519);
  serve_and_load();
  if (HasFatalFailure()) return;
  const CK_SESSION_HANDLE s = open_session();
  const CK_OBJECT_HANDLE key = find_one(s, CKO_PRIVATE_KEY, "ed");
  auto cert = vault().certificate_der("ed");
  ASSERT_TRUE(cert) << why(cert);
  const std::string message = "signed by Ed25519 in the agent";
  // CK_EDDSA_PARAMS (current mechanisms v3.0 2.3.14), which p11-kit before 0.25 lacks.
  struct {
    CK_BBOOL phFlag;
    CK_ULONG ulContextDataLen;
    CK_BYTE_PTR pContextData;
  } params = {CK_FALSE, 0, nullptr};
  std::vector<uint8_t> sig;
  ASSERT_EQ(sign(s, key, {CKM_EDDSA, nullptr, 0}, bytes_of(message), sig), CKR_OK);
  EXPECT_EQ(sig.size(), 64u);
  EXPECT_TRUE(verifies(*cert, message, sig, nullptr)) << "no parameter";
  ASSERT_EQ(sign(s, key, {CKM_EDDSA, &params, sizeof params}, bytes_of(message), sig), CKR_OK);
  EXPECT_TRUE(verifies(*cert, message, sig, nullptr)) << "no prehash, no context";
  params.phFlag = CK_TRUE;
  EXPECT_EQ(sign(s, key, {CKM_EDDSA, &params, sizeof params}, bytes_of(message), sig),
            CKR_MECHANISM_PARAM_INVALID)
      << "Ed25519ph";
  CK_BYTE context[] = {'c', 't', 'x'};
  params = {CK_FALSE, sizeof context, context};
  EXPECT_EQ(sign(s, key, {CKM_EDDSA, &params, sizeof params}, bytes_of(message), sig),
            CKR_MECHANISM_PARAM_INVALID)
      << "Ed25519ctx";
  CK_BYTE garbage[3] = {};
  EXPECT_EQ(sign(s, key, {CKM_EDDSA, garbage, sizeof garbage}, bytes_of(message), sig),
            CKR_MECHANISM_PARAM_INVALID)
      << "a parameter of another size";
  EXPECT_EQ(audited_signatures("ed", "ed25519", 0), 2) << audit_log();
}

}  // namespace
}  // namespace cvtest
