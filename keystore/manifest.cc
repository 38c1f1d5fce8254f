#include "manifest.h"

#include <json/json.h>

#include <algorithm>
#include <charconv>
#include <memory>
#include <set>
#include <unordered_set>

#include "access.h"
#include "renewal.h"
#include "seal.h"
#include "strict_json.h"
#include "vault.h"

namespace certvault::manifest {
namespace {

constexpr std::string_view kMagicPrefix = "certvault-vault ";
constexpr std::string_view kMagic = "certvault-vault 6\n";  // what this version writes
static_assert(kMagic.size() == 18 && kMagic[16] == '0' + kFormat, "kMagic names kFormat");
constexpr std::string_view kMacTag = "mac ";
constexpr size_t kGenFields = 19;
constexpr size_t kGenFieldsBeforeKeyOrigin = 18;  // lines written before field 18 existed

// Text fields go through percent-encoding of '%', tab, CR and LF; "-" stands for empty.
void put_text(std::string& out, std::string_view s) {
  if (s.empty()) {
    out += '-';
    return;
  }
  auto special = [](char c) { return c == '%' || c == '\t' || c == '\n' || c == '\r'; };
  if (s != "-" && std::none_of(s.begin(), s.end(), special)) {
    out += s;  // the common case: nothing to escape
    return;
  }
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : s) {
    if (c == '%' || c == '\t' || c == '\n' || c == '\r' || (s == "-" && c == '-')) {
      out += '%';
      out += kHex[static_cast<unsigned char>(c) >> 4];
      out += kHex[static_cast<unsigned char>(c) & 15];
    } else {
      out += c;
    }
  }
}

std::optional<std::string> get_text(std::string_view s) {
  if (s == "-") return std::string();
  if (s.find('%') == std::string_view::npos) return std::string(s);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
    if (ec != std::errc() || p != s.data() + i + 3) return std::nullopt;
    out += static_cast<char>(v);
    i += 2;
  }
  return out;
}

bool is_lower_hex(std::string_view s, size_t digits) {
  return s.size() == digits && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// 64 lower-case hex digits: never a path.
bool is_object_name(std::string_view s) {
  return is_lower_hex(s, 64);
}

template <typename T>
bool get_num(std::string_view s, T& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

// "off", {"before": seconds} or {"at": "num/den"}.
Json::Value rule_json(const RenewRule& r) {
  if (r.kind == RenewRule::Kind::kOff) return "off";
  Json::Value v(Json::objectValue);
  if (r.kind == RenewRule::Kind::kBefore)
    v["before"] = Json::Int64(r.before);
  else
    v["at"] = std::to_string(r.num) + "/" + std::to_string(r.den);
  return v;
}

std::optional<RenewRule> rule_of(const Json::Value& v) {
  RenewRule r;
  if (v.isString() && v.asString() == "off") return r;
  if (!v.isObject() || v.size() != 1) return std::nullopt;
  if (v.isMember("before") && v["before"].isInt64()) {
    r.kind = RenewRule::Kind::kBefore;
    r.before = v["before"].asInt64();
  } else if (v.isMember("at") && v["at"].isString()) {
    const std::string at = v["at"].asString();
    const size_t slash = at.find('/');
    if (slash == std::string::npos || !get_num(std::string_view(at).substr(0, slash), r.num) ||
        !get_num(std::string_view(at).substr(slash + 1), r.den))
      return std::nullopt;
    r.kind = RenewRule::Kind::kAt;
  } else {
    return std::nullopt;
  }
  if (!check_renew_rule(r)) return std::nullopt;
  return r;
}

// A time read from the manifest: between the epoch and the end of year 9999, so that the
// arithmetic `check` does on it (without the PIN, before any MAC) cannot overflow.
bool is_time(const Json::Value& v) {
  return v.isInt64() && v.asInt64() >= 0 && v.asInt64() <= 253402300799;
}

// Exactly {"number", "last_issued", "next_update", "file"}: the next CRL's number comes from
// it, so one that cannot be read must not restart at 1.
std::optional<CrlState> crl_of(const Json::Value& v) {
  if (!v.isObject() || v.size() != 4 || !v["number"].isUInt64() || !is_time(v["last_issued"]) ||
      !is_time(v["next_update"]) || !v["file"].isString())
    return std::nullopt;
  CrlState c;
  c.number = v["number"].asUInt64();
  c.last_issued = v["last_issued"].asInt64();
  c.next_update = v["next_update"].asInt64();
  c.file = v["file"].asString();
  return c;
}

bool is_serial(const std::string& s) {
  return !s.empty() && s.size() <= 40 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
  });
}

// [{"generation": N, "serial": "HEX", "reason": "keyCompromise", "at": T}, ...], one per
// generation.
std::optional<std::vector<Revocation>> revoked_of(const Json::Value& v) {
  if (!v.isArray()) return std::nullopt;
  std::vector<Revocation> out;
  for (const Json::Value& x : v) {
    if (!x.isObject() || x.size() != 4 || !x["generation"].isUInt() || !x["serial"].isString() ||
        !x["reason"].isString() || !is_time(x["at"]))
      return std::nullopt;
    Revocation r;
    r.generation = x["generation"].asUInt();
    r.serial = x["serial"].asString();
    auto reason = parse_revocation_reason(x["reason"].asString());
    r.at = x["at"].asInt64();
    if (r.generation == 0 || !is_serial(r.serial) || !reason ||
        std::any_of(out.begin(), out.end(),
                    [&](const Revocation& o) { return o.generation == r.generation; }))
      return std::nullopt;
    r.reason = *reason;
    out.push_back(std::move(r));
  }
  return out;
}

