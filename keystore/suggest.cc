#include "suggest.h"

#include <algorithm>
#include <cctype>

namespace certvault {
namespace {

char lower(char c) {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

// Optimal string alignment distance: insertions, deletions, substitutions and swaps of
// two neighbours each cost 1.
size_t distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
          lower(a[i - 2]) == lower(b[j - 1]))
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

std::vector<std::string> closest_names(std::string_view word,
                                       const std::vector<std::string>& names) {
  // Nicknames and commands are short: a third of the word may be wrong, at least one
  // character, at most three.
  const size_t allowed = std::clamp<size_t>(word.size() / 3, 1, 3);
  std::vector<std::pair<size_t, std::string>> close;
  for (const auto& name : names) {
    if (name == word) continue;
    const size_t d = distance(word, name);
    if (d <= allowed)
      close.emplace_back(d, name);
    else if (word.size() >= 3 && name.starts_with(word))  // cut short: --nam for --names
      close.emplace_back(allowed, name);
  }
  // The nearest ones, at most three, in the order they were given.
  std::vector<std::string> out;
  if (close.empty()) return out;
  const size_t nearest =
      std::min_element(close.begin(), close.end(), [](const auto& x, const auto& y) {
        return x.first < y.first;
      })->first;
  for (const auto& [d, name] : close)
    if (d == nearest && out.size() < 3) out.push_back(name);
  return out;
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& names) {
  auto close = closest_names(word, names);
  if (close.empty()) return "";
  std::string text = "did you mean ";
  for (size_t i = 0; i < close.size(); ++i) {
    if (i > 0) text += i + 1 == close.size() ? " or " : ", ";
    text += "'" + close[i] + "'";
  }
  return text + "?";
}

std::unexpected<Error> no_entry_named(std::string_view nickname, std::string_view where,
                                      const std::vector<std::string>& nicknames,
                                      std::string_view otherwise) {
  std::string hint = did_you_mean(nickname, nicknames);
  if (hint.empty()) hint = otherwise;
  std::string message = "no entry named '" + std::string(nickname) + "' in " + std::string(where);
  if (hint.empty()) return fail(Code::kNotFound, std::move(message), Remedy::kList);
  return fail(Code::kNotFound, message + "; " + hint);
}

}  // namespace certvault
