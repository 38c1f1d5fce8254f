#include <utility>

#include "commands.h"

namespace certvault::cli {
namespace {

template <typename T, typename Parse>
Result<std::optional<T>> parse_optional(const std::optional<std::string>& text, Parse parse) {
  if (!text) return std::optional<T>();
  CV_TRY(value, parse(*text));
  return std::optional<T>(std::move(value));
}

}  // namespace

Result<std::optional<Time>> parse_optional_date(const std::optional<std::string>& text) {
  return parse_optional<Time>(text, parse_date);
}

Result<std::optional<KeyType>> parse_optional_key_type(const std::optional<std::string>& text) {
  return parse_optional<KeyType>(text, parse_key_type);
}

Result<std::optional<Hash>> parse_optional_hash(const std::optional<std::string>& text) {
  return parse_optional<Hash>(text, parse_hash);
}

Result<void> check_days(int64_t days, std::string_view option) {
  constexpr int64_t kMaxDays = 100 * 366;
  if (days < 0 || days > kMaxDays) {
    return invalid(std::string(option) + " " + std::to_string(days) +
                   " is out of range; give a number of days from 0 to " + std::to_string(kMaxDays));
  }
  return {};
}

Result<void> check_stdin_once(std::string_view first_option, std::string_view first,
                              std::string_view second_option, std::string_view second) {
  if (first == "-" && second == "-") {
    return invalid(std::string(first_option) + " and " + std::string(second_option) +
                   " cannot both read stdin ('-'); put one of them in a file");
  }
  return {};
}

}  // namespace certvault::cli
