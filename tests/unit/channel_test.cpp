// The channel's framing, fd passing, limits and back-pressure, over a
// socketpair inside this process, on a private loop. Every test ends by
// closing the loop and asserting that no handle was left behind.
#include "corral/channel.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace {

using corral::channel;
using corral::channel_options;
using corral::json;
using corral::unique_fd;

class Channel : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    ASSERT_EQ(uv_timer_init(&loop_, &deadline_), 0);
  }

  void TearDown() override {
    a_.reset();
    b_.reset();
    uv_close(reinterpret_cast<uv_handle_t*>(&deadline_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);  // lets the channels' handles finish closing
    uv_walk(&loop_, [](uv_handle_t* h, void*) { ADD_FAILURE() << "leaked handle of type " << h->type; }, nullptr);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }

  // Opens both ends of a socketpair as channels named "a" and "b".
  void open_pair(channel_options ao = {}, channel_options bo = {}) {
    auto pair = channel::socketpair();
    ASSERT_TRUE(pair) << pair.err().message();
    auto [x, y] = std::move(pair.value());
    if (ao.peer == "peer") ao.peer = "b";
    if (bo.peer == "peer") bo.peer = "a";
    auto ca = channel::open(x.release(), ao, &loop_);
    auto cb = channel::open(y.release(), bo, &loop_);
    ASSERT_TRUE(ca) << ca.err().message();
    ASSERT_TRUE(cb) << cb.err().message();
    a_ = std::move(ca.value());
    b_ = std::move(cb.value());
  }

  // Opens one end as channel "b" (peer named "raw peer") and returns the
  // other, bare, to write arbitrary bytes with.
  unique_fd open_raw(channel_options bo = {}) {
    auto pair = channel::socketpair();
    EXPECT_TRUE(pair);
    auto [x, y] = std::move(pair.value());
    bo.peer = "raw peer";
    auto cb = channel::open(y.release(), bo, &loop_);
    EXPECT_TRUE(cb);
    b_ = std::move(cb.value());
    return std::move(x);
  }

  // Turns the loop until `done` holds; false if the deadline passed first.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    // The timer guarantees that UV_RUN_ONCE wakes up by the deadline.
    uv_timer_start(&deadline_, [](uv_timer_t*) {}, static_cast<uint64_t>(timeout.count()), 0);
    uint64_t deadline = uv_now(&loop_) + static_cast<uint64_t>(timeout.count());
    while (!done()) {
      if (uv_now(&loop_) >= deadline) break;
      uv_run(&loop_, UV_RUN_ONCE);
    }
    uv_timer_stop(&deadline_);
    return done();
  }

  uv_loop_t loop_;
  uv_timer_t deadline_;
  std::unique_ptr<channel> a_, b_;
};

std::pair<unique_fd, unique_fd> make_pipe() {
  int p[2];
  EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
  return {unique_fd(p[0]), unique_fd(p[1])};
}

