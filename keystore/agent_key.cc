#include "agent_key.h"

#include <json/json.h>
#include <openssl/evp.h>

#include <map>
#include <mutex>

#include "ossl.h"

namespace certvault::agent {
namespace {

Json::Value parse_json(std::string_view text) {
  Json::Value v;
  Json::CharReaderBuilder b;
  std::unique_ptr<Json::CharReader> r(b.newCharReader());
  std::string errors;
  if (!r->parse(text.data(), text.data() + text.size(), &v, &errors)) return Json::Value();
  return v;
}

std::vector<uint8_t> bytes(std::string_view v) {
  return {v.begin(), v.end()};
}

// One entry of a kList page.
Entry entry_of(const Json::Value& je) {
  Entry e;
  e.id = je["id"].asString();
  e.nickname = je["nickname"].asString();
  for (const auto& jg : je["generations"]) {
    Generation g;
    g.number = jg["number"].asUInt();
    auto status = parse_status(jg["status"].asString());
    auto key_type = parse_key_type(jg["key_type"].asString());
    if (!status || !key_type) continue;
    g.status = *status;
    g.key_type = *key_type;
    g.key_id = jg["key_id"].asString();
    g.serial = jg["serial"].asString();
    g.not_before = jg["not_before"].asInt64();
    g.not_after = jg["not_after"].asInt64();
    g.key_imported = jg["imported"].asBool();
    g.exported_at = jg["exported"].asBool() ? 1 : 0;
    e.generations.push_back(std::move(g));
  }
  return e;
}

}  // namespace

Result<std::vector<uint8_t>> RemoteKey::sign(const SignParams& p,
                                             std::span<const uint8_t> data) const {
  Frame f(Type::kSign);
  f.add(Tag::kVault, vault);
  f.add(Tag::kNickname, nickname);
  f.add_u64(Tag::kGeneration, generation);
  f.add(Tag::kKeyId, key_id);
  f.add(Tag::kMechanism, to_string(p.mechanism));
  if (!p.digest.empty()) f.add(Tag::kDigest, p.digest);
  if (!p.mgf1_digest.empty()) f.add(Tag::kMgf1Digest, p.mgf1_digest);
  if (p.salt_length >= 0) f.add_u64(Tag::kSaltLength, static_cast<uint64_t>(p.salt_length));
  f.add(Tag::kData, data);
  CV_TRY(reply, client->call(f));
  auto sig = reply.message.get(Tag::kSignature);
  if (!sig || sig->empty())
    return fail(Code::kIo, "the certvault agent answered a signature request without one");
  return bytes(*sig);
}

std::string RemoteEntry::locked_message() const {
  return "vault '" + key.label + "' is locked; run certvault unlock";
}

Result<std::optional<RemoteEntry>> resolve(const std::shared_ptr<Client>& client,
                                           const std::string& vault, const std::string& nickname,
                                           const std::optional<std::string>& serial,
                                           std::optional<uint32_t> generation) {
  Frame f(Type::kResolve);
  f.add(Tag::kVault, vault);
  f.add(Tag::kNickname, nickname);
  if (serial) f.add(Tag::kSerial, *serial);
  if (generation) f.add_u64(Tag::kGeneration, *generation);
  ErrorCode code{};
  auto reply = client->call(f, &code);
  if (!reply) {
    if (code == ErrorCode::kNotServed) return std::optional<RemoteEntry>();
    return std::unexpected(reply.error());
  }
  const Message& m = reply->message;
  RemoteEntry e;
  const Json::Value info = parse_json(m.text(Tag::kJson));
  auto number = m.get_u64(Tag::kGeneration);
  CV_TRY(key_type, parse_key_type(m.text(Tag::kKeyType)));
  if (!number || !info.isObject())
    return fail(Code::kIo, "the certvault agent's answer lacks the generation");
  e.key.client = client;
  e.key.vault = vault;
  e.key.label = info["label"].asString();
  e.key.nickname = info["nickname"].asString();
  e.key.generation = static_cast<uint32_t>(*number);
  e.key.key_id = m.text(Tag::kKeyId);
  e.key.key_type = key_type;
  e.serial = m.text(Tag::kSerial);
  e.cert = bytes(m.get(Tag::kCertificate).value_or(""));
  e.spki = bytes(m.get(Tag::kSpki).value_or(""));
  for (auto c : m.all(Tag::kChain)) e.chain.push_back(bytes(c));
  e.locked = info["locked"].asBool();
  return std::optional(std::move(e));
}

Result<std::optional<RemoteVault>> vault_info(const std::shared_ptr<Client>& client,
                                              const std::string& vault) {
  Frame f(Type::kToken);
  f.add(Tag::kVault, vault);
  ErrorCode code{};
  auto reply = client->call(f, &code);
  if (!reply) {
    if (code == ErrorCode::kNotServed) return std::optional<RemoteVault>();
    return std::unexpected(reply.error());
  }
  const Json::Value v = parse_json(reply->message.text(Tag::kJson));
  RemoteVault out;
  out.label = v["label"].asString();
  out.id = v["id"].asString();
  out.locked = v["locked"].asBool();
  out.pin_failures = v["pin_failures"].asInt();
  out.max_pin_failures = v["max_pin_failures"].asInt();
  out.counter = v["counter"].asUInt64();
  return std::optional(std::move(out));
}

Result<void> check_pin(const std::shared_ptr<Client>& client, const std::string& vault,
                       const SecureBytes& pin) {
  Frame f(Type::kCheckPin);
  f.add(Tag::kVault, vault);
  f.add(Tag::kPin, pin.view());
  CV_TRY(reply, client->call(f, nullptr, 120000));
  return {};
}

Result<std::optional<std::vector<Entry>>> entries(const std::shared_ptr<Client>& client,
                                                  const std::string& vault) {
  // Pages follow one another; a commit between two of them would shift the offsets, so the
  // listing starts again when the vault's commit counter moved (a few times at most).
  for (int attempt = 0; attempt < 4; ++attempt) {
    std::vector<Entry> out;
    uint64_t offset = 0;
    std::optional<uint64_t> counter;
    bool moved = false;
    for (int page = 0; page < 1000 && !moved; ++page) {  // 500 entries a page
      Frame f(Type::kList);
      f.add(Tag::kVault, vault);
      f.add_u64(Tag::kOffset, offset);
      ErrorCode code{};
      auto reply = client->call(f, &code);
      if (!reply) {
        if (code == ErrorCode::kNotServed) return std::optional<std::vector<Entry>>();
        return std::unexpected(reply.error());
      }
      const Json::Value v = parse_json(reply->message.text(Tag::kJson));
      if (counter && *counter != v["counter"].asUInt64()) moved = true;
      counter = v["counter"].asUInt64();
      for (const auto& je : v["entries"]) out.push_back(entry_of(je));
      if (!v.isMember("next")) return std::optional(std::move(out));
      offset = v["next"].asUInt64();
    }
  }
  return fail(Code::kIo, "the vault kept changing while the agent listed it; try again");
}

Result<std::optional<std::vector<std::string>>> nicknames(const std::shared_ptr<Client>& client,
                                                          const std::string& vault) {
  CV_TRY(listed, entries(client, vault));
  if (!listed) return std::optional<std::vector<std::string>>();
  std::vector<std::string> out;
  for (const auto& e : *listed)
    if (!e.generations.empty()) out.push_back(e.nickname);
  return std::optional(std::move(out));
}

std::string canonical_digest(std::string_view name) {
  static constexpr std::pair<const char*, const char*> kNames[] = {
      {"SHA1", "sha1"},         {"SHA2-224", "sha224"},   {"SHA2-256", "sha256"},
      {"SHA2-384", "sha384"},   {"SHA2-512", "sha512"},   {"SHA3-224", "sha3-224"},
      {"SHA3-256", "sha3-256"}, {"SHA3-384", "sha3-384"}, {"SHA3-512", "sha3-512"},
      {"MD5-SHA1", "md5-sha1"},
  };
  if (name.empty()) return {};
  // Asked once per signature: the answer for each spelling is kept (fetching costs more
  // than the digest it names).
  // A plain static: a module's statics are destroyed when it is unloaded, leaking nothing.
  static std::mutex mu;
  static std::map<std::string, std::string, std::less<>> known;
  {
    std::lock_guard lock(mu);
    if (auto it = known.find(name); it != known.end()) return it->second;
  }
  const std::string n(name);
  std::string out;
  if (ossl::Md md(EVP_MD_fetch(ossl::libctx(), n.c_str(), nullptr)); md) {
    for (const auto& [openssl, ours] : kNames)
      if (EVP_MD_is_a(md.get(), openssl)) out = ours;
  }
  std::lock_guard lock(mu);
  if (known.size() < 64) known.emplace(n, out);
  return out;
}

}  // namespace certvault::agent
