// PKCS#11 budgets (issue 3, docs/PERFORMANCE.md), all in one run:
// - C_SignInit + C_Sign per second for EC P-256 and RSA-2048, with 1 and 2 threads (each
//   its own session), through certvault's module and through SoftHSM2 holding the same
//   private keys, beside raw OpenSSL (EVP_PKEY_sign) on those keys in this process.
//   The mechanisms are the raw ones, CKM_ECDSA on a SHA-256 hash and CKM_RSA_PKCS on a
//   SHA-256 DigestInfo, because that is what `openssl speed ecdsap256 rsa2048` times:
//   EVP_PKEY_sign on a ready digest (20 and 36 bytes), no hashing in the loop.
//   Raw OpenSSL runs three ways: one context reused (as `openssl speed` does, the
//   baseline), a new context per signature, and a template context duplicated per
//   signature, to show what a module pays for setting up each signature.
// - the signing budgets again, timed side by side in alternating batches, so that the
//   host's drifting speed weighs on both sides alike (bench_support.h): certvault beside
//   raw OpenSSL; and two threads beside one, for certvault and raw OpenSSL in one rotation.
// - C_FindObjectsInit + C_FindObjects + C_FindObjectsFinal by CKA_LABEL in a 2-entry and
//   a 10,000-entry vault.
// After the table it prints each budget with its limit, the measured value and whether
// it holds (medians when run with --benchmark_repetitions).
//
// Needs softhsm2-util on PATH and SoftHSM2's module ($CERTVAULT_BENCH_SOFTHSM2, else
// /usr/lib/softhsm/libsofthsm2.so). Everything it makes lives in a temporary directory.
// $CERTVAULT_BENCH_MODULE loads another build of certvault's module (to compare two);
// $CERTVAULT_BENCH_ENTRIES sets the size of the large vault (default 10,000), for quick
// runs and for profiling under valgrind.
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "bench_pkcs11_support.h"
#include "bench_report.h"
#include "bench_support.h"
#include "ck.h"
#include "ossl.h"
#include "vault.h"

namespace cv = certvault;
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kPin = "bench-pin-1234";
constexpr std::string_view kSoPin = "bench-so-pin-1234";
constexpr const char* kSoftHsmDefault = "/usr/lib/softhsm/libsofthsm2.so";

using cv::bench::budget_line;
using cv::bench::die;
using cv::bench::fmt;
using cv::bench::Pkcs11Signer;
using cv::bench::Reporter;

// Removed at exit; the path is never destroyed, so the exit handler can still read it.
const fs::path& scratch() {
  static const fs::path* dir = [] {
    char tmpl[] = "/tmp/certvault-bench-pkcs11-XXXXXX";
    const char* made = mkdtemp(tmpl);
    if (!made) die("cannot make a temporary directory");
    auto* d = new fs::path(made);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(scratch(), ec);
    });
    return d;
  }();
  return *dir;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Runs a program with its standard output discarded; dies unless it exits with 0.
void run(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) die("fork failed");
  if (pid == 0) {
    const int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, STDOUT_FILENO);
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    die(argv[0] + " " + argv[1] + " failed (status " + std::to_string(status) + ")");
}

// --- the keys -----------------------------------------------------------------------------

struct Key {
  std::string name;  // nickname in the vault, CKA_LABEL in both tokens
  std::string id;    // CKA_ID in SoftHSM2 (hex)
  cv::KeyType type;
  CK_MECHANISM_TYPE mechanism;
  std::vector<uint8_t> input;  // what each signature covers
  cv::PrivateKey pkey;         // the vault's key, for raw OpenSSL
  bool rsa() const { return type == cv::KeyType::kRsa2048; }
};

std::vector<uint8_t> sha256_of(std::string_view s) {
  std::vector<uint8_t> out(SHA256_DIGEST_LENGTH);
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), out.data());
  return out;
}