std::string read_all(int fd) {
  std::string out;
  char buf[256];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

void write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    ASSERT_GT(n, 0) << std::strerror(errno);
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

TEST_F(Channel, MessagesFlowBothWaysInOrder) {
  open_pair();
  std::vector<json> at_a, at_b;
  a_->on_message([&](json&& m, std::vector<unique_fd>&&) { at_a.push_back(std::move(m)); });
  b_->on_message([&](json&& m, std::vector<unique_fd>&&) { at_b.push_back(std::move(m)); });
  EXPECT_TRUE(a_->send("ready"));
  EXPECT_TRUE(a_->send({{"n", 1}, {"text", "héllo \n wörld ✓"}}));
  EXPECT_TRUE(a_->send(json::array({1, 2, 3})));
  EXPECT_TRUE(b_->send(42));
  EXPECT_TRUE(b_->send_serialized(R"({"pre":"serialised"})"));
  ASSERT_TRUE(run_until([&] { return at_a.size() == 2 && at_b.size() == 3; }));
  EXPECT_EQ(at_b[0], "ready");
  EXPECT_EQ(at_b[1], (json{{"n", 1}, {"text", "héllo \n wörld ✓"}}));
  EXPECT_EQ(at_b[2], json::array({1, 2, 3}));
  EXPECT_EQ(at_a[0], 42);
  EXPECT_EQ(at_a[1], (json{{"pre", "serialised"}}));
}

TEST_F(Channel, HundredThousandMessagesArriveCompleteAndInOrder) {
  open_pair({.high_water = 64 * 1024});
  constexpr int total = 100000;
  int next_to_send = 0, received = 0, out_of_order = 0;
  b_->on_message([&](json&& m, std::vector<unique_fd>&&) {
    if (m.value("seq", -1) != received || m.value("msg", "") != "hello") ++out_of_order;
    ++received;
  });
  // Sends until back-pressure, then resumes on drain: the API's contract.
  std::function<void()> pump = [&] {
    while (next_to_send < total) {
      if (!a_->send({{"seq", next_to_send++}, {"msg", "hello"}})) return;
    }
  };
  int drains = 0;
  a_->on_drain([&] { ++drains; pump(); });
  pump();
  ASSERT_TRUE(run_until([&] { return received == total; })) << received;
  EXPECT_EQ(out_of_order, 0);
  EXPECT_GT(drains, 0);  // the high-water mark was crossed and recovered from
}

TEST_F(Channel, PassesAPipeReadEndThatCanBeReadThrough) {
  open_pair();
  auto [r, w] = make_pipe();
  std::vector<unique_fd> got;
  json msg;
  b_->on_message([&](json&& m, std::vector<unique_fd>&& fds) {
    msg = std::move(m);
    got = std::move(fds);
  });
  std::vector<unique_fd> fds;
  fds.push_back(std::move(r));
  EXPECT_TRUE(a_->send({{"here", "a pipe"}}, std::move(fds)));
  ASSERT_TRUE(run_until([&] { return !got.empty(); }));
  EXPECT_EQ(msg, (json{{"here", "a pipe"}}));  // the envelope is the channel's, not the user's
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(::fcntl(got[0].get(), F_GETFD) & FD_CLOEXEC);
  write_all(w.get(), "through the pipe");
  w.reset();
  EXPECT_EQ(read_all(got[0].get()), "through the pipe");
}

TEST_F(Channel, PassesSeveralFdsInOneMessage) {
  open_pair();
  constexpr int n = 5;
  std::vector<unique_fd> writers, readers, got;
  for (int i = 0; i < n; ++i) {
    auto [r, w] = make_pipe();
    readers.push_back(std::move(r));
    writers.push_back(std::move(w));
  }
  b_->on_message([&](json&&, std::vector<unique_fd>&& fds) { got = std::move(fds); });
  EXPECT_TRUE(a_->send("five pipes", std::move(readers)));
  ASSERT_TRUE(run_until([&] { return !got.empty(); }));
  ASSERT_EQ(got.size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {  // order is kept: fd i reads what pipe i carries
    write_all(writers[i].get(), "pipe " + std::to_string(i));
    writers[i].reset();
    EXPECT_EQ(read_all(got[i].get()), "pipe " + std::to_string(i));
  }
}

TEST_F(Channel, PassesFdsOnConsecutiveMessages) {
  open_pair();
  constexpr int n = 4;
  std::vector<unique_fd> writers;
  std::vector<std::pair<json, std::vector<unique_fd>>> got;
  b_->on_message([&](json&& m, std::vector<unique_fd>&& fds) { got.emplace_back(std::move(m), std::move(fds)); });
  for (int i = 0; i < n; ++i) {  // all in one loop iteration: they leave in one flush
    auto [r, w] = make_pipe();
    writers.push_back(std::move(w));
    std::vector<unique_fd> fds;
    fds.push_back(std::move(r));
    EXPECT_TRUE(a_->send({{"i", i}}, std::move(fds)));
    EXPECT_TRUE(a_->send({{"plain", i}}));  // fd-less lines in between
  }
  ASSERT_TRUE(run_until([&] { return got.size() == 2 * n; }));
  for (int i = 0; i < n; ++i) {
    auto& [msg, fds] = got[2 * i];
    EXPECT_EQ(msg, (json{{"i", i}}));
    ASSERT_EQ(fds.size(), 1u);
    write_all(writers[i].get(), "message " + std::to_string(i));
    writers[i].reset();
    EXPECT_EQ(read_all(fds[0].get()), "message " + std::to_string(i));
    EXPECT_EQ(got[2 * i + 1].first, (json{{"plain", i}}));
    EXPECT_TRUE(got[2 * i + 1].second.empty());
  }
}

TEST_F(Channel, LineOverMaxLineIsAnErrorThenCloses) {
  auto raw = open_raw({.max_line = 1024});
  std::string err;
  bool closed = false;
  int messages = 0;
  b_->on_message([&](json&&, std::vector<unique_fd>&&) { ++messages; });
  b_->on_error([&](const corral::error& e) { err = e.message(); });
  b_->on_close([&] { closed = true; });
  write_all(raw.get(), "\"fine\"\n" + std::string(4096, 'x'));  // no newline: detected before the end
  ASSERT_TRUE(run_until([&] { return closed; }));
  EXPECT_EQ(messages, 1);
  EXPECT_NE(err.find("raw peer"), std::string::npos) << err;
  EXPECT_NE(err.find("longer than 1024"), std::string::npos) << err;
  EXPECT_FALSE(b_->is_open());
  EXPECT_FALSE(b_->send("too late"));
}

TEST_F(Channel, CompleteLineOverMaxLineIsAnError) {
  auto raw = open_raw({.max_line = 100});
  std::string err;
  bool closed = false;
  b_->on_error([&](const corral::error& e) { err = e.message(); });
  b_->on_close([&] { closed = true; });
  write_all(raw.get(), "\"" + std::string(200, 'y') + "\"\n");
  ASSERT_TRUE(run_until([&] { return closed; }));
  EXPECT_NE(err.find("raw peer"), std::string::npos) << err;
  EXPECT_NE(err.find("longer than the limit of 100"), std::string::npos) << err;
}

TEST_F(Channel, NonJsonIsAnErrorNamingThePeerAndQuotingTheBytes) {
  auto raw = open_raw();
  std::string err;
  bool closed = false;
  int messages = 0;
  b_->on_message([&](json&&, std::vector<unique_fd>&&) { ++messages; });
  b_->on_error([&](const corral::error& e) { err = e.message(); });
  b_->on_close([&] { closed = true; });
  write_all(raw.get(), std::string("{\"ok\":1}\nnot json\x01 at all\n{\"never\":1}\n"));
  ASSERT_TRUE(run_until([&] { return closed; }));
  EXPECT_EQ(messages, 1);  // the one before; nothing after the bad line
  EXPECT_NE(err.find("raw peer"), std::string::npos) << err;
  EXPECT_NE(err.find("not JSON"), std::string::npos) << err;
  EXPECT_NE(err.find("\"not json\\x01 at all\""), std::string::npos) << err;
}

TEST_F(Channel, HalfALineThenEofIsAnError) {
  auto raw = open_raw();
  std::string err;
  bool closed = false;
  b_->on_error([&](const corral::error& e) { err = e.message(); });
  b_->on_close([&] { closed = true; });
  write_all(raw.get(), "{\"half\":");
  raw.reset();
  ASSERT_TRUE(run_until([&] { return closed; }));
  EXPECT_NE(err.find("raw peer"), std::string::npos) << err;
  EXPECT_NE(err.find("middle of a message"), std::string::npos) << err;
  EXPECT_NE(err.find("{\"half\":"), std::string::npos) << err;
}

TEST_F(Channel, CleanEofClosesWithoutError) {
  auto raw = open_raw();
  bool errored = false, closed = false;
  b_->on_error([&](const corral::error&) { errored = true; });
  b_->on_close([&] { closed = true; });
  write_all(raw.get(), "\"bye\"\n");
  raw.reset();
  ASSERT_TRUE(run_until([&] { return closed; }));
  EXPECT_FALSE(errored);
}

TEST_F(Channel, SendReturnsFalseAboveHighWaterAndDrainFires) {
  open_pair({.high_water = 64 * 1024});
  const std::string payload(1000, 'p');
  int sent = 0, received = 0, drains = 0;
  b_->on_message([&](json&&, std::vector<unique_fd>&&) { ++received; });
  a_->on_drain([&] { ++drains; });
  bool refused = false;
  while (!refused) {
    refused = !a_->send({{"p", payload}});
    ++sent;  // a refused message is still queued
    ASSERT_LT(sent, 10000);
  }
  EXPECT_GT(a_->queued_bytes(), 64u * 1024);
  EXPECT_FALSE(a_->send({{"p", payload}}));  // still above until it drains
  ++sent;
  ASSERT_TRUE(run_until([&] { return drains == 1 && received == sent; }));
  EXPECT_EQ(a_->queued_bytes(), 0u);
  EXPECT_TRUE(a_->send("below again"));
}

TEST_F(Channel, DestroyingAChannelInsideItsOwnOnMessageIsSafe) {
  open_pair();
  int messages = 0;
  b_->on_message([&](json&&, std::vector<unique_fd>&&) {
    ++messages;
    b_.reset();  // the channel whose callback this is
  });
  bool a_closed = false;
  a_->on_close([&] { a_closed = true; });
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(a_->send(i));  // more bytes wait behind the first
  ASSERT_TRUE(run_until([&] { return a_closed; }));  // the peer sees the socket close
  EXPECT_EQ(messages, 1);
}

TEST_F(Channel, DestroyingAChannelInsideItsOwnOnErrorIsSafe) {
  auto raw = open_raw();
  bool errored = false;
  b_->on_error([&](const corral::error&) {
    errored = true;
    b_.reset();
  });
  b_->on_close([&] { ADD_FAILURE() << "on_close after destruction"; });
  write_all(raw.get(), "garbage\n");
  ASSERT_TRUE(run_until([&] { return errored; }));
}

TEST_F(Channel, CloseFlushesQueuedMessagesBeforeClosing) {
  open_pair();
  constexpr int n = 1000;
  int received = 0;
  bool a_closed = false, b_closed = false;
  b_->on_message([&](json&& m, std::vector<unique_fd>&&) {
    EXPECT_EQ(m, received);
    ++received;
  });
  a_->on_close([&] { a_closed = true; });
  b_->on_close([&] { b_closed = true; });
  for (int i = 0; i < n; ++i) a_->send(i);
  EXPECT_GT(a_->queued_bytes(), 0u);
  a_->close();
  EXPECT_FALSE(a_->is_open());
  EXPECT_FALSE(a_->send("after close"));
  ASSERT_TRUE(run_until([&] { return a_closed && b_closed; }));
  EXPECT_EQ(received, n);
}

TEST(ChannelMessages, InternalMessagesAreObjectsWithTheReservedKey) {
  EXPECT_TRUE(corral::is_internal_message({{"corral", "online"}}));
  EXPECT_FALSE(corral::is_internal_message({{"cmd", "NODE_CLUSTER"}}));
  EXPECT_FALSE(corral::is_internal_message("corral"));
  EXPECT_FALSE(corral::is_internal_message(json::array({"corral"})));
}

}  // namespace
