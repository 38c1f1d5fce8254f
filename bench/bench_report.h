// The budget summary the PKCS#11 benchmark programs print after Google Benchmark's table:
// each run's figures kept, medians of the repetitions, one line per budget.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace certvault::bench {

// Whether a run produced no figure: Google Benchmark 1.7 (Debian 12) flags an error with
// Run::error_occurred, 1.8 and later (Debian 13) a skip or an error with Run::skipped.
template <class R>
bool run_failed(const R& r) {
  if constexpr (requires { r.skipped; })
    return static_cast<unsigned>(r.skipped) != 0;
  else
    return r.error_occurred;
}

// The console table, and each run's figure kept for the budget lines printed at the end.
class Reporter : public benchmark::ConsoleReporter {
 public:
  using ConsoleReporter::ConsoleReporter;

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (run_failed(r)) continue;
      // Under "": signatures per second for the signing runs, microseconds per find
      // otherwise; under its name, each counter (the side-by-side ratios).
      std::map<std::string, double> figures;
      auto ips = r.counters.find("items_per_second");
      figures[""] = ips != r.counters.end() ? ips->second.value : r.GetAdjustedRealTime();
      for (const auto& [name, counter] : r.counters) figures[name] = counter.value;
      for (const auto& [name, v] : figures) {
        const Figure key{r.run_name.function_name, r.threads, name};
        if (r.run_type == Run::RT_Iteration) {
          samples_[key].push_back(v);
        } else if (r.aggregate_name == "median") {
          medians_[key] = v;
        }
      }
    }
  }

  // The median of this run's repetitions, or 0 when the benchmark did not run.
  double value(const std::string& name, int64_t threads, const std::string& counter = "") const {
    const Figure key{name, threads, counter};
    if (auto m = medians_.find(key); m != medians_.end()) return m->second;
    auto s = samples_.find(key);
    if (s == samples_.end() || s->second.empty()) return 0;
    std::vector<double> v = s->second;
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  }

 private:
  using Figure = std::tuple<std::string, int64_t, std::string>;  // benchmark, threads, counter
  std::map<Figure, std::vector<double>> samples_;
  std::map<Figure, double> medians_;
};

// One line per budget or reference ratio; nothing for what this run did not measure
// (--benchmark_filter).
inline void budget_line(const std::string& what, const std::string& measured, bool measured_ok,
                        const std::string& limit, bool holds) {
  if (!measured_ok) return;
  const char* verdict = limit == "-" ? "" : holds ? "holds" : "MISSED";
  std::printf("  %-66s %-30s %-10s %s\n", what.c_str(), measured.c_str(), limit.c_str(), verdict);
}

inline std::string fmt(const char* f, double a, double b = 0, double c = 0) {
  char buf[128];
  std::snprintf(buf, sizeof buf, f, a, b, c);
  return buf;
}

}  // namespace certvault::bench
