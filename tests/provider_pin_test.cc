// The provider's PIN sources and what surrounds them: PIN files that are unsafe or would
// block, pin-value in the URI and its refusal in a URI-in-PEM file, the reasons failures
// are reported under, passphrase callbacks that run without the vault's lock, one unlock
// per vault however its directory is spelt, listings that go on past a locked key, the
// application's error queue left alone, and the debug log in files and setuid programs.
// The provider is loaded in-process, except where an environment variable must be seen
// when it loads (then Debian's `openssl` runs it).
#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/store.h>
#include <openssl/ui.h>
#include <openssl/x509.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "ossl.h"
#include "provider_loaded.h"
#include "support.h"
#include "test_vault.h"

namespace cvtest {
namespace {

using certvault::KeyType;

// What one STORE pass over a URI yielded.
struct Loaded {
  std::vector<std::string> subjects;  // of each certificate, in order
  int keys = 0;
  int failed_loads = 0;  // OSSL_STORE_load calls that returned nothing with an error
  std::string errors;
};

// The passphrase callback a test installs, through a UI method; `nullptr`: none.
using PinFn = std::function<std::string()>;
PinFn* g_pin_fn = nullptr;

int pin_callback(char* buf, int size, int, void*) {
  if (!g_pin_fn) return 0;
  const std::string pin = (*g_pin_fn)();
  const int n = static_cast<int>(std::min<size_t>(pin.size(), static_cast<size_t>(size)));
  std::memcpy(buf, pin.data(), static_cast<size_t>(n));
  return n;
}

Loaded load_all(const std::string& uri, int expect = 0, bool with_callback = false) {
  Loaded out;
  UI_METHOD* ui = with_callback ? UI_UTIL_wrap_read_pem_callback(pin_callback, 0) : nullptr;
  OSSL_STORE_CTX* store =
      OSSL_STORE_open_ex(uri.c_str(), nullptr, nullptr, ui, nullptr, nullptr, nullptr, nullptr);
  if (!store) {
    out.errors = errors();
    UI_destroy_method(ui);
    return out;
  }
  if (expect) OSSL_STORE_expect(store, expect);
  for (int i = 0; i < 50 && !OSSL_STORE_eof(store); ++i) {
    OSSL_STORE_INFO* info = OSSL_STORE_load(store);
    if (!info) {
      if (OSSL_STORE_error(store)) ++out.failed_loads;
      continue;
    }
    if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_CERT) {
      char name[256];
      X509_NAME_oneline(X509_get_subject_name(OSSL_STORE_INFO_get0_CERT(info)), name, sizeof name);
      out.subjects.emplace_back(name);
    }
    if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY) ++out.keys;
    OSSL_STORE_INFO_free(info);
  }
  OSSL_STORE_close(store);
  UI_destroy_method(ui);
  out.errors += errors();
  return out;
}

class ProviderPin : public ProviderLoadedTest {
 protected:
  void TearDown() override {
    g_pin_fn = nullptr;
    ProviderLoadedTest::TearDown();
  }

  // certvault:NICKNAME?vault=DIR, then `query` ("&pin-source=..."), for the given vault.
  std::string uri(const std::string& nickname, const std::string& query = "",
                  const fs::path& vault_dir = {}) const {
    return "certvault:" + nickname + "?vault=" + (vault_dir.empty() ? dir_ : vault_dir).string() +
           query;
  }
  std::string with_pin_file(const fs::path& file) const {
    return "&pin-source=file:" + file.string();
  }
};

// --- PIN files ------------------------------------------------------------------------

