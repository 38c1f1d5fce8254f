// Input rules shared by every front end: nicknames and dates.
#include <charconv>
#include <ctime>

#include "vault.h"

namespace certvault {

Result<void> check_nickname(std::string_view nickname) {
  auto bad = [&](std::string why) {
    std::string shown;  // never echo control or non-ASCII bytes back to a terminal
    for (unsigned char c : nickname) shown += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
    return fail(Code::kInvalidInput, "nickname '" + shown + "' " + why +
                                         "; use 1-64 letters, digits, spaces, '-' or '_'");
  };
  if (nickname.empty())
    return fail(Code::kInvalidInput,
                "nickname is empty; use 1-64 letters, digits, spaces, '-' or '_'");
  if (nickname.size() > 64)
    return bad("is " + std::to_string(nickname.size()) + " characters long");
  for (unsigned char c : nickname) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == ' ' || c == '-' || c == '_';
    if (!ok) {
      // Never echo control or non-ASCII bytes back to a terminal.
      if (c < 0x20 || c >= 0x7f) return bad("contains a control or non-ASCII character");
      return bad(std::string("contains '") + static_cast<char>(c) + "'");
    }
  }
  if (nickname.front() == ' ' || nickname.back() == ' ') return bad("starts or ends with a space");
  return {};
}

Result<Time> parse_date(std::string_view text) {
  auto bad = [&] {
    std::string shown;
    for (unsigned char c : text) shown += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
    return fail(Code::kInvalidInput,
                "date '" + shown + "' is not valid; use YYYY-MM-DD or +Nd (N days from now)");
  };
  if (!text.empty() && text.front() == '+') {
    if (text.size() < 3 || text.back() != 'd') return bad();
    long days = 0;
    auto digits = text.substr(1, text.size() - 2);
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), days);
    if (ec != std::errc() || p != digits.data() + digits.size() || days < 0 || days > 36500)
      return bad();
    return now() + static_cast<Time>(days) * 86400;
  }
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return bad();
  int y = 0, m = 0, d = 0;
  auto num = [&](size_t pos, size_t len, int& out) {
    auto [p, ec] = std::from_chars(text.data() + pos, text.data() + pos + len, out);
    return ec == std::errc() && p == text.data() + pos + len;
  };
  if (!num(0, 4, y) || !num(5, 2, m) || !num(8, 2, d)) return bad();
  if (y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1 || d > 31) return bad();
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = m - 1;
  tm.tm_mday = d;
  tm.tm_hour = 23;
  tm.tm_min = 59;
  tm.tm_sec = 59;
  Time t = timegm(&tm);
  std::tm back{};
  gmtime_r(&t, &back);
  if (back.tm_mday != d) return bad();  // 2027-02-30 and the like
  return t;
}

std::optional<Time> parse_time(std::string_view text) {
  // Exactly what format_time writes: "YYYY-MM-DDTHH:MM:SSZ".
  if (text.size() != 20 || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' ||
      text[16] != ':' || text[19] != 'Z')
    return std::nullopt;
  int f[6] = {};
  const size_t at[6] = {0, 5, 8, 11, 14, 17}, len[6] = {4, 2, 2, 2, 2, 2};
  for (int i = 0; i < 6; ++i) {
    auto [p, ec] = std::from_chars(text.data() + at[i], text.data() + at[i] + len[i], f[i]);
    if (ec != std::errc() || p != text.data() + at[i] + len[i]) return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = f[0] - 1900;
  tm.tm_mon = f[1] - 1;
  tm.tm_mday = f[2];
  tm.tm_hour = f[3];
  tm.tm_min = f[4];
  tm.tm_sec = f[5];
  const Time t = timegm(&tm);
  if (format_time(t) != text) return std::nullopt;  // out-of-range fields
  return t;
}

static std::string format(Time t, const char* pattern) {
  time_t tt = static_cast<time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  size_t n = std::strftime(buf, sizeof buf, pattern, &tm);
  return std::string(buf, n);
}

std::string format_date(Time t) {
  return format(t, "%Y-%m-%d");
}
std::string format_time(Time t) {
  return format(t, "%Y-%m-%dT%H:%M:%SZ");
}

}  // namespace certvault
