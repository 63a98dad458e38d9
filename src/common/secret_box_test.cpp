#include "common/secret_box.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "testing/temp_dir.h"

namespace nimbus {
namespace {

TEST(SecretBox, SealsAndOpensWithTheSameKey) {
  testing::TempDir dir("nimbus-secret");
  auto box = SecretBox::loadOrCreate(dir.path() + "/secret.key");
  ASSERT_TRUE(box.ok()) << box.error().message;
  for (std::string text : {std::string(), std::string("v"), std::string(1000, 'x')}) {
    std::string sealed = box->seal(text);
    // Long plaintext must not show through (short strings may occur in base64 by chance).
    if (text.size() >= 16) {
      EXPECT_EQ(sealed.find(text.substr(0, 16)), std::string::npos);
    }
    auto opened = box->open(sealed);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    EXPECT_EQ(*opened, text);
  }
  EXPECT_NE(box->seal("same"), box->seal("same"));  // fresh nonce each time
}

TEST(SecretBox, KeepsItsKeyInAPrivateFileAcrossRestarts) {
  testing::TempDir dir("nimbus-secret");
  std::string path = dir.path() + "/secret.key";
  std::string sealed = SecretBox::loadOrCreate(path)->seal("db-password");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = SecretBox::loadOrCreate(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again->open(sealed), "db-password");
}

TEST(SecretBox, RejectsAlteredTextAndOtherKeys) {
  testing::TempDir a("nimbus-secret");
  testing::TempDir b("nimbus-secret");
  auto boxA = SecretBox::loadOrCreate(a.path() + "/k");
  auto boxB = SecretBox::loadOrCreate(b.path() + "/k");
  std::string sealed = boxA->seal("value");
  EXPECT_FALSE(boxB->open(sealed).ok());
  std::string altered = sealed;
  altered[5] = altered[5] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(boxA->open(altered).ok());
  EXPECT_FALSE(boxA->open("not base64!").ok());
}

}  // namespace
}  // namespace nimbus
