// corral/error.hpp — expected failures as values.
//
// What the environment or a peer can cause (a port in use, a peer reset, a
// child that dies, a malformed message) is returned as a `corral::error`: a
// std::error_code (libuv's codes live in `uv_category()`) plus a message that
// names the thing that failed. Broken invariants abort; no exception crosses a
// libuv callback.
#pragma once

#include <cstdlib>
#include <string>
#include <system_error>
#include <utility>
#include <variant>

namespace corral {

/// The error category of libuv's (negative errno-style) codes.
const std::error_category& uv_category() noexcept;

/// Makes an error_code from a libuv status (`r < 0`).
std::error_code uv_code(int uv_status) noexcept;

/// An expected failure: a code and a message naming what failed and where.
class error {
 public:
  error() = default;
  error(std::error_code code, std::string message) : code_(code), message_(std::move(message)) {}
  /// From a libuv status: message is "<what>: <uv_strerror>".
  static error from_uv(int uv_status, const std::string& what);

  const std::error_code& code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }

 private:
  std::error_code code_;
  std::string message_;
};

/// Either a T or an error. Minimal std::expected for C++20.
template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  result(error e) : v_(std::move(e)) {}      // NOLINT
  explicit operator bool() const noexcept { return v_.index() == 0; }
  bool ok() const noexcept { return v_.index() == 0; }
  T& value() & { return checked(); }
  T&& value() && { return std::move(checked()); }
  T* operator->() { return &checked(); }
  T& operator*() { return checked(); }
  const error& err() const { return std::get<1>(v_); }

 private:
  T& checked() {
    if (v_.index() != 0) std::abort();  // using a failed result is a bug
    return std::get<0>(v_);
  }
  std::variant<T, error> v_;
};

/// Success or an error.
template <>
class [[nodiscard]] result<void> {
 public:
  result() = default;
  result(error e) : failed_(true), e_(std::move(e)) {}  // NOLINT
  explicit operator bool() const noexcept { return !failed_; }
  bool ok() const noexcept { return !failed_; }
  const error& err() const { return e_; }

 private:
  bool failed_ = false;
  error e_;
};

using status = result<void>;

}  // namespace corral
