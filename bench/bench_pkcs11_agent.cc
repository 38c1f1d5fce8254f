// C_Sign through the agent beside C_Sign in-process (docs/PERFORMANCE.md, "The agent"), all
// in one run, for EC P-256 and RSA-2048 on the same keys. Budgets: C_Sign/s through the
// agent at least 0.9x the in-process module's for RSA-2048 and 0.5x for EC P-256 on one
// thread; and two client threads through the agent scaling at least 0.85x as well as raw
// OpenSSL's own two threads, measured in the same rotation (these VMs' second vCPU is not
// always a whole one).
//
// One vault, made here at the cheapest Argon2id, holds both keys. A `certvault agent`
// started here serves it on a socket in a temporary directory and is unlocked through that
// socket. The module decides once per token, on first use, whether an agent serves its
// vault (Token::agent_locked: CERTVAULT_AGENT_SOCK, then the default sockets), so one
// module instance cannot take both ways. A shared object dlopen()ed twice from one path is
// the same instance, so the module is copied to a second path in the temporary directory
// and both copies are loaded (RTLD_LOCAL: each keeps its own tokens and statics):
//  - the in-process instance is loaded and its token first used with CERTVAULT_AGENT_SOCK
//    unset (the vault is not served by any agent at the default sockets either), then
//    logged in with the PIN, as programs do today;
//  - the agent instance is loaded and its token first used with CERTVAULT_AGENT_SOCK set:
//    no CKF_LOGIN_REQUIRED, no C_Login, C_SignInit + C_Sign go to the agent.
// Both tokens' flags are checked before anything is timed.
//
// Rows per key (C_SignInit + C_Sign per iteration, each thread in a session of its own;
// raw mechanisms, CKM_ECDSA on a SHA-256 hash and CKM_RSA_PKCS on a SHA-256 DigestInfo, as
// bench_pkcs11 and `openssl speed`):
//  - in-process, agent, raw OpenSSL (EVP_PKEY_sign, one context): 1 and 2 threads, timed
//    one after the other (the agent rows on one thread also report the agent's CPU time
//    and context switches per signature, from /proc/PID/task/*);
//  - agent beside in-process, alternating batches (run_side_by_side, bench_support.h): the
//    one-thread budget;
//  - two threads beside one through the agent, rotated with raw OpenSSL's one and two
//    threads (run_scaling_side_by_side): the scaling budget.
// After the table it prints each budget with its limit, the measured median and whether it
// holds.
//
// Usage: bench_pkcs11_agent [Google Benchmark flags]. $CERTVAULT_BENCH_MODULE loads another
// build of the module.
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "agent_client.h"
#include "bench_pkcs11_support.h"
#include "bench_report.h"
#include "bench_support.h"
#include "ck.h"
#include "ossl.h"
#include "vault.h"

#ifndef CERTVAULT_CLI
#error "CERTVAULT_CLI must name the certvault program"
#endif
#ifndef CERTVAULT_PKCS11_MODULE
#error "CERTVAULT_PKCS11_MODULE must name the PKCS#11 module"
#endif

extern char** environ;

namespace cv = certvault;
namespace fs = std::filesystem;
namespace agent = certvault::agent;

