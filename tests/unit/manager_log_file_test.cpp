// log_file on a real loop and real files in a temp directory: the accounting
// of a write that fails halfway, and rotation in one batch. A file size limit
// (RLIMIT_FSIZE) makes the kernel cut a write short and then refuse with
// EFBIG, which is how a disk filling up mid-write looks.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "daemon/log_file.hpp"

using namespace corral::daemon;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

class LogFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/corral-log-file-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_EQ(uv_loop_init(&loop_), 0);
  }
  void TearDown() override {
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);  // no request or handle left behind
    (void)!std::system(("rm -rf " + dir_).c_str());
  }
  // Runs the loop until every job is done.
  void settle() { uv_run(&loop_, UV_RUN_DEFAULT); }

  uv_loop_t loop_{};
  std::string dir_;
};

struct fsize_limit {
  rlimit old{};
  explicit fsize_limit(rlim_t bytes) {
    ::signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of death
    ::getrlimit(RLIMIT_FSIZE, &old);
    rlimit lim = old;
    lim.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &lim);
  }
  ~fsize_limit() { ::setrlimit(RLIMIT_FSIZE, &old); }
};

}  // namespace

TEST_F(LogFile, WriteCutShortCountsTheRestAndMarksTheGapOnItsOwnLineOnceWritesWork) {
  std::string path = dir_ + "/a.log";
  auto f = log_file::open(&loop_, path);
  ASSERT_TRUE(f) << f.err().message();
  {
    fsize_limit limit(13);
    for (const char* l : {"line0", "line1", "line2", "line3", "line4"}) (*f)->write_line(l);  // 6 bytes each
    settle();
  }
  // Two lines and one byte got in; line2 (cut) to line4 are lost.
  EXPECT_EQ(slurp(path), "line0\nline1\nl");
  EXPECT_EQ((*f)->dropped_total(), 3u);
  EXPECT_EQ((*f)->failing(), "File too large (EFBIG)");
  (*f)->write_line("line5");
  settle();
  EXPECT_EQ(slurp(path), "line0\nline1\nl\n[corral] 3 lines dropped: File too large (EFBIG)\nline5\n");
  EXPECT_EQ((*f)->failing(), "");
  EXPECT_EQ((*f)->dropped_total(), 3u);
}

TEST_F(LogFile, MarkerThatFailsTooIsWrittenLaterWithTheLaterLosses) {
  std::string path = dir_ + "/b.log";
  auto f = log_file::open(&loop_, path);
  ASSERT_TRUE(f);
  {
    fsize_limit limit(6);
    (*f)->write_line("line0");
    (*f)->write_line("line1");  // lost: EFBIG
    settle();
    (*f)->write_line("line2");  // the marker goes out first and fails too: both wait
    settle();
  }
  (*f)->write_line("line3");
  settle();
  EXPECT_EQ(slurp(path), "line0\n[corral] 2 lines dropped: File too large (EFBIG)\nline3\n");
  EXPECT_EQ((*f)->dropped_total(), 2u);
}

TEST_F(LogFile, RotationCutsBetweenLinesAndKeepsRetainFiles) {
  std::string path = dir_ + "/c.log";
  auto f = log_file::open(&loop_, path, {.max_size = 4096, .retain = 2});
  ASSERT_TRUE(f);
  std::string all;
  for (int i = 0; i < 300; ++i) {  // 300 lines of 64 bytes: 64 a file, 4 rotations
    std::string l = "seq " + std::to_string(i) + " ";
    l.resize(63, 'x');
    (*f)->write_line(l);
    all += l + "\n";
  }
  settle();
  EXPECT_EQ((*f)->rotations_for_test(), 4u);
  EXPECT_EQ(slurp(path + ".2") + slurp(path + ".1") + slurp(path), all.substr(all.size() - (2 * 4096 + 44 * 64)));
  EXPECT_EQ(::access((path + ".3").c_str(), F_OK), -1);
  bool flushed = false;
  (*f)->flush([&] { flushed = true; });
  settle();
  EXPECT_TRUE(flushed);
  EXPECT_EQ(slurp(path), "");
  EXPECT_EQ(::access((path + ".1").c_str(), F_OK), -1);
}

