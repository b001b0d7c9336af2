// The channel's framing, fd passing, limits and back-pressure, over a
// socketpair inside this process, on a private loop. Every test ends by
// closing the loop and asserting that no handle was left behind.
#include "corral/channel.hpp"

#include "channel/json_codec.hpp"
#include "core/json_nesting.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <cmath>
#include <string>
#include <thread>
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

// The channel's own JSON encoder and parser must agree with nlohmann exactly.

const char* const valid_lines[] = {
    R"({"seq":123,"msg":"hello"})",
    R"("ready")",
    R"({})", R"([])", R"([[]])", R"({"a":{}})",
    R"(  {  "a" : [ 1 , -2 , 3.5 , true , false , null ] , "b" : "c"  }  )",
    R"("esc: \" \\ \/ \b \f \n \r \t \u0001 \u001f \u00e9 \u2028 \ud83d\ude80")",
    "\"raw utf-8: h\u00e9llo \u2713 \U0001F680 \u4e2d\"",
    "\"h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x9a\x80 \xf4\x8f\xbf\xbf\"",
    "0", "-0", "7", "-7", "18446744073709551615", "-9223372036854775808", "9223372036854775807",
    "1.0", "-0.0", "3.5", "1e3", "1E-3", "-2.5e+10", "1.7976931348623157e308", "5e-324", "0.1",
    R"({"dup":1,"dup":2})",
    R"({"corral":"fds","n":2,"msg":{"x":[1,{"y":null}]}})",
};

TEST(ChannelCodec, FastParserAgreesWithNlohmannOnValidLines) {
  for (const char* line : valid_lines) {
    std::string_view v(line);
    json expected = json::parse(v);
    json fast;
    ASSERT_TRUE(corral::detail::parse_json_fast_for_test(v.data(), v.data() + v.size(), fast)) << line;
    EXPECT_EQ(fast, expected) << line;
    EXPECT_EQ(fast.type(), expected.type()) << line;  // integer vs unsigned vs float matters
    EXPECT_EQ(fast.dump(), expected.dump()) << line;
  }
}

TEST(ChannelCodec, InvalidLinesAreRejectedLikeNlohmann) {
  const char* const invalid[] = {
      R"({"a":1,})", "[1,]", "01", "1.", ".5", "-", "+1", "1e", "tru", "nul", R"({"a" 1})", R"({a:1})",
      "\"abc", "\"tab\tinside\"", R"("\x")", R"("\u12")", R"("\ud800")", R"("\udc00")",
      R"("\ud800\u0041")", "1 2", "[1] x", "\"\xff\"", "\"\xc0\x80\"", "\"\xed\xa0\x80\"",
      "\"\xf4\x90\x80\x80\"", "\"\xe2\x9c\"", "[", "{", "{\"a\":",
  };
  for (const char* line : invalid) {
    std::string_view v(line);
    EXPECT_FALSE(json::accept(v)) << "corpus error: nlohmann accepts " << line;
    json fast;
    EXPECT_FALSE(corral::detail::parse_json_fast_for_test(v.data(), v.data() + v.size(), fast)) << line;
    EXPECT_TRUE(corral::detail::parse_json_line(v.data(), v.data() + v.size()).is_discarded()) << line;
  }
}

TEST(ChannelCodec, WhatTheFastParserLeavesNlohmannParses) {
  std::string deep = std::string(1000, '[') + std::string(1000, ']');
  std::string big = "18446744073709551616";  // past uint64: nlohmann makes it a float
  std::string low = "-9223372036854775809";
  for (const std::string& line : {deep, big, low}) {
    json fast;
    EXPECT_FALSE(corral::detail::parse_json_fast_for_test(line.data(), line.data() + line.size(), fast)) << line;
    json got = corral::detail::parse_json_line(line.data(), line.data() + line.size());
    ASSERT_FALSE(got.is_discarded()) << line;
    EXPECT_EQ(got, json::parse(line)) << line;
  }
}

