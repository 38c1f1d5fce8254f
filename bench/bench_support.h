// What the benchmark programs share: failing setup, a vault filled with entries, and
// side-by-side timing for the budgets that compare two ways of doing one thing.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "vault.h"

namespace certvault::bench {

// Setup that fails ends the program: a benchmark of a half-made vault means nothing.
[[noreturn]] inline void die(const std::string& what) {
  std::fprintf(stderr, "bench setup failed: %s\n", what.c_str());
  std::exit(1);
}

// Gives the unlocked vault a CA and `n` EC P-256 entries it issued, entry-0 ... entry-(n-1),
// committed 2,000 at a time.
inline void fill_with_entries(Vault& v, int n) {
  CaRequest ca;
  ca.not_after = now() + 3650 * 86400LL;
  if (auto r = v.create_ca(ca); !r) die(r.error().message);
  constexpr int kBatch = 2000;
  for (int start = 0; start < n; start += kBatch) {
    std::vector<IssueRequest> reqs;
    for (int i = start; i < std::min(n, start + kBatch); ++i) {
      IssueRequest r;
      r.nickname = "entry-" + std::to_string(i);
      r.not_after = now() + 365 * 86400LL;
      reqs.push_back(std::move(r));
    }
    if (auto r = v.create_many(reqs); !r) die(r.error().message);
  }
}

// --- side-by-side timing ----------------------------------------------------------------
//
// On this project's shared VMs the host's speed drifts by up to a third from one second to
// the next. Two ways of signing timed one after the other then disagree by more than a
// 10% budget whichever is faster, and medians of interleaved repetitions still move by
// 15% from run to run. So the ratio budgets are also timed side by side: each benchmark
// iteration times a batch of one way and then a batch of the other (in turn first), and
// the ratio of the summed times compares the two under the same conditions.

// Times `batch` calls of `op` (each returns false on failure); adds the seconds to `total`.
template <class Op>
bool time_batch(Op& op, int batch, double& total) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < batch; ++i)
    if (!op()) return false;
  total += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return true;
}

// `ours` beside `reference`, one operation each per call. Counters: each one's rate per
// second and "ratio", ours over the reference's (>1: ours is faster).
template <class Ours, class Reference>
void run_side_by_side(benchmark::State& state, int batch, Ours& ours, Reference& reference) {
  double t_ours = 0, t_ref = 0;
  bool ours_first = true;
  for (auto _ : state) {
    const bool ok = ours_first
                        ? time_batch(ours, batch, t_ours) && time_batch(reference, batch, t_ref)
                        : time_batch(reference, batch, t_ref) && time_batch(ours, batch, t_ours);
    if (!ok) {
      state.SkipWithError("an operation failed");
      return;
    }
    ours_first = !ours_first;
  }
  const double n = static_cast<double>(state.iterations()) * batch;
  state.counters["ours/s"] = n / t_ours;
  state.counters["reference/s"] = n / t_ref;
  state.counters["ratio"] = t_ref / t_ours;
}

// Two threads beside one: each iteration times `batch` calls of `first` alone, then
// `batch` calls of `first` and of `second` at once on two threads (in turn first). Each
// of the two ops must be usable from its own thread (its own session or context).
// Counters: the rate of one thread and of two, and "ratio", two threads' over one's.
// Starting the second thread is inside the timed batch, which counts against two threads.
template <class Op>
void run_two_threads_beside_one(benchmark::State& state, int batch, Op& first, Op& second) {
  double t_one = 0, t_two = 0;
  bool one_first = true;
  auto both = [&] {
    bool second_ok = false;
    const auto start = std::chrono::steady_clock::now();
    std::thread helper([&] {
      double ignored = 0;
      second_ok = time_batch(second, batch, ignored);
    });
    double ignored = 0;
    const bool first_ok = time_batch(first, batch, ignored);
    helper.join();
    t_two += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return first_ok && second_ok;
  };
  for (auto _ : state) {
    const bool ok = one_first ? time_batch(first, batch, t_one) && both()
                              : both() && time_batch(first, batch, t_one);
    if (!ok) {
      state.SkipWithError("an operation failed");
      return;
    }
    one_first = !one_first;
  }
  const double n = static_cast<double>(state.iterations()) * batch;
  state.counters["1 thread/s"] = n / t_one;
  state.counters["2 threads/s"] = 2 * n / t_two;
  state.counters["ratio"] = 2 * t_one / t_two;
}

}  // namespace certvault::bench
