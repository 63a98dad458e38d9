#include <gtest/gtest.h>

#include "testing/temp_dir.h"
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/sha256.h"
#include "content/content_store.h"

namespace nimbus::content {
namespace {

namespace fs = std::filesystem;

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it.
class TempDir : public nimbus::testing::TempDir {
 public:
  TempDir() : nimbus::testing::TempDir("nimbus-content") {}
};

size_t countEntries(const std::string& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir)) ++n;
  return n;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

class LocalContentStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = openLocalContentStore(root());
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    store_ = std::move(opened).value();
  }

  std::string root() const { return dir_.path() + "/blobs"; }
  std::string tmp() const { return root() + "/tmp"; }

  TempDir dir_;
  std::unique_ptr<ContentStore> store_;
};

TEST_F(LocalContentStoreTest, PutReturnsHashAndReadReturnsBytes) {
  auto hash = store_->put("hello world");
  ASSERT_TRUE(hash.ok()) << hash.error().message;
  EXPECT_EQ(*hash, sha256Hex("hello world"));
  EXPECT_TRUE(store_->has(*hash));
  auto bytes = store_->read(*hash);
  ASSERT_TRUE(bytes.ok()) << bytes.error().message;
  EXPECT_EQ(*bytes, "hello world");
}

TEST_F(LocalContentStoreTest, StoresBlobUnderTwoHexPrefixDirectory) {
  auto hash = store_->put("layout");
  ASSERT_TRUE(hash.ok());
  std::string expected = root() + "/" + hash->substr(0, 2) + "/" + hash->substr(2);
  EXPECT_EQ(store_->localPath(*hash), expected);
  std::ifstream in(expected);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "layout");
}

TEST_F(LocalContentStoreTest, StoresEmptyBlob) {
  auto hash = store_->put("");
  ASSERT_TRUE(hash.ok()) << hash.error().message;
  auto bytes = store_->read(*hash);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, "");
}

TEST_F(LocalContentStoreTest, BlobIsInvisibleUntilCommitFinishes) {
  std::string data(200'000, 'x');
  std::string hash = sha256Hex(data);
  auto writer = store_->beginWrite(hash, data.size());
  ASSERT_TRUE(writer.ok()) << writer.error().message;
  ASSERT_TRUE((*writer)->write(data.data(), 100'000).ok());
  EXPECT_FALSE(store_->has(hash));
  EXPECT_EQ(store_->read(hash).error().kind, ErrorKind::NotFound);
  EXPECT_EQ(store_->localPath(hash), std::nullopt);
  ASSERT_TRUE((*writer)->write(data.data() + 100'000, 100'000).ok());
  EXPECT_EQ((*writer)->bytesWritten(), data.size());
  EXPECT_FALSE(store_->has(hash));
  EXPECT_EQ(store_->missing({hash}), std::vector<std::string>{hash});

  auto committed = (*writer)->commit();
  ASSERT_TRUE(committed.ok()) << committed.error().message;
  EXPECT_TRUE(store_->has(hash));
  EXPECT_EQ(*store_->read(hash), data);
  EXPECT_EQ(countEntries(tmp()), 0u);
}

TEST_F(LocalContentStoreTest, CommitRejectsShortUploadWithExpectedAndReceivedSize) {
  std::string hash = sha256Hex("0123456789");
  auto writer = store_->beginWrite(hash, 10);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->write("01234", 5).ok());
  auto committed = (*writer)->commit();
  ASSERT_FALSE(committed.ok());
  EXPECT_EQ(committed.error().kind, ErrorKind::Invalid);
  EXPECT_EQ(committed.error().message, "blob " + hash + ": expected 10 bytes, received 5");
  EXPECT_FALSE(store_->has(hash));
  EXPECT_EQ(countEntries(tmp()), 0u);
}

TEST_F(LocalContentStoreTest, WriteRejectsBytesBeyondExpectedSize) {
  std::string hash = sha256Hex("abc");
  auto writer = store_->beginWrite(hash, 3);
  ASSERT_TRUE(writer.ok());
  auto written = (*writer)->write("abcd", 4);
  ASSERT_FALSE(written.ok());
  EXPECT_EQ(written.error().kind, ErrorKind::Invalid);
  EXPECT_TRUE(contains(written.error().message, "expected 3 bytes, received at least 4"))
      << written.error().message;
  // The writer stays failed and its temp file is gone at once.
  EXPECT_FALSE((*writer)->commit().ok());
  EXPECT_EQ(countEntries(tmp()), 0u);
  EXPECT_FALSE(store_->has(hash));
}

TEST_F(LocalContentStoreTest, CommitRejectsContentThatDoesNotMatchItsHash) {
  std::string announced = sha256Hex("expected");
  auto writer = store_->beginWrite(announced, 8);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->write("tampered", 8).ok());
  auto committed = (*writer)->commit();
  ASSERT_FALSE(committed.ok());
  EXPECT_EQ(committed.error().kind, ErrorKind::Invalid);
  EXPECT_EQ(committed.error().message,
            "blob " + announced + ": content hashes to " + sha256Hex("tampered") +
                "; the upload was corrupted or the hash is wrong");
  EXPECT_FALSE(store_->has(announced));
  EXPECT_FALSE(store_->has(sha256Hex("tampered")));
  EXPECT_EQ(countEntries(tmp()), 0u);
}

TEST_F(LocalContentStoreTest, RejectsHashesThatAreNotSha256Hex) {
  for (std::string bad : {std::string("abc"), std::string(64, 'A'), std::string("../../etc/passwd"),
                          std::string(63, 'a') + "/"}) {
    auto writer = store_->beginWrite(bad, 1);
    ASSERT_FALSE(writer.ok()) << bad;
    EXPECT_EQ(writer.error().kind, ErrorKind::Invalid);
    EXPECT_TRUE(contains(writer.error().message, "64 lower-case hex")) << writer.error().message;
    EXPECT_EQ(store_->read(bad).error().kind, ErrorKind::Invalid);
    EXPECT_FALSE(store_->has(bad));
    EXPECT_EQ(store_->localPath(bad), std::nullopt);
  }
}

TEST_F(LocalContentStoreTest, DestroyingUncommittedWriterRemovesItsTempFile) {
  std::string hash = sha256Hex("abandoned");
  {
    auto writer = store_->beginWrite(hash, 9);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->write("aband", 5).ok());
    EXPECT_EQ(countEntries(tmp()), 1u);
  }
  EXPECT_EQ(countEntries(tmp()), 0u);
  EXPECT_FALSE(store_->has(hash));
}