std::string compact(const Json::Value& v) {
  Json::StreamWriterBuilder w;
  w["indentation"] = "";
  return Json::writeString(w, v);  // escapes every control character: one line
}

// Unknown members go back as they were read (compact JSON, so they stay one line).
void put_unknown(Json::Value& v, const std::map<std::string, std::string>& unknown) {
  Json::CharReaderBuilder rb;
  std::unique_ptr<Json::CharReader> reader(rb.newCharReader());
  for (const auto& [name, text] : unknown) {
    Json::Value value;
    std::string err;
    if (reader->parse(text.data(), text.data() + text.size(), &value, &err)) v[name] = value;
  }
}

Json::Value policy_json(const Header& h) {
  const Policy& p = h.policy;
  Json::Value v(Json::objectValue);
  put_unknown(v, h.policy_unknown);
  v["max_end_date"] = p.max_end_date ? Json::Value(Json::Int64(*p.max_end_date)) : Json::Value();
  v["default_key_type"] = std::string(to_string(p.default_key_type));
  v["default_hash"] = std::string(to_string(p.default_hash));
  v["export"] = std::string(to_string(p.export_rule));
  if (p.renew.kind != RenewRule::Kind::kOff) v["renew"] = rule_json(p.renew);
  if (p.max_lifetime) v["max_lifetime"] = Json::Int64(*p.max_lifetime);
  // Written only when changed: a vault that keeps the default stays as it was.
  if (p.min_pin_length != kDefaultMinPinLength) v["min_pin_length"] = Json::UInt(p.min_pin_length);
  return v;
}

Json::Value ca_json(const CaRecord& c) {
  Json::Value v(Json::objectValue);
  v["id"] = c.info.id;
  v["object"] = c.object;
  v["active"] = c.info.active;
  v["key_type"] = std::string(to_string(c.info.key_type));
  v["key_id"] = c.info.key_id;
  v["fingerprint"] = c.info.fingerprint;
  v["serial"] = c.info.serial;
  v["subject"] = c.info.subject;
  v["not_before"] = Json::Int64(c.info.not_before);
  v["not_after"] = Json::Int64(c.info.not_after);
  return v;
}

Json::Value der_list(const std::vector<Bytes>& certs) {
  Json::Value v(Json::arrayValue);
  for (const Bytes& der : certs) v.append(seal::to_base64(der));
  return v;
}

Json::Value issuer_json(const IssuerRecord& r) {
  const OutsideIssuer& i = r.info;
  Json::Value v(Json::objectValue);
  v["name"] = i.name;
  v["url"] = i.url;
  if (i.protocol == IssuerProtocol::kAcme) {
    v["protocol"] = "acme";
    v["account_key"] = seal::to_base64(r.sealed_secret);
    if (!i.account.empty()) v["account"] = i.account;
    if (!i.http01_listen.empty()) v["http01_listen"] = i.http01_listen;
    if (!i.dns01_hook.empty()) v["dns01_hook"] = i.dns01_hook;
    if (!i.eab_kid.empty()) {
      v["eab_kid"] = i.eab_kid;
      v["eab_key"] = seal::to_base64(r.sealed_eab_key);
    }
    v["trust"] = der_list(i.trust);
    if (!i.server_ca.empty()) v["server_ca"] = der_list(i.server_ca);
    return v;
  }
  v["protocol"] = "cmp";
  if (!i.reference.empty()) v["reference"] = i.reference;
  if (!r.sealed_secret.empty()) v["secret"] = seal::to_base64(r.sealed_secret);
  if (!i.client_cert.empty()) v["client_cert"] = i.client_cert;
  v["trust"] = der_list(i.trust);
  if (!i.server_ca.empty()) v["server_ca"] = der_list(i.server_ca);
  return v;
}

std::string header_json(const Manifest& m) {
  const Header& h = m.header;
  Json::Value v(Json::objectValue);
  put_unknown(v, h.unknown);
  v["vault_id"] = h.vault_id;
  v["label"] = h.label;
  v["counter"] = Json::UInt64(h.counter);
  v["created_at"] = Json::Int64(h.created_at);
  Json::Value kdf(Json::objectValue);
  kdf["alg"] = "argon2id13";
  kdf["ops"] = Json::UInt64(h.kdf.ops);
  kdf["mem"] = Json::UInt64(h.kdf.mem_bytes);
  kdf["salt"] = seal::to_base64(h.pin_salt);
  v["kdf"] = kdf;
  v["pin_wrap"] = seal::to_base64(h.pin_wrap);
  v["recovery_salt"] = seal::to_base64(h.recovery_salt);
  v["recovery_wrap"] = seal::to_base64(h.recovery_wrap);
  if (h.recovery_chosen) v["recovery_kdf"] = "argon2id13";
  v["policy"] = policy_json(h);
  if (h.crl) {
    Json::Value crl(Json::objectValue);
    crl["number"] = Json::UInt64(h.crl->number);
    crl["last_issued"] = Json::Int64(h.crl->last_issued);
    crl["next_update"] = Json::Int64(h.crl->next_update);
    crl["file"] = h.crl->file;
    v["crl"] = crl;
  }
  Json::Value cas(Json::arrayValue);
  for (const auto& c : m.cas) cas.append(ca_json(c));
  v["cas"] = cas;
  if (!h.issuers.empty()) {
    Json::Value issuers(Json::arrayValue);
    for (const auto& i : h.issuers) issuers.append(issuer_json(i));
    v["issuers"] = issuers;
  }
  Json::StreamWriterBuilder w;
  w["indentation"] = "";
  return Json::writeString(w, v);
}

