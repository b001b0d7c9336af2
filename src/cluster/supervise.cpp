// The primary keeping its workers: rolling restarts and respawn with backoff.
#include <algorithm>
#include <cstdio>
#include <set>

#include "cluster/internal.hpp"
#include "core/defer.hpp"
#include "core/handle.hpp"
#include "net/primary.hpp"

namespace corral::cluster {
namespace {

using ms = std::chrono::milliseconds;

// One rolling restart in progress.
struct restart_job {
  std::vector<int> old_ids;
  std::size_t next = 0;
  int fresh_id = 0;  // the replacement being waited for
  int old_id = 0;
  std::set<std::string> need;  // keys the replacement must listen on
  std::string who;             // "the replacement of worker 2 (pid 41)", for errors
  int old_left = 0;            // replaced workers not yet exited
  bool replacing_done = false;
  bool finished = false;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::vector<std::function<void(const error*)>> waiters;
  corral::detail::uv_handle_ptr<uv_timer_t> timer;
};

struct supervision {
  std::shared_ptr<restart_job> job;  // shared with the listeners it installs on workers
  event<const error*, ms> restarted;
  int respawns = 0;
  int quick_deaths = 0;
  struct pending_respawn {
    corral::detail::uv_handle_ptr<uv_timer_t> timer;
    std::map<std::string, std::string> env;
  };
  std::vector<std::unique_ptr<pending_respawn>> pending;
};

supervision& sv() {
  static auto* s = new supervision;  // lives for the whole process
  return *s;
}

corral::worker* live(int id) {
  auto it = workers().find(id);
  return it == workers().end() ? nullptr : it->second;
}

void end_job(const std::shared_ptr<restart_job>& job, const error* e) {
  if (job->finished) return;
  job->finished = true;
  job->timer.reset();
  if (sv().job == job) sv().job.reset();
  if (e) std::fprintf(stderr, "corral: rolling restart aborted: %s\n", e->message().c_str());
  for (auto& w : job->waiters)
    if (w) w(e);
  sv().restarted.emit(e, std::chrono::duration_cast<ms>(std::chrono::steady_clock::now() - job->started));
}

void maybe_done(const std::shared_ptr<restart_job>& job) {
  if (job->replacing_done && job->old_left == 0) end_job(job, nullptr);
}

void step(const std::shared_ptr<restart_job>& job);

void replaced(const std::shared_ptr<restart_job>& job) {
  job->timer.reset();
  if (corral::worker* fresh = live(job->fresh_id)) detail::set_replacing(*fresh, false);  // in service now
  job->fresh_id = 0;
  if (corral::worker* old = live(job->old_id)) {
    job->old_left++;
    old->on_exit([job](int, int) {
      job->old_left--;
      maybe_done(job);
    });
    old->disconnect();
  }
  corral::detail::defer([job] { step(job); });
}

void fail(const std::shared_ptr<restart_job>& job, const std::string& why) {
  if (corral::worker* fresh = live(job->fresh_id)) fresh->kill(SIGKILL);
  error e(std::make_error_code(std::errc::timed_out), why);
  end_job(job, &e);
}

bool listens_on_all(corral::worker& w, const std::set<std::string>& need) {
  auto have = net::detail::keys_of(w);
  return std::all_of(need.begin(), need.end(),
                     [&](const std::string& k) { return std::find(have.begin(), have.end(), k) != have.end(); });
}

void step(const std::shared_ptr<restart_job>& job) {
  if (job->finished) return;
  corral::worker* old = nullptr;
  while (job->next < job->old_ids.size() && !(old = live(job->old_ids[job->next]))) job->next++;
  if (!old) {
    job->replacing_done = true;
    maybe_done(job);
    return;
  }
  job->next++;
  job->old_id = old->id();
  auto keys = net::detail::keys_of(*old);
  job->need = std::set<std::string>(keys.begin(), keys.end());
  corral::worker& fresh = fork(detail::fork_env_of(*old));
  detail::set_replacing(fresh, true);
  job->fresh_id = fresh.id();
  std::string who = "the replacement of worker " + std::to_string(old->id()) + " (pid " + std::to_string(old->pid()) + ")";
  int fid = fresh.id();
  auto ready = [job, fid, &fresh] {
    if (job->finished || job->fresh_id != fid) return;
    if (listens_on_all(fresh, job->need)) replaced(job);
  };
  if (job->need.empty()) {
    fresh.on_online(ready);
  } else {
    fresh.on_listening([ready](const net::address&) { ready(); });
  }
  fresh.on_exit([job, fid, who](int code, int sig) {
    if (job->finished || job->fresh_id != fid) return;
    fail(job, who + " exited (" + (sig ? "signal " + std::to_string(sig) : "code " + std::to_string(code)) +
                  ") before it was listening; the old worker keeps serving");
  });
  job->who = who;
  job->timer = corral::detail::uv_handle_ptr<uv_timer_t>::make();
  uv_timer_init(uv_default_loop(), job->timer.get());
  job->timer->data = job.get();
  uv_timer_start(job->timer.get(), [](uv_timer_t* t) {
    auto job = sv().job;  // the timer belongs to the job under way
    if (!job || job.get() != t->data) return;
    fail(job, job->who + " was not listening within " +
                  std::to_string(primary_settings().restart_timeout.count()) + " ms; the old worker keeps serving");
  }, static_cast<uint64_t>(primary_settings().restart_timeout.count()), 0);
}

void respawn_after_death(corral::worker& w) {
  const auto& cfg = primary_settings();
  if (!cfg.respawn || w.exited_after_disconnect() || detail::shutting_down()) return;
  // A replacement that died before taking over (or that fail() killed): the
  // old worker it was to replace still serves. Forking another would leave
  // one worker too many, and this death runs before the job hears of it.
  if (detail::is_replacing(w)) return;
  auto lived = std::chrono::steady_clock::now() - detail::started_at(w);
  auto& s = sv();
  if (lived >= cfg.respawn_stable) s.quick_deaths = 0;
  ms delay = cfg.respawn_delay;
  for (int i = 0; i < s.quick_deaths && delay < cfg.respawn_delay_max; ++i) delay *= 2;
  delay = std::min(delay, cfg.respawn_delay_max);
  s.quick_deaths++;
  std::fprintf(stderr, "corral: worker %d (pid %d) died; forking a new one in %lld ms\n", w.id(), w.pid(),
               static_cast<long long>(delay.count()));
  auto p = std::make_unique<supervision::pending_respawn>();
  p->env = detail::fork_env_of(w);
  p->timer = corral::detail::uv_handle_ptr<uv_timer_t>::make();
  uv_timer_init(uv_default_loop(), p->timer.get());
  p->timer->data = p.get();
  uv_timer_start(p->timer.get(), [](uv_timer_t* t) {
    auto& pending = sv().pending;
    auto it = std::find_if(pending.begin(), pending.end(), [t](auto& q) { return q.get() == t->data; });
    if (it == pending.end()) return;
    auto env = std::move((*it)->env);
    pending.erase(it);  // closes this timer; safe inside its callback
    if (detail::shutting_down()) return;
    sv().respawns++;
    fork(env);
  }, static_cast<uint64_t>(delay.count()), 0);
  s.pending.push_back(std::move(p));
}

}  // namespace

namespace detail {

void install_supervision() {
  static bool installed = false;
  if (installed) return;
  installed = true;
  on_worker_gone(respawn_after_death);
}

void on_sighup() {
  if (shutting_down()) return;
  rolling_restart();
}

}  // namespace detail

void rolling_restart(std::function<void(const error*)> done) {
  auto& s = sv();
  if (s.job) {  // join the one under way
    if (done) s.job->waiters.push_back(std::move(done));
    return;
  }
  auto job = std::make_shared<restart_job>();
  for (auto& [id, w] : workers()) job->old_ids.push_back(id);
  if (done) job->waiters.push_back(std::move(done));
  s.job = job;
  corral::detail::defer([job] { step(job); });
}

bool is_restarting() noexcept { return sv().job != nullptr; }
void on_rolling_restart(std::function<void(const error*, std::chrono::milliseconds)> fn) {
  sv().restarted.add(std::move(fn));
}
int respawns() noexcept { return sv().respawns; }

}  // namespace corral::cluster
