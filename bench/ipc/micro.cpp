// Micro-benchmarks of the channel's hot path: encoding a message, parsing a
// line, and both ends of a channel over a socketpair in one process.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "channel/json_codec.hpp"
#include "corral/channel.hpp"

using corral::json;

static void BM_EncodeSmallObject(benchmark::State& state) {
  long seq = 0;
  for (auto _ : state) {
    std::string line = json{{"seq", seq++}, {"msg", "hello"}}.dump();
    benchmark::DoNotOptimize(line);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EncodeSmallObject);

// What the channel does: its own encoder, appending to the output queue.
static void BM_EncodeSmallObjectChannel(benchmark::State& state) {
  long seq = 0;
  std::string out;
  for (auto _ : state) {
    out.clear();
    corral::detail::append_json(out, json{{"seq", seq++}, {"msg", "hello"}});
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EncodeSmallObjectChannel);

// The cost of building the message alone (the user's side of send()).
static void BM_BuildSmallObject(benchmark::State& state) {
  long seq = 0;
  for (auto _ : state) {
    json msg{{"seq", seq++}, {"msg", "hello"}};
    benchmark::DoNotOptimize(msg);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BuildSmallObject);

static void BM_ParseSmallObjectChannel(benchmark::State& state) {
  const std::string line = R"({"seq":123456,"msg":"hello"})";
  for (auto _ : state) {
    json msg = corral::detail::parse_json_line(line.data(), line.data() + line.size());
    benchmark::DoNotOptimize(msg);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseSmallObjectChannel);

static void BM_ParseSmallObject(benchmark::State& state) {
  const std::string line = R"({"seq":123456,"msg":"hello"})";
  for (auto _ : state) {
    json msg = json::parse(line.data(), line.data() + line.size(), nullptr, false);
    benchmark::DoNotOptimize(msg);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseSmallObject);

// Both ends on one private loop: send a batch, turn the loop until it is all
// delivered. Measures framing, syscalls and JSON together, without a second
// process.
static void BM_ChannelBatch(benchmark::State& state) {
  const long batch = state.range(0);
  uv_loop_t loop;
  uv_loop_init(&loop);
  auto pair = corral::channel::socketpair();
  auto [x, y] = std::move(pair.value());
  auto a = std::move(corral::channel::open(x.release(), {}, &loop).value());
  auto b = std::move(corral::channel::open(y.release(), {}, &loop).value());
  long received = 0;
  b->on_message([&](json&&, std::vector<corral::unique_fd>&&) { ++received; });
  long seq = 0;
  for (auto _ : state) {
    received = 0;
    for (long i = 0; i < batch; ++i) a->send({{"seq", seq++}, {"msg", "hello"}});
    while (received < batch) uv_run(&loop, UV_RUN_ONCE);
  }
  state.SetItemsProcessed(state.iterations() * batch);
  a.reset();
  b.reset();
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
}
BENCHMARK(BM_ChannelBatch)->Arg(1000);

BENCHMARK_MAIN();