namespace {

constexpr std::string_view kPin = "bench-pin-1234";

using cv::bench::budget_line;
using cv::bench::die;
using cv::bench::fmt;
using cv::bench::Pkcs11Signer;
using cv::bench::Reporter;

pid_t g_agent_pid = 0;  // the agent started here, stopped at exit

void stop_agent() {
  if (g_agent_pid <= 0) return;
  ::kill(g_agent_pid, SIGTERM);
  int status = 0;
  while (::waitpid(g_agent_pid, &status, 0) < 0 && errno == EINTR) {
  }
  g_agent_pid = 0;
}

// Removed at exit, after the agent is stopped (also when setup dies); the path is never
// destroyed, so the exit handler can still read it.
const fs::path& scratch() {
  static const fs::path* dir = [] {
    char tmpl[] = "/tmp/certvault-bench-pkcs11-agent-XXXXXX";
    const char* made = mkdtemp(tmpl);
    if (!made) die("cannot make a temporary directory");
    auto* d = new fs::path(made);
    std::atexit([] {
      stop_agent();
      std::error_code ec;
      fs::remove_all(scratch(), ec);
    });
    return d;
  }();
  return *dir;
}

// --- the keys and the agent ------------------------------------------------------------

struct Key {
  std::string name;  // nickname in the vault, CKA_LABEL on the token
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

// DigestInfo for SHA-256 (RFC 8017 9.2, note 1), then the hash.
std::vector<uint8_t> sha256_digest_info(const std::vector<uint8_t>& hash) {
  static constexpr uint8_t kPrefix[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                        0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
  std::vector<uint8_t> out(sizeof kPrefix + hash.size());
  std::memcpy(out.data(), kPrefix, sizeof kPrefix);
  std::memcpy(out.data() + sizeof kPrefix, hash.data(), hash.size());
  return out;
}

// A vault (cheapest Argon2id: unlocking is not what is measured) holding one EC P-256 and
// one RSA-2048 entry, and their keys.
std::vector<Key> make_sign_vault(const fs::path& dir) {
  std::vector<Key> keys;
  const auto hash = sha256_of("certvault bench_pkcs11_agent");
  keys.push_back({"ec-p256", cv::KeyType::kEcP256, CKM_ECDSA, hash, nullptr});
  keys.push_back(
      {"rsa-2048", cv::KeyType::kRsa2048, CKM_RSA_PKCS, sha256_digest_info(hash), nullptr});
  cv::InitOptions opts;
  opts.label = "bench-agent";
  opts.kdf = {1, 8192};
  auto init = cv::Vault::init(dir, cv::SecureBytes::from(std::string(kPin)), opts);
  if (!init) die(init.error().message);
  cv::Vault& v = init->first;
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

bool answers(const fs::path& socket) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket.c_str(), sizeof addr.sun_path - 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// `certvault agent` serving `vault` with an audit log, as deployed; its pid once it answers.
pid_t start_agent(const fs::path& vault, const fs::path& socket) {
  std::vector<std::string> args = {
      CERTVAULT_CLI, "agent",         "--vault",     vault.string(),
      "--socket",    socket.string(), "--audit-log", (scratch() / "audit.log").string()};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, (scratch() / "agent.err").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = 0;
  if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0)
    die(std::string("cannot start ") + CERTVAULT_CLI);
  posix_spawn_file_actions_destroy(&fa);
  for (int i = 0; i < 400; ++i) {
    if (answers(socket)) return pid;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  die("the agent did not answer on " + socket.string());
}

void unlock_in_agent(const fs::path& socket, const fs::path& vault) {
  agent::Client client(socket);
  agent::Frame f(agent::Type::kUnlock);
  f.add(agent::Tag::kVault, vault.string());
  f.add(agent::Tag::kPin, kPin);
  if (auto r = client.call(f, nullptr, 120000); !r) die("unlock: " + r.error().message);
}

// The agent's CPU time (ns) and context switches (voluntary and not), summed over its threads.
struct AgentUse {
  double cpu_ns = 0;
  double switches = 0;
};
AgentUse agent_use() {
  AgentUse u;
  std::error_code ec;
  for (const auto& task :
       fs::directory_iterator("/proc/" + std::to_string(g_agent_pid) + "/task", ec)) {
    std::ifstream sched(task.path() / "schedstat");
    double run = 0;
    if (sched >> run) u.cpu_ns += run;
    std::ifstream status(task.path() / "status");
    std::string line;
    while (std::getline(status, line))
      if (line.starts_with("voluntary_ctxt_switches:") ||
          line.starts_with("nonvoluntary_ctxt_switches:"))
        u.switches += std::atof(line.c_str() + line.find(':') + 1);
  }
  return u;
}

// --- the two module instances ----------------------------------------------------------

std::string ck_text(const CK_UTF8CHAR* s, size_t n) {
  std::string out(reinterpret_cast<const char*>(s), n);
  out.erase(out.find_last_not_of(' ') + 1);
  return out;
}

// One loaded copy of the module, its token, and the session that logged in (kept open:
// closing a token's last session logs it out).
struct Module {
  std::string name;
  void* lib = nullptr;
  CK_FUNCTION_LIST_PTR f = nullptr;
  CK_SLOT_ID slot = 0;
  CK_FLAGS token_flags = 0;
  CK_SESSION_HANDLE main_session = 0;

  // Loads `path` and uses its token "bench-agent" for the first time (which is when the
  // module decides whether the agent serves it).
  void load(const std::string& path) {
    lib = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) die(::dlerror());
    auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(lib, "C_GetFunctionList"));
    if (!get || get(&f) != CKR_OK) die(path + ": no C_GetFunctionList");
    CK_C_INITIALIZE_ARGS args{};
    args.flags = CKF_OS_LOCKING_OK;
    if (CK_RV rv = f->C_Initialize(&args); rv != CKR_OK)
      die(path + ": C_Initialize returned " + std::to_string(rv));
    CK_ULONG n = 0;
    if (f->C_GetSlotList(CK_TRUE, nullptr, &n) != CKR_OK) die(name + ": C_GetSlotList");
    std::vector<CK_SLOT_ID> slots(n);
    if (f->C_GetSlotList(CK_TRUE, slots.data(), &n) != CKR_OK) die(name + ": C_GetSlotList");
    bool found = false;
    for (CK_SLOT_ID s : slots) {
      CK_TOKEN_INFO info{};
      if (f->C_GetTokenInfo(s, &info) == CKR_OK &&
          ck_text(info.label, sizeof info.label) == "bench-agent") {
        slot = s;
        token_flags = info.flags;
        found = true;
      }
    }
    if (!found) die(name + ": no token labelled bench-agent");
    main_session = cv::bench::open_session(f, slot);
    if (!main_session) die(name + ": C_OpenSession");
  }
  void login() const {
    std::string pin(kPin);
    if (CK_RV rv = f->C_Login(main_session, CKU_USER, reinterpret_cast<CK_UTF8CHAR_PTR>(pin.data()),
                              pin.size());
        rv != CKR_OK)
      die(name + ": C_Login returned " + std::to_string(rv));
  }
  void unload() {
    if (f) f->C_Finalize(nullptr);
    if (lib) ::dlclose(lib);
    f = nullptr;
    lib = nullptr;
  }
  CK_OBJECT_HANDLE private_key(const std::string& label) const {
    auto h = cv::bench::private_key_labelled(f, main_session, label);
    if (!h) die(name + ": no single private key labelled " + label);
    return *h;
  }
};

// --- signers -----------------------------------------------------------------------------

// C_SignInit + C_Sign with `key`'s mechanism, in a session of its own on `m`'s slot.
Pkcs11Signer signer(const Module* m, CK_OBJECT_HANDLE handle, const Key* key) {
  return Pkcs11Signer(m->f, m->slot, handle, key->mechanism, key->input);
}

// As `openssl speed` does: one context, made and initialised once, then EVP_PKEY_sign.
class RawSigner {
 public:
  explicit RawSigner(const Key* key) : key_(key) {
    ctx_.reset(EVP_PKEY_CTX_new_from_pkey(cv::ossl::libctx(), key->pkey.get(), nullptr));
    if (!ctx_ || EVP_PKEY_sign_init(ctx_.get()) != 1 ||
        (key->rsa() && EVP_PKEY_CTX_set_rsa_padding(ctx_.get(), RSA_PKCS1_PADDING) <= 0))
      ctx_.reset();
  }
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

// --- benchmarks --------------------------------------------------------------------------

template <class Sign>
void sign_per_iteration(benchmark::State& state, Sign& sign, const char* what) {
  for (auto _ : state) {
    if (!sign()) {
      state.SkipWithError(what);
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Pkcs11Sign(benchmark::State& state, const Module* m, CK_OBJECT_HANDLE handle,
                   const Key* key, bool through_agent) {
  Pkcs11Signer sign = signer(m, handle, key);
  if (!sign.ready()) {
    state.SkipWithError("C_OpenSession failed");
    return;
  }
  // On one thread through the agent: what the agent spends per signature.
  const bool measure_agent = through_agent && state.threads() == 1;
  const AgentUse before = measure_agent ? agent_use() : AgentUse{};
  sign_per_iteration(state, sign, "C_SignInit/C_Sign failed");
  if (measure_agent && state.iterations() > 0) {
    const AgentUse after = agent_use();
    const double n = static_cast<double>(state.iterations());
    state.counters["agent_cpu_us"] = (after.cpu_ns - before.cpu_ns) / 1000 / n;
    state.counters["agent_ctxsw"] = (after.switches - before.switches) / n;
  }
}

void BM_OpenSslSign(benchmark::State& state, const Key* key) {
  RawSigner sign(key);
  if (!sign.ready()) {
    state.SkipWithError("EVP_PKEY_sign_init failed");
    return;
  }
  sign_per_iteration(state, sign, "EVP_PKEY_sign failed");
}

// Signatures in one batch of a side-by-side benchmark: a few milliseconds of signing each.
int batch_for(const Key* key) {
  return key->rsa() ? 8 : 128;
}

// Through the agent beside in-process, alternating batches: "ratio" is the agent's rate
// over the in-process one.
void BM_AgentBesideInProcess(benchmark::State& state, const Module* agent_m,
                             CK_OBJECT_HANDLE agent_key, const Module* local_m,
                             CK_OBJECT_HANDLE local_key, const Key* key) {
  Pkcs11Signer ours = signer(agent_m, agent_key, key), reference = signer(local_m, local_key, key);
  if (!ours.ready() || !reference.ready()) {
    state.SkipWithError("C_OpenSession failed");
    return;
  }
  cv::bench::run_side_by_side(state, batch_for(key), ours, reference);
}

// Two client threads beside one through the agent (two sessions), and raw OpenSSL's two
// threads beside one (two contexts), in one rotation of batches.
void BM_AgentTwoThreadsBesideOne(benchmark::State& state, const Module* m, CK_OBJECT_HANDLE handle,
                                 const Key* key) {
  Pkcs11Signer ours1 = signer(m, handle, key), ours2 = signer(m, handle, key);
  RawSigner reference1(key), reference2(key);
  if (!ours1.ready() || !ours2.ready() || !reference1.ready() || !reference2.ready()) {
    state.SkipWithError("C_OpenSession or EVP_PKEY_sign_init failed");
    return;
  }
  cv::bench::run_scaling_side_by_side(state, batch_for(key), ours1, ours2, reference1, reference2);
}

// --- the budget summary ------------------------------------------------------------------

void print_budgets(const Reporter& r, const std::vector<Key>& keys) {
  std::printf("\nBudgets (the agent, C_Sign); signatures per second, medians of the repetitions\n");
  for (const Key& k : keys) {
    const std::string base = "pkcs11-agent/" + k.name + "/";
    const double limit = k.rsa() ? 0.9 : 0.5;
    const double beside = r.value(base + "agent-beside-in-process", 1, "ratio");
    budget_line(k.name + " C_Sign 1 thread, agent / in-process, side by side", fmt("%.3fx", beside),
                beside > 0, fmt(">= %.1fx", limit), beside >= limit);
    const double agent1 = r.value(base + "agent", 1), local1 = r.value(base + "in-process", 1);
    budget_line(k.name + " C_Sign 1 thread, agent / in-process, one after the other",
                fmt("%.0f / %.0f = %.3fx", agent1, local1, local1 > 0 ? agent1 / local1 : 0),
                agent1 > 0 && local1 > 0, "-", true);
    const std::string two = base + "agent-2-threads-beside-1";
    const double scaling = r.value(two, 1, "ours_scaling");
    const double raw = r.value(two, 1, "reference_scaling");
    const double relative = r.value(two, 1, "relative");
    budget_line(k.name + " agent's 2-thread scaling / openssl's, side by side",
                fmt("%.3fx / %.3fx = %.3fx", scaling, raw, relative), relative > 0, ">= 0.85x",
                relative >= 0.85);
    for (const char* variant : {"in-process", "agent", "openssl"}) {
      const double one = r.value(base + variant, 1), two_threads = r.value(base + variant, 2);
      budget_line(k.name + " " + variant + " 2 threads / 1 thread, one after the other",
                  fmt("%.0f / %.0f = %.3fx", two_threads, one, one > 0 ? two_threads / one : 0),
                  one > 0 && two_threads > 0, "-", true);
    }
    const double cpu = r.value(base + "agent", 1, "agent_cpu_us");
    const double sw = r.value(base + "agent", 1, "agent_ctxsw");
    budget_line(k.name + " agent's CPU and context switches per signature (1 thread)",
                fmt("%.1f us, %.2f", cpu, sw), cpu > 0, "-", true);
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  const fs::path vault = scratch() / "vault";
  std::vector<Key> keys = make_sign_vault(vault);
  const fs::path socket = scratch() / "agent.sock";
  g_agent_pid = start_agent(fs::canonical(vault), socket);
  unlock_in_agent(socket, fs::canonical(vault));

  const fs::path conf = scratch() / "pkcs11.conf";
  std::ofstream(conf) << vault.string() << "\n";
  ::setenv("CERTVAULT_PKCS11_CONF", conf.c_str(), 1);
  const char* module_env = std::getenv("CERTVAULT_BENCH_MODULE");
  const fs::path module_path = module_env && *module_env ? module_env : CERTVAULT_PKCS11_MODULE;
  // The second instance: the same module under another path (see the top of this file).
  const fs::path module_copy = scratch() / "certvault-pkcs11-agent.so";
  fs::copy_file(module_path, module_copy);

  Module local{"in-process"}, through{"agent"};
  ::unsetenv("CERTVAULT_AGENT_SOCK");
  local.load(module_path);
  if (!(local.token_flags & CKF_LOGIN_REQUIRED))
    die("the in-process module found an agent serving the vault");
  local.login();
  ::setenv("CERTVAULT_AGENT_SOCK", socket.c_str(), 1);
  through.load(module_copy);
  ::unsetenv("CERTVAULT_AGENT_SOCK");
  if (through.token_flags & CKF_LOGIN_REQUIRED)
    die("the module copy did not take the vault through the agent");

  benchmark::AddCustomContext("openssl", OpenSSL_version(OPENSSL_VERSION));
  benchmark::AddCustomContext("module", module_path.string() + " and a copy");

  for (const Key& k : keys) {
    const std::string base = "pkcs11-agent/" + k.name + "/";
    const CK_OBJECT_HANDLE local_key = local.private_key(k.name);
    const CK_OBJECT_HANDLE agent_key = through.private_key(k.name);
    // One signature each, so that keys are decrypted (in-process) and resolved (agent)
    // before anything is timed.
    for (auto [m, h] : {std::pair{&local, local_key}, std::pair{&through, agent_key}}) {
      Pkcs11Signer once = signer(m, h, &k);
      if (!once.ready() || !once()) die(m->name + ": cannot sign with " + k.name);
    }
    const Key* key = &k;
    const Module* lp = &local;
    const Module* ap = &through;
    auto sign = [&](const std::string& name, auto fn) {
      benchmark::RegisterBenchmark((base + name).c_str(), fn)
          ->Threads(1)
          ->Threads(2)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    };
    sign("in-process", [=](benchmark::State& s) { BM_Pkcs11Sign(s, lp, local_key, key, false); });
    sign("agent", [=](benchmark::State& s) { BM_Pkcs11Sign(s, ap, agent_key, key, true); });
    sign("openssl", [=](benchmark::State& s) { BM_OpenSslSign(s, key); });
    auto side_by_side = [&](const std::string& name, auto fn) {
      benchmark::RegisterBenchmark((base + name).c_str(), fn)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    };
    side_by_side("agent-beside-in-process", [=](benchmark::State& s) {
      BM_AgentBesideInProcess(s, ap, agent_key, lp, local_key, key);
    });
    side_by_side("agent-2-threads-beside-1",
                 [=](benchmark::State& s) { BM_AgentTwoThreadsBesideOne(s, ap, agent_key, key); });
  }

  Reporter reporter(isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_ColorTabular
                                          : benchmark::ConsoleReporter::OO_Tabular);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  print_budgets(reporter, keys);

  local.unload();
  through.unload();
  benchmark::Shutdown();  // the exit handler stops the agent and removes the directory
  return 0;
}
