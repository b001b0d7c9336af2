// `corral list`: the instance rows the daemon returns, as a table.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace corral::cli {

/// The table (header and one line per instance), ready to print.
std::string format_table(const nlohmann::json& rows);
std::string human_bytes(uint64_t bytes);
std::string human_duration(int64_t ms);

/// `value` as `env` prints it after "KEY=": as it is, or, if it holds a
/// control character (a newline would split the line), quoted as bash's
/// $'...' reads it back: $'one\ntwo'.
std::string env_value(const std::string& value);

}  // namespace corral::cli