void put_gen(std::string& out, const EntryRecord& e, const GenRecord& r) {
  const Generation& g = r.info;
  auto num = [&](auto n) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
    out.append(buf, end);
  };
  out += "g\t";
  out += e.id;
  out += '\t';
  put_text(out, e.nickname);
  out += '\t';
  num(g.number);
  for (std::string_view s :
       {to_string(g.status), to_string(g.key_type), to_string(g.hash), to_string(g.issuer)}) {
    out += '\t';
    out += s;
  }
  for (const std::string* s : {&g.key_id, &g.fingerprint, &g.serial}) {
    out += '\t';
    put_text(out, *s);
  }
  for (Time t : {g.not_before, g.not_after, g.created_at, g.exported_at}) {
    out += '\t';
    num(t);
  }
  out += '\t';
  out += r.object;
  out += '\t';
  put_text(out, g.subject);
  out += '\t';
  put_text(out, g.issuer_name);
  out += '\t';
  out += g.key_imported ? "imported" : "generated";
  out += '\n';
}

// The attribute line: known members from their fields, unknown ones as they were read, in
// name order.
void put_attrs(std::string& out, const EntryRecord& e) {
  const Attributes& a = e.attributes();
  if (a.empty()) return;
  std::map<std::string, std::string> members = a.unknown;
  if (!a.access.empty()) {
    Json::Value rules(Json::arrayValue);
    for (const AccessRule& r : a.access) {
      Json::Value rule(Json::objectValue);
      rule["allow"] = r.allow;
      rule[std::string(to_string(r.kind))] = r.value;
      rules.append(rule);
    }
    members["access"] = compact(rules);
  }
  if (a.listed_publicly) members["public"] = "true";
  if (a.renew_rule) members["renew"] = compact(rule_json(*a.renew_rule));
  if (!a.renew_hook.empty()) members["then"] = compact(Json::Value(a.renew_hook));
  if (a.renewal != RenewalState{}) {
    Json::Value r(Json::objectValue);
    r["failures"] = a.renewal.failures;
    r["failures_total"] = Json::UInt64(a.renewal.failures_total);
    r["last_failure"] = Json::Int64(a.renewal.last_failure);
    r["last_error"] = a.renewal.last_error;
    if (a.renewal.not_before) r["not_before"] = Json::Int64(a.renewal.not_before);
    members["renewal"] = compact(r);
  }
  if (a.publish) {
    Json::Value p(Json::objectValue);
    const PublishTargets& t = *a.publish;
    for (const auto& [name, path] :
         {std::pair{"cert", &t.cert}, std::pair{"chain", &t.chain},
          std::pair{"fullchain", &t.fullchain}, std::pair{"key_uri", &t.key_uri}})
      if (!path->empty()) p[name] = *path;
    if (t.owner) p["owner"] = *t.owner;
    p["mode"] = t.mode;
    members["publish"] = compact(p);
  }
  if (!a.revoked.empty()) {
    Json::Value list(Json::arrayValue);
    for (const Revocation& r : a.revoked) {
      Json::Value x(Json::objectValue);
      x["generation"] = r.generation;
      x["serial"] = r.serial;
      x["reason"] = std::string(to_string(r.reason));
      x["at"] = Json::Int64(r.at);
      list.append(x);
    }
    members["revoked"] = compact(list);
  }
  if (!a.issuer.empty()) members["issuer"] = compact(Json::Value(a.issuer));
  out += "a\t";
  out += e.id;
  out += "\t{";
  bool first = true;
  for (const auto& [name, value] : members) {
    if (!first) out += ',';
    first = false;
    out += compact(Json::Value(name));
    out += ':';
    out += value;
  }
  out += "}\n";
}

// A data object's line: "d<TAB><id><TAB><JSON>", members with their default left out.
void put_data(std::string& out, const DataRecord& r) {
  const DataObject& d = r.info;
  Json::Value v(Json::objectValue);
  if (!d.application.empty()) v["application"] = d.application;
  if (!d.object_id.empty()) v["object_id"] = seal::to_hex(d.object_id);
  if (!d.label.empty()) v["label"] = d.label;
  v["private"] = d.is_private;
  v["size"] = d.value_size;
  v["object"] = r.object;
  out += "d\t";
  out += d.id;
  out += '\t';
  out += compact(v);
  out += '\n';
}

struct Fail {
  const std::filesystem::path& source;
  std::unexpected<Error> operator()(std::string why) const {
    return fail(Code::kTampered, "vault manifest " + source.string() + " is damaged (" + why +
                                     "); restore the vault directory from a backup");
  }
};

// Strict, like every known member: an issuer a reader cannot read is damage.
std::optional<std::vector<Bytes>> der_list_of(const Json::Value& v) {
  if (!v.isArray() || v.empty()) return std::nullopt;
  std::vector<Bytes> out;
  for (const Json::Value& c : v) {
    if (!c.isString()) return std::nullopt;
    auto der = seal::from_base64(c.asString());
    if (!der || der->empty()) return std::nullopt;
    out.push_back(std::move(*der));
  }
  return out;
}

// `trust` (required) and `server_ca` (optional): lists of base64 DER certificates.
bool read_anchors(const Json::Value& v, OutsideIssuer& i) {
  auto trust = der_list_of(v["trust"]);
  if (!trust) return false;
  i.trust = std::move(*trust);
  if (!v.isMember("server_ca")) return true;
  auto server_ca = der_list_of(v["server_ca"]);
  if (!server_ca) return false;
  i.server_ca = std::move(*server_ca);
  return true;
}

