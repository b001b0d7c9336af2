#include "net/delivered.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace corral::net::detail {
namespace {

constexpr std::size_t page = 4096;

error sys_error(const char* what) { return error(std::error_code(errno, std::generic_category()), what); }

std::uint64_t* map_cell(int fd) {
  void* p = ::mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  return p == MAP_FAILED ? nullptr : static_cast<std::uint64_t*>(p);
}

}  // namespace

delivered_counter& delivered_counter::operator=(delivered_counter&& o) noexcept {
  if (this != &o) {
    if (cell_) ::munmap(cell_, page);
    cell_ = o.cell_;
    o.cell_ = nullptr;
  }
  return *this;
}

delivered_counter::~delivered_counter() {
  if (cell_) ::munmap(cell_, page);
}

result<delivered_counter> delivered_counter::create(unique_fd& share) {
  unique_fd fd(::memfd_create("corral-delivered", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return sys_error("memfd_create");
  if (::ftruncate(fd.get(), page) != 0) return sys_error("ftruncate");
  // The worker may write the counter, never resize it (a shrunk memfd would
  // make our next read a SIGBUS).
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) return sys_error("F_ADD_SEALS");
  std::uint64_t* cell = map_cell(fd.get());
  if (!cell) return sys_error("mmap");
  share = std::move(fd);
  return delivered_counter(cell);
}

result<delivered_counter> delivered_counter::map(int fd) {
  struct stat st{};
  int seals = ::fcntl(fd, F_GET_SEALS);
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != static_cast<off_t>(page) || seals < 0 ||
      !(seals & F_SEAL_SHRINK))
    return error(std::make_error_code(std::errc::invalid_argument), "not a delivered counter");
  std::uint64_t* cell = map_cell(fd);
  if (!cell) return sys_error("mmap");
  return delivered_counter(cell);
}

std::uint64_t delivered_counter::load() const noexcept {
  return std::atomic_ref<std::uint64_t>(*cell_).load(std::memory_order_acquire);
}

void delivered_counter::add(std::uint64_t n) noexcept {
  std::atomic_ref<std::uint64_t>(*cell_).fetch_add(n, std::memory_order_release);
}

}  // namespace corral::net::detail
