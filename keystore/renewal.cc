#include "renewal.h"

#include <sodium.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

namespace certvault {
namespace {

constexpr Time kMinute = 60;
constexpr Time kHour = 3600;
constexpr Time kDay = 86400;
constexpr Time kMaxPeriod = 36500 * kDay;

template <typename T>
bool number(std::string_view s, T& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

std::string shown(std::string_view text) {
  std::string out;  // never echo control or non-ASCII bytes back to a terminal
  for (unsigned char c : text) out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  return out;
}

std::optional<Time> period(std::string_view text) {
  if (text.size() < 2) return std::nullopt;
  const char unit = text.back();
  const Time scale = unit == 's'   ? 1
                     : unit == 'm' ? kMinute
                     : unit == 'h' ? kHour
                     : unit == 'd' ? kDay
                                   : 0;
  Time n = 0;
  if (scale == 0 || !number(text.substr(0, text.size() - 1), n) || n <= 0 || n > kMaxPeriod / scale)
    return std::nullopt;
  return n * scale;
}

}  // namespace

Time renewal_now() {
#ifdef CERTVAULT_TEST_CLOCK
  if (const char* t = ::secure_getenv("CERTVAULT_TEST_NOW"); t && *t) {
    std::string_view v(t);
    Time at = 0;
    if (v.front() == '+') {
      if (auto p = period(v.substr(1))) return now() + *p;
    } else if (number(v, at)) {
      return at;
    }
  }
#endif
  return now();
}

bool check_renew_rule(const RenewRule& r) {
  switch (r.kind) {
    case RenewRule::Kind::kOff:
      return true;
    case RenewRule::Kind::kBefore:
      return r.before >= kMinute && r.before <= 3650 * kDay;
    case RenewRule::Kind::kAt:
      return r.num > 0 && r.num < r.den && r.den <= 1000;
  }
  return false;
}

bool check_lifetime(Time seconds) {
  return seconds >= kHour && seconds <= kMaxPeriod;
}

Result<Time> parse_period(std::string_view text, std::string_view option) {
  if (auto p = period(text)) return *p;
  return fail(Code::kInvalidInput, std::string(option) + " '" + shown(text) +
                                       "' is not a duration; write N followed by s, m, h or d "
                                       "(30d, 12h, 90m)");
}

std::string format_period(Time s) {
  if (s % kDay == 0) return std::to_string(s / kDay) + "d";
  if (s % kHour == 0) return std::to_string(s / kHour) + "h";
  if (s % kMinute == 0) return std::to_string(s / kMinute) + "m";
  return std::to_string(s) + "s";
}

Result<RenewRule> parse_renew_before(std::string_view text) {
  CV_TRY(seconds, parse_period(text, "--before"));
  RenewRule r;
  r.kind = RenewRule::Kind::kBefore;
  r.before = seconds;
  if (!check_renew_rule(r))
    return fail(Code::kInvalidInput,
                "--before '" + shown(text) + "' is out of range; give 1m to 3650d before expiry");
  return r;
}

Result<RenewRule> parse_renew_at(std::string_view text) {
  RenewRule r;
  r.kind = RenewRule::Kind::kAt;
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos || !number(text.substr(0, slash), r.num) ||
      !number(text.substr(slash + 1), r.den) || !check_renew_rule(r))
    return fail(Code::kInvalidInput, "--at '" + shown(text) +
                                         "' is not a fraction of the lifetime; write N/M with "
                                         "0 < N < M <= 1000, such as 2/3");
  return r;
}

std::string rule_text(const RenewRule& r) {
  switch (r.kind) {
    case RenewRule::Kind::kOff:
      return "off";
    case RenewRule::Kind::kBefore:
      return format_period(r.before) + " before expiry";
    case RenewRule::Kind::kAt:
      return "at " + std::to_string(r.num) + "/" + std::to_string(r.den) + " of its lifetime";
  }
  return "off";
}

std::string rule_spec(const RenewRule& r) {
  switch (r.kind) {
    case RenewRule::Kind::kBefore:
      return format_period(r.before);
    case RenewRule::Kind::kAt:
      return std::to_string(r.num) + "/" + std::to_string(r.den);
    case RenewRule::Kind::kOff:
      break;
  }
  return "off";
}

Result<RenewRule> parse_rule_spec(std::string_view spec) {
  if (spec == "off") return RenewRule{};
  if (spec.find('/') != std::string_view::npos) return parse_renew_at(spec);
  return parse_renew_before(spec);
}

bool check_publish_targets(const PublishTargets& t) {
  std::vector<std::string_view> paths;
  for (const std::string* p : {&t.cert, &t.chain, &t.fullchain, &t.key_uri}) {
    if (p->empty()) continue;
    if ((*p)[0] != '/' || std::filesystem::path(*p).lexically_normal().native() != *p ||
        p->back() == '/' ||
        std::any_of(p->begin(), p->end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; }))
      return false;
    if (std::find(paths.begin(), paths.end(), *p) != paths.end()) return false;
    paths.push_back(*p);
  }
  // Nobody but the files' owner may change what programs trust as their certificate.
  return !paths.empty() && t.mode <= 0777 && (t.mode & 022) == 0;
}

