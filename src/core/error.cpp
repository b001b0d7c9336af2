#include "corral/error.hpp"

#include <uv.h>

namespace corral {
namespace {

class uv_error_category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "libuv"; }
  std::string message(int code) const override { return uv_strerror(code); }
  std::error_condition default_error_condition(int code) const noexcept override {
    // libuv's codes on Unix are negated errno values.
    return code < 0 ? std::error_condition(-code, std::generic_category())
                    : std::error_condition(code, *this);
  }
};

}  // namespace

const std::error_category& uv_category() noexcept {
  static const uv_error_category category;
  return category;
}

std::error_code uv_code(int uv_status) noexcept { return {uv_status, uv_category()}; }

error error::from_uv(int uv_status, const std::string& what) {
  return error(uv_code(uv_status), what + ": " + uv_strerror(uv_status));
}

}  // namespace corral