// logrotate's `create` with `postrotate corral reloadLogs`: the file is
// moved, then reopen() asked, also while a job is in flight: the lines
// queued before reopen()'s callback runs may land in either file, the ones
// after it only in the new one, and none is lost or doubled.
TEST_F(LogFile, ReopenAfterAMoveWritesOnAtThePathAndCallsBackOnce) {
  std::string path = dir_ + "/r.log";
  auto f = log_file::open(&loop_, path, {.path_check_ms = 3'600'000});  // (no check of its own)
  ASSERT_TRUE(f);
  (*f)->write_line("a");
  settle();
  ASSERT_EQ(::rename(path.c_str(), (path + ".1").c_str()), 0);
  (*f)->write_line("b");  // a job in flight, to the moved file
  int called = 0;
  (*f)->reopen([&] { ++called; });
  (*f)->write_line("c");
  settle();
  EXPECT_EQ(called, 1);
  EXPECT_EQ(slurp(path + ".1"), "a\nb\n");
  EXPECT_EQ(slurp(path), "c\n");
  (*f)->reopen([&] { ++called; });  // nothing moved, nothing queued: reopened all the same
  settle();
  (*f)->write_line("d");
  settle();
  EXPECT_EQ(called, 2);
  EXPECT_EQ(slurp(path), "c\nd\n");
  // Asked while a job runs and the file goes: it calls back all the same,
  // and empties nothing.
  (*f)->write_line("e");
  (*f)->reopen([&] { ++called; });
  f.value().reset();
  settle();
  EXPECT_EQ(called, 3);
  EXPECT_EQ(slurp(path), "c\nd\ne\n");
}

// Without reopen(): a write that finds the path naming another file, or none,
// opens it afresh (path_check_ms 0: every write looks). A file moved away
// with none in its place is given one check's time (logrotate creates the
// new one, with the mode and owner it is told) before it is created here.
TEST_F(LogFile, AWriteNoticesTheFileWasMovedOrRemovedAndWritesAtThePath) {
  std::string path = dir_ + "/m.log";
  auto f = log_file::open(&loop_, path, {.path_check_ms = 0});
  ASSERT_TRUE(f);
  (*f)->write_line("a");
  settle();
  ASSERT_EQ(::rename(path.c_str(), (path + ".1").c_str()), 0);
  (*f)->write_line("a2");  // (the path is still logrotate's to create)
  settle();
  EXPECT_EQ(::access(path.c_str(), F_OK), -1);
  (*f)->write_line("b");
  settle();
  EXPECT_EQ(slurp(path + ".1"), "a\na2\n");
  EXPECT_EQ(slurp(path), "b\n");
  EXPECT_EQ((*f)->reopen_error(), "");
  ASSERT_EQ(::unlink(path.c_str()), 0);
  (*f)->write_line("c");
  settle();
  EXPECT_EQ(slurp(path), "c\n");
  // Another file put at the path (logrotate's `create`) is the one written.
  ASSERT_EQ(::rename(path.c_str(), (path + ".2").c_str()), 0);
  { std::ofstream(path) << "new\n"; }
  (*f)->write_line("d");
  settle();
  EXPECT_EQ(slurp(path), "new\nd\n");
  EXPECT_EQ(slurp(path + ".2"), "c\n");
}

// A log whose directory is removed: its file has no name left, so what would
// go into it is counted as dropped (not written where nobody can read it),
// the reopen's failure is said, and once the directory is back the file is
// made again, the gap marked.
TEST_F(LogFile, ALogWhoseDirectoryWasRemovedDropsCountedUntilItCanBeOpenedAgain) {
  std::string sub = dir_ + "/logs", path = sub + "/r.log";
  ASSERT_EQ(::mkdir(sub.c_str(), 0700), 0);
  auto f = log_file::open(&loop_, path, {.path_check_ms = 0});
  ASSERT_TRUE(f);
  (*f)->write_line("a");
  settle();
  ASSERT_EQ(::unlink(path.c_str()), 0);
  ASSERT_EQ(::rmdir(sub.c_str()), 0);
  (*f)->write_line("lost");
  settle();
  EXPECT_EQ((*f)->dropped_total(), 1u);
  EXPECT_NE((*f)->reopen_error(), "");
  EXPECT_NE((*f)->failing(), "");
  ASSERT_EQ(::mkdir(sub.c_str(), 0700), 0);
  (*f)->write_line("b");
  settle();
  EXPECT_EQ(slurp(path), "[corral] 1 line dropped: No such file or directory (ENOENT)\nb\n");
  EXPECT_EQ((*f)->reopen_error(), "");
  // A file not opened yet (no line so far) is not made by a reopen.
  auto later = log_file::create(&loop_, sub + "/later.log");
  bool called = false;
  later->reopen([&] { called = true; });
  settle();
  EXPECT_TRUE(called);
  EXPECT_EQ(::access((sub + "/later.log").c_str(), F_OK), -1);
}