// ACME (RFC 8555): the directory URL, the sealed account key, the account URL once
// registered, where the http-01 responder listens, the dns-01 hook, and the external account
// binding.
std::optional<IssuerRecord> acme_issuer_of(const Json::Value& v, IssuerRecord r) {
  static const std::set<std::string> kMembers = {
      "name",       "protocol", "url",     "account_key", "account",  "http01_listen",
      "dns01_hook", "eab_kid",  "eab_key", "trust",       "server_ca"};
  OutsideIssuer& i = r.info;
  i.protocol = IssuerProtocol::kAcme;
  for (const std::string& name : v.getMemberNames())
    if (!kMembers.contains(name)) return std::nullopt;
  for (auto [key, field] : {std::pair{"account", &i.account},
                            {"http01_listen", &i.http01_listen},
                            {"dns01_hook", &i.dns01_hook},
                            {"eab_kid", &i.eab_kid}})
    if (v.isMember(key)) {
      if (!v[key].isString() || v[key].asString().empty()) return std::nullopt;
      *field = v[key].asString();
    }
  auto sealed = v["account_key"].isString() ? seal::from_base64(v["account_key"].asString())
                                            : Result<Bytes>(Bytes());
  if (!sealed || sealed->empty()) return std::nullopt;
  r.sealed_secret = std::move(*sealed);
  i.has_secret = true;
  if (v.isMember("eab_key") != !i.eab_kid.empty()) return std::nullopt;  // both or neither
  if (v.isMember("eab_key")) {
    auto eab = v["eab_key"].isString() ? seal::from_base64(v["eab_key"].asString())
                                       : Result<Bytes>(Bytes());
    if (!eab || eab->empty()) return std::nullopt;
    r.sealed_eab_key = std::move(*eab);
  }
  if (!read_anchors(v, i)) return std::nullopt;
  return r;
}

std::optional<IssuerRecord> issuer_of(const Json::Value& v) {
  static const std::set<std::string> kMembers = {"name",   "protocol",    "url",   "reference",
                                                 "secret", "client_cert", "trust", "server_ca"};
  if (!v.isObject()) return std::nullopt;
  for (const std::string& name : v.getMemberNames())
    if (!(v[name].isString() || v[name].isArray())) return std::nullopt;
  IssuerRecord r;
  OutsideIssuer& i = r.info;
  if (!v["name"].isString() || !v["url"].isString()) return std::nullopt;
  i.name = v["name"].asString();
  i.url = v["url"].asString();
  if (!check_nickname(i.name) || i.url.empty()) return std::nullopt;
  if (v["protocol"] == "acme") return acme_issuer_of(v, std::move(r));
  if (v["protocol"] != "cmp") return std::nullopt;
  for (const std::string& name : v.getMemberNames())
    if (!kMembers.contains(name)) return std::nullopt;
  for (auto [key, field] : {std::pair{"reference", &i.reference}, {"client_cert", &i.client_cert}})
    if (v.isMember(key)) {
      if (!v[key].isString() || v[key].asString().empty()) return std::nullopt;
      *field = v[key].asString();
    }
  if (v.isMember("secret")) {
    auto sealed =
        v["secret"].isString() ? seal::from_base64(v["secret"].asString()) : Result<Bytes>(Bytes());
    if (!sealed || sealed->empty()) return std::nullopt;
    r.sealed_secret = std::move(*sealed);
    i.has_secret = true;
  }
  if (i.has_secret == !i.client_cert.empty()) return std::nullopt;  // exactly one way in
  if (!read_anchors(v, i)) return std::nullopt;
  return r;
}