TEST_F(ProviderPin, PinFileReadableByOthersIsRefusedWithChmodAdvice) {
  issue("api-prod", 100, KeyType::kEcP256);
  for (mode_t mode : {0644, 0640, 0620, 0602}) {
    SCOPED_TRACE(mode);
    const auto file = tmp_ / "shared-pin";
    write_file(file, std::string(kPin) + "\n", mode);
    ::chmod(file.c_str(), mode);  // past the umask
    auto r = load_all(uri("api-prod", with_pin_file(file)), OSSL_STORE_INFO_PKEY);
    EXPECT_EQ(r.keys, 0);
    EXPECT_TRUE(contains(r.errors, "no PIN available")) << r.errors;
    EXPECT_TRUE(contains(r.errors, "chmod 600 " + file.string())) << r.errors;
    EXPECT_FALSE(contains(r.errors, std::string(kPin))) << r.errors;
  }
  // Refused before any unlock: nothing was counted.
  EXPECT_EQ(vault().pin_failures(), 0);
  // The same file made owner-only works, with its trailing CR LF dropped.
  write_file(tmp_ / "crlf-pin", std::string(kPin) + "\r\n", 0600);
  auto good = load_all(uri("api-prod", with_pin_file(tmp_ / "crlf-pin")), OSSL_STORE_INFO_PKEY);
  EXPECT_EQ(good.keys, 1) << good.errors;
}

TEST_F(ProviderPin, FifoAsPinFileIsRefusedInsteadOfBlocking) {
  issue("api-prod", 100, KeyType::kEcP256);
  const auto fifo = tmp_ / "pin.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Nobody ever writes to it: opening it for a blocking read would wait for ever.
  auto r = load_all(uri("api-prod", with_pin_file(fifo)), OSSL_STORE_INFO_PKEY);
  EXPECT_EQ(r.keys, 0);
  EXPECT_TRUE(contains(r.errors, "no PIN available")) << r.errors;
  EXPECT_TRUE(contains(r.errors, fifo.string() + " (pin-source in the URI) is not a regular file"))
      << r.errors;
}

// One rule for every PIN source: a PIN file is a regular file, never a symbolic link
// (point pin-source at the link's target instead).
TEST_F(ProviderPin, PinFileReachedThroughASymbolicLinkIsRefused) {
  issue("api-prod", 100, KeyType::kEcP256);
  const auto link = tmp_ / "pin-link";
  fs::create_symlink(pin_file_, link);
  auto linked = load_all(uri("api-prod", with_pin_file(link)), OSSL_STORE_INFO_PKEY);
  EXPECT_EQ(linked.keys, 0);
  EXPECT_TRUE(contains(linked.errors, "no PIN available")) << linked.errors;
  EXPECT_TRUE(
      contains(linked.errors, link.string() + " (pin-source in the URI) is a symbolic link"))
      << linked.errors;
  EXPECT_TRUE(contains(linked.errors, "readlink -f " + link.string())) << linked.errors;
  EXPECT_EQ(vault().pin_failures(), 0);
  auto direct = load_all(uri("api-prod", with_pin_file(pin_file_)), OSSL_STORE_INFO_PKEY);
  EXPECT_EQ(direct.keys, 1) << direct.errors;
}

// A manifest changed after the provider unlocked the vault is damage at every later load,
// never "no PIN available" or a quietly missing entry.
TEST_F(ProviderPin, ManifestTamperedAfterUnlockIsReportedAsDamage) {
  issue("api-prod", 100, KeyType::kEcP256);
  auto good = load_all(uri("api-prod", with_pin_file(pin_file_)), OSSL_STORE_INFO_PKEY);
  ASSERT_EQ(good.keys, 1) << good.errors;
  const auto manifest = dir_ / "manifest";
  std::string bytes = read_file(manifest);
  const size_t at = bytes.find("\tapi-prod\t");
  ASSERT_NE(at, std::string::npos);
  bytes[at + 8] = 'x';  // "api-prox": well-formed, but not what the MAC covers
  overwrite_in_place(manifest, bytes);
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE("load " + std::to_string(i + 1));
    auto r = load_all(uri("api-prod", with_pin_file(pin_file_)), OSSL_STORE_INFO_PKEY);
    EXPECT_EQ(r.keys, 0);
    EXPECT_TRUE(contains(r.errors, dir_.string() + " failed authentication")) << r.errors;
    EXPECT_FALSE(contains(r.errors, "no PIN available")) << r.errors;
  }
}