TEST_F(LogFile, LinesQueuedWhenTheOwnerGoesAreWrittenAfterTheJobInFlight) {
  std::string path = dir_ + "/d.log";
  auto f = log_file::open(&loop_, path);
  ASSERT_TRUE(f);
  (*f)->write_line("first");   // a job is in flight now
  (*f)->write_line("second");  // queued behind it
  f.value().reset();
  settle();
  EXPECT_EQ(slurp(path), "first\nsecond\n");
}

TEST_F(LogFile, EveryFlushWaiterRunsOnceEvenWhenTheFileGoesDuringAJob) {
  std::string path = dir_ + "/e.log";
  auto f = log_file::open(&loop_, path);
  ASSERT_TRUE(f);
  (*f)->write_line("old");
  settle();
  int first = 0, second = 0;
  (*f)->flush([&] { ++first; });   // a job is in flight now
  (*f)->write_line("after");       // queued behind it
  (*f)->flush([&] { ++second; });  // queued behind it: `corral flush` waits for it
  (*f)->write_line("kept");        // came after the last flush: stays
  f.value().reset();
  settle();
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 1);
  EXPECT_EQ(slurp(path), "kept\n");
}

// when_written is what lets a reader take an app's bytes out of its socket:
// it must run only once the lines given before it are in the file (or
// counted as dropped), at once when none waits, and even when the file goes.
TEST_F(LogFile, WhenWrittenRunsOnceTheLinesBeforeItAreInTheFile) {
  std::string path = dir_ + "/w.log";
  auto f = log_file::open(&loop_, path);
  ASSERT_TRUE(f);
  int now = 0;
  (*f)->when_written([&] { ++now; });  // nothing waits
  EXPECT_EQ(now, 1);
  std::string seen_first, seen_second;
  (*f)->write_line("first");  // a job is in flight now
  (*f)->when_written([&] { seen_first = slurp(path); });
  (*f)->write_line("second");  // queued behind it
  (*f)->when_written([&] { seen_second = slurp(path); });
  EXPECT_EQ(seen_first, "");  // never from inside the call while lines wait
  settle();
  EXPECT_EQ(seen_first.substr(0, 6), "first\n");  // ("second" may be there too)
  EXPECT_EQ(seen_second, "first\nsecond\n");
}

TEST_F(LogFile, WhenWrittenRunsForLinesAFailedWriteDropped) {
  std::string path = dir_ + "/x.log";
  auto f = log_file::open(&loop_, path);
  ASSERT_TRUE(f);
  int ran = 0;
  {
    fsize_limit limit(3);
    (*f)->write_line("dropped");
    (*f)->when_written([&] { ++ran; });
    settle();
  }
  EXPECT_EQ(ran, 1);
  EXPECT_EQ((*f)->dropped_total(), 1u);
}

TEST_F(LogFile, WhenWrittenWaitersRunOnTheNextTurnWhenTheFileGoes) {
  std::string path = dir_ + "/y.log";
  auto f = log_file::open(&loop_, path);
  ASSERT_TRUE(f);
  int ran = 0;
  (*f)->write_line("one");  // a job is in flight
  (*f)->write_line("two");
  (*f)->when_written([&] { ++ran; });
  f.value().reset();
  EXPECT_EQ(ran, 0);  // not from inside the owner's destructor
  settle();
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(slurp(path), "one\ntwo\n");
}