Result<Header> parse_header(std::string_view line, std::vector<CaRecord>& cas, const Fail& bad) {
  Json::Value v;
  if (!parse_strict_json(line, v) || !v.isObject()) return bad("header is not JSON");
  Header h;
  try {
    h.vault_id = v["vault_id"].asString();
    h.label = v["label"].asString();
    h.counter = v["counter"].asUInt64();
    h.created_at = v["created_at"].asInt64();
    const Json::Value& kdf = v["kdf"];
    if (kdf["alg"].asString() != "argon2id13") return bad("unknown key derivation");
    h.kdf.ops = kdf["ops"].asUInt64();
    h.kdf.mem_bytes = kdf["mem"].asUInt64();
    if (!seal::kdf_in_range(h.kdf)) return bad("key-derivation parameters out of range");
    auto b64 = [&](const Json::Value& f) { return seal::from_base64(f.asString()); };
    // pin_wrap may be empty (no user PIN yet) but never missing: a missing field is damage.
    for (const char* field : {"pin_wrap", "recovery_salt", "recovery_wrap"})
      if (!v.isMember(field)) return bad("bad key fields");
    auto salt = b64(kdf["salt"]);
    auto pin_wrap = b64(v["pin_wrap"]);
    auto rsalt = b64(v["recovery_salt"]);
    auto rwrap = b64(v["recovery_wrap"]);
    if (!salt || !pin_wrap || !rsalt || !rwrap) return bad("bad key fields");
    h.pin_salt = *salt;
    h.pin_wrap = *pin_wrap;
    h.recovery_salt = *rsalt;
    h.recovery_wrap = *rwrap;
    if (v.isMember("recovery_kdf")) {
      if (v["recovery_kdf"].asString() != "argon2id13")
        return bad("unknown recovery key derivation");
      h.recovery_chosen = true;
    }
    static const std::set<std::string> kHeaderMembers = {
        "vault_id", "label",         "counter",       "created_at",   "kdf",
        "pin_wrap", "recovery_salt", "recovery_wrap", "recovery_kdf", "policy",
        "cas",      "crl",           "issuers"};
    for (const std::string& name : v.getMemberNames())
      if (!kHeaderMembers.contains(name)) h.unknown.emplace(name, compact(v[name]));
    const Json::Value& p = v["policy"];
    static const std::set<std::string> kPolicyMembers = {
        "max_end_date", "default_key_type", "default_hash",  "export",
        "renew",        "max_lifetime",     "min_pin_length"};
    if (p.isObject())
      for (const std::string& name : p.getMemberNames())
        if (!kPolicyMembers.contains(name)) h.policy_unknown.emplace(name, compact(p[name]));
    if (v.isMember("crl")) {
      auto crl = crl_of(v["crl"]);
      if (!crl) return bad("bad CRL state");
      h.crl = *crl;
    }
    if (!p["max_end_date"].isNull()) h.policy.max_end_date = p["max_end_date"].asInt64();
    if (p.isMember("renew")) {
      auto rule = rule_of(p["renew"]);
      if (!rule) return bad("bad policy renewal rule");
      h.policy.renew = *rule;
    }
    if (p.isMember("max_lifetime")) {
      if (!p["max_lifetime"].isInt64() || !check_lifetime(p["max_lifetime"].asInt64()))
        return bad("bad policy maximum lifetime");
      h.policy.max_lifetime = p["max_lifetime"].asInt64();
    }
    if (p.isMember("min_pin_length")) {
      const Json::Value& n = p["min_pin_length"];
      if (!n.isUInt() || n.asUInt() < 1 || n.asUInt() > kMaxMinPinLength)
        return bad("bad policy minimum PIN length");
      h.policy.min_pin_length = n.asUInt();
    }
    auto kt = parse_key_type(p["default_key_type"].asString());
    auto hash = parse_hash(p["default_hash"].asString());
    auto rule = parse_export_rule(p["export"].asString());
    if (!kt || !hash || !rule) return bad("bad policy");
    h.policy.default_key_type = *kt;
    h.policy.default_hash = *hash;
    h.policy.export_rule = *rule;
    for (const Json::Value& c : v["cas"]) {
      CaRecord r;
      r.info.id = c["id"].asString();
      r.object = c["object"].asString();
      if (!is_object_name(r.object)) return bad("bad CA object name");
      r.info.active = c["active"].asBool();
      auto ckt = parse_key_type(c["key_type"].asString());
      if (!ckt) return bad("bad CA key type");
      r.info.key_type = *ckt;
      r.info.key_id = c["key_id"].asString();
      r.info.fingerprint = c["fingerprint"].asString();
      r.info.serial = c["serial"].asString();
      r.info.subject = c["subject"].asString();
      r.info.not_before = c["not_before"].asInt64();
      r.info.not_after = c["not_after"].asInt64();
      cas.push_back(std::move(r));
    }
    if (v.isMember("issuers")) {
      if (!v["issuers"].isArray()) return bad("bad issuers");
      std::set<std::string> names;
      for (const Json::Value& i : v["issuers"]) {
        auto issuer = issuer_of(i);
        if (!issuer || !names.insert(issuer->info.name).second) return bad("bad issuer");
        h.issuers.push_back(std::move(*issuer));
      }
    }
  } catch (const Json::Exception&) {
    return bad("header field of the wrong type");
  }
  // 32 lower-case hex digits, as init writes it: other bytes would not survive a rewrite.
  if (!is_lower_hex(h.vault_id, 32) || h.pin_salt.size() != seal::kSaltBytes ||
      h.recovery_salt.size() != seal::kSaltBytes)
    return bad("bad header fields");
  return h;
}

Result<void> parse_gen(std::string_view line, Manifest& m, const Fail& bad) {
  std::string_view f[kGenFields];
  size_t n = 0;
  bool ended = false;  // the last field read was the line's last
  while (n < kGenFields && !ended) {
    size_t tab = line.find('\t');
    f[n++] = line.substr(0, tab);
    ended = tab == std::string_view::npos;
    if (!ended) line.remove_prefix(tab + 1);
  }
  if ((n != kGenFields && n != kGenFieldsBeforeKeyOrigin) || !ended || f[0] != "g")
    return bad("an entry line has the wrong number of fields");
  GenRecord r;
  Generation& g = r.info;
  auto nickname = get_text(f[2]);
  auto status = parse_status(f[4]);
  auto kt = parse_key_type(f[5]);
  auto hash = parse_hash(f[6]);
  auto issuer = parse_issuer_kind(f[7]);
  auto key_id = get_text(f[8]);
  auto fp = get_text(f[9]);
  auto serial = get_text(f[10]);
  auto subject = get_text(f[16]);
  auto issuer_name = get_text(f[17]);
  const std::string_view origin = n == kGenFields ? f[18] : "generated";
  if (origin != "generated" && origin != "imported")
    return bad("an entry line has a malformed field");
  if (!nickname || !status || !kt || !hash || !issuer || !key_id || !fp || !serial || !subject ||
      !issuer_name || !get_num(f[3], g.number) || !get_num(f[11], g.not_before) ||
      !get_num(f[12], g.not_after) || !get_num(f[13], g.created_at) ||
      !get_num(f[14], g.exported_at) || !is_object_name(f[15]) || f[1].size() != 32)
    return bad("an entry line has a malformed field");
  g.status = *status;
  g.key_type = *kt;
  g.hash = *hash;
  g.issuer = *issuer;
  g.key_id = std::move(*key_id);
  g.fingerprint = std::move(*fp);
  g.serial = std::move(*serial);
  g.subject = std::move(*subject);
  g.issuer_name = std::move(*issuer_name);
  g.key_imported = origin == "imported";
  r.object = std::string(f[15]);
  if (m.entries.empty() || m.entries.back()->id != f[1]) {
    add(m, std::string(f[1]), std::move(*nickname));
  } else if (m.entries.back()->nickname != *nickname ||
             m.entries.back()->gens.back().info.number >= g.number) {
    return bad("an entry's lines disagree");
  }
  // Freshly parsed entries are owned by this manifest alone.
  const_cast<EntryRecord&>(*m.entries.back()).gens.push_back(std::move(r));
  return {};
}

