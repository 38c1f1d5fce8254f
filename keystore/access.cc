#include "access.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <optional>

namespace certvault {
namespace {

// (uid_t)-1 and (gid_t)-1 mean "no id" to the kernel (setresuid(2)), so they name nobody.
constexpr uint64_t kMaxId = 4294967294u;
// UNIT_NAME_MAX in systemd's unit-name.h, less its NUL.
constexpr size_t kMaxUnitName = 255;
// PATH_MAX, less its NUL.
constexpr size_t kMaxPath = 4095;

// Decimal without sign or leading zeros, so that one id has one spelling.
std::optional<uint32_t> parse_id(std::string_view s) {
  if (s.empty() || s.size() > 10 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v > kMaxId) return std::nullopt;
  return static_cast<uint32_t>(v);
}

// The unit types of systemd.unit(5).
constexpr std::array<std::string_view, 11> kUnitTypes{".service", ".socket", ".scope",    ".slice",
                                                      ".timer",   ".target", ".path",     ".mount",
                                                      ".swap",    ".device", ".automount"};

// As systemd's unit_name_is_valid: [A-Za-z0-9:_.\-] and one '@' between a template's
// prefix and its instance. A bare template ("foo@.service") runs no process, so no peer
// is ever in it.
bool plausible_unit(std::string_view s) {
  if (s.empty() || s.size() > kMaxUnitName) return false;
  auto type = std::find_if(kUnitTypes.begin(), kUnitTypes.end(),
                           [&](std::string_view t) { return s.ends_with(t); });
  if (type == kUnitTypes.end()) return false;
  std::string_view name = s.substr(0, s.size() - type->size());
  if (name.empty()) return false;
  size_t at = name.find('@');
  if (at != std::string_view::npos &&
      (at == 0 || at + 1 == name.size() || name.find('@', at + 1) != std::string_view::npos))
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' ||
           c == '_' || c == '.' || c == '\\' || c == '-' || c == '@';
  });
}

// Absolute and already in the form the kernel reports in /proc/PID/exe: no "//", "." or
// ".." components, no trailing '/', no control characters.
bool normalised_exe(std::string_view s) {
  if (s.size() < 2 || s.size() > kMaxPath || s[0] != '/' || s.back() == '/') return false;
  if (std::any_of(s.begin(), s.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
    return false;
  return std::filesystem::path(s).lexically_normal().native() == s;
}

// Whether the rule names this peer; nullopt when the peer's value is unknown.
std::optional<bool> matches(const AccessRule& r, const Peer& p) {
  switch (r.kind) {
    case PeerKind::kUid: {
      auto id = parse_id(r.value);
      return id && *id == p.uid;
    }
    case PeerKind::kGid: {
      auto id = parse_id(r.value);
      return id &&
             (*id == p.gid || std::find(p.groups.begin(), p.groups.end(), *id) != p.groups.end());
    }
    case PeerKind::kUnit:
      if (p.unit.empty()) return std::nullopt;
      return p.unit == r.value;
    case PeerKind::kExe:
      if (p.exe.empty()) return std::nullopt;
      return p.exe == r.value;
  }
  return false;
}

}  // namespace

std::string describe(const AccessRule& rule) {
  return std::string(rule.allow ? "allow " : "deny ") + std::string(to_string(rule.kind)) + " " +
         rule.value;
}

Result<void> check_access_rule(const AccessRule& r) {
  auto bad = [&](std::string_view what) {
    return fail(Code::kInvalidInput,
                "access rule '" + describe(r) + "' is not valid: " + std::string(what));
  };
  switch (r.kind) {
    case PeerKind::kUid:
    case PeerKind::kGid:
      if (!parse_id(r.value))
        return bad("give a decimal id from 0 to " + std::to_string(kMaxId) +
                   ", without sign or leading zeros");
      return {};
    case PeerKind::kUnit:
      if (!plausible_unit(r.value))
        return bad(
            "give a systemd unit name such as 'backup.service' (letters, digits, ':_.\\-', "
            "an '@' instance, ending in a unit type such as .service, .socket or .scope; no "
            "'/')");
      return {};
    case PeerKind::kExe:
      if (!normalised_exe(r.value))
        return bad(
            "give the executable's absolute path as /proc/PID/exe shows it (starting with "
            "'/', without '//', '.' or '..' parts or a trailing '/')");
      return {};
  }
  return bad("unknown peer kind");
}

AccessDecision decide_access(const Entry& e, uid_t owner, const Peer& p) {
  const std::string uid = std::to_string(p.uid);
  if (p.uid == owner) return {true, "uid " + uid + " owns the vault"};
  if (p.uid == 0) return {true, "uid 0 is root"};
  for (const AccessRule& r : e.access) {
    if (r.allow) continue;
    auto m = matches(r, p);
    if (!m)
      return {false, describe(r) + ": the peer's " + std::string(to_string(r.kind)) +
                         " is unknown, so it cannot be shown not to match (fail closed)"};
    if (*m) return {false, describe(r)};
  }
  for (const AccessRule& r : e.access) {
    if (!r.allow) continue;
    if (matches(r, p).value_or(false)) return {true, describe(r)};
  }
  return {false, "no rule allows uid " + uid + " (default: only the vault owner and root)"};
}

}  // namespace certvault
