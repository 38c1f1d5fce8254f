// The median the stand-alone benchmark programs report (bench_process, bench_agent_vault,
// bench_machine): of an odd count the middle value, of an even count the mean of the two.
#pragma once

#include <algorithm>
#include <vector>

namespace certvault::bench {

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace certvault::bench
