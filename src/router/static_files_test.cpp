#include "router/static_files.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include "common/sha256.h"
#include "router/router.h"

namespace nimbus::router {
namespace {

const std::string kHash = sha256Hex("hello");

StaticDecision decide(StaticRequest req, uint64_t size = 1000, bool compressible = true) {
  if (req.method.empty()) req.method = "GET";
  return decideStatic(req, StaticFileFacts{kHash, size, compressible});
}

TEST(DecideStatic, ServesWholeFileByDefault) {
  auto d = decide({});
  EXPECT_EQ(d.status, 200);
  EXPECT_EQ(d.encoding, Encoding::Identity);
  EXPECT_EQ(d.length, 1000u);
}

TEST(DecideStatic, RejectsMethodsOtherThanGetAndHead) {
  EXPECT_EQ(decide({.method = "POST"}).status, 405);
  EXPECT_EQ(decide({.method = "HEAD"}).status, 200);
}

TEST(DecideStatic, AnswersNotModifiedForAnyMatchingTag) {
  std::string tag = etagFor(kHash, Encoding::Identity);
  EXPECT_EQ(decide({.ifNoneMatch = tag}).status, 304);
  std::string weak = "W/" + etagFor(kHash, Encoding::Gzip);
  EXPECT_EQ(decide({.ifNoneMatch = weak}).status, 304);
  std::string list = "\"other\", " + tag;
  EXPECT_EQ(decide({.ifNoneMatch = list}).status, 304);
  EXPECT_EQ(decide({.ifNoneMatch = "*"}).status, 304);
  EXPECT_EQ(decide({.ifNoneMatch = "\"nope\""}).status, 200);
}

TEST(DecideStatic, ServesByteRanges) {
  auto a = decide({.range = "bytes=0-4"});
  EXPECT_EQ(a.status, 206);
  EXPECT_EQ(a.offset, 0u);
  EXPECT_EQ(a.length, 5u);
  auto suffix = decide({.range = "bytes=-3"});
  EXPECT_EQ(suffix.status, 206);
  EXPECT_EQ(suffix.offset, 997u);
  EXPECT_EQ(suffix.length, 3u);
  auto open = decide({.range = "bytes=990-"});
  EXPECT_EQ(open.offset, 990u);
  EXPECT_EQ(open.length, 10u);
  auto clamped = decide({.range = "bytes=10-5000"});
  EXPECT_EQ(clamped.length, 990u);
}

TEST(DecideStatic, RefusesUnsatisfiableRangesAndIgnoresOddOnes) {
  EXPECT_EQ(decide({.range = "bytes=1000-"}).status, 416);
  EXPECT_EQ(decide({.range = "bytes=-0"}).status, 416);
  EXPECT_EQ(decide({.range = "bytes=0-1,5-6"}).status, 200);
  EXPECT_EQ(decide({.range = "items=0-1"}).status, 200);
  EXPECT_EQ(decide({.range = "bytes=5-1"}).status, 200);
}

TEST(DecideStatic, HonoursIfRangeOnlyWithTheCurrentStrongTag) {
  std::string tag = etagFor(kHash, Encoding::Identity);
  EXPECT_EQ(decide({.ifRange = tag, .range = "bytes=0-1"}).status, 206);
  EXPECT_EQ(decide({.ifRange = "\"old\"", .range = "bytes=0-1"}).status, 200);
}

TEST(DecideStatic, CompressesOnlyCompressibleFilesWithoutRange) {
  EXPECT_EQ(decide({.acceptEncoding = "gzip, deflate, br"}).encoding, Encoding::Brotli);
  EXPECT_EQ(decide({.acceptEncoding = "gzip"}).encoding, Encoding::Gzip);
  EXPECT_EQ(decide({.acceptEncoding = "br;q=0, gzip"}).encoding, Encoding::Gzip);
  EXPECT_EQ(decide({.acceptEncoding = "gzip"}, 1000, false).encoding, Encoding::Identity);
  EXPECT_EQ(decide({.acceptEncoding = "gzip"}, 100).encoding, Encoding::Identity);
  EXPECT_EQ(decide({.range = "bytes=0-1", .acceptEncoding = "gzip"}).encoding, Encoding::Identity);
}

TEST(Compression, GzipRoundTrips) {
  std::string text(5000, 'a');
  auto gz = compressGzip(text);
  ASSERT_TRUE(gz.ok());
  EXPECT_LT(gz->size(), text.size());
  std::string out(text.size(), '\0');
  z_stream zs{};
  ASSERT_EQ(inflateInit2(&zs, 15 + 16), Z_OK);
  zs.next_in = reinterpret_cast<Bytef*>(gz->data());
  zs.avail_in = static_cast<uInt>(gz->size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&zs, Z_FINISH), Z_STREAM_END);
  inflateEnd(&zs);
  EXPECT_EQ(out, text);
  auto br = compressBrotli(text);
  ASSERT_TRUE(br.ok());
  EXPECT_LT(br->size(), 100u);
}

TEST(Compression, KnowsCompressibleTypes) {
  EXPECT_TRUE(isCompressibleType("text/html; charset=utf-8"));
  EXPECT_TRUE(isCompressibleType("application/javascript; charset=utf-8"));
  EXPECT_TRUE(isCompressibleType("image/svg+xml"));
  EXPECT_FALSE(isCompressibleType("image/png"));
  EXPECT_FALSE(isCompressibleType("application/octet-stream"));
}

TEST(ByteCache, EvictsLeastRecentlyUsedWithinBudget) {
  ByteCache cache(400);
  auto bytes = [](size_t n) { return std::make_shared<const std::string>(n, 'x'); };
  cache.put("a", bytes(100));
  cache.put("b", bytes(100));
  cache.put("c", bytes(100));
  ASSERT_TRUE(cache.get("a"));  // a is now most recent
  cache.put("d", bytes(100));
  cache.put("e", bytes(100));   // evicts b
  EXPECT_TRUE(cache.get("a"));
  EXPECT_FALSE(cache.get("b"));
  EXPECT_LE(cache.sizeBytes(), 400u);
  cache.put("huge", bytes(200));  // over a quarter of the budget: not kept
  EXPECT_FALSE(cache.get("huge"));
}

TEST(DecodePath, DecodesEscapesAndRejectsBadOnes) {
  EXPECT_EQ(decodePath("/a%20b/%21%5B-%5D"), "/a b/![-]");
  EXPECT_FALSE(decodePath("/a%2"));
  EXPECT_FALSE(decodePath("/a%zz"));
  EXPECT_FALSE(decodePath("/a%00"));
}

}  // namespace
}  // namespace nimbus::router