// Known members must be well formed (an access rule that cannot be read could be a deny
// that must not be skipped); unknown members are kept as they are.
Result<Attributes> parse_attrs_json(const Json::Value& v, const Fail& bad) {
  Attributes a;
  for (const std::string& name : v.getMemberNames()) {
    const Json::Value& value = v[name];
    if (name == "public") {
      if (!value.isBool()) return bad("an attribute line has a malformed 'public'");
      a.listed_publicly = value.asBool();
    } else if (name == "access") {
      if (!value.isArray()) return bad("an attribute line has a malformed 'access'");
      for (const Json::Value& r : value) {
        if (!r.isObject() || r.size() != 2 || !r["allow"].isBool())
          return bad("an attribute line has a malformed access rule");
        AccessRule rule;
        rule.allow = r["allow"].asBool();
        bool kind_found = false;
        for (const std::string& key : r.getMemberNames()) {
          if (key == "allow") continue;
          auto kind = parse_peer_kind(key);
          if (!kind || !r[key].isString())
            return bad("an attribute line has a malformed access rule");
          rule.kind = *kind;
          rule.value = r[key].asString();
          kind_found = true;
        }
        if (!kind_found || !check_access_rule(rule))
          return bad("an attribute line has a malformed access rule");
        a.access.push_back(std::move(rule));
      }
    } else if (name == "renew") {
      auto rule = rule_of(value);
      if (!rule) return bad("an attribute line has a malformed 'renew'");
      a.renew_rule = *rule;
    } else if (name == "then") {
      if (!value.isString() || value.asString().empty())
        return bad("an attribute line has a malformed 'then'");
      a.renew_hook = value.asString();
    } else if (name == "publish") {
      if (!value.isObject() || !value["mode"].isUInt())
        return bad("an attribute line has a malformed 'publish'");
      PublishTargets t;
      t.mode = value["mode"].asUInt();
      for (const std::string& key : value.getMemberNames()) {
        const Json::Value& f = value[key];
        std::string* path = key == "cert"        ? &t.cert
                            : key == "chain"     ? &t.chain
                            : key == "fullchain" ? &t.fullchain
                            : key == "key_uri"   ? &t.key_uri
                                                 : nullptr;
        if (path) {
          if (!f.isString()) return bad("an attribute line has a malformed 'publish'");
          *path = f.asString();
        } else if (key == "owner" && f.isUInt()) {
          t.owner = f.asUInt();
        } else if (key != "mode") {
          return bad("an attribute line has a malformed 'publish'");
        }
      }
      if (!check_publish_targets(t)) return bad("an attribute line has a malformed 'publish'");
      a.publish = std::move(t);
    } else if (name == "renewal") {
      if (!value.isObject() || !value["failures"].isUInt() || !value["failures_total"].isUInt64() ||
          !is_time(value["last_failure"]) || !value["last_error"].isString())
        return bad("an attribute line has a malformed 'renewal'");
      a.renewal.failures = value["failures"].asUInt();
      a.renewal.failures_total = value["failures_total"].asUInt64();
      a.renewal.last_failure = value["last_failure"].asInt64();
      a.renewal.last_error = value["last_error"].asString();
      if (value.isMember("not_before")) {
        if (!is_time(value["not_before"]))
          return bad("an attribute line has a malformed 'renewal'");
        a.renewal.not_before = value["not_before"].asInt64();
      }
    } else if (name == "revoked") {
      // A revocation a reader cannot read must not let the certificate back onto a CRL
      // unlisted, nor let `enable` use it again.
      auto revoked = revoked_of(value);
      if (!revoked) return bad("an attribute line has a malformed 'revoked'");
      a.revoked = std::move(*revoked);
    } else if (name == "issuer") {
      if (!value.isString() || !check_nickname(value.asString()))
        return bad("an attribute line has a malformed 'issuer'");
      a.issuer = value.asString();
    } else {
      a.unknown.emplace(name, compact(value));
    }
  }
  return a;
}

// "a<TAB><entry id><TAB><JSON object>", right after the generation lines of that entry.
Result<void> parse_attrs(std::string_view line, Manifest& m, Json::CharReader& reader,
                         const Fail& bad) {
  line.remove_prefix(2);  // "a\t"
  size_t tab = line.find('\t');
  if (tab == std::string_view::npos) return bad("an attribute line has the wrong number of fields");
  std::string_view id = line.substr(0, tab);
  std::string_view json = line.substr(tab + 1);
  if (m.entries.empty() || m.entries.back()->id != id)
    return bad("an attribute line does not follow its entry's lines");
  Json::Value v;
  std::string err;
  if (!reader.parse(json.data(), json.data() + json.size(), &v, &err) || !v.isObject())
    return bad("an attribute line is not a JSON object");
  std::shared_ptr<const Attributes> a;
  try {
    CV_TRY(parsed, parse_attrs_json(v, bad));
    if (!parsed.empty()) a = std::make_shared<const Attributes>(std::move(parsed));
  } catch (const Json::Exception&) {
    return bad("an attribute line has a field of the wrong type");
  }
  // Freshly parsed entries are owned by this manifest alone.
  const_cast<EntryRecord&>(*m.entries.back()).attrs = std::move(a);
  return {};
}

