#include "agent_protocol.h"

#include <sodium.h>

namespace certvault::agent {
namespace {

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

uint32_t get_u32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

bool known_type(uint8_t t) {
  return (t >= 1 && t <= 10) || t == 0x80 || t == 0x81;
}

std::unexpected<Error> malformed(std::string what) {
  return fail(Code::kInvalidInput, "malformed agent message: " + std::move(what));
}

}  // namespace

ErrorCode to_wire(Code code) {
  switch (code) {
    case Code::kInvalidInput:
      return ErrorCode::kInvalidInput;
    case Code::kNotFound:
      return ErrorCode::kNotFound;
    case Code::kExists:
      return ErrorCode::kExists;
    case Code::kRefused:
      return ErrorCode::kRefused;
    case Code::kWrongPin:
      return ErrorCode::kWrongPin;
    case Code::kPinLocked:
      return ErrorCode::kPinLocked;
    case Code::kLocked:
      return ErrorCode::kLocked;
    case Code::kTampered:
      return ErrorCode::kTampered;
    case Code::kBadPermissions:
      return ErrorCode::kBadPermissions;
    case Code::kIo:
      return ErrorCode::kIo;
    case Code::kCrypto:
      return ErrorCode::kCrypto;
  }
  return ErrorCode::kIo;
}

Code from_wire(uint64_t code) {
  switch (static_cast<ErrorCode>(code)) {
    case ErrorCode::kInvalidInput:
      return Code::kInvalidInput;
    case ErrorCode::kNotFound:
    case ErrorCode::kNotServed:
      return Code::kNotFound;
    case ErrorCode::kExists:
      return Code::kExists;
    case ErrorCode::kRefused:
      return Code::kRefused;
    case ErrorCode::kWrongPin:
      return Code::kWrongPin;
    case ErrorCode::kPinLocked:
      return Code::kPinLocked;
    case ErrorCode::kLocked:
      return Code::kLocked;
    case ErrorCode::kTampered:
      return Code::kTampered;
    case ErrorCode::kBadPermissions:
      return Code::kBadPermissions;
    case ErrorCode::kCrypto:
      return Code::kCrypto;
    default:
      return Code::kIo;
  }
}

std::optional<std::string_view> Message::get(Tag tag) const {
  for (const auto& [t, v] : fields)
    if (t == tag) return v;
  return std::nullopt;
}

std::vector<std::string_view> Message::all(Tag tag) const {
  std::vector<std::string_view> out;
  for (const auto& [t, v] : fields)
    if (t == tag) out.push_back(v);
  return out;
}

std::optional<uint64_t> Message::get_u64(Tag tag) const {
  auto v = get(tag);
  if (!v || v->size() != 8) return std::nullopt;
  uint64_t out = 0;
  for (unsigned char c : *v) out = (out << 8) | c;
  return out;
}

std::string Message::text(Tag tag) const {
  auto v = get(tag);
  return v ? std::string(*v) : std::string();
}

Frame::Frame(Type type) {
  bytes_.reserve(64);
  bytes_.resize(kHeaderSize);
  bytes_.push_back(kProtocolVersion);
  bytes_.push_back(static_cast<uint8_t>(type));
}

Frame::~Frame() {
  if (!bytes_.empty()) sodium_memzero(bytes_.data(), bytes_.size());
}

Frame& Frame::add(Tag tag, std::span<const uint8_t> value) {
  // Growing would leave a copy of a PIN in the freed block: reserve, wiping the old one.
  const size_t need = bytes_.size() + 5 + value.size();
  if (need > bytes_.capacity()) {
    std::vector<uint8_t> bigger;
    bigger.reserve(std::max(need, bytes_.capacity() * 2));
    bigger.assign(bytes_.begin(), bytes_.end());
    sodium_memzero(bytes_.data(), bytes_.size());
    bytes_.swap(bigger);
  }
  bytes_.push_back(static_cast<uint8_t>(tag));
  put_u32(bytes_, static_cast<uint32_t>(value.size()));
  bytes_.insert(bytes_.end(), value.begin(), value.end());
  return *this;
}

Frame& Frame::add(Tag tag, std::string_view value) {
  return add(tag, std::span(reinterpret_cast<const uint8_t*>(value.data()), value.size()));
}

Frame& Frame::add_u64(Tag tag, uint64_t value) {
  uint8_t be[8];
  for (int i = 7; i >= 0; --i, value >>= 8) be[i] = static_cast<uint8_t>(value);
  return add(tag, std::span<const uint8_t>(be, 8));
}

std::span<const uint8_t> Frame::bytes() {
  const auto body = static_cast<uint32_t>(bytes_.size() - kHeaderSize);
  for (int i = 0; i < 4; ++i) bytes_[i] = static_cast<uint8_t>(body >> (24 - 8 * i));
  return bytes_;
}

Result<size_t> body_length(std::span<const uint8_t, kHeaderSize> header) {
  const uint32_t n = get_u32(header.data());
  if (n < 2) return malformed("a frame shorter than its version and type");
  if (n > kMaxBody)
    return malformed("a frame of " + std::to_string(n) + " bytes (at most " +
                     std::to_string(kMaxBody) + ")");
  return n;
}

Result<Message> decode(std::span<const uint8_t> body) {
  if (body.size() < 2) return malformed("a frame shorter than its version and type");
  if (body.size() > kMaxBody) return malformed("a frame larger than the limit");
  if (body[0] != kProtocolVersion)
    return fail(Code::kInvalidInput,
                "the agent speaks protocol version " + std::to_string(kProtocolVersion) + ", not " +
                    std::to_string(body[0]) + "; use the certvault of the same release");
  if (!known_type(body[1])) return malformed("unknown message type " + std::to_string(body[1]));
  Message m;
  m.type = static_cast<Type>(body[1]);
  size_t at = 2;
  while (at < body.size()) {
    if (body.size() - at < 5) return malformed("a truncated field header");
    if (m.fields.size() == kMaxFields) return malformed("too many fields");
    const auto tag = static_cast<Tag>(body[at]);
    const uint32_t len = get_u32(body.data() + at + 1);
    at += 5;
    if (len > body.size() - at) return malformed("a field longer than its frame");
    m.fields.emplace_back(tag,
                          std::string_view(reinterpret_cast<const char*>(body.data() + at), len));
    at += len;
  }
  return m;
}

Frame error_frame(ErrorCode code, std::string_view message) {
  Frame f(Type::kError);
  f.add_u64(Tag::kCode, static_cast<uint64_t>(code));
  f.add(Tag::kMessage, message.substr(0, 4096));
  return f;
}

Frame error_frame(const Error& e) {
  Frame f = error_frame(to_wire(e.code), e.message);
  if (e.remedy != Remedy::kNone) f.add_u64(Tag::kRemedy, static_cast<uint64_t>(e.remedy));
  if (!e.nickname.empty()) f.add(Tag::kNickname, e.nickname);
  return f;
}

Error error_of(const Message& reply) {
  if (reply.type != Type::kError)
    return Error{Code::kIo, "the agent gave an unexpected answer; restart certvault agent"};
  auto code = reply.get_u64(Tag::kCode);
  Error e{from_wire(code.value_or(0)), reply.text(Tag::kMessage)};
  // A remedy this release does not know is left out: the message stands alone.
  const uint64_t remedy = reply.get_u64(Tag::kRemedy).value_or(0);
  if (remedy < static_cast<uint64_t>(Remedy::kCount)) {
    e.remedy = static_cast<Remedy>(remedy);
    e.nickname = reply.text(Tag::kNickname);
  }
  return e;
}

}  // namespace certvault::agent
