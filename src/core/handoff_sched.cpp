#include "core/handoff_sched.hpp"

#include <pthread.h>
#include <sched.h>

#include <cstdlib>
#include <cstring>

namespace corral::detail {
namespace {

int serving_keys = 0;
bool batch_on = false;  // we switched this thread to SCHED_BATCH

bool set_policy(int policy) {
  sched_param p{};
  return ::sched_setscheduler(0, policy, &p) == 0;
}

bool wanted() {
  const char* v = std::getenv("CORRAL_PRIMARY_BATCH");
  return !(v && std::strcmp(v, "0") == 0);
}

}  // namespace

void handoff_sched(bool serving) {
  serving_keys += serving ? 1 : -1;
  if (serving_keys < 0) serving_keys = 0;
  if (serving_keys > 0 && !batch_on) {
    static bool atfork = (::pthread_atfork(nullptr, nullptr, [] {
                            if (batch_on) set_policy(SCHED_OTHER);
                            batch_on = false;
                            serving_keys = 0;
                          }),
                          true);
    (void)atfork;
    if (wanted() && ::sched_getscheduler(0) == SCHED_OTHER) batch_on = set_policy(SCHED_BATCH);
  } else if (serving_keys == 0 && batch_on) {
    set_policy(SCHED_OTHER);
    batch_on = false;
  }
}

spawn_guard::spawn_guard() {
  if (batch_on) restore_ = set_policy(SCHED_OTHER);
}

spawn_guard::~spawn_guard() {
  if (restore_) set_policy(SCHED_BATCH);
}

}  // namespace corral::detail
