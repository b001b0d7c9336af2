// cron_restart's patterns come from ecosystem files, the command line and the
// state file: any text must parse or be refused with an error, never crash,
// and a schedule that parsed must answer next() with a later time or none.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <string>

#include "daemon/cron.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string pattern(reinterpret_cast<const char*>(data), size);
  auto s = corral::daemon::cron_schedule::parse(pattern);
  if (!s) {
    if (s.err().message().empty()) std::abort();  // a refusal says why
    return 0;
  }
  for (std::time_t after : {std::time_t{0}, std::time_t{1796601600}, std::time_t{1803772800}}) {
    auto next = s->next(after);
    if (next && *next <= after) std::abort();
  }
  return 0;
}
