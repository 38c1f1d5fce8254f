#include "owner_request.h"

#include <array>
#include <memory>

#include "renewal.h"
#include "seal.h"

namespace certvault::cli::owner {
namespace {

constexpr std::array<std::string_view, 20> kOps{
    "create",     "rotate", "disable", "enable",     "delete",        "revoke",     "export",
    "import",     "attach", "csr",     "ca-create",  "ca-crl",        "policy-set", "policy-clear",
    "renew-rule", "renew",  "publish", "issuer-add", "issuer-remove", "enroll"};

std::unexpected<Error> bad(const std::string& what) {
  return fail(Code::kInvalidInput, "an owner request with " + what);
}

Result<std::string> text(const Json::Value& v, const char* key) {
  const Json::Value& x = v[key];
  if (!x.isString()) return bad("no text '" + std::string(key) + "'");
  return x.asString();
}

Result<std::optional<std::string>> optional_text(const Json::Value& v, const char* key) {
  const Json::Value& x = v[key];
  if (x.isNull()) return std::optional<std::string>();
  if (!x.isString()) return bad("a '" + std::string(key) + "' that is not text");
  return std::optional(x.asString());
}

bool flag(const Json::Value& v, const char* key) {
  return v[key].isBool() && v[key].asBool();
}

template <typename T, typename Parse>
Result<std::optional<T>> optional_enum(const Json::Value& v, const char* key, Parse parse) {
  CV_TRY(t, optional_text(v, key));
  if (!t) return std::optional<T>();
  CV_TRY(value, parse(*t));
  return std::optional<T>(value);
}

template <typename T>
void put(Json::Value& v, const char* key, const std::optional<T>& x) {
  if (x) v[key] = std::string(to_string(*x));
}

void put_time(Json::Value& v, const char* key, const std::optional<Time>& t) {
  if (t) v[key] = Json::Int64(*t);
}

Json::Value der_list(const std::vector<std::vector<uint8_t>>& certs) {
  Json::Value v(Json::arrayValue);
  for (const auto& der : certs) v.append(seal::to_base64(der));
  return v;
}

Result<std::vector<std::vector<uint8_t>>> der_list_of(const Json::Value& v, const char* key) {
  const Json::Value& list = v[key];
  if (!list.isArray()) return bad("no list '" + std::string(key) + "'");
  std::vector<std::vector<uint8_t>> out;
  for (const Json::Value& c : list) {
    auto der = c.isString() ? seal::from_base64(c.asString()) : Result<seal::Bytes>(seal::Bytes());
    if (!der || der->empty())
      return bad("a certificate in '" + std::string(key) + "' that is not base64");
    out.emplace_back(der->begin(), der->end());
  }
  return out;
}

std::string_view p12_encryption_name(P12Encryption e) {
  return e == P12Encryption::kTripleDes ? "3des" : "aes-256";
}

}  // namespace

bool known_op(std::string_view op) {
  for (auto known : kOps)
    if (op == known) return true;
  return false;
}

void PolicyChange::apply(Policy& p) const {
  if (max_end_date) p.max_end_date = *max_end_date;
  if (default_key_type) p.default_key_type = *default_key_type;
  if (default_hash) p.default_hash = *default_hash;
  if (export_rule) p.export_rule = *export_rule;
  if (renew) p.renew = *renew;
  if (max_lifetime) p.max_lifetime = *max_lifetime;
  if (min_pin_length) p.min_pin_length = *min_pin_length;
}

void RenewRuleChange::apply(Vault::RenewalSettings& s) const {
  if (rule) s.rule = *rule;
  if (then) s.hook = *then;
}

Json::Value to_json(const RenewRuleChange& c) {
  Json::Value v = nickname_json(c.nickname);
  if (c.rule) v["rule"] = *c.rule ? rule_spec(**c.rule) : std::string("policy");
  if (c.then) v["then"] = *c.then;
  return v;
}

Json::Value renew_json(const std::vector<std::string>& nicknames, bool revoke_old) {
  Json::Value v(Json::objectValue);
  if (revoke_old) v["revoke_old"] = true;
  Json::Value list(Json::arrayValue);
  for (const auto& n : nicknames) list.append(n);
  v["nicknames"] = list;
  return v;
}

Result<RenewRuleChange> renew_rule_change(const Json::Value& v) {
  RenewRuleChange c;
  CV_TRY(n, nickname(v));
  c.nickname = n;
  CV_TRY(rule, optional_text(v, "rule"));
  if (rule && *rule == "policy") {
    c.rule = std::optional<RenewRule>();
  } else if (rule) {
    CV_TRY(parsed, parse_rule_spec(*rule));
    c.rule = std::optional(parsed);
  }
  CV_TRY(then, optional_text(v, "then"));
  c.then = then;
  return c;
}

Json::Value publish_json(const std::string& nickname, const std::optional<PublishTargets>& t) {
  Json::Value v = nickname_json(nickname);
  if (!t) {
    v["targets"] = Json::Value();
    return v;
  }
  Json::Value o(Json::objectValue);
  o["cert"] = t->cert;
  o["chain"] = t->chain;
  o["fullchain"] = t->fullchain;
  o["key_uri"] = t->key_uri;
  if (t->owner) o["owner"] = *t->owner;
  o["mode"] = t->mode;
  v["targets"] = o;
  return v;
}

Result<std::optional<PublishTargets>> publish_targets(const Json::Value& v) {
  const Json::Value& o = v["targets"];
  if (o.isNull()) return std::optional<PublishTargets>();
  if (!o.isObject() || !o["mode"].isUInt()) return bad("malformed 'targets'");
  PublishTargets t;
  for (auto [key, field] :
       {std::pair{"cert", &t.cert}, std::pair{"chain", &t.chain},
        std::pair{"fullchain", &t.fullchain}, std::pair{"key_uri", &t.key_uri}}) {
    CV_TRY(path, text(o, key));
    *field = path;
  }
  if (o["owner"].isUInt()) t.owner = o["owner"].asUInt();
  t.mode = o["mode"].asUInt();
  return std::optional(t);
}

bool renew_revoke_old(const Json::Value& v) {
  return flag(v, "revoke_old");
}

Result<std::vector<std::string>> renew_nicknames(const Json::Value& v) {
  const Json::Value& list = v["nicknames"];
  if (!list.isArray()) return bad("no list 'nicknames'");
  std::vector<std::string> out;
  for (const Json::Value& n : list) {
    if (!n.isString()) return bad("a nickname that is not text");
    out.push_back(n.asString());
  }
  return out;
}

Json::Value to_json(const IssueRequest& r) {
  Json::Value v(Json::objectValue);
  v["nickname"] = r.nickname;
  v["not_after"] = Json::Int64(r.not_after);
  put(v, "key_type", r.key_type);
  put(v, "hash", r.hash);
  v["subject"] = r.subject;
  v["alt_names"] = r.alt_names;
  v["self_signed"] = r.self_signed;
  return v;
}

Json::Value to_json(const RevokeRequest& r) {
  Json::Value v = nickname_json(r.nickname);
  if (r.generation) v["generation"] = Json::UInt(*r.generation);
  v["reason"] = std::string(to_string(r.reason));
  return v;
}

Json::Value to_json(const CrlRequest& r) {
  Json::Value v(Json::objectValue);
  v["next_update"] = Json::Int64(r.next_update);
  v["file"] = r.file;
  return v;
}

Json::Value to_json(const CsrRequest& r) {
  Json::Value v(Json::objectValue);
  v["nickname"] = r.nickname;
  v["subject"] = r.subject;
  v["alt_names"] = r.alt_names;
  put(v, "key_type", r.key_type);
  put(v, "hash", r.hash);
  return v;
}

Json::Value to_json(const CaRequest& r) {
  Json::Value v(Json::objectValue);
  v["not_after"] = Json::Int64(r.not_after);
  v["subject"] = r.subject;
  put(v, "key_type", r.key_type);
  v["replace"] = r.replace;
  return v;
}

Json::Value to_json(const PolicyChange& c) {
  Json::Value v(Json::objectValue);
  put_time(v, "max_end_date", c.max_end_date);
  put(v, "default_key_type", c.default_key_type);
  put(v, "default_hash", c.default_hash);
  put(v, "export", c.export_rule);
  if (c.renew) v["renew"] = rule_spec(*c.renew);
  if (c.max_lifetime) v["max_lifetime"] = Json::Int64(c.max_lifetime->value_or(0));
  if (c.min_pin_length) v["min_pin_length"] = Json::UInt(*c.min_pin_length);
  return v;
}

Json::Value to_json(const ExportRequest& r) {
  Json::Value v(Json::objectValue);
  v["nickname"] = r.nickname;
  v["encryption"] = std::string(p12_encryption_name(r.encryption));
  v["chain"] = r.chain;
  return v;
}

Json::Value rotate_json(const std::string& nickname, std::optional<Time> not_after) {
  Json::Value v = nickname_json(nickname);
  put_time(v, "not_after", not_after);
  return v;
}

Json::Value nickname_json(const std::string& nickname) {
  Json::Value v(Json::objectValue);
  v["nickname"] = nickname;
  return v;
}

Json::Value to_json(const OutsideIssuer& i) {
  Json::Value v(Json::objectValue);
  v["name"] = i.name;
  v["protocol"] = i.protocol == IssuerProtocol::kAcme ? "acme" : "cmp";
  v["url"] = i.url;
  v["http01_listen"] = i.http01_listen;
  if (!i.dns01_hook.empty()) v["dns01_hook"] = i.dns01_hook;
  v["eab_kid"] = i.eab_kid;
  v["reference"] = i.reference;
  v["client_cert"] = i.client_cert;
  v["trust"] = der_list(i.trust);
  v["server_ca"] = der_list(i.server_ca);
  return v;
}

Json::Value to_json(const EnrollmentRequest& r) {
  Json::Value v(Json::objectValue);
  v["nickname"] = r.nickname;
  v["issuer"] = r.issuer;
  put(v, "key_type", r.key_type);
  v["subject"] = r.subject;
  v["alt_names"] = r.alt_names;
  put_time(v, "not_after", r.not_after);
  return v;
}

Json::Value issuer_name_json(const std::string& name) {
  Json::Value v(Json::objectValue);
  v["issuer"] = name;
  return v;
}

Result<std::optional<Time>> optional_time(const Json::Value& v, const char* key) {
  const Json::Value& x = v[key];
  if (x.isNull()) return std::optional<Time>();
  if (!x.isInt64()) return bad("a '" + std::string(key) + "' that is not a time");
  return std::optional<Time>(x.asInt64());
}

Result<std::string> nickname(const Json::Value& v) {
  CV_TRY(n, text(v, "nickname"));
  CV_CHECK(check_nickname(n));
  return n;
}

Result<std::string> issuer_name(const Json::Value& v) {
  CV_TRY(n, text(v, "issuer"));
  CV_CHECK(check_nickname(n));
  return n;
}

Result<OutsideIssuer> outside_issuer(const Json::Value& v) {
  OutsideIssuer i;
  CV_TRY(name, text(v, "name"));
  CV_CHECK(check_nickname(name));
  i.name = name;
  CV_TRY(protocol, text(v, "protocol"));
  if (protocol != "acme" && protocol != "cmp") return bad("an unknown issuer protocol");
  i.protocol = protocol == "acme" ? IssuerProtocol::kAcme : IssuerProtocol::kCmp;
  for (auto [key, field] : {std::pair{"url", &i.url},
                            {"http01_listen", &i.http01_listen},
                            {"eab_kid", &i.eab_kid},
                            {"reference", &i.reference},
                            {"client_cert", &i.client_cert}}) {
    CV_TRY(value, text(v, key));
    *field = value;
  }
  CV_TRY(dns01_hook, optional_text(v, "dns01_hook"));  // absent from an older CLI
  i.dns01_hook = dns01_hook.value_or("");
  CV_TRY(trust, der_list_of(v, "trust"));
  CV_TRY(server_ca, der_list_of(v, "server_ca"));
  i.trust = std::move(trust);
  i.server_ca = std::move(server_ca);
  return i;
}

Result<EnrollmentRequest> enrollment_request(const Json::Value& v) {
  EnrollmentRequest r;
  CV_TRY(n, nickname(v));
  CV_TRY(issuer, issuer_name(v));
  CV_TRY(key_type, optional_enum<KeyType>(v, "key_type", parse_key_type));
  CV_TRY(subject, optional_text(v, "subject"));
  CV_TRY(alt_names, optional_text(v, "alt_names"));
  CV_TRY(not_after, optional_time(v, "not_after"));
  r.nickname = n;
  r.issuer = issuer;
  r.key_type = key_type;
  r.subject = subject.value_or("");
  r.alt_names = alt_names.value_or("");
  r.not_after = not_after;
  return r;
}

Result<IssueRequest> issue_request(const Json::Value& v) {
  IssueRequest r;
  CV_TRY(n, nickname(v));
  CV_TRY(not_after, optional_time(v, "not_after"));
  if (!not_after) return bad("no end date");
  CV_TRY(key_type, optional_enum<KeyType>(v, "key_type", parse_key_type));
  CV_TRY(hash, optional_enum<Hash>(v, "hash", parse_hash));
  CV_TRY(subject, optional_text(v, "subject"));
  r.nickname = n;
  r.not_after = *not_after;
  r.key_type = key_type;
  r.hash = hash;
  r.subject = subject.value_or("");
  CV_TRY(alt_names, optional_text(v, "alt_names"));
  r.alt_names = alt_names.value_or("");
  r.self_signed = flag(v, "self_signed");
  return r;
}

Result<RevokeRequest> revoke_request(const Json::Value& v) {
  RevokeRequest r;
  CV_TRY(n, nickname(v));
  r.nickname = n;
  const Json::Value& generation = v["generation"];
  if (!generation.isNull()) {
    if (!generation.isUInt()) return bad("a 'generation' that is not a number");
    r.generation = generation.asUInt();
  }
  CV_TRY(reason, text(v, "reason"));
  CV_TRY(parsed, parse_revocation_reason(reason));
  r.reason = parsed;
  return r;
}

Result<CrlRequest> crl_request(const Json::Value& v) {
  CrlRequest r;
  CV_TRY(next_update, optional_time(v, "next_update"));
  if (!next_update) return bad("no next update");
  CV_TRY(file, text(v, "file"));
  r.next_update = *next_update;
  r.file = file;
  return r;
}

Result<CsrRequest> csr_request(const Json::Value& v) {
  CsrRequest r;
  CV_TRY(n, nickname(v));
  CV_TRY(key_type, optional_enum<KeyType>(v, "key_type", parse_key_type));
  CV_TRY(hash, optional_enum<Hash>(v, "hash", parse_hash));
  CV_TRY(subject, optional_text(v, "subject"));
  r.nickname = n;
  r.key_type = key_type;
  r.hash = hash;
  r.subject = subject.value_or("");
  CV_TRY(alt_names, optional_text(v, "alt_names"));
  r.alt_names = alt_names.value_or("");
  return r;
}

Result<CaRequest> ca_request(const Json::Value& v) {
  CaRequest r;
  CV_TRY(not_after, optional_time(v, "not_after"));
  if (!not_after) return bad("no end date");
  CV_TRY(key_type, optional_enum<KeyType>(v, "key_type", parse_key_type));
  CV_TRY(subject, optional_text(v, "subject"));
  r.not_after = *not_after;
  r.key_type = key_type;
  r.subject = subject.value_or("");
  r.replace = flag(v, "replace");
  return r;
}

Result<PolicyChange> policy_change(const Json::Value& v) {
  PolicyChange c;
  CV_TRY(max_end_date, optional_time(v, "max_end_date"));
  CV_TRY(key_type, optional_enum<KeyType>(v, "default_key_type", parse_key_type));
  CV_TRY(hash, optional_enum<Hash>(v, "default_hash", parse_hash));
  CV_TRY(rule, optional_enum<ExportRule>(v, "export", parse_export_rule));
  c.max_end_date = max_end_date;
  c.default_key_type = key_type;
  c.default_hash = hash;
  c.export_rule = rule;
  CV_TRY(renew, optional_text(v, "renew"));
  if (renew) {
    CV_TRY(parsed, parse_rule_spec(*renew));
    c.renew = parsed;
  }
  CV_TRY(max_lifetime, optional_time(v, "max_lifetime"));
  if (max_lifetime)
    c.max_lifetime = *max_lifetime > 0 ? std::optional(*max_lifetime) : std::optional<Time>();
  if (v.isMember("min_pin_length")) {
    const Json::Value& n = v["min_pin_length"];
    if (!n.isUInt() || n.asUInt() < 1 || n.asUInt() > kMaxMinPinLength)
      return bad("a 'min_pin_length' that is not 1 to " + std::to_string(kMaxMinPinLength));
    c.min_pin_length = n.asUInt();
  }
  return c;
}

Result<ExportRequest> export_request(const Json::Value& v) {
  ExportRequest r;
  CV_TRY(n, nickname(v));
  CV_TRY(encryption, text(v, "encryption"));
  CV_TRY(e, parse_p12_encryption(encryption));
  r.nickname = n;
  r.encryption = e;
  r.chain = flag(v, "chain");
  return r;
}

std::string compact(const Json::Value& v) {
  Json::StreamWriterBuilder w;
  w["indentation"] = "";
  w["emitUTF8"] = true;
  return Json::writeString(w, v);
}

Result<Json::Value> parse(std::string_view text) {
  Json::Value v;
  Json::CharReaderBuilder b;
  std::unique_ptr<Json::CharReader> r(b.newCharReader());
  if (!r->parse(text.data(), text.data() + text.size(), &v, nullptr) || !v.isObject())
    return bad("a document that is not a JSON object");
  return v;
}

}  // namespace certvault::cli::owner
