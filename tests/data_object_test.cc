// PKCS#11 data objects (CKO_DATA) kept in the vault, through the keystore API: what the
// module will serve. docs/vault-format.md, "Data objects".
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support.h"
#include "test_vault.h"
#include "vault.h"

namespace cvtest {
namespace {

using certvault::Code;
using certvault::DataObject;
using certvault::DataObjectRequest;
using certvault::SecureBytes;
using certvault::Vault;
using namespace std::string_literals;

// DER of OID 1.2.840.113549.1.9.1 (emailAddress): an OID a client might tag its data with.
const std::vector<uint8_t> kOid = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                   0xf7, 0x0d, 0x01, 0x09, 0x01};

DataObjectRequest request(std::string label, std::string value, bool is_private) {
  DataObjectRequest r;
  r.application = "certvault tests";
  r.label = std::move(label);
  r.object_id = kOid;
  r.is_private = is_private;
  r.value = SecureBytes::from(value);
  return r;
}

std::vector<std::string> labels(const std::vector<DataObject>& objects) {
  std::vector<std::string> out;
  for (const auto& d : objects) out.push_back(d.label);
  return out;
}

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& f : fs::directory_iterator(dir)) out.push_back(f.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

class DataObjectTest : public VaultTest {
 protected:
  DataObject make(std::string label, std::string value, bool is_private) {
    auto made = vault().create_data_object(request(label, value, is_private));
    EXPECT_TRUE(made) << why(made);
    return made ? *made : DataObject{};
  }
  std::string value_of(const Vault& v, const std::string& id) {
    auto value = v.data_object_value(id);
    EXPECT_TRUE(value) << why(value);
    return value ? std::string(value->view()) : std::string();
  }
};

TEST_F(DataObjectTest, CreateListReadAndDestroy) {
  EXPECT_TRUE(vault().data_objects().empty());
  const DataObject made = make("config", "some bytes\0with a NUL"s, false);
  EXPECT_EQ(made.id.size(), 32u);
  EXPECT_EQ(made.application, "certvault tests");
  EXPECT_EQ(made.object_id, kOid);
  EXPECT_FALSE(made.is_private);
  EXPECT_EQ(made.value_size, std::string("some bytes\0with a NUL"s).size());
  ASSERT_EQ(vault().data_objects(), std::vector<DataObject>{made});
  EXPECT_EQ(vault().find_data_object(made.id), made);
  EXPECT_EQ(value_of(vault(), made.id), "some bytes\0with a NUL"s);

  ASSERT_TRUE(vault().destroy_data_object(made.id));
  EXPECT_TRUE(vault().data_objects().empty());
  EXPECT_FALSE(vault().find_data_object(made.id));
  auto gone = vault().data_object_value(made.id);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, Code::kNotFound) << why(gone);
  auto again = vault().destroy_data_object(made.id);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Code::kNotFound) << why(again);
}

TEST_F(DataObjectTest, DestroyRemovesTheValueFile) {
  const auto before = files_in(dir_ / "objects");
  const DataObject made = make("secret", "s3cret", true);
  EXPECT_EQ(files_in(dir_ / "objects").size(), before.size() + 1);
  ASSERT_TRUE(vault().destroy_data_object(made.id));
  EXPECT_EQ(files_in(dir_ / "objects"), before);
}

TEST_F(DataObjectTest, EmptyValueAndAttributesAreKept) {
  DataObjectRequest r;
  r.is_private = false;
  auto made = vault().create_data_object(r);
  ASSERT_TRUE(made) << why(made);
  auto reader = Vault::open(dir_);
  ASSERT_TRUE(reader) << why(reader);
  auto found = reader->find_data_object(made->id);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->label, "");
  EXPECT_EQ(found->application, "");
  EXPECT_TRUE(found->object_id.empty());
  EXPECT_EQ(found->value_size, 0u);
  EXPECT_EQ(value_of(*reader, made->id), "");
}

