// The CLI's option parsers (src/cli/app_options.cpp): the values a user types.
#include "cli/app_options.hpp"

#include <gtest/gtest.h>

namespace corral::cli {
namespace {

TEST(ParseSize, UnitsMultiply) {
  EXPECT_EQ(parse_size("0").value(), 0u);
  EXPECT_EQ(parse_size("4096").value(), 4096u);
  EXPECT_EQ(parse_size("512K").value(), 512u << 10);
  EXPECT_EQ(parse_size("10M").value(), 10u << 20);
  EXPECT_EQ(parse_size("3G").value(), uint64_t{3} << 30);
  EXPECT_EQ(parse_size("999999999999").value(), uint64_t{999999999999});
}

TEST(ParseSize, SizeThatDoesNotFitIn64BitsIsAnErrorNamingIt) {
  // 2^34 G is 2^64 bytes: it would wrap to 0, "never rotate".
  for (const char* s : {"17179869184G", "17179869185G", "999999999999G"}) {
    auto r = parse_size(s);
    ASSERT_FALSE(r) << s << " gave " << r.value();
    EXPECT_NE(r.err().message().find(std::string("'") + s + "'"), std::string::npos) << r.err().message();
    EXPECT_NE(r.err().message().find("too large"), std::string::npos) << r.err().message();
  }
  // The largest that fits still does.
  EXPECT_EQ(parse_size("17179869183G").value(), uint64_t{17179869183} << 30);
}

}  // namespace
}  // namespace corral::cli
