// Vault budgets (docs/PERFORMANCE.md): unlock vs Argon2id alone, opening 1,000 and 10,000
// entry vaults without the PIN, find by nickname, and create into a 10,000-entry vault.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <string>

#include "bench_support.h"
#include "keys.h"
#include "seal.h"
#include "vault.h"

namespace cv = certvault;
namespace fs = std::filesystem;

namespace {

using cv::bench::die;

const cv::SecureBytes& pin() {
  static const cv::SecureBytes p = cv::SecureBytes::from("bench-pin-1234");
  return p;
}

fs::path scratch() {
  static const fs::path dir = [] {
    char tmpl[] = "/tmp/certvault-bench-XXXXXX";
    fs::path d = mkdtemp(tmpl);
    std::atexit([] { fs::remove_all(scratch()); });
    return d;
  }();
  return dir;
}

// A vault of `n` CA-issued EC P-256 entries, made once per size and reused.
fs::path vault_of(int n, cv::KdfParams kdf = {1, 8192}) {
  static std::map<int, fs::path> made;
  if (auto it = made.find(n); it != made.end()) return it->second;
  fs::path dir = scratch() / ("vault-" + std::to_string(n));
  cv::InitOptions opts;
  opts.label = "bench";
  opts.kdf = kdf;
  auto init = cv::Vault::init(dir, pin(), opts);
  if (!init) die(init.error().message);
  cv::bench::fill_with_entries(init->first, n);
  made[n] = dir;
  return dir;
}

void unlock_repeatedly(benchmark::State& state, const fs::path& dir) {
  auto v = cv::Vault::open(dir);
  if (!v) die(v.error().message);
  for (auto _ : state) {
    if (auto r = v->unlock(pin()); !r) die(r.error().message);
    state.PauseTiming();
    v->lock();
    state.ResumeTiming();
  }
}

void BM_Argon2idAlone(benchmark::State& state) {
  cv::KdfParams kdf;  // interactive defaults, as `certvault init` uses
  auto salt = cv::seal::random_bytes(cv::seal::kSaltBytes);
  for (auto _ : state) benchmark::DoNotOptimize(cv::seal::pin_key(pin(), salt, kdf));
}
BENCHMARK(BM_Argon2idAlone)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Unlock(benchmark::State& state) {
  static const fs::path dir = [] {
    fs::path d = scratch() / "unlock";
    auto init = cv::Vault::init(d, pin(), {});  // interactive defaults
    if (!init) die(init.error().message);
    cv::IssueRequest r;
    r.nickname = "client";
    r.not_after = cv::now() + 30 * 86400LL;
    r.self_signed = true;
    if (auto c = init->first.create(r); !c) die(c.error().message);
    return d;
  }();
  unlock_repeatedly(state, dir);
}
BENCHMARK(BM_Unlock)->Unit(benchmark::kMillisecond)->UseRealTime();

// What unlock costs beyond Argon2id: the vaults here use the cheapest Argon2id (1 pass,
// 8 KiB, a few microseconds), so the figure is the rest: reading the wrong-PIN counter, the
// manifest hash and the MAC over it, on one thread (Vault::Threads::kOne, as the provider
// and the PKCS#11 module unlock; the agent and the CLI hash beside Argon2id, which this
// cost leaves nothing to hide behind).
void BM_UnlockBeyondArgon2id(benchmark::State& state) {
  unlock_repeatedly(state, vault_of(static_cast<int>(state.range(0))));
}
BENCHMARK(BM_UnlockBeyondArgon2id)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);

void BM_OpenWithoutPin(benchmark::State& state) {
  fs::path dir = vault_of(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto v = cv::Vault::open(dir);
    if (!v) die(v.error().message);
    benchmark::DoNotOptimize(v->entries().size());
  }
  state.counters["entries"] = static_cast<double>(state.range(0));
}
BENCHMARK(BM_OpenWithoutPin)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);

void BM_FindByNickname(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  auto v = cv::Vault::open(vault_of(n));
  if (!v) die(v.error().message);
  std::vector<std::string> names;
  for (int i = 0; i < 1024; ++i) names.push_back("entry-" + std::to_string((i * 7919) % n));
  size_t i = 0;
  for (auto _ : state) {
    auto e = v->find(names[i++ & 1023]);
    if (!e) die("find missed");
    benchmark::DoNotOptimize(e);
  }
}
BENCHMARK(BM_FindByNickname)->Arg(1000)->Arg(10000)->Unit(benchmark::kMicrosecond);

void BM_KeyGenEcP256(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(cv::keys::generate(cv::KeyType::kEcP256));
}
BENCHMARK(BM_KeyGenEcP256)->Unit(benchmark::kMicrosecond);

// One create (EC P-256, issued by the vault CA, committed with fsync) into a vault that
// already holds 10,000 entries. Key generation is measured above, to subtract.
void BM_CreateInto(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  auto v = cv::Vault::open(vault_of(n));
  if (!v) die(v.error().message);
  if (auto r = v->unlock(pin()); !r) die(r.error().message);
  static int serial = 0;
  for (auto _ : state) {
    cv::IssueRequest r;
    r.nickname = "new-" + std::to_string(serial++);
    r.not_after = cv::now() + 30 * 86400LL;
    if (auto c = v->create(r); !c) die(c.error().message);
  }
}
BENCHMARK(BM_CreateInto)->Arg(10000)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