// DigestInfo for SHA-256 (RFC 8017 9.2, note 1), then the hash: the input of CKM_RSA_PKCS
// when an application signs a SHA-256 hash.
std::vector<uint8_t> sha256_digest_info(const std::vector<uint8_t>& hash) {
  static constexpr uint8_t kPrefix[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                        0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
  std::vector<uint8_t> out(sizeof kPrefix + hash.size());
  std::memcpy(out.data(), kPrefix, sizeof kPrefix);
  std::memcpy(out.data() + sizeof kPrefix, hash.data(), hash.size());
  return out;
}

cv::Vault make_vault(const fs::path& dir, const std::string& label) {
  cv::InitOptions opts;
  opts.label = label;
  opts.kdf = {1, 8192};  // the cheapest Argon2id: login is not what is measured here
  auto init = cv::Vault::init(dir, cv::SecureBytes::from(std::string(kPin)), opts);
  if (!init) die(init.error().message);
  return std::move(init->first);
}

// A vault holding one EC P-256 and one RSA-2048 entry; their keys, also exported as PKCS#8
// PEM files for SoftHSM2.
std::vector<Key> make_sign_vault(const fs::path& dir) {
  std::vector<Key> keys;
  const auto hash = sha256_of("certvault bench_pkcs11");
  keys.push_back({"ec-p256", "01", cv::KeyType::kEcP256, CKM_ECDSA, hash, nullptr});
  keys.push_back(
      {"rsa-2048", "02", cv::KeyType::kRsa2048, CKM_RSA_PKCS, sha256_digest_info(hash), nullptr});
  cv::Vault v = make_vault(dir, "bench-sign");
  for (Key& k : keys) {
    cv::IssueRequest r;
    r.nickname = k.name;
    r.key_type = k.type;
    r.not_after = cv::now() + 365 * 86400LL;
    r.self_signed = true;
    if (auto c = v.create(r); !c) die(c.error().message);
    auto pkey = v.private_key(k.name);
    if (!pkey) die(pkey.error().message);
    k.pkey = std::move(*pkey);
  }
  return keys;
}

// A vault of `n` CA-issued EC P-256 entries named entry-0 ... entry-(n-1).
void make_big_vault(const fs::path& dir, int n) {
  cv::Vault v = make_vault(dir, "bench-10k");
  cv::bench::fill_with_entries(v, n);
}

void write_pkcs8_pem(EVP_PKEY* key, const fs::path& file) {
  cv::ossl::Bio bio(BIO_new_file(file.c_str(), "w"));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    die("cannot write " + file.string());
}

// A SoftHSM2 token "bench" in `dir` holding the same private keys.
void make_softhsm_token(const fs::path& dir, const std::vector<Key>& keys) {
  fs::create_directories(dir / "tokens");
  const fs::path conf = dir / "softhsm2.conf";
  std::ofstream(conf) << "directories.tokendir = " << (dir / "tokens").string()
                      << "\nobjectstore.backend = file\nlog.level = ERROR\n";
  ::setenv("SOFTHSM2_CONF", conf.c_str(), 1);
  const std::string pin(kPin);
  run({"softhsm2-util", "--init-token", "--free", "--label", "bench", "--pin", pin, "--so-pin",
       std::string(kSoPin)});
  for (const Key& k : keys) {
    const fs::path pem = dir / (k.name + ".pem");
    write_pkcs8_pem(k.pkey.get(), pem);
    run({"softhsm2-util", "--import", pem.string(), "--token", "bench", "--label", k.name, "--id",
         k.id, "--pin", pin});
    fs::remove(pem);
  }
}

// --- PKCS#11 modules ---------------------------------------------------------------------------

std::string ck_text(const CK_UTF8CHAR* s, size_t n) {
  std::string out(reinterpret_cast<const char*>(s), n);
  out.erase(out.find_last_not_of(' ') + 1);
  return out;
}

struct Module {
  std::string name;
  void* lib = nullptr;
  CK_FUNCTION_LIST_PTR f = nullptr;

  void load(const std::string& path) {
    lib = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) die(::dlerror());
    auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(lib, "C_GetFunctionList"));
    if (!get || get(&f) != CKR_OK) die(path + ": no C_GetFunctionList");
    // Threads call in: the module must lock (SoftHSM2 does not without this flag).
    CK_C_INITIALIZE_ARGS args{};
    args.flags = CKF_OS_LOCKING_OK;
    if (CK_RV rv = f->C_Initialize(&args); rv != CKR_OK)
      die(path + ": C_Initialize returned " + std::to_string(rv));
  }
  void unload() {
    if (f) f->C_Finalize(nullptr);
    if (lib) ::dlclose(lib);
    f = nullptr;
    lib = nullptr;
  }
  std::string version() const {
    CK_INFO info{};
    if (f->C_GetInfo(&info) != CKR_OK) return "?";
    return ck_text(info.libraryDescription, sizeof info.libraryDescription) + " " +
           std::to_string(info.libraryVersion.major) + "." +
           std::to_string(info.libraryVersion.minor);
  }
  CK_SLOT_ID slot_of(const std::string& token_label) const {
    CK_ULONG n = 0;
    if (f->C_GetSlotList(CK_TRUE, nullptr, &n) != CKR_OK) die(name + ": C_GetSlotList");
    std::vector<CK_SLOT_ID> slots(n);
    if (f->C_GetSlotList(CK_TRUE, slots.data(), &n) != CKR_OK) die(name + ": C_GetSlotList");
    for (CK_SLOT_ID s : slots) {
      CK_TOKEN_INFO info{};
      if (f->C_GetTokenInfo(s, &info) == CKR_OK &&
          ck_text(info.label, sizeof info.label) == token_label)
        return s;
    }
    die(name + ": no token labelled " + token_label);
  }
};