TEST_F(ProviderPin, OversizedOrEmptyPinFileIsRefused) {
  issue("api-prod", 100, KeyType::kEcP256);
  write_file(tmp_ / "big", std::string(5000, 'x'), 0600);
  auto big = load_all(uri("api-prod", with_pin_file(tmp_ / "big")), OSSL_STORE_INFO_PKEY);
  EXPECT_TRUE(contains(big.errors, "larger than 4096 bytes")) << big.errors;
  write_file(tmp_ / "empty", "\n", 0600);
  auto empty = load_all(uri("api-prod", with_pin_file(tmp_ / "empty")), OSSL_STORE_INFO_PKEY);
  EXPECT_TRUE(contains(empty.errors, "is empty")) << empty.errors;
  EXPECT_EQ(vault().pin_failures(), 0);
}

TEST_F(ProviderPin, MissingPinFileIsReportedAsNoPinNotAsMissingEntry) {
  issue("api-prod", 100, KeyType::kEcP256);
  const auto missing = tmp_ / "no-such-pin";
  auto r = load_all(uri("api-prod", with_pin_file(missing)), OSSL_STORE_INFO_PKEY);
  EXPECT_EQ(r.keys, 0);
  EXPECT_TRUE(contains(r.errors, ":no PIN available:")) << r.errors;
  EXPECT_TRUE(contains(r.errors, "cannot open the PIN file " + missing.string())) << r.errors;
  EXPECT_FALSE(contains(r.errors, "no such vault entry")) << r.errors;
  EXPECT_FALSE(contains(r.errors, "malformed certvault URI")) << r.errors;
}

// --- pin-value ------------------------------------------------------------------------

TEST_F(ProviderPin, PinValueInTheUriUnlocks) {
  issue("api-prod", 100, KeyType::kEcP256);
  auto r = load_all(uri("api-prod", "&pin-value=" + std::string(kPin)), OSSL_STORE_INFO_PKEY);
  EXPECT_EQ(r.keys, 1) << r.errors;
}

TEST_F(ProviderPin, UriPemFileWithPinValueIsRefused) {
  issue("api-prod", 100, KeyType::kEcP256);
  const std::string u = uri("api-prod", "&pin-value=" + std::string(kPin));
  BIO* mem = BIO_new(BIO_s_mem());
  ASSERT_GT(
      PEM_write_bio(mem, "CERTVAULT URI", "", reinterpret_cast<const unsigned char*>(u.data()),
                    static_cast<long>(u.size())),
      0);
  PkeyPtr key(PEM_read_bio_PrivateKey(mem, nullptr, nullptr, nullptr));
  BIO_free(mem);
  const std::string queued = errors();
  EXPECT_FALSE(key);
  EXPECT_TRUE(contains(queued, "must hold no secret")) << queued;
  EXPECT_TRUE(contains(queued, "pin-source=file:PATH")) << queued;
  EXPECT_FALSE(contains(queued, std::string(kPin))) << queued;
}

// --- the passphrase callback runs without the vault's lock ---------------------------

TEST_F(ProviderPin, PassphraseCallbackMayLoadCertificatesFromTheSameVault) {
  issue("api-prod", 100, KeyType::kEcP256);
  int calls = 0;
  Loaded inner;
  PinFn fn = [&] {
    ++calls;
    inner = load_all(uri("api-prod"), OSSL_STORE_INFO_CERT);
    return std::string(kPin);
  };
  g_pin_fn = &fn;
  auto r = load_all(uri("api-prod"), OSSL_STORE_INFO_PKEY, /*with_callback=*/true);
  EXPECT_EQ(r.keys, 1) << r.errors;
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(inner.subjects, (std::vector<std::string>{"/CN=api-prod", "/CN=ops CA"}))
      << inner.errors;
}

TEST_F(ProviderPin, OtherThreadsLoadFromTheVaultWhileThePinIsAskedFor) {
  issue("api-prod", 100, KeyType::kEcP256);
  issue("other", 100, KeyType::kEcP256);
  Loaded meanwhile;
  // The "person at the keyboard" answers only after another thread has loaded the other
  // entry's certificate from the same vault.
  PinFn fn = [&] {
    std::thread t([&] { meanwhile = load_all(uri("other"), OSSL_STORE_INFO_CERT); });
    t.join();
    return std::string(kPin);
  };
  g_pin_fn = &fn;
  auto r = load_all(uri("api-prod"), OSSL_STORE_INFO_PKEY, /*with_callback=*/true);
  EXPECT_EQ(r.keys, 1) << r.errors;
  EXPECT_EQ(meanwhile.subjects, (std::vector<std::string>{"/CN=other", "/CN=ops CA"}))
      << meanwhile.errors;
}