TEST(ChannelCodec, ALineNestedDeeperThanTheLimitIsRefusedBeforeItIsParsed) {
  // The limit is taken, and 4,000 levels, about what Node's JSON.stringify
  // can write; one more than the limit is not, nor 100,000, whose copy
  // would overflow the receiver's stack. Brackets inside strings do not count.
  const int limit = corral::detail::max_json_nesting;
  for (int depth : {4000, limit}) {
    std::string line = std::string(depth, '[') + std::string(depth, ']');
    EXPECT_FALSE(corral::detail::json_nests_deeper_than(line, limit)) << depth;
    json got = corral::detail::parse_json_line(line.data(), line.data() + line.size());
    EXPECT_FALSE(got.is_discarded()) << depth;
  }
  for (int depth : {limit + 1, 100000}) {
    std::string line = std::string(depth, '[') + std::string(depth, ']');
    EXPECT_TRUE(corral::detail::json_nests_deeper_than(line, limit)) << depth;
    EXPECT_TRUE(corral::detail::parse_json_line(line.data(), line.data() + line.size()).is_discarded()) << depth;
  }
  std::string objects;
  for (int i = 0; i < limit; ++i) objects += "{\"a\":";
  objects += "\"[[[[{{{{\\\"[\"" + std::string(limit, '}');
  EXPECT_FALSE(corral::detail::json_nests_deeper_than(objects, limit));
  json got = corral::detail::parse_json_line(objects.data(), objects.data() + objects.size());
  ASSERT_FALSE(got.is_discarded());
  // Walked down by hand: comparing or dumping values this deep recurses
  // (which is why the limit exists) and overflows a sanitizer's stack.
  const json* v = &got;
  for (int i = 0; i < limit && v->is_object(); ++i) v = &v->at("a");
  EXPECT_EQ(*v, "[[[[{{{{\"[");
  EXPECT_TRUE(corral::detail::json_nests_deeper_than("{\"a\":" + std::string(limit, '['), limit));
}

TEST(ChannelCodec, EncoderWritesExactlyWhatDumpWrites) {
  std::vector<json> values;
  for (const char* line : valid_lines) values.push_back(json::parse(line));
  values.push_back(json{{"ctl", std::string("\x00\x01\x1f\x7f", 4)}, {"quote", "\"\\/"}});
  values.push_back(json{{"i", INT64_MIN}, {"u", UINT64_MAX}, {"f", 0.1}, {"nan", NAN}, {"inf", INFINITY}});
  values.push_back(json::binary({1, 2, 3}));
  for (const auto& v : values) {
    std::string out = "prefix";
    corral::detail::append_json(out, v);
    EXPECT_EQ(out, "prefix" + v.dump()) << v.dump();
  }
}

TEST(ChannelCodec, InvalidUtf8IsReplacedInsteadOfThrowing) {
  json v = {{"bad", "a\xff\xc3" "b"}};
  std::string out;
  corral::detail::append_json(out, v);
  EXPECT_EQ(out, v.dump(-1, ' ', false, json::error_handler_t::replace));
  EXPECT_EQ(out, "{\"bad\":\"a\xef\xbf\xbd\xef\xbf\xbd" "b\"}");
}

TEST_F(Channel, SendWithInvalidUtf8DeliversReplacementCharacters) {
  open_pair();
  json got;
  b_->on_message([&](json&& m, std::vector<unique_fd>&&) { got = std::move(m); });
  EXPECT_TRUE(a_->send(json{{"s", "ok\xff"}}));  // json::dump() would throw here
  ASSERT_TRUE(run_until([&] { return !got.is_null(); }));
  EXPECT_EQ(got["s"], "ok\xef\xbf\xbd");
}

TEST_F(Channel, UnrefdChannelKeepsTheLoopAliveUntilItsOutputIsWritten) {
  auto raw = open_raw();
  b_->set_ref(false);
  const std::string big(1 << 20, 'q');  // more than the socket buffer holds
  EXPECT_TRUE(b_->send(big));
  EXPECT_GT(b_->queued_bytes(), 0u);
  // Read it from another thread while the loop runs on its own: uv_run must
  // not return before the queue is empty.
  std::string received;
  std::thread reader([&] {
    char buf[65536];
    while (received.size() < big.size() + 3) {
      ssize_t n = ::read(raw.get(), buf, sizeof buf);
      if (n <= 0) return;
      received.append(buf, static_cast<std::size_t>(n));
    }
  });
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(b_->queued_bytes(), 0u);
  reader.join();
  EXPECT_EQ(received, "\"" + big + "\"\n");
}

TEST(ChannelMessages, InternalMessagesAreObjectsWithTheReservedKey) {
  EXPECT_TRUE(corral::is_internal_message({{"corral", "online"}}));
  EXPECT_FALSE(corral::is_internal_message({{"cmd", "NODE_CLUSTER"}}));
  EXPECT_FALSE(corral::is_internal_message("corral"));
  EXPECT_FALSE(corral::is_internal_message(json::array({"corral"})));
}

}  // namespace
