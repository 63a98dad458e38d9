#include "common/sha256.h"

#include <gtest/gtest.h>

#include "common/random.h"

#include <set>

namespace nimbus {

TEST(Sha256, HashesKnownVector) {
  EXPECT_EQ(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, IncrementalEqualsOneShot) {
  Sha256 h;
  h.update("a");
  h.update("bc");
  EXPECT_EQ(h.finishHex(), sha256Hex("abc"));
}

TEST(Sha256, RecognisesHexDigests) {
  EXPECT_TRUE(isSha256Hex(sha256Hex("x")));
  EXPECT_FALSE(isSha256Hex("ABC"));
  EXPECT_FALSE(isSha256Hex(std::string(64, 'g')));
}

TEST(Sha256, ReportsMissingFileWithPath) {
  auto r = sha256File("/nonexistent/file");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("/nonexistent/file"), std::string::npos);
}

TEST(RandomId, UsesDnsSafeAlphabet) {
  auto id = randomId(32);
  ASSERT_EQ(id.size(), 32u);
  for (char c : id) EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'));
  EXPECT_NE(randomId(12), randomId(12));
  EXPECT_EQ(randomToken().rfind("nmb_", 0), 0u);
}

TEST(FastId, GivesDistinctDnsSafeIds) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto id = fastId();
    ASSERT_EQ(id.size(), 20u);
    for (char c : id) ASSERT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'));
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

}  // namespace nimbus
