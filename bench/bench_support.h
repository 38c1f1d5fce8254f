// What the benchmark programs share: failing setup, and a vault filled with entries.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
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

}  // namespace certvault::bench
