// The scheduling class of a primary that hands out connections.
//
// In round_robin the primary accepts every connection and passes it to a
// worker. Woken for each new connection, it runs a few microseconds and
// sleeps again: on a busy machine most of its CPU goes to the context
// switches themselves. SCHED_BATCH (unprivileged; same CPU share as
// SCHED_OTHER, but a waking task does not preempt the running one) lets the
// connections that arrive meanwhile wait in the backlog for the primary's
// next turn, so one wakeup accepts and passes several. On an idle core it
// still runs at once. bench/http measures it (docs/net.md).
//
// Only the thread that runs the loop changes, only while it serves a
// round_robin key, only from SCHED_OTHER (a policy the user chose is left
// alone), and not when CORRAL_PRIMARY_BATCH=0. Children never inherit it:
// spawns go through spawn_guard, and fork() resets it in the child.
#pragma once

namespace corral::detail {

/// One more (true) or one fewer (false) round_robin key served by this
/// thread; the first switches it to SCHED_BATCH, the last back.
void handoff_sched(bool serving);

/// While alive, the thread runs SCHED_OTHER again (for a child to inherit).
class spawn_guard {
 public:
  spawn_guard();
  ~spawn_guard();
  spawn_guard(const spawn_guard&) = delete;
  spawn_guard& operator=(const spawn_guard&) = delete;

 private:
  bool restore_ = false;
};

}  // namespace corral::detail
