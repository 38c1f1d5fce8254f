// PKCS#11 templates under libFuzzer, through the module's own entry points: the PKCS#11
// sources are linked in and driven through C_GetFunctionList in-process, on the fixture
// vault (fuzz_vault.h): C_Initialize, a read/write session, C_Login with the fixture PIN,
// once per process. Each input is decoded into a CK_ATTRIBUTE template and given to
// C_FindObjectsInit/C_FindObjects/C_FindObjectsFinal, to C_GetAttributeValue on what was
// found, and to C_CreateObject (what it creates is destroyed again, unless it is a session
// object made with CKA_DESTROYABLE false).
//
// Input: one flags byte (bit 0: pass a NULL template with the decoded count), then
// attributes, each a 4-byte big-endian type and a shape byte:
//   shape % 3 == 0: a value: 2-byte big-endian length L, then L bytes (fewer if the input
//                   ends), in an allocation of exactly that size, so that ASan sees a read
//                   past it;
//   shape % 3 == 1: a NULL pValue with an 8-byte big-endian ulValueLen (any, huge ones too);
//   shape % 3 == 2: a pValue that points at an empty allocation, ulValueLen 0.
// At most 64 attributes. A template is decoded afresh for each call, since
// C_GetAttributeValue writes into it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "check.h"
#include "ck.h"
#include "fuzz_vault.h"

namespace {

using namespace certvault;

void check(bool ok, const char* what) {
  fuzz::check(ok, "pkcs11_templates_fuzz", what);
}

CK_FUNCTION_LIST_PTR g_f = nullptr;
CK_SESSION_HANDLE g_session = CK_INVALID_HANDLE;

constexpr size_t kMaxAttributes = 64;

// Reads big-endian integers off the front of the input; 0 for the bytes it lacks.
struct Reader {
  std::span<const uint8_t> in;
  uint64_t number(size_t bytes) {
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; ++i) {
      v = (v << 8) | (in.empty() ? 0 : in.front());
      if (!in.empty()) in = in.subspan(1);
    }
    return v;
  }
};

struct Template {
  std::vector<CK_ATTRIBUTE> attributes;
  std::vector<std::unique_ptr<uint8_t[]>> values;  // each exactly its attribute's size
  bool null_pointer = false;
  CK_ATTRIBUTE_PTR data() { return null_pointer ? nullptr : attributes.data(); }
  CK_ULONG count() const { return attributes.size(); }
};

Template decode(std::span<const uint8_t> input) {
  Template t;
  Reader r{input};
  t.null_pointer = r.number(1) & 1;
  while (!r.in.empty() && t.attributes.size() < kMaxAttributes) {
    CK_ATTRIBUTE a{};
    a.type = static_cast<CK_ATTRIBUTE_TYPE>(r.number(4));
    switch (r.number(1) % 3) {
      case 0: {
        const size_t len = std::min<size_t>(r.number(2), r.in.size());
        t.values.emplace_back(new uint8_t[len]);
        std::memcpy(t.values.back().get(), r.in.data(), len);
        r.in = r.in.subspan(len);
        a.pValue = t.values.back().get();
        a.ulValueLen = len;
        break;
      }
      case 1:
        a.pValue = nullptr;
        a.ulValueLen = static_cast<CK_ULONG>(r.number(8));
        break;
      case 2:
        t.values.emplace_back(new uint8_t[0]);
        a.pValue = t.values.back().get();
        a.ulValueLen = 0;
        break;
    }
    t.attributes.push_back(a);
  }
  return t;
}

void require(CK_RV rv, const char* what) {
  if (rv != CKR_OK) fuzz::setup_failed(std::string(what) + " failed: " + std::to_string(rv));
}

void find(std::span<const uint8_t> input) {
  Template t = decode(input);
  const CK_RV rv = g_f->C_FindObjectsInit(g_session, t.data(), t.count());
  if (t.null_pointer && t.count()) check(rv == CKR_ARGUMENTS_BAD, "a NULL template was taken");
  if (rv != CKR_OK) return;
  std::vector<CK_OBJECT_HANDLE> found;
  for (int round = 0; round < 8; ++round) {  // the fixture holds a handful of objects
    CK_OBJECT_HANDLE batch[4];
    CK_ULONG n = 99;
    check(g_f->C_FindObjects(g_session, batch, 4, &n) == CKR_OK, "C_FindObjects failed");
    check(n <= 4, "C_FindObjects returned more handles than asked for");
    found.insert(found.end(), batch, batch + n);
    if (n < 4) break;
  }
  check(g_f->C_FindObjectsFinal(g_session) == CKR_OK, "C_FindObjectsFinal failed");
  for (size_t i = 0; i < found.size() && i < 4; ++i) {
    Template out = decode(input);  // the values become output buffers of their own size
    const CK_RV got = g_f->C_GetAttributeValue(g_session, found[i], out.data(), out.count());
    if (out.null_pointer && out.count())
      check(got == CKR_ARGUMENTS_BAD, "a NULL template was taken");
  }
}

void create(std::span<const uint8_t> input) {
  Template t = decode(input);
  CK_OBJECT_HANDLE made = CK_INVALID_HANDLE;
  const CK_RV rv = g_f->C_CreateObject(g_session, t.data(), t.count(), &made);
  if (t.null_pointer && t.count()) check(rv == CKR_ARGUMENTS_BAD, "a NULL template was taken");
  if (rv != CKR_OK) return;
  // A session object asked for CKA_DESTROYABLE false is kept until the session ends.
  CK_BBOOL destroyable = CK_TRUE;
  CK_ATTRIBUTE a = {CKA_DESTROYABLE, &destroyable, sizeof destroyable};
  check(g_f->C_GetAttributeValue(g_session, made, &a, 1) == CKR_OK,
        "cannot read CKA_DESTROYABLE of what was created");
  const CK_RV destroyed = g_f->C_DestroyObject(g_session, made);
  if (destroyable)
    check(destroyed == CKR_OK, "cannot destroy what was created");
  else
    check(destroyed == CKR_ACTION_PROHIBITED, "destroyed an object with CKA_DESTROYABLE false");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)fuzz::fixture_vault();  // sets CERTVAULT_VAULT for the module
  require(C_GetFunctionList(&g_f), "C_GetFunctionList");
  require(g_f->C_Initialize(nullptr), "C_Initialize");
  std::atexit([] { g_f->C_Finalize(nullptr); });
  CK_SLOT_ID slots[4];
  CK_ULONG n = 4;
  require(g_f->C_GetSlotList(CK_TRUE, slots, &n), "C_GetSlotList");
  if (n != 1) fuzz::setup_failed("the module shows " + std::to_string(n) + " tokens, not 1");
  require(g_f->C_OpenSession(slots[0], CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr,
                             &g_session),
          "C_OpenSession");
  std::string pin(fuzz::kPin);
  require(
      g_f->C_Login(g_session, CKU_USER, reinterpret_cast<CK_UTF8CHAR_PTR>(pin.data()), pin.size()),
      "C_Login");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);
  find(input);
  create(input);
  return 0;
}