TEST_F(DataObjectTest, PrivateOnesAreSeenAndReadOnlyOnceUnlocked) {
  const DataObject shown = make("public", "anyone may read this", false);
  const DataObject hidden = make("private", "only after login", true);
  auto reader = Vault::open(dir_);  // no PIN: as a PKCS#11 session before C_Login
  ASSERT_TRUE(reader) << why(reader);
  EXPECT_EQ(labels(reader->data_objects()), std::vector<std::string>{"public"});
  EXPECT_FALSE(reader->find_data_object(hidden.id));
  EXPECT_EQ(value_of(*reader, shown.id), "anyone may read this");
  auto locked = reader->data_object_value(hidden.id);
  ASSERT_FALSE(locked);
  EXPECT_EQ(locked.error().code, Code::kLocked) << why(locked);

  ASSERT_TRUE(reader->unlock(pin()));
  EXPECT_EQ(labels(reader->data_objects()), (std::vector<std::string>{"public", "private"}));
  EXPECT_EQ(reader->find_data_object(hidden.id), hidden);
  EXPECT_EQ(value_of(*reader, hidden.id), "only after login");
  reader->lock();
  EXPECT_EQ(labels(reader->data_objects()), std::vector<std::string>{"public"});
}

TEST_F(DataObjectTest, PrivateValueIsNotStoredInTheClear) {
  const std::string value = "a private value that must not be on disk";
  make("private", value, true);
  for (const auto& f : fs::directory_iterator(dir_ / "objects"))
    EXPECT_EQ(read_file(f.path()).find(value), std::string::npos) << f.path();
  EXPECT_EQ(read_file(dir_ / "manifest").find(value), std::string::npos);
}

TEST_F(DataObjectTest, SurviveCloseAndReopen) {
  const DataObject a = make("a", "value a", false);
  const DataObject b = make("b", "value b", true);
  vault_.reset();
  auto v = Vault::open(dir_);
  ASSERT_TRUE(v) << why(v);
  ASSERT_TRUE(v->unlock(pin()));
  EXPECT_EQ(v->data_objects(), (std::vector<DataObject>{a, b}));
  EXPECT_EQ(value_of(*v, a.id), "value a");
  EXPECT_EQ(value_of(*v, b.id), "value b");
}

TEST_F(DataObjectTest, OtherHandlesSeeCommitsAndEntriesStayAsTheyWere) {
  issue("client");
  auto other = Vault::open(dir_);
  ASSERT_TRUE(other) << why(other);
  const DataObject made = make("later", "made after the other opened", false);
  EXPECT_EQ(other->find_data_object(made.id), made);
  issue("second");  // an entry after a data object: the lines stay in their order
  auto reopened = Vault::open(dir_);
  ASSERT_TRUE(reopened) << why(reopened);
  ASSERT_TRUE(reopened->unlock(pin()));
  EXPECT_TRUE(reopened->find("client"));
  EXPECT_TRUE(reopened->find("second"));
  EXPECT_EQ(reopened->data_objects(), std::vector<DataObject>{made});
  EXPECT_TRUE(reopened->private_key("second"));
}

// Every 32nd commit removes the object files no manifest names: a data object's file is
// named by its line, so it stays.
TEST_F(DataObjectTest, ValueFilesSurviveGarbageCollection) {
  issue("client");
  const DataObject made = make("kept", "through many commits", true);
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(vault().set_listed_publicly("client", i % 2 == 0));
  auto reopened = Vault::open(dir_);
  ASSERT_TRUE(reopened) << why(reopened);
  ASSERT_TRUE(reopened->unlock(pin()));
  EXPECT_EQ(value_of(*reopened, made.id), "through many commits");
}

TEST_F(DataObjectTest, ChangesNeedUnlock) {
  const DataObject made = make("kept", "v", false);
  auto reader = Vault::open(dir_);
  ASSERT_TRUE(reader) << why(reader);
  auto before = snapshot(dir_);
  auto created = reader->create_data_object(request("new", "v", false));
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().code, Code::kLocked) << why(created);
  auto destroyed = reader->destroy_data_object(made.id);
  ASSERT_FALSE(destroyed);
  EXPECT_EQ(destroyed.error().code, Code::kLocked) << why(destroyed);
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
}