TEST_F(ProviderPin, CallbackLoadingAKeyOfItsOwnLockedVaultFailsInsteadOfHanging) {
  issue("api-prod", 100, KeyType::kEcP256);
  issue("other", 100, KeyType::kEcP256);
  int calls = 0;
  Loaded inner;
  PinFn fn = [&] {
    if (++calls == 1) inner = load_all(uri("other"), OSSL_STORE_INFO_PKEY, true);
    return std::string(kPin);
  };
  g_pin_fn = &fn;
  auto r = load_all(uri("api-prod"), OSSL_STORE_INFO_PKEY, /*with_callback=*/true);
  EXPECT_EQ(r.keys, 1) << r.errors;
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(inner.keys, 0);
  EXPECT_TRUE(contains(inner.errors, "no PIN available")) << inner.errors;
  EXPECT_TRUE(contains(inner.errors, "from within the passphrase callback")) << inner.errors;
}

// --- one vault, however its directory is spelt ----------------------------------------

TEST_F(ProviderPin, VaultReachedThroughASymbolicLinkSharesTheUnlock) {
  issue("api-prod", 100, KeyType::kEcP256);
  issue("other", 100, KeyType::kEcP256);
  const auto link = tmp_ / "vault-link";
  fs::create_symlink(dir_, link);
  auto first = load_all(uri("api-prod", with_pin_file(pin_file_)), OSSL_STORE_INFO_PKEY);
  ASSERT_EQ(first.keys, 1) << first.errors;
  // No PIN source at all: only an unlock already made for this vault can serve it.
  auto second = load_all(uri("other", "", link), OSSL_STORE_INFO_PKEY);
  EXPECT_EQ(second.keys, 1) << second.errors;
  auto dotted = load_all(uri("other", "", dir_ / "." / ".." / "vault"), OSSL_STORE_INFO_PKEY);
  EXPECT_EQ(dotted.keys, 1) << dotted.errors;
}

// --- listings -------------------------------------------------------------------------

TEST_F(ProviderPin, ListingGoesOnPastKeysItCannotUnlock) {
  issue("alpha", 100, KeyType::kEcP256);
  issue("beta", 100, KeyType::kEcP256);
  issue("gamma", 100, KeyType::kEcP256);
  // No PIN source: every certificate, no key, and the reason once.
  auto r = load_all("certvault:?vault=" + dir_.string());
  std::vector<std::string> leaves;
  for (const auto& s : r.subjects)
    if (s != "/CN=ops CA") leaves.push_back(s);
  std::sort(leaves.begin(), leaves.end());
  EXPECT_EQ(leaves, (std::vector<std::string>{"/CN=alpha", "/CN=beta", "/CN=gamma"})) << r.errors;
  EXPECT_EQ(r.subjects.size(), 6u) << r.errors;  // each with its CA
  EXPECT_EQ(r.keys, 0);
  EXPECT_EQ(r.failed_loads, 1) << r.errors;
  EXPECT_TRUE(contains(r.errors, "needs the PIN")) << r.errors;
}

TEST_F(ProviderPin, ListingWithAWrongPinCountsItOnce) {
  issue("alpha", 100, KeyType::kEcP256);
  issue("beta", 100, KeyType::kEcP256);
  issue("gamma", 100, KeyType::kEcP256);
  auto wrong = write_secret_file(tmp_ / "wrong", "not-the-pin");
  auto r = load_all("certvault:?vault=" + dir_.string() + with_pin_file(wrong));
  EXPECT_EQ(r.subjects.size(), 6u) << r.errors;
  EXPECT_EQ(r.keys, 0);
  EXPECT_TRUE(contains(r.errors, "wrong PIN")) << r.errors;
  EXPECT_FALSE(contains(r.errors, "not-the-pin")) << r.errors;
  EXPECT_EQ(vault().pin_failures(), 1);
}

