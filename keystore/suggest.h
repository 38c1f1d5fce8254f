// "Did you mean" hints: the names closest to one that matched none (a misspelt nickname,
// command or option), and the not-found error every command gives for a nickname.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "error.h"

namespace certvault {

// The names closest to `word` (at most three, closest first), by edit distance with
// swapped neighbours counted as one edit, ignoring case; none when nothing is close.
std::vector<std::string> closest_names(std::string_view word,
                                       const std::vector<std::string>& names);

// "did you mean 'a'?" or "did you mean 'a' or 'b'?"; "" when nothing is close.
std::string did_you_mean(std::string_view word, const std::vector<std::string>& names);

// "no entry named 'N' in WHERE; did you mean 'M'?", or with `otherwise` in place of the
// question when no nickname is close; with neither, Remedy::kList (the CLI says how to see
// the nicknames, in words for any program).
std::unexpected<Error> no_entry_named(std::string_view nickname, std::string_view where,
                                      const std::vector<std::string>& nicknames,
                                      std::string_view otherwise = {});

}  // namespace certvault
