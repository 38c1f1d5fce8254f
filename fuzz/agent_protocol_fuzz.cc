// The agent's wire protocol decoder (keystore/agent_protocol.cc) under libFuzzer. The input
// is what a peer writes on its connection: a stream of frames, each a 4-byte header read
// with body_length, then a body read with decode. What decodes is read through every
// Message accessor and re-encoded with Frame, which must give back the same bytes and the
// same message. Each body is copied into an allocation of its own size, so that ASan sees
// a read past it rather than the next frame's bytes.
#include <algorithm>
#include <bitset>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "agent_protocol.h"

namespace {

using namespace certvault;
using namespace certvault::agent;

void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "agent_protocol_fuzz: %s\n", what);
  std::abort();
}

// get, all, get_u64 and text agree with the fields, for every tag present and one absent.
void read_through_accessors(const Message& m) {
  std::bitset<256> present;
  for (const auto& [tag, value] : m.fields) present.set(static_cast<uint8_t>(tag));
  for (size_t t = 0; t < present.size(); ++t) {
    if (!present[t] && t != 0) continue;
    const auto tag = static_cast<Tag>(t);
    const auto first = m.get(tag);
    const auto every = m.all(tag);
    check(first.has_value() == present[t], "get disagrees with the fields");
    check(every.empty() != present[t], "all disagrees with the fields");
    if (!first) {
      check(!m.get_u64(tag) && m.text(tag).empty(), "an absent tag has a value");
      continue;
    }
    check(every.front() == *first, "all does not start with get");
    check(m.get_u64(tag).has_value() == (first->size() == 8), "get_u64 ignores the size");
    check(m.text(tag) == *first, "text differs from get");
  }
  if (m.type == Type::kError) {
    const Error e = error_of(m);
    check(e.message == m.text(Tag::kMessage), "error_of loses the message");
  }
}

// Frame(m) encodes to the body m was decoded from, and decodes back to m.
void check_round_trip(const Message& m, std::span<const uint8_t> body) {
  Frame frame(m.type);
  for (const auto& [tag, value] : m.fields) frame.add(tag, value);
  check(frame.fits(), "a decoded message does not fit in a frame");
  const auto bytes = frame.bytes();
  const auto length = body_length(bytes.first<kHeaderSize>());
  check(length && *length == bytes.size() - kHeaderSize, "a frame's header is not its length");
  const auto encoded = bytes.subspan(kHeaderSize);
  check(std::equal(encoded.begin(), encoded.end(), body.begin(), body.end()),
        "re-encoding changes the bytes");
  const auto again = decode(encoded);
  check(again.has_value(), "a re-encoded message does not decode");
  check(again->type == m.type && again->fields == m.fields, "decode(encode(m)) differs from m");
}

// The reply the agent sends for a frame it refuses carries the same code and message.
void check_error_reply(const Error& e) {
  check(!e.message.empty(), "an error without a sentence");
  Frame reply = error_frame(e);
  const auto bytes = reply.bytes();
  const auto m = decode(bytes.subspan(kHeaderSize));
  check(m && m->type == Type::kError, "an error reply does not decode");
  const Error back = error_of(*m);
  check(back.code == e.code && back.message == e.message.substr(0, 4096),
        "an error reply changes the error");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  while (in.size() >= kHeaderSize) {
    const auto length = body_length(in.first<kHeaderSize>());
    in = in.subspan(kHeaderSize);
    if (!length) {
      check_error_reply(length.error());
      return 0;  // the agent ends the connection
    }
    if (*length > in.size()) return 0;  // the agent waits for the rest
    const std::vector<uint8_t> body(in.begin(), in.begin() + *length);
    in = in.subspan(*length);
    const auto m = decode(body);
    if (!m) {
      check_error_reply(m.error());
      return 0;
    }
    read_through_accessors(*m);
    check_round_trip(*m, body);
  }
  return 0;
}