TEST_F(ProviderPin, ListingWithThePinYieldsEveryKey) {
  issue("alpha", 100, KeyType::kEcP256);
  issue("beta", 100, KeyType::kRsa2048);
  auto r = load_all("certvault:?vault=" + dir_.string() + with_pin_file(pin_file_));
  EXPECT_EQ(r.subjects.size(), 4u) << r.errors;
  EXPECT_EQ(r.keys, 2) << r.errors;
  EXPECT_EQ(r.failed_loads, 0) << r.errors;
}

// --- the application's error queue ----------------------------------------------------

constexpr int kAppReason = 4711;

TEST(ProviderErrorQueue, LastErrorReadsTheNewestReasonAndLeavesTheQueue) {
  ERR_clear_error();
  ERR_raise_data(ERR_LIB_USER, kAppReason, "the application's own error");
  EVP_PKEY_CTX* ctx =
      EVP_PKEY_CTX_new_from_name(certvault::ossl::libctx(), "NO-SUCH-ALGORITHM", nullptr);
  ASSERT_EQ(ctx, nullptr);
  const std::string reason = certvault::ossl::last_error();
  EXPECT_NE(reason, "unknown error");
  EXPECT_FALSE(reason.empty());
  const unsigned long first = ERR_peek_error();
  EXPECT_EQ(ERR_GET_LIB(first), ERR_LIB_USER);
  EXPECT_EQ(ERR_GET_REASON(first), kAppReason);
  ERR_clear_error();
}

TEST_F(ProviderPin, FailedSignatureKeepsTheApplicationsEarlierErrors) {
  issue("rsa", 100, KeyType::kRsa2048);
  auto loaded = load_all(uri("rsa", with_pin_file(pin_file_)), OSSL_STORE_INFO_PKEY);
  ASSERT_EQ(loaded.keys, 1) << loaded.errors;
  // Load it again, keeping the key this time.
  const std::string u = uri("rsa", with_pin_file(pin_file_));
  OSSL_STORE_CTX* store =
      OSSL_STORE_open_ex(u.c_str(), nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
  ASSERT_NE(store, nullptr) << errors();
  ASSERT_EQ(OSSL_STORE_expect(store, OSSL_STORE_INFO_PKEY), 1);
  PkeyPtr key;
  for (int i = 0; i < 5 && !key && !OSSL_STORE_eof(store); ++i) {
    OSSL_STORE_INFO* info = OSSL_STORE_load(store);
    if (info && OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
      key.reset(OSSL_STORE_INFO_get1_PKEY(info));
    OSSL_STORE_INFO_free(info);
  }
  OSSL_STORE_close(store);
  ASSERT_TRUE(key) << errors();
  ERR_clear_error();

  // An error the application has queued and not yet looked at, then signature parameters
  // the inner key refuses (no such digest).
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr);
  ASSERT_NE(ctx, nullptr);
  ASSERT_EQ(EVP_PKEY_sign_init(ctx), 1) << errors();
  ERR_raise_data(ERR_LIB_USER, kAppReason, "the application's own error");
  char bogus[] = "NO-SUCH-DIGEST";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, bogus, 0),
                         OSSL_PARAM_construct_end()};
  EXPECT_LE(EVP_PKEY_CTX_set_params(ctx, params), 0);
  EVP_PKEY_CTX_free(ctx);
  const unsigned long first = ERR_peek_error();
  EXPECT_EQ(ERR_GET_LIB(first), ERR_LIB_USER);
  EXPECT_EQ(ERR_GET_REASON(first), kAppReason);
  const std::string queued = errors();
  EXPECT_TRUE(contains(queued, "setting signature parameters with certvault:rsa")) << queued;
}

// --- the debug log, and setuid programs -----------------------------------------------

// `openssl ARGS...` with certvault and default loaded from the build directory, an empty
// openssl.cnf and the given environment; `program` replaces Debian's openssl.
RunResult openssl(const std::vector<std::string>& env, const std::vector<std::string>& args,
                  const std::string& program = "openssl") {
  std::vector<std::string> argv = {"env", "OPENSSL_CONF=/dev/null"};
#ifdef CERTVAULT_SANITIZER_RUNTIME
  argv.push_back(std::string("LD_PRELOAD=") + CERTVAULT_SANITIZER_RUNTIME);
  argv.push_back("ASAN_OPTIONS=detect_leaks=0");
#endif
  argv.insert(argv.end(), env.begin(), env.end());
  argv.push_back(program);
  argv.push_back(args.at(0));
  for (const char* a :
       {"-provider-path", CERTVAULT_PROVIDER_DIR, "-provider", "certvault", "-provider", "default"})
    argv.push_back(a);
  argv.insert(argv.end(), args.begin() + 1, args.end());
  return run(argv, {}, std::chrono::seconds(60));
}

