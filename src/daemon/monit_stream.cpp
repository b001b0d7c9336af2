#include "daemon/monit_stream.hpp"

namespace corral::daemon {

monit_streams::monit_streams(uv_loop_t* loop, send_fn send, drop_fn drop, list_fn list)
    : loop_(loop), send_(std::move(send)), drop_(std::move(drop)), list_(std::move(list)) {}

void monit_streams::subscribe(uint64_t conn, const request& req) {
  std::string target = req.args.value("target", std::string("all"));
  uint64_t interval = default_interval_ms;
  if (auto it = req.args.find("interval_ms"); it != req.args.end()) {
    if (!it->is_number_unsigned() || it->get<uint64_t>() < min_interval_ms || it->get<uint64_t>() > max_interval_ms) {
      send_(conn, encode(response{req.id, false, json(),
                                  "monit: interval_ms must be a number from " + std::to_string(min_interval_ms) +
                                      " to " + std::to_string(max_interval_ms)}));
      return;
    }
    interval = it->get<uint64_t>();
  }
  streams_.erase(conn);  // one stream per connection: a new monit replaces it
  // Checked once now, so that a typo is an error rather than an empty stream.
  list_(target, [this, conn, req_id = req.id, target, interval](response&& r) {
    if (!r.ok) {
      send_(conn, encode(response{req_id, false, json(), r.error}));
      return;
    }
    if (!send_(conn, encode(response{req_id, true, json{{"interval_ms", interval}}, {}}))) return;
    auto s = std::make_unique<stream>();
    s->owner = this;
    s->conn = conn;
    s->req_id = req_id;
    s->serial = next_serial_++;
    s->target = target;
    s->timer = detail::uv_handle_ptr<uv_timer_t>::make();
    uv_timer_init(loop_, s->timer.get());
    s->timer->data = s.get();
    uv_timer_start(s->timer.get(), [](uv_timer_t* t) {
      if (auto* st = static_cast<stream*>(t->data)) st->owner->tick(st->conn);
    }, 0, interval);  // the first rows at once, then every interval
    streams_[conn] = std::move(s);
  });
}

void monit_streams::on_disconnect(uint64_t conn) { streams_.erase(conn); }

void monit_streams::tick(uint64_t conn) {
  auto it = streams_.find(conn);
  if (it == streams_.end() || it->second->in_flight) return;
  stream& s = *it->second;
  s.in_flight = true;
  list_(s.target, [this, conn, serial = s.serial](response&& r) {
    auto it = streams_.find(conn);
    if (it == streams_.end() || it->second->serial != serial) return;  // gone meanwhile
    stream& s = *it->second;
    s.in_flight = false;
    json ev{{"id", s.req_id}, {"event", "monit"}};
    if (r.ok) {
      ev["rows"] = std::move(r.result);
    } else {
      // The app was deleted: say so and keep streaming (it may come back).
      ev["rows"] = json::array();
      ev["error"] = r.error;
    }
    // A client that stopped reading has a full queue: drop it rather than
    // buffer without bound (drop_ erases the stream through on_disconnect).
    if (!send_(conn, ev)) drop_(conn);
  });
}

}  // namespace corral::daemon
