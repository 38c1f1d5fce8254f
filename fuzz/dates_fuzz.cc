// The date parsers (keystore/dates.cc) under libFuzzer: parse_date, which reads every DATE
// the CLI takes (--end-date, policy --max-end-date, --not-after; YYYY-MM-DD or +Nd), and
// parse_time, which reads the times certvault wrote itself (an ACME order's renewal window,
// a renewal report). A date that parses is the end of the day it names; a time that parses
// prints back as it was; and the first 8 bytes, as a time, survive format_time/parse_time.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "check.h"
#include "vault.h"

namespace {

using namespace certvault;

void check(bool ok, const char* what) {
  fuzz::check(ok, "dates_fuzz", what);
}

constexpr Time kLastSecondOf9999 = 253402300799;  // 9999-12-31T23:59:59Z

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const Time before = now();
  if (auto date = parse_date(text)) {
    if (text.starts_with('+')) {
      check(*date >= before && *date <= now() + 36500LL * 86400, "+Nd out of range");
    } else {
      check(format_date(*date) == text, "a date does not print back as it was given");
      check(format_time(*date) == std::string(text) + "T23:59:59Z",
            "a date is not its last second");
    }
  } else {
    check(!date.error().message.empty(), "a refusal without a sentence");
  }
  if (auto time = parse_time(text))
    check(format_time(*time) == text, "a time does not print back as it was given");

  if (size >= sizeof(Time)) {
    Time t = 0;
    std::memcpy(&t, data, sizeof t);
    const auto back = parse_time(format_time(t));
    if (t >= 0 && t <= kLastSecondOf9999)
      check(back == t, "format_time/parse_time loses a time");
    else
      check(!back || *back == t, "parse_time(format_time(t)) is another time");
  }
  return 0;
}
