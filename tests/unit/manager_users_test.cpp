// Users and groups by name or number (src/daemon/users.cpp), read from a
// passwd and a group file the test writes.
#include "daemon/users.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

namespace corral::daemon {
namespace {

class Users : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/corral-users-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::ofstream(dir_ + "/passwd") << "root:x:0:0:root:/root:/bin/bash\n"
                                       "# a comment\n"
                                       "+nis-marker:x:5:5:nis:/:/bin/sh\n"
                                       "broken:x:notanumber:1:b:/b:/bin/sh\n"
                                       "short:x:7\n"
                                       "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
                                       "app:x:1000:1001:App,,,:/home/app:/bin/bash";  // no newline at the end
    std::ofstream(dir_ + "/group") << "root:x:0:\nwww-data:x:33:\nstaff:x:50:app,www-data\n";
  }
  void TearDown() override {
    for (const char* f : {"/passwd", "/group"}) std::remove((dir_ + f).c_str());
    ::rmdir(dir_.c_str());
  }
  std::string passwd() const { return dir_ + "/passwd"; }
  std::string group() const { return dir_ + "/group"; }
  std::string dir_;
};

TEST_F(Users, ByNameOrNumberWithTheirPrimaryGroupAndHome) {
  auto w = find_user("www-data", passwd());
  ASSERT_TRUE(w);
  EXPECT_EQ(w->uid, 33u);
  EXPECT_EQ(w->gid, 33u);
  EXPECT_EQ(w->home, "/var/www");
  auto a = find_user("1000", passwd());
  ASSERT_TRUE(a);
  EXPECT_EQ(a->name, "app");
  EXPECT_EQ(a->gid, 1001u);
  EXPECT_EQ(a->shell, "/bin/bash");
  EXPECT_EQ(find_user(uid_t{0}, passwd())->name, "root");
  EXPECT_EQ(find_user("01000", passwd())->name, "app");  // a number, however written
  EXPECT_FALSE(find_user("nobody", passwd()));
  EXPECT_FALSE(find_user("broken", passwd()));  // a line that does not parse is no user
  EXPECT_FALSE(find_user("short", passwd()));
  EXPECT_FALSE(find_user("+nis-marker", passwd()));
  EXPECT_FALSE(find_user("app", dir_ + "/missing"));
}

TEST_F(Users, GroupsByNameOrNumber) {
  EXPECT_EQ(find_group("staff", group())->gid, 50u);
  EXPECT_EQ(find_group("33", group())->name, "www-data");
  EXPECT_FALSE(find_group("wheel", group()));
  EXPECT_FALSE(find_group("77", group()));
}

TEST(ParseId, DigitsUpToTheLargestIdThatIsNotMinusOne) {
  EXPECT_EQ(parse_id("0"), 0u);
  EXPECT_EQ(parse_id("65534"), 65534u);
  EXPECT_EQ(parse_id("4294967294"), 4294967294u);
  for (const char* bad : {"", "-1", "4294967295", "99999999999", "12a", " 1", "+1"}) EXPECT_FALSE(parse_id(bad)) << bad;
}

}  // namespace
}  // namespace corral::daemon
