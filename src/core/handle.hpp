// Internal: RAII ownership of libuv handles, honouring the asynchronous close.
//
// A uv handle must stay at a fixed address until its close callback has run.
// `uv_handle_ptr<T>` heap-allocates the handle; destroying the owner calls
// uv_close() and the memory is freed in the close callback. `data` is cleared
// first so a callback already queued for the handle sees no owner.
#pragma once

#include <uv.h>

#include <utility>

namespace corral::detail {

template <class T>
class uv_handle_ptr {
 public:
  uv_handle_ptr() = default;
  explicit uv_handle_ptr(T* h) : h_(h) {}
  uv_handle_ptr(const uv_handle_ptr&) = delete;
  uv_handle_ptr& operator=(const uv_handle_ptr&) = delete;
  uv_handle_ptr(uv_handle_ptr&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  uv_handle_ptr& operator=(uv_handle_ptr&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  ~uv_handle_ptr() { reset(); }

  /// Allocates a fresh, uninitialised handle (the caller runs uv_X_init).
  static uv_handle_ptr make() { return uv_handle_ptr(new T{}); }

  T* get() const noexcept { return h_; }
  T* operator->() const noexcept { return h_; }
  explicit operator bool() const noexcept { return h_ != nullptr; }
  uv_handle_t* handle() const noexcept { return reinterpret_cast<uv_handle_t*>(h_); }

  /// Closes the handle (if initialised and open) and forgets it.
  void reset() noexcept {
    if (!h_) return;
    T* h = std::exchange(h_, nullptr);
    auto* base = reinterpret_cast<uv_handle_t*>(h);
    base->data = nullptr;
    if (base->loop == nullptr) {  // never initialised
      delete h;
      return;
    }
    if (uv_is_closing(base)) return;  // someone else closes it; they free it
    uv_close(base, [](uv_handle_t* b) { delete reinterpret_cast<T*>(b); });
  }

 private:
  T* h_ = nullptr;
};

}  // namespace corral::detail
