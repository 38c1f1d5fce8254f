#include "key_object.h"

#include <json/json.h>

#include <memory>

#include "seal.h"
#include "strict_json.h"

namespace certvault::key_object {

Bytes encode(const KeyObject& o) {
  Json::Value v(Json::objectValue);
  v["format"] = 1;
  v["vault"] = o.vault_id;
  v["owner"] = o.owner;
  v["generation"] = o.generation;
  v["key_type"] = std::string(to_string(o.key_type));
  v["public_key"] = seal::to_base64(o.public_key);
  v["certificate"] = seal::to_base64(o.certificate);
  Json::Value chain(Json::arrayValue);
  for (const auto& c : o.chain) chain.append(seal::to_base64(c));
  v["chain"] = chain;
  v["sealed_key"] = seal::to_base64(o.sealed_key);
  Json::StreamWriterBuilder w;
  w["indentation"] = " ";
  std::string text = Json::writeString(w, v) + "\n";
  return Bytes(text.begin(), text.end());
}

Result<KeyObject> decode(std::span<const uint8_t> bytes) {
  auto bad = [] { return fail(Code::kTampered, "key object is malformed"); };
  Json::Value v;
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (!parse_strict_json(text, v) || !v.isObject()) return bad();
  KeyObject o;
  try {
    if (v["format"].asInt() != 1) return bad();
    o.vault_id = v["vault"].asString();
    o.owner = v["owner"].asString();
    o.generation = v["generation"].asUInt();
    auto kt = parse_key_type(v["key_type"].asString());
    auto pub = seal::from_base64(v["public_key"].asString());
    auto cert = seal::from_base64(v["certificate"].asString());
    auto sealed = seal::from_base64(v["sealed_key"].asString());
    if (!kt || !pub || !cert || !sealed) return bad();
    o.key_type = *kt;
    o.public_key = std::move(*pub);
    o.certificate = std::move(*cert);
    o.sealed_key = std::move(*sealed);
    for (const Json::Value& c : v["chain"]) {
      auto der = seal::from_base64(c.asString());
      if (!der) return bad();
      o.chain.push_back(std::move(*der));
    }
  } catch (const Json::Exception&) {
    return bad();
  }
  return o;
}

Bytes seal_ad(const KeyObject& o) {
  std::string head = "certvault/key/v1";
  for (const std::string& part :
       {o.vault_id, o.owner, std::to_string(o.generation), std::string(to_string(o.key_type))}) {
    head += '\0';
    head += part;
  }
  head += '\0';
  Bytes ad(head.begin(), head.end());
  ad.insert(ad.end(), o.public_key.begin(), o.public_key.end());
  return ad;
}

}  // namespace certvault::key_object