TEST_F(LocalContentStoreTest, CommittingAnExistingBlobSucceedsAndDropsTheTempFile) {
  auto hash = store_->put("twice");
  ASSERT_TRUE(hash.ok());
  auto writer = store_->beginWrite(*hash, 5);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->write("twice", 5).ok());
  auto committed = (*writer)->commit();
  ASSERT_TRUE(committed.ok()) << committed.error().message;
  EXPECT_EQ(countEntries(tmp()), 0u);
  EXPECT_EQ(*store_->read(*hash), "twice");
}

TEST_F(LocalContentStoreTest, ReadOfAbsentBlobIsNotFoundAndNamesTheHash) {
  std::string hash = sha256Hex("absent");
  auto bytes = store_->read(hash);
  ASSERT_FALSE(bytes.ok());
  EXPECT_EQ(bytes.error().kind, ErrorKind::NotFound);
  EXPECT_TRUE(contains(bytes.error().message, hash));
  EXPECT_EQ(store_->localPath(hash), std::nullopt);
}

TEST_F(LocalContentStoreTest, MissingListsAbsentHashesInInputOrderWithoutDuplicates) {
  auto present = store_->put("present");
  ASSERT_TRUE(present.ok());
  std::string a = sha256Hex("a"), b = sha256Hex("b");
  EXPECT_EQ(store_->missing({b, *present, a, b, *present, a}), (std::vector<std::string>{b, a}));
  EXPECT_TRUE(store_->missing({}).empty());
}

TEST_F(LocalContentStoreTest, BlobFilesAreWorldReadableWhateverTheUmask) {
  mode_t old = ::umask(077);
  auto hash = store_->put("shared with the router");
  ::umask(old);
  ASSERT_TRUE(hash.ok());
  struct stat st;
  ASSERT_EQ(::stat(store_->localPath(*hash)->c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

TEST_F(LocalContentStoreTest, BlobsSurviveReopen) {
  auto hash = store_->put("durable");
  ASSERT_TRUE(hash.ok());
  store_.reset();
  auto reopened = openLocalContentStore(root() + "/");
  ASSERT_TRUE(reopened.ok()) << reopened.error().message;
  EXPECT_EQ(*(*reopened)->read(*hash), "durable");
}

TEST_F(LocalContentStoreTest, ConcurrentWritersOfSameAndDistinctBlobsAllSucceed) {
  constexpr int kThreads = 8;
  constexpr int kBlobsPerThread = 40;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kBlobsPerThread; ++i) {
        // Even blobs are shared by all threads, odd ones are private to this thread.
        std::string data = i % 2 == 0 ? "shared-" + std::to_string(i)
                                      : "thread-" + std::to_string(t) + "-" + std::to_string(i);
        data.append(static_cast<size_t>(i) * 1000, 'z');
        auto hash = store_->put(data);
        if (!hash.ok() || *hash != sha256Hex(data)) {
          ++failures;
          continue;
        }
        auto back = store_->read(*hash);
        if (!back.ok() || *back != data) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(countEntries(tmp()), 0u);
}

TEST(OpenLocalContentStore, RemovesStaleTempFiles) {
  TempDir dir;
  std::string root = dir.path() + "/blobs";
  {
    auto store = openLocalContentStore(root);
    ASSERT_TRUE(store.ok());
    // A writer that never finishes, as after a crash: its temp file stays behind.
    auto writer = (*store)->beginWrite(sha256Hex("x"), 1);
    ASSERT_TRUE(writer.ok());
    std::ofstream(root + "/tmp/leftover.tmp") << "partial";
    EXPECT_EQ(countEntries(root + "/tmp"), 2u);
    auto reopened = openLocalContentStore(root);
    ASSERT_TRUE(reopened.ok()) << reopened.error().message;
    EXPECT_EQ(countEntries(root + "/tmp"), 0u);
    // The abandoned writer's destructor finds its file already gone; that is fine.
  }
  EXPECT_EQ(countEntries(root + "/tmp"), 0u);
}

TEST(OpenLocalContentStore, CreatesMissingRootWithParents) {
  TempDir dir;
  std::string root = dir.path() + "/data/nested/blobs";
  auto store = openLocalContentStore(root);
  ASSERT_TRUE(store.ok()) << store.error().message;
  EXPECT_TRUE(fs::is_directory(root + "/tmp"));
}

TEST(OpenLocalContentStore, ReportsUncreatableRootWithPathAndReason) {
  TempDir dir;
  std::string file = dir.path() + "/not-a-dir";
  std::ofstream(file) << "x";
  auto store = openLocalContentStore(file + "/blobs");
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().kind, ErrorKind::Io);
  EXPECT_TRUE(contains(store.error().message, file + "/blobs")) << store.error().message;
  EXPECT_TRUE(contains(store.error().message, "Not a directory")) << store.error().message;
}

}  // namespace
}  // namespace nimbus::content