// Runs `openssl` with the provider in a process of its own, so that the provider sees the
// environment it is given when it loads.
class ProviderDebug : public VaultTest {};

TEST_F(ProviderDebug, DebugLogFileIsCreatedOwnerOnly) {
  issue("api-prod", 100, KeyType::kEcP256);
  const auto log = tmp_ / "debug.log";
  auto r = openssl({"CERTVAULT_DEBUG=" + log.string()},
                   {"storeutl", "-certs", "certvault:api-prod?vault=" + dir_.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(fs::exists(log)) << r.err;
  EXPECT_EQ(file_mode(log), 0600u);
  EXPECT_TRUE(contains(read_file(log), "certvault-provider: ")) << read_file(log);
}

TEST_F(ProviderDebug, DebugLogNeverFollowsASymbolicLink) {
  issue("api-prod", 100, KeyType::kEcP256);
  const auto target = tmp_ / "precious";
  write_file(target, "precious content\n", 0644);
  const auto link = tmp_ / "debug.log";
  fs::create_symlink(target, link);
  auto r = openssl({"CERTVAULT_DEBUG=" + link.string()},
                   {"storeutl", "-certs", "certvault:api-prod?vault=" + dir_.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(target), "precious content\n");
  EXPECT_TRUE(contains(r.err, "cannot open the debug log " + link.string())) << r.err;
}

TEST_F(ProviderDebug, SetuidProgramTakesNeitherDebugLogNorVaultFromTheEnvironment) {
#ifdef CERTVAULT_SANITIZER_RUNTIME
  GTEST_SKIP() << "a setuid program ignores LD_PRELOAD, which an instrumented provider needs";
#endif
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make a program setuid to another user";
  issue("api-prod", 100, KeyType::kEcP256);
  // A copy of openssl that runs as `nobody`, started by root: AT_SECURE is set, as for
  // any setuid program that loads the provider through the system's openssl.cnf.
  ::chmod(tmp_.path().c_str(), 0711);
  const auto bin = tmp_ / "bin";
  fs::create_directory(bin);
  ::chmod(bin.c_str(), 0755);
  fs::copy_file("/usr/bin/openssl", bin / "openssl");
  ASSERT_EQ(::chown((bin / "openssl").c_str(), 65534, 65534), 0);
  ASSERT_EQ(::chmod((bin / "openssl").c_str(), 04755), 0);
  const auto logs = tmp_ / "logs";
  fs::create_directory(logs);
  ::chmod(logs.c_str(), 0777);  // so that only the provider's own choice keeps it empty
  auto probe = run({(bin / "openssl").string(), "version"});
  if (probe.exit_code != 0) GTEST_SKIP() << "setuid programs do not run here: " << probe.err;

  const auto log = logs / "debug.log";
  auto r = openssl({"CERTVAULT_DEBUG=" + log.string(), "CERTVAULT_VAULT=" + dir_.string()},
                   {"storeutl", "-certs", "certvault:api-prod"}, (bin / "openssl").string());
  // The provider loaded and looked for the default vault of the user it runs as ...
  const passwd* nobody = ::getpwuid(65534);
  ASSERT_NE(nobody, nullptr);
  EXPECT_TRUE(contains(r.err, std::string(nobody->pw_dir) + "/.local/share/certvault/default"))
      << r.err;
  // ... but wrote no log, neither to the file nor to stderr ...
  EXPECT_FALSE(fs::exists(log)) << read_file(log);
  EXPECT_FALSE(contains(r.err, "certvault-provider:")) << r.err;
  // ... and did not take the vault from CERTVAULT_VAULT.
  EXPECT_FALSE(contains(r.err, dir_.string())) << r.err;
  EXPECT_TRUE(pem_block(r.out).empty()) << r.out;
}

}  // namespace
}  // namespace cvtest