Renewer renewer_of(const Entry& entry, const Generation& g,
                   std::span<const OutsideIssuer> issuers) {
  if (g.key_imported) return Renewer::kByHand;
  switch (g.issuer) {
    case IssuerKind::kVaultCa:
      return Renewer::kVaultCa;
    case IssuerKind::kSelfSigned:
      return Renewer::kSelfSigned;
    case IssuerKind::kExternal:
      if (entry.issuer.empty()) return Renewer::kByHand;
      for (const auto& i : issuers)
        if (i.name == entry.issuer && i.protocol == IssuerProtocol::kAcme) return Renewer::kAcme;
      return Renewer::kCmp;
  }
  return Renewer::kByHand;
}

std::string_view to_string(Renewer r) {
  switch (r) {
    case Renewer::kVaultCa:
      return "vault-ca";
    case Renewer::kSelfSigned:
      return "self-signed";
    case Renewer::kCmp:
      return "cmp";
    case Renewer::kAcme:
      return "acme";
    case Renewer::kByHand:
      return "by-hand";
  }
  return "by-hand";
}

std::optional<Time> window_start(const RenewRule& r, Time not_before, Time not_after) {
  switch (r.kind) {
    case RenewRule::Kind::kOff:
      return std::nullopt;
    case RenewRule::Kind::kBefore:
      return not_after - r.before;
    case RenewRule::Kind::kAt: {
      const Time life = std::max<Time>(0, not_after - not_before);
      // life < 2^63 / 1000 for any date a certificate can carry
      return not_before + life / r.den * r.num + life % r.den * r.num / r.den;
    }
  }
  return std::nullopt;
}

Time spread(std::string_view entry_id, uint32_t generation, Time window) {
  return stable_offset(entry_id, generation, window / 10);
}

Time stable_offset(std::string_view entry_id, uint32_t generation, Time span) {
  if (span <= 0) return 0;
  std::string input(entry_id);
  input += '\0';
  input += std::to_string(generation);
  unsigned char digest[8];
  crypto_generichash(digest, sizeof digest, reinterpret_cast<const unsigned char*>(input.data()),
                     input.size(), nullptr, 0);
  uint64_t h = 0;
  for (int i = 7; i >= 0; --i) h = (h << 8) | digest[i];  // little-endian, as documented
  return static_cast<Time>(h % static_cast<uint64_t>(span));
}

Time retry_delay(uint32_t failures) {
  if (failures == 0) return 0;
  Time d = kHour;
  for (uint32_t i = 1; i < failures && d < kDay; ++i) d *= 2;
  return std::min(d, kDay);
}

std::optional<RenewalPlan> plan_renewal(const Entry& entry, const Policy& policy,
                                        std::span<const OutsideIssuer> issuers) {
  const Generation* g = entry.current();
  if (!g) return std::nullopt;
  RenewalPlan p;
  p.from_policy = !entry.renew_rule;
  p.rule = entry.renew_rule.value_or(policy.renew);
  p.current = *g;
  p.renewer = renewer_of(entry, *g, issuers);
  if (auto start = window_start(p.rule, g->not_before, g->not_after))
    p.due = *start + spread(entry.id, g->number, g->not_after - *start);
  if (entry.renewal.failures > 0)  // the backoff, or the CA's own later time (Retry-After)
    p.retry_at = std::max(entry.renewal.last_failure + retry_delay(entry.renewal.failures),
                          entry.renewal.not_before);
  return p;
}

}  // namespace certvault
