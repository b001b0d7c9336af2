// watch's pure rules: which paths it leaves out (PM2's ignore_watch, and the
// names always left out), and how changes batch into restarts.
#include "daemon/watch_rules.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace corral::daemon {
namespace {

TEST(GlobMatch, StarStaysWithinAComponentAndDoubleStarSpansAny) {
  EXPECT_TRUE(glob_match("*.log", "app.log"));
  EXPECT_FALSE(glob_match("*.log", "logs/app.log"));
  EXPECT_TRUE(glob_match("logs/*.log", "logs/app.log"));
  EXPECT_FALSE(glob_match("logs/*.log", "logs/old/app.log"));
  EXPECT_TRUE(glob_match("logs/**", "logs/old/app.log"));
  EXPECT_TRUE(glob_match("logs/**", "logs"));  // ** matches no component too
  EXPECT_TRUE(glob_match("**/cache/**", "a/b/cache/x/y"));
  EXPECT_TRUE(glob_match("**/cache/**", "cache"));
  EXPECT_FALSE(glob_match("**/cache/**", "a/cached/x"));
  EXPECT_TRUE(glob_match("a/?/c", "a/b/c"));
  EXPECT_TRUE(glob_match("[ab]*", "beta"));
  EXPECT_FALSE(glob_match("[ab]*", "gamma"));
  EXPECT_TRUE(glob_match("/srv/app/tmp", "/srv/app/tmp"));
  EXPECT_FALSE(glob_match("/srv/app/tmp", "/srv/app/tmp2"));
}

TEST(GlobMatch, ManyDoubleStarsStayLinearNotExponential) {
  // A backtracking matcher takes 2^40 steps here.
  std::string pattern, path;
  for (int k = 0; k < 40; ++k) pattern += "**/a/";
  pattern += "b";
  for (int k = 0; k < 60; ++k) path += "a/";
  path += "c";
  EXPECT_FALSE(glob_match(pattern, path));
}

TEST(IgnoreRules, DotNamesNodeModulesAndPycacheAreAlwaysLeftOut) {
  ignore_rules r({}, "/srv/app");
  EXPECT_TRUE(r.ignores("/srv/app/.git"));
  EXPECT_TRUE(r.ignores("/srv/app/src/.main.py.swp"));
  EXPECT_TRUE(r.ignores("/srv/app/node_modules"));
  EXPECT_TRUE(r.ignores("/srv/app/lib/__pycache__"));
  EXPECT_FALSE(r.ignores("/srv/app/main.py"));
  EXPECT_FALSE(r.ignores("/srv/app/src"));
  EXPECT_FALSE(r.ignores("/srv/app/my.node_modules.txt"));  // names, not substrings (PM2's regex is looser)
  // Only the last component: a watched tree may itself live below a dot-dir.
  ignore_rules home({}, "/home/u/.apps/web");
  EXPECT_FALSE(home.ignores("/home/u/.apps/web/main.py"));
}

TEST(IgnoreRules, UserPatternsAddToTheDefaults) {
  ignore_rules r({"*.log", "tmp", "./build/", "data/**/*.db", "/var/cache/web"}, "/srv/app");
  EXPECT_TRUE(r.ignores("/srv/app/x.log"));          // a name, at any depth
  EXPECT_TRUE(r.ignores("/srv/app/a/b/x.log"));
  EXPECT_TRUE(r.ignores("/srv/app/sub/tmp"));
  EXPECT_TRUE(r.ignores("/srv/app/build"));          // relative to the cwd, "./" and "/" dropped
  EXPECT_TRUE(r.ignores("/srv/app/build/out.o"));    // and what is below it
  EXPECT_FALSE(r.ignores("/srv/app/src/build"));     // a path pattern is anchored at the cwd
  EXPECT_TRUE(r.ignores("/srv/app/data/x/y/z.db"));
  EXPECT_TRUE(r.ignores("/srv/app/data/z.db"));
  EXPECT_FALSE(r.ignores("/srv/app/data/z.csv"));
  EXPECT_TRUE(r.ignores("/var/cache/web/page"));     // absolute
  EXPECT_FALSE(r.ignores("/var/cache/webs"));
  EXPECT_FALSE(r.ignores("/srv/app/main.py"));
  EXPECT_TRUE(r.ignores("/srv/app/.env"));           // the defaults still apply
  // Relative path patterns never match outside the cwd.
  EXPECT_FALSE(r.ignores("/elsewhere/build"));
  EXPECT_FALSE(r.ignores("/srv/application/build"));
}

TEST(IgnoreRules, EmptyAndDotPatternsLeaveNothingOut) {
  ignore_rules r({".", "./", "", "././"}, "/srv/app/");
  EXPECT_FALSE(r.ignores("/srv/app/main.py"));
  EXPECT_FALSE(r.ignores("/srv/app/src"));
}

TEST(ChangeBatch, ChangesWithinTheDelayMakeOneRestart) {
  change_batch b;
  EXPECT_FALSE(b.collecting());
  EXPECT_TRUE(b.add("/a/x"));   // opens the batch: arm the timer
  EXPECT_FALSE(b.add("/a/y"));  // joins it
  EXPECT_FALSE(b.add("/a/z"));
  ASSERT_TRUE(b.collecting());
  auto t = b.take();
  EXPECT_EQ(t.first, "/a/x");
  EXPECT_EQ(t.more, 2);
  EXPECT_TRUE(b.restarting());
  EXPECT_FALSE(b.finish(t.round));  // nothing came meanwhile
  EXPECT_FALSE(b.collecting());
  EXPECT_FALSE(b.restarting());
  EXPECT_TRUE(b.add("/a/w"));  // a new batch
}

TEST(ChangeBatch, ChangesDuringARestartMakeExactlyOneMoreAfterIt) {
  change_batch b;
  b.add("/a/x");
  auto t = b.take();
  EXPECT_FALSE(b.add("/a/late"));  // no timer while restarting
  EXPECT_FALSE(b.add("/a/later"));
  EXPECT_TRUE(b.finish(t.round));  // arm the timer for them now
  ASSERT_TRUE(b.collecting());
  auto t2 = b.take();
  EXPECT_EQ(t2.first, "/a/late");
  EXPECT_EQ(t2.more, 1);
  EXPECT_FALSE(b.finish(t2.round));
}

TEST(ChangeBatch, ClearForgetsTheBatchAndARestartInProgress) {
  change_batch b;
  b.add("/a/x");
  auto t = b.take();
  b.add("/a/late");
  b.clear();  // the app was stopped
  EXPECT_FALSE(b.finish(t.round));  // the old restart's end arms nothing
  EXPECT_FALSE(b.collecting());
  EXPECT_TRUE(b.add("/a/y"));
  // An old restart ending while a new batch collects leaves it alone.
  EXPECT_FALSE(b.finish(t.round));
  EXPECT_TRUE(b.collecting());
}

TEST(AwaitedName, IsTheComponentJustBelowTheNearestExistingDirectory) {
  EXPECT_EQ(awaited_name("/a/b/c", "/a"), "b");
  EXPECT_EQ(awaited_name("/a/b/c", "/a/b"), "c");  // the path's own name
  EXPECT_EQ(awaited_name("/srv/dist", "/"), "srv");
  EXPECT_EQ(awaited_name("/a", "/"), "a");
  EXPECT_EQ(awaited_name("/a/b", "/a/b"), "");  // not above it
  EXPECT_EQ(awaited_name("/ab/c", "/a"), "");   // a prefix, not a directory above
  EXPECT_EQ(awaited_name("/a", "/a/b"), "");
}

TEST(AwaitedName, ParentDirWalksUpToTheRoot) {
  EXPECT_EQ(parent_dir("/a/b/c"), "/a/b");
  EXPECT_EQ(parent_dir("/a"), "/");
  EXPECT_EQ(parent_dir("/"), "/");
  // Up from a missing path, each step's awaited name is the next component.
  std::string root = "/srv/app/dist/main.js", dir = parent_dir(root);
  std::vector<std::string> names;
  for (; dir != "/"; dir = parent_dir(dir)) names.push_back(awaited_name(root, dir));
  names.push_back(awaited_name(root, dir));
  EXPECT_EQ(names, (std::vector<std::string>{"main.js", "dist", "app", "srv"}));
}

}  // namespace
}  // namespace corral::daemon
