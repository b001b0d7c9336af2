#include <gtest/gtest.h>
#include <uv.h>

#include "corral/error.hpp"

TEST(Error, FromUvNamesTheThingAndTheReason) {
  auto e = corral::error::from_uv(UV_EADDRINUSE, "listen 127.0.0.1:80");
  EXPECT_EQ(e.message(), "listen 127.0.0.1:80: address already in use");
  EXPECT_EQ(e.code(), std::errc::address_in_use);
}

TEST(Error, ResultCarriesValueOrError) {
  corral::result<int> ok = 5;
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, 5);
  corral::result<int> bad = corral::error(std::make_error_code(std::errc::invalid_argument), "bad");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.err().message(), "bad");
}
