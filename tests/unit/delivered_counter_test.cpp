// The round-robin taken-connections counter the primary and a worker share:
// two mappings of one memfd see each other's adds, and a worker refuses to
// map anything else the channel might carry.
#include <gtest/gtest.h>
#include <unistd.h>

#include "net/delivered.hpp"

using corral::unique_fd;
using corral::net::detail::delivered_counter;

TEST(DeliveredCounter, TwoMappingsOfOneCounterSeeEachOthersAdds) {
  unique_fd share;
  auto primary = delivered_counter::create(share);
  ASSERT_TRUE(primary) << primary.err().message();
  ASSERT_TRUE(share);
  auto worker = delivered_counter::map(share.get());
  ASSERT_TRUE(worker) << worker.err().message();
  EXPECT_EQ(primary->load(), 0u);
  worker->add(3);
  worker->add(250);
  EXPECT_EQ(primary->load(), 253u);
  delivered_counter moved = std::move(worker.value());
  moved.add(1);
  EXPECT_EQ(primary->load(), 254u);
}

TEST(DeliveredCounter, TheWorkerCannotShrinkItUnderThePrimary) {
  unique_fd share;
  auto primary = delivered_counter::create(share);
  ASSERT_TRUE(primary);
  // Reading a mapping past a shrunk file's end is SIGBUS: the seal forbids it.
  EXPECT_NE(::ftruncate(share.get(), 0), 0);
  EXPECT_EQ(primary->load(), 0u);
}

TEST(DeliveredCounter, AnythingButTheSealedCounterIsRefused) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  unique_fd r(p[0]), w(p[1]);
  EXPECT_FALSE(delivered_counter::map(r.get()));
  EXPECT_FALSE(delivered_counter::map(-1));
  char path[] = "/tmp/corral-counter-XXXXXX";
  unique_fd file(::mkstemp(path));
  ASSERT_TRUE(file);
  ::unlink(path);
  ASSERT_EQ(::ftruncate(file.get(), 4096), 0);
  EXPECT_FALSE(delivered_counter::map(file.get()));  // right size, but not sealed
}