// A logged-in token. The session that logged in stays open for the whole run, since
// closing a token's last session logs it out (PKCS#11 v2.40 5.6, C_CloseSession).
struct Token {
  Module* module = nullptr;
  CK_SLOT_ID slot = 0;
  CK_SESSION_HANDLE login_session = 0;

  Token(Module& m, const std::string& label) : module(&m), slot(m.slot_of(label)) {
    login_session = cv::bench::open_session(module->f, slot);
    if (!login_session) die(m.name + ": C_OpenSession");
    std::string pin(kPin);
    if (CK_RV rv = m.f->C_Login(login_session, CKU_USER,
                                reinterpret_cast<CK_UTF8CHAR_PTR>(pin.data()), pin.size());
        rv != CKR_OK)
      die(m.name + ": C_Login returned " + std::to_string(rv));
  }
  CK_OBJECT_HANDLE private_key(const std::string& label) const {
    auto h = cv::bench::private_key_labelled(module->f, login_session, label);
    if (!h) die(module->name + ": no single private key labelled " + label);
    return *h;
  }
  // One signature, so that the key is decrypted and in use before anything is timed
  // (certvault decrypts a private key once per login, on first use).
  void sign_once(CK_OBJECT_HANDLE key, const Key& k) const {
    CK_MECHANISM mech = {k.mechanism, nullptr, 0};
    std::vector<uint8_t> input = k.input, sig(1024);
    CK_ULONG len = sig.size();
    auto* f = module->f;
    if (f->C_SignInit(login_session, &mech, key) != CKR_OK ||
        f->C_Sign(login_session, input.data(), input.size(), sig.data(), &len) != CKR_OK)
      die(module->name + ": cannot sign with " + k.name);
  }
};

// --- benchmarks --------------------------------------------------------------------------------

// A context ready for raw signatures with `key` (PKCS#1 v1.5 padding for RSA); null when
// OpenSSL refuses.
cv::ossl::PkeyCtx new_sign_context(const Key* key) {
  cv::ossl::PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(cv::ossl::libctx(), key->pkey.get(), nullptr));
  if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1 ||
      (key->rsa() && EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) <= 0))
    return nullptr;
  return ctx;
}