struct BadRequest {
  std::string name;
  DataObjectRequest (*make)();
  std::string says;  // part of the one-line message
};

class DataObjectRefused : public DataObjectTest,
                          public ::testing::WithParamInterface<BadRequest> {};

TEST_P(DataObjectRefused, WithOneClearLineAndChangesNothing) {
  auto before = snapshot(dir_);
  auto made = vault().create_data_object(GetParam().make());
  ASSERT_FALSE(made);
  EXPECT_EQ(made.error().code, Code::kInvalidInput) << why(made);
  EXPECT_NE(made.error().message.find(GetParam().says), std::string::npos) << why(made);
  EXPECT_EQ(made.error().message.find('\n'), std::string::npos);
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
  EXPECT_TRUE(vault().data_objects().empty());
}

INSTANTIATE_TEST_SUITE_P(
    Limits, DataObjectRefused,
    ::testing::Values(
        BadRequest{"ValueTooLarge",
                   [] {
                     auto r = request("big", "", true);
                     r.value = SecureBytes(certvault::kDataValueMax + 1);
                     return r;
                   },
                   "at most 65536 are stored"},
        BadRequest{"LabelTooLong",
                   [] { return request(std::string(certvault::kDataTextMax + 1, 'l'), "", true); },
                   "label (CKA_LABEL) is 257 bytes"},
        BadRequest{"ApplicationTooLong",
                   [] {
                     auto r = request("l", "", true);
                     r.application.assign(certvault::kDataTextMax + 1, 'a');
                     return r;
                   },
                   "application (CKA_APPLICATION) is 257 bytes"},
        BadRequest{"LabelNotUtf8", [] { return request("bad \xff byte", "", true); },
                   "is not UTF-8 text"},
        BadRequest{"LabelWithNul", [] { return request(std::string("a\0b", 3), "", true); },
                   "without NUL"},
        BadRequest{"ObjectIdNotAnOid",
                   [] {
                     auto r = request("l", "", true);
                     r.object_id = {0x04, 0x01, 0x00};  // an OCTET STRING
                     return r;
                   },
                   "not one DER-encoded object identifier"},
        BadRequest{"ObjectIdWithTrailingBytes",
                   [] {
                     auto r = request("l", "", true);
                     r.object_id.push_back(0x00);
                     return r;
                   },
                   "not one DER-encoded object identifier"},
        BadRequest{"ObjectIdTooLong",
                   [] {
                     auto r = request("l", "", true);
                     r.object_id.assign(certvault::kDataObjectIdMax + 1, 0x01);
                     return r;
                   },
                   "CKA_OBJECT_ID is 129 bytes"}),
    [](const auto& info) { return info.param.name; });

TEST_F(DataObjectTest, LargestValueIsKept) {
  auto r = request("largest", "", true);
  r.value = SecureBytes::random(certvault::kDataValueMax);
  auto made = vault().create_data_object(r);
  ASSERT_TRUE(made) << why(made);
  auto value = vault().data_object_value(made->id);
  ASSERT_TRUE(value) << why(value);
  EXPECT_TRUE(*value == r.value);
}

TEST_F(DataObjectTest, MalformedIdIsInvalidInput) {
  auto read = vault().data_object_value("../../etc/passwd");
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().code, Code::kInvalidInput) << why(read);
  EXPECT_EQ(read.error().message.find("passwd"), std::string::npos);
  EXPECT_FALSE(vault().find_data_object("nope"));
}

TEST_F(DataObjectTest, ValueFileChangedOnDiskIsDamage) {
  const DataObject made = make("public", "original value", false);
  for (const auto& f : fs::directory_iterator(dir_ / "objects")) {
    std::string text = read_file(f.path());
    if (text.find("\"data:" + made.id + "\"") == std::string::npos) continue;
    overwrite_in_place(f.path(), text + " ");
  }
  auto reader = Vault::open(dir_);
  ASSERT_TRUE(reader) << why(reader);
  auto read = reader->data_object_value(made.id);
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().code, Code::kTampered) << why(read);
}

}  // namespace
}  // namespace cvtest
