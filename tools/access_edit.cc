#include "access_edit.h"

#include <json/json.h>

#include <algorithm>
#include <array>

#include "access.h"
#include "cli.h"

namespace certvault::cli {
namespace {

constexpr std::array<std::pair<AccessEdit::Op, const char*>, 6> kOps{{
    {AccessEdit::Op::kAllow, "allow"},
    {AccessEdit::Op::kDeny, "deny"},
    {AccessEdit::Op::kForget, "forget"},
    {AccessEdit::Op::kReset, "reset"},
    {AccessEdit::Op::kPublic, "public"},
    {AccessEdit::Op::kPrivate, "private"},
}};

}  // namespace

std::string AccessEdit::to_json() const {
  Json::Value v;
  for (const auto& [o, name] : kOps)
    if (o == op) v["op"] = name;
  v["kind"] = std::string(to_string(kind));
  v["value"] = value;
  Json::StreamWriterBuilder w;
  w["indentation"] = "";
  return Json::writeString(w, v);
}

Result<AccessEdit> AccessEdit::from_json(std::string_view text) {
  Json::Value v;
  Json::CharReaderBuilder b;
  std::unique_ptr<Json::CharReader> r(b.newCharReader());
  if (!r->parse(text.data(), text.data() + text.size(), &v, nullptr) || !v.isObject())
    return fail(Code::kInvalidInput, "an access change that is not a JSON object");
  AccessEdit e;
  bool known = false;
  for (const auto& [o, name] : kOps)
    if (v["op"].isString() && v["op"].asString() == name) {
      e.op = o;
      known = true;
    }
  if (!known) return fail(Code::kInvalidInput, "an access change with an unknown operation");
  CV_TRY(kind, parse_peer_kind(v["kind"].isString() ? v["kind"].asString() : ""));
  e.kind = kind;
  e.value = v["value"].isString() ? v["value"].asString() : "";
  return e;
}

Result<void> check_edit_for_owner(const AccessEdit& edit, uid_t owner) {
  const bool adds = edit.op == AccessEdit::Op::kAllow || edit.op == AccessEdit::Op::kDeny;
  if (adds && edit.kind == PeerKind::kExe && owner != 0)
    return fail(Code::kRefused,
                "--exe rules are honoured only by an agent running as root, and this vault "
                "belongs to uid " +
                    std::to_string(owner) +
                    " (its agent runs as that user and cannot read another user's "
                    "/proc/PID/exe); use --uid, --gid or --unit");
  return {};
}

Result<Entry> apply_access_edit(Vault& vault, const std::string& nickname, const AccessEdit& edit) {
  CV_CHECK(check_edit_for_owner(edit, vault.owner_uid()));
  CV_CHECK(vault.refresh());
  auto entry = vault.find(nickname);
  if (!entry) return no_entry(vault, nickname);
  using Op = AccessEdit::Op;
  if (edit.op == Op::kPublic || edit.op == Op::kPrivate)
    return vault.set_listed_publicly(nickname, edit.op == Op::kPublic);
  std::vector<AccessRule> rules = entry->access;
  const auto about = [&](const AccessRule& r) {
    return r.kind == edit.kind && r.value == edit.value;
  };
  switch (edit.op) {
    case Op::kAllow:
    case Op::kDeny: {
      AccessRule rule{edit.op == Op::kAllow, edit.kind, edit.value};
      CV_CHECK(check_access_rule(rule));
      // One rule per peer: a new verdict replaces the old one.
      std::erase_if(rules, about);
      rules.push_back(rule);
      break;
    }
    case Op::kForget:
      if (std::none_of(rules.begin(), rules.end(), about))
        return fail(Code::kNotFound, "'" + nickname + "' has no rule about " +
                                         std::string(to_string(edit.kind)) + " " + edit.value);
      std::erase_if(rules, about);
      break;
    default:
      rules.clear();
  }
  return vault.set_access(nickname, std::move(rules));
}

}  // namespace certvault::cli
