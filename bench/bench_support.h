// What the benchmark programs share: failing setup, a vault filled with entries, and
// side-by-side timing for the budgets that compare two ways of doing one thing.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
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
// the ratio of the summed times compares the two under the same drift. (A second thread
// also depends on what the host does with the second vCPU, which no ordering evens out.)

// Times `batch` calls of `op` (each returns false on failure); adds the seconds to `total`.
template <class Op>
bool time_batch(Op& op, int batch, double& total) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < batch; ++i)
    if (!op()) return false;
  total += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return true;
}

// `ours` beside `reference`, one operation each per call: a batch of each per iteration,
// `ours` first in every other one. Counters: each one's rate per second and "ratio", ours
// over the reference's (>1: ours is faster).
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

// A second thread kept for a whole benchmark, which runs one job whenever asked, so that
// no thread start falls inside a timed batch.
class SecondThread {
 public:
  SecondThread() : worker_([this] { serve(); }) {}
  SecondThread(const SecondThread&) = delete;
  SecondThread& operator=(const SecondThread&) = delete;
  ~SecondThread() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }
  void start(std::function<bool()> job) {
    std::lock_guard lock(mu_);
    job_ = std::move(job);
    cv_.notify_all();
  }
  // The started job's result, once it has ended.
  bool wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return done_; });
    done_ = false;
    return result_;
  }

 private:
  void serve() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || job_; });
      if (stop_) return;
      auto job = std::move(job_);
      job_ = nullptr;
      lock.unlock();
      const bool result = job();
      lock.lock();
      result_ = result;
      done_ = true;
      cv_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::function<bool()> job_;
  bool done_ = false, result_ = false, stop_ = false;
  std::thread worker_;  // last: starts once the rest is made
};

// Two threads beside one, for `ours` and for `reference` at once: each iteration times four
// batches, in an order that rotates from one iteration to the next: `ours1` alone, `ours1`
// and `ours2` on two threads, `reference1` alone, `reference1` and `reference2` on two
// threads. Each op must be usable from its own thread (its own session or context).
// Counters: "ours_scaling" and "reference_scaling", each the rate of two threads over one, and
// "relative", the first over the second. Only the single-thread comparison is immune to
// the host: what the second vCPU gets from it can differ between the batches.
template <class Ours, class Reference>
void run_scaling_side_by_side(benchmark::State& state, int batch, Ours& ours1, Ours& ours2,
                              Reference& reference1, Reference& reference2) {
  SecondThread second;
  double t[4] = {};
  auto on_two_threads = [&](auto& a, auto& b, double& total) {
    const auto start = std::chrono::steady_clock::now();
    second.start([&] {
      double ignored = 0;
      return time_batch(b, batch, ignored);
    });
    double ignored = 0;
    const bool a_ok = time_batch(a, batch, ignored);
    const bool b_ok = second.wait();
    total += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return a_ok && b_ok;
  };
  const std::function<bool()> phases[4] = {
      [&] { return time_batch(ours1, batch, t[0]); },
      [&] { return on_two_threads(ours1, ours2, t[1]); },
      [&] { return time_batch(reference1, batch, t[2]); },
      [&] { return on_two_threads(reference1, reference2, t[3]); }};
  size_t first = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < 4; ++i) {
      if (!phases[(first + i) % 4]()) {
        state.SkipWithError("an operation failed");
        return;
      }
    }
    first = (first + 1) % 4;
  }
  const double ours = 2 * t[0] / t[1], reference = 2 * t[2] / t[3];
  state.counters["ours_scaling"] = ours;
  state.counters["reference_scaling"] = reference;
  state.counters["relative"] = ours / reference;
}

}  // namespace certvault::bench