// A data object's line, read strictly like issuers: an object a reader cannot read is
// damage, and a new member needs a new format version.
Result<void> parse_data(std::string_view line, Manifest& m, Json::CharReader& reader,
                        const Fail& bad) {
  line.remove_prefix(2);  // "d\t"
  size_t tab = line.find('\t');
  if (tab == std::string_view::npos)
    return bad("a data object line has the wrong number of fields");
  std::string_view id = line.substr(0, tab);
  std::string_view json = line.substr(tab + 1);
  Json::Value v;
  std::string err;
  if (id.size() != 32 || !seal::from_hex(id) ||
      !reader.parse(json.data(), json.data() + json.size(), &v, &err) || !v.isObject())
    return bad("a data object line is malformed");
  static const std::set<std::string> kMembers = {"application", "object_id", "label",
                                                 "private",     "size",      "object"};
  for (const std::string& name : v.getMemberNames())
    if (!kMembers.contains(name)) return bad("a data object line has an unknown member");
  DataRecord r;
  DataObject& d = r.info;
  d.id = std::string(id);
  auto text = [&](const char* name, std::string& out) {
    if (!v.isMember(name)) return true;
    if (!v[name].isString() || v[name].asString().empty()) return false;
    out = v[name].asString();
    return true;
  };
  if (!text("application", d.application) || !text("label", d.label) || !v["private"].isBool() ||
      !v["size"].isUInt() || !v["object"].isString() || !is_object_name(v["object"].asString()))
    return bad("a data object line is malformed");
  if (v.isMember("object_id")) {
    if (!v["object_id"].isString()) return bad("a data object line is malformed");
    auto der = seal::from_hex(v["object_id"].asString());
    if (!der || der->empty()) return bad("a data object line is malformed");
    d.object_id = std::move(*der);
  }
  d.is_private = v["private"].asBool();
  d.value_size = v["size"].asUInt();
  r.object = v["object"].asString();
  m.data.push_back(std::move(r));
  return {};
}

// The format number on the first line; 0 when it is not a manifest's first line.
unsigned format_of(std::string_view first_line) {
  if (!first_line.starts_with(kMagicPrefix)) return 0;
  std::string_view n = first_line.substr(kMagicPrefix.size());
  unsigned v = 0;
  if (n.empty() || n[0] == '0' || !get_num(n, v)) return 0;
  return v;
}

}  // namespace

std::string serialize(const Manifest& m, const SecureBytes& mac_key) {
  std::string out(kMagic);
  out.reserve(256 * (m.entries.size() + 8));
  out += header_json(m);
  out += '\n';
  for (const auto& e : m.entries) {
    if (e->text.empty()) {
      auto fresh = std::make_shared<std::string>();
      for (const auto& g : e->gens) put_gen(*fresh, *e, g);
      put_attrs(*fresh, *e);
      e->text = *fresh;
      e->text_owner = std::move(fresh);
    }
    out += e->text;
  }
  for (const auto& d : m.data) put_data(out, d);
  Bytes tag = seal::mac(mac_key, seal::content_hash(seal::as_bytes(out)));
  out += kMacTag;
  out += seal::to_hex(tag);
  out += '\n';
  return out;
}

Result<Parsed> parse(std::shared_ptr<const std::string> bytes,
                     const std::filesystem::path& source) {
  Fail bad{source};
  std::string_view text(*bytes);
  size_t pos = text.find('\n');
  const unsigned format = format_of(text.substr(0, pos));
  if (format > unsigned(kFormat))
    return fail(Code::kInvalidInput, "vault " + source.parent_path().string() +
                                         " was written by a newer certvault (format " +
                                         std::to_string(format) + "; this one reads 1 to " +
                                         std::to_string(kFormat) + "); upgrade certvault");
  if (format == 0) return bad("not a certvault manifest");
  if (text.back() != '\n') return bad("truncated");
  Parsed out;
  ++pos;
  size_t eol = text.find('\n', pos);
  if (eol == std::string_view::npos) return bad("truncated");
  std::vector<CaRecord> cas;
  CV_TRY(header, parse_header(text.substr(pos, eol - pos), cas, bad));
  out.manifest.header = std::move(header);
  out.manifest.cas = std::move(cas);
  pos = eol + 1;
  std::unordered_set<std::string_view> nicknames;
  size_t entry_start = pos;
  bool attrs_read = false;                 // the last entry had its attribute line, which ends it
  std::unique_ptr<Json::CharReader> json;  // made at the first attribute or data object line
  size_t entries_end = std::string_view::npos;  // where the data object lines begin
  while (pos < text.size()) {
    eol = text.find('\n', pos);
    std::string_view line = text.substr(pos, eol - pos);
    if (line.starts_with(kMacTag)) {
      if (eol + 1 != text.size()) return bad("data after the MAC");
      auto mac = seal::from_hex(line.substr(kMacTag.size()));
      if (!mac || mac->size() != 32) return bad("malformed MAC");
      out.source.authenticated_size = pos;
      out.source.mac = std::move(*mac);
      out.source.format = format;
      break;
    }
    if (line.starts_with("d\t")) {
      if (format < 5)
        return bad("a data object line in a version-" + std::to_string(format) + " manifest");
      if (entries_end == std::string_view::npos) entries_end = pos;
      if (!json) json = strict_json_reader();
      CV_CHECK(parse_data(line, out.manifest, *json, bad));
      pos = eol + 1;
      continue;
    }
    // Data object lines come last, so that each entry's lines stay one span of the bytes.
    if (entries_end != std::string_view::npos) return bad("an entry line follows a data object");
    if (line.starts_with("a\t")) {
      if (format < 2) return bad("an attribute line in a version-1 manifest");
      if (attrs_read) return bad("an entry has two attribute lines");
      if (!json) json = strict_json_reader();
      CV_CHECK(parse_attrs(line, out.manifest, *json, bad));
      attrs_read = true;
      pos = eol + 1;
      continue;
    }
    size_t entries = out.manifest.entries.size();
    CV_CHECK(parse_gen(line, out.manifest, bad));
    if (out.manifest.entries.size() == entries && attrs_read)
      return bad("an entry's lines are out of order");
    attrs_read = false;
    if (out.manifest.entries.size() != entries) {
      if (entries) {
        out.manifest.entries[entries - 1]->text = text.substr(entry_start, pos - entry_start);
        out.manifest.entries[entries - 1]->text_owner = bytes;
      }
      entry_start = pos;
    }
    pos = eol + 1;
  }
  if (entries_end == std::string_view::npos) entries_end = pos;
  if (!out.manifest.entries.empty()) {
    out.manifest.entries.back()->text = text.substr(entry_start, entries_end - entry_start);
    out.manifest.entries.back()->text_owner = bytes;
  }
  if (out.source.mac.empty()) return bad("no MAC line");
  out.source.bytes = std::move(bytes);
  for (const auto& e : out.manifest.entries)
    if (!nicknames.insert(e->nickname).second) return bad("a nickname appears twice");
  std::unordered_set<std::string_view> data_ids;
  for (const auto& d : out.manifest.data)
    if (!data_ids.insert(d.info.id).second) return bad("a data object appears twice");
  return out;
}