// As `openssl speed` does: one context, made and initialised once, then EVP_PKEY_sign.
class RawSigner {
 public:
  explicit RawSigner(const Key* key) : key_(key), ctx_(new_sign_context(key)) {}
  bool ready() const { return ctx_ != nullptr; }
  bool operator()() {
    size_t len = sig_.size();
    return EVP_PKEY_sign(ctx_.get(), sig_.data(), &len, key_->input.data(), key_->input.size()) ==
           1;
  }

 private:
  const Key* key_;
  cv::ossl::PkeyCtx ctx_;
  std::vector<uint8_t> sig_ = std::vector<uint8_t>(1024);
};

// C_SignInit + C_Sign with `key`'s mechanism, in a session of its own on `token`.
Pkcs11Signer signer(const Token* token, CK_OBJECT_HANDLE handle, const Key* key) {
  return Pkcs11Signer(token->module->f, token->slot, handle, key->mechanism, key->input);
}

// The benchmark loop of the signing rows: one signature per iteration (`sign` returns false
// on failure, and the run then stops with `failure()`).
template <class Sign, class Failure>
void sign_per_iteration(benchmark::State& state, Sign&& sign, Failure&& failure) {
  for (auto _ : state) {
    if (!sign()) {
      state.SkipWithError(std::string(failure()).c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_OpenSslSign(benchmark::State& state, const Key* key) {
  RawSigner sign(key);
  if (!sign.ready()) {
    state.SkipWithError("EVP_PKEY_sign_init failed");
    return;
  }
  sign_per_iteration(state, sign, [] { return "EVP_PKEY_sign failed"; });
}

// What an implementation pays at least when it cannot keep a context from one signature to
// the next: a new context per signature (OpenSSL 3.0 fetches the algorithm in sign_init).
void BM_OpenSslSignNewContext(benchmark::State& state, const Key* key) {
  std::vector<uint8_t> sig(1024);
  auto sign = [&] {
    cv::ossl::PkeyCtx ctx = new_sign_context(key);
    size_t len = sig.size();
    return ctx &&
           EVP_PKEY_sign(ctx.get(), sig.data(), &len, key->input.data(), key->input.size()) == 1;
  };
  sign_per_iteration(state, sign, [] { return "EVP_PKEY_sign failed"; });
}

// A third way: a context made once and duplicated for each signature (EVP_PKEY_CTX_dup
// fetches nothing).
void BM_OpenSslSignDupContext(benchmark::State& state, const Key* key) {
  cv::ossl::PkeyCtx base = new_sign_context(key);
  if (!base) {
    state.SkipWithError("EVP_PKEY_sign_init failed");
    return;
  }
  std::vector<uint8_t> sig(1024);
  auto sign = [&] {
    cv::ossl::PkeyCtx ctx(EVP_PKEY_CTX_dup(base.get()));
    size_t len = sig.size();
    return ctx &&
           EVP_PKEY_sign(ctx.get(), sig.data(), &len, key->input.data(), key->input.size()) == 1;
  };
  sign_per_iteration(state, sign, [] { return "EVP_PKEY_sign failed"; });
}

// C_SignInit + C_Sign, in a session of this thread's own.
void BM_Pkcs11Sign(benchmark::State& state, const Token* token, CK_OBJECT_HANDLE handle,
                   const Key* key) {
  Pkcs11Signer sign = signer(token, handle, key);
  if (!sign.ready()) {
    state.SkipWithError("C_OpenSession failed");
    return;
  }
  sign_per_iteration(state, sign,
                     [&] { return "C_SignInit/C_Sign returned " + std::to_string(sign.last()); });
}

// Signatures in one batch of a side-by-side benchmark: about 8 ms of signing each.
int batch_for(const Key* key) {
  return key->rsa() ? 8 : 256;
}

// certvault's C_Sign beside raw OpenSSL, timed in alternating batches (bench_support.h).
void BM_Pkcs11SignBesideOpenSsl(benchmark::State& state, const Token* token,
                                CK_OBJECT_HANDLE handle, const Key* key) {
  Pkcs11Signer ours = signer(token, handle, key);
  RawSigner reference(key);
  if (!ours.ready() || !reference.ready()) {
    state.SkipWithError("C_OpenSession or EVP_PKEY_sign_init failed");
    return;
  }
  cv::bench::run_side_by_side(state, batch_for(key), ours, reference);
}

// Two threads beside one, for certvault's C_Sign (two sessions) and for raw OpenSSL (two
// contexts) in the same rotation of batches (bench_support.h).
void BM_SignTwoThreadsBesideOne(benchmark::State& state, const Token* token,
                                CK_OBJECT_HANDLE handle, const Key* key) {
  Pkcs11Signer ours1 = signer(token, handle, key), ours2 = signer(token, handle, key);
  RawSigner reference1(key), reference2(key);
  if (!ours1.ready() || !ours2.ready() || !reference1.ready() || !reference2.ready()) {
    state.SkipWithError("C_OpenSession or EVP_PKEY_sign_init failed");
    return;
  }
  cv::bench::run_scaling_side_by_side(state, batch_for(key), ours1, ours2, reference1, reference2);
}

// C_FindObjectsInit({CKA_LABEL}) + C_FindObjects + C_FindObjectsFinal, over many labels.
void BM_Pkcs11FindByLabel(benchmark::State& state, const Token* token,
                          const std::vector<std::string>* labels) {
  auto* f = token->module->f;
  const CK_SESSION_HANDLE s = cv::bench::open_session(token->module->f, token->slot);
  if (!s) {
    state.SkipWithError("C_OpenSession failed");
    return;
  }
  CK_OBJECT_HANDLE found[16];
  CK_ULONG n = 0;
  size_t i = 0;
  for (auto _ : state) {
    const std::string& label = (*labels)[i++ % labels->size()];
    CK_ATTRIBUTE t = {CKA_LABEL, const_cast<char*>(label.data()), label.size()};
    CK_RV rv = f->C_FindObjectsInit(s, &t, 1);
    if (rv == CKR_OK) {
      rv = f->C_FindObjects(s, found, 16, &n);
      if (CK_RV fin = f->C_FindObjectsFinal(s); rv == CKR_OK) rv = fin;
    }
    if (rv != CKR_OK || n == 0) {
      state.SkipWithError(("find by label failed, CK_RV " + std::to_string(rv)).c_str());
      break;
    }
  }
  f->C_CloseSession(s);
  state.counters["objects"] = static_cast<double>(n);
}

// --- the budget summary ------------------------------------------------------------------------

void print_budgets(const Reporter& r, const std::vector<Key>& keys, int big_entries) {
  std::printf(
      "\nBudgets (issue 3); signing figures are signatures per second, medians of "
      "the repetitions\n");
  for (const Key& k : keys) {
    const std::string base = "sign/" + k.name + "/";
    const double ossl = r.value(base + "openssl", 1);
    for (const char* impl : {"certvault", "softhsm2"}) {
      const double one = r.value(base + impl, 1);
      const double two = r.value(base + impl, 2);
      const bool ours = std::strcmp(impl, "certvault") == 0;
      const std::string who = std::string(impl) + (ours ? "" : " (peer, no budget)");
      budget_line(k.name + " C_Sign 1 thread / raw OpenSSL, " + who,
                  fmt("%.0f / %.0f = %.3fx", one, ossl, ossl > 0 ? one / ossl : 0),
                  one > 0 && ossl > 0, ours ? ">= 0.9x" : "-", one >= 0.9 * ossl);
      budget_line(k.name + " C_Sign 2 threads / 1 thread, " + who,
                  fmt("%.0f / %.0f = %.3fx", two, one, one > 0 ? two / one : 0), one > 0 && two > 0,
                  ours ? ">= 1.7x" : "-", two >= 1.7 * one);
    }
    // The same budgets timed side by side, in alternating batches (bench_support.h).
    const double beside = r.value(base + "certvault-beside-openssl", 1, "ratio");
    budget_line(k.name + " C_Sign 1 thread / raw OpenSSL, certvault, side by side",
                fmt("%.3fx", beside), beside > 0, ">= 0.9x", beside >= 0.9);
    const double scaling = r.value(base + "2-threads-beside-1", 1, "ours_scaling");
    const double raw_scaling = r.value(base + "2-threads-beside-1", 1, "reference_scaling");
    const double relative = r.value(base + "2-threads-beside-1", 1, "relative");
    budget_line(k.name + " C_Sign 2 threads / 1 thread, certvault, side by side",
                fmt("%.3fx", scaling), scaling > 0, ">= 1.7x", scaling >= 1.7);
    budget_line(k.name + " openssl 2 threads / 1 thread, side by side (reference)",
                fmt("%.3fx", raw_scaling), raw_scaling > 0, "-", true);
    budget_line(k.name + " certvault's scaling / openssl's, side by side (reference)",
                fmt("%.3fx", relative), relative > 0, "-", true);
    // References: what OpenSSL itself gives with a new or a duplicated context per
    // signature, and how each way scales to two threads.
    for (const char* variant : {"openssl", "openssl-ctx-per-op", "openssl-ctx-dup"}) {
      const double one = r.value(base + variant, 1);
      const double two = r.value(base + variant, 2);
      if (std::strcmp(variant, "openssl") != 0)
        budget_line(k.name + " " + variant + " 1 thread / openssl (reference)",
                    fmt("%.0f / %.0f = %.3fx", one, ossl, ossl > 0 ? one / ossl : 0),
                    one > 0 && ossl > 0, "-", true);
      budget_line(k.name + " " + variant + " 2 threads / 1 thread (reference)",
                  fmt("%.0f / %.0f = %.3fx", two, one, one > 0 ? two / one : 0), one > 0 && two > 0,
                  "-", true);
    }
  }
  for (int entries : {big_entries, 2}) {
    const std::string name = "certvault/entries:" + std::to_string(entries);
    const double us = r.value("find-by-label/" + name, 1);
    const bool budget = entries >= 10000;  // the budget is set at 10,000 entries
    budget_line("C_FindObjects* by label, " + name, fmt("%.4f ms", us / 1000), us > 0,
                budget ? "<= 0.1 ms" : "-", us <= 100);
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const char* softhsm_env = std::getenv("CERTVAULT_BENCH_SOFTHSM2");
  const std::string softhsm_path = softhsm_env && *softhsm_env ? softhsm_env : kSoftHsmDefault;
  const char* entries_env = std::getenv("CERTVAULT_BENCH_ENTRIES");
  const int big_entries = entries_env && *entries_env ? std::atoi(entries_env) : 10000;
  if (big_entries < 1) die("CERTVAULT_BENCH_ENTRIES must be a positive number");

  // Setup, once per run.
  auto t0 = std::chrono::steady_clock::now();
  std::vector<Key> keys = make_sign_vault(scratch() / "sign");
  std::fprintf(stderr, "setup: 2-entry vault (EC P-256, RSA-2048) in %.1f s\n", seconds_since(t0));
  t0 = std::chrono::steady_clock::now();
  make_big_vault(scratch() / "big", big_entries);
  std::fprintf(stderr, "setup: %d-entry vault in %.1f s\n", big_entries, seconds_since(t0));
  make_softhsm_token(scratch() / "softhsm", keys);

  // certvault's slot 0 is the signing vault, slot 1 the 10,000-entry one.
  const fs::path conf = scratch() / "pkcs11.conf";
  std::ofstream(conf) << (scratch() / "sign").string() << "\n"
                      << (scratch() / "big").string() << "\n";
  ::setenv("CERTVAULT_PKCS11_CONF", conf.c_str(), 1);
  Module certvault{"certvault"}, softhsm{"softhsm2"};
  const char* module_env = std::getenv("CERTVAULT_BENCH_MODULE");
  certvault.load(module_env && *module_env ? module_env : CERTVAULT_PKCS11_MODULE);
  softhsm.load(softhsm_path);
  Token cv_sign(certvault, "bench-sign"), cv_big(certvault, "bench-10k"), hsm(softhsm, "bench");

  std::vector<std::string> big_labels, sign_labels;
  for (int i = 0; i < 1024; ++i)
    big_labels.push_back("entry-" + std::to_string((i * 7919) % big_entries));
  for (const Key& k : keys) sign_labels.push_back(k.name);
  // The first search of a token builds its object table; that is not what is measured.
  t0 = std::chrono::steady_clock::now();
  cv_big.private_key(big_labels[0]);
  std::fprintf(stderr, "setup: first C_FindObjects* on the %d-entry token in %.1f ms\n",
               big_entries, 1000 * seconds_since(t0));

  benchmark::AddCustomContext("openssl", OpenSSL_version(OPENSSL_VERSION));
  benchmark::AddCustomContext("certvault module", certvault.version());
  benchmark::AddCustomContext("softhsm2 module", softhsm.version() + " (" + softhsm_path + ")");

  for (const Key& k : keys) {
    const std::string base = "sign/" + k.name + "/";
    const CK_OBJECT_HANDLE cv_key = cv_sign.private_key(k.name);
    const CK_OBJECT_HANDLE hsm_key = hsm.private_key(k.name);
    cv_sign.sign_once(cv_key, k);
    hsm.sign_once(hsm_key, k);
    auto sign = [&](const std::string& name, auto fn) {
      benchmark::RegisterBenchmark((base + name).c_str(), fn)
          ->Threads(1)
          ->Threads(2)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    };
    const Key* key = &k;
    sign("openssl", [key](benchmark::State& s) { BM_OpenSslSign(s, key); });
    sign("openssl-ctx-per-op", [key](benchmark::State& s) { BM_OpenSslSignNewContext(s, key); });
    sign("openssl-ctx-dup", [key](benchmark::State& s) { BM_OpenSslSignDupContext(s, key); });
    sign("certvault",
         [&cv_sign, cv_key, key](benchmark::State& s) { BM_Pkcs11Sign(s, &cv_sign, cv_key, key); });
    sign("softhsm2",
         [&hsm, hsm_key, key](benchmark::State& s) { BM_Pkcs11Sign(s, &hsm, hsm_key, key); });
    auto side_by_side = [&](const std::string& name, auto fn) {
      benchmark::RegisterBenchmark((base + name).c_str(), fn)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    };
    side_by_side("certvault-beside-openssl", [&cv_sign, cv_key, key](benchmark::State& s) {
      BM_Pkcs11SignBesideOpenSsl(s, &cv_sign, cv_key, key);
    });
    side_by_side("2-threads-beside-1", [&cv_sign, cv_key, key](benchmark::State& s) {
      BM_SignTwoThreadsBesideOne(s, &cv_sign, cv_key, key);
    });
  }
  auto find = [](const std::string& name, const Token* token,
                 const std::vector<std::string>* labels) {
    benchmark::RegisterBenchmark(
        ("find-by-label/" + name).c_str(),
        [token, labels](benchmark::State& s) { BM_Pkcs11FindByLabel(s, token, labels); })
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  };
  find("certvault/entries:" + std::to_string(big_entries), &cv_big, &big_labels);
  find("certvault/entries:2", &cv_sign, &sign_labels);
  find("softhsm2/entries:2", &hsm, &sign_labels);

  Reporter reporter(isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_ColorTabular
                                          : benchmark::ConsoleReporter::OO_Tabular);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  print_budgets(reporter, keys, big_entries);

  certvault.unload();
  softhsm.unload();
  benchmark::Shutdown();
  return 0;
}