Bytes digest(const Source& src) {
  if (src.format < 6) return {};
  return seal::content_hash(
      seal::as_bytes(std::string_view(*src.bytes).substr(0, src.authenticated_size)));
}

Result<void> verify(const Source& src, const SecureBytes& mac_key,
                    const std::filesystem::path& source) {
  // Format 6 takes the MAC over the hash of the bytes, older formats over the bytes.
  std::string_view covered = std::string_view(*src.bytes).substr(0, src.authenticated_size);
  Bytes tag = src.format < 6 ? seal::mac(mac_key, seal::as_bytes(covered))
                             : seal::mac(mac_key, src.digest.empty() ? digest(src) : src.digest);
  if (!seal::mac_equal(tag, src.mac))
    return fail(Code::kTampered, "vault " + source.parent_path().string() +
                                     " failed authentication: its manifest was changed outside "
                                     "certvault; restore the vault directory from a backup");
  return {};
}

EntryRecord& edit(Manifest& m, size_t index) {
  auto copy = std::make_shared<EntryRecord>(*m.entries[index]);
  copy->text = {};
  copy->text_owner.reset();
  EntryRecord& ref = *copy;
  m.entries[index] = std::move(copy);
  return ref;
}

const Attributes& EntryRecord::attributes() const {
  static const Attributes kNone;
  return attrs ? *attrs : kNone;
}

Attributes& edit_attributes(EntryRecord& e) {
  auto copy = std::make_shared<Attributes>(e.attributes());
  Attributes& ref = *copy;
  e.attrs = std::move(copy);
  return ref;
}

EntryRecord& add(Manifest& m, std::string id, std::string nickname, std::vector<GenRecord> gens) {
  auto fresh = std::make_shared<EntryRecord>();
  fresh->id = std::move(id);
  fresh->nickname = std::move(nickname);
  fresh->gens = std::move(gens);
  EntryRecord& ref = *fresh;
  m.entries.push_back(std::move(fresh));
  return ref;
}

Source source_of(std::shared_ptr<const std::string> serialized) {
  constexpr size_t kMacLine = kMacTag.size() + 64 + 1;
  Source out;
  out.authenticated_size = serialized->size() - kMacLine;
  out.mac = seal::from_hex(
                std::string_view(*serialized).substr(out.authenticated_size + kMacTag.size(), 64))
                .value_or(Bytes());
  out.format = unsigned(kFormat);  // serialize writes the current format
  out.bytes = std::move(serialized);
  return out;
}

std::optional<uint64_t> peek_counter(std::string_view text) {
  size_t start = text.find('\n');
  if (start == std::string_view::npos || format_of(text.substr(0, start)) == 0) return std::nullopt;
  ++start;
  size_t eol = text.find('\n', start);
  if (eol == std::string_view::npos) return std::nullopt;
  std::string_view header = text.substr(start, eol - start);
  constexpr std::string_view kKey = "\"counter\":";
  size_t at = header.find(kKey);
  if (at == std::string_view::npos) return std::nullopt;
  uint64_t counter = 0;
  const char* first = header.data() + at + kKey.size();
  auto [p, ec] = std::from_chars(first, header.data() + header.size(), counter);
  if (ec != std::errc()) return std::nullopt;
  return counter;
}

namespace {
// Associated data for a sealed secret: "<purpose>" 0x00 vault_id 0x00 "<whose>".
Bytes sealed_ad(std::string_view purpose, std::string_view vault_id, std::string_view whose) {
  std::string ad(purpose);
  ad += '\0';
  ad += vault_id;
  ad += '\0';
  ad += whose;
  return Bytes(ad.begin(), ad.end());
}
}  // namespace

Bytes issuer_eab_key_ad(std::string_view vault_id, std::string_view issuer) {
  return sealed_ad("certvault/issuer-eab-key/v1", vault_id, issuer);
}

Bytes issuer_account_key_ad(std::string_view vault_id, std::string_view issuer) {
  return sealed_ad("certvault/issuer-account-key/v1", vault_id, issuer);
}

Bytes issuer_secret_ad(std::string_view vault_id, std::string_view issuer) {
  return sealed_ad("certvault/issuer-secret/v1", vault_id, issuer);
}

Bytes wrap_ad(std::string_view vault_id, std::string_view which) {
  return sealed_ad("certvault/vault-key/v1", vault_id, which);
}

}  // namespace certvault::manifest
