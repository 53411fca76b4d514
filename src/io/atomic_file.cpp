#include "ssm/io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "ssm/core/error.h"

namespace ssm::io {

AtomicFile::AtomicFile(const std::string& path) : path_(path), tmp_(path + ".tmp") {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  SSM_CHECK(fd_ >= 0, "AtomicFile: cannot create '{}': {}", tmp_, std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t size) {
  SSM_CHECK(fd_ >= 0 && !committed_, "AtomicFile: '{}' is already committed", path_);
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    // Large writes in pieces: write(2) may return short counts, and Linux caps one call at ~2 GiB.
    const ssize_t n = ::write(fd_, p, std::min<size_t>(size, size_t{1} << 30));
    if (n < 0 && errno == EINTR) continue;
    SSM_CHECK(n > 0, "AtomicFile: writing '{}' failed: {}", tmp_,
              n < 0 ? std::strerror(errno) : "no progress");
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  SSM_CHECK(fd_ >= 0 && !committed_, "AtomicFile: '{}' is already committed", path_);
  SSM_CHECK(::fsync(fd_) == 0, "AtomicFile: syncing '{}' failed: {}", tmp_, std::strerror(errno));
  const int closed = ::close(fd_);
  fd_ = -1;
  SSM_CHECK(closed == 0, "AtomicFile: closing '{}' failed: {}", tmp_, std::strerror(errno));
  SSM_CHECK(std::rename(tmp_.c_str(), path_.c_str()) == 0,
            "AtomicFile: renaming '{}' to '{}' failed: {}", tmp_, path_, std::strerror(errno));
  committed_ = true;
  // Make the rename itself durable. Failure here does not undo the (already visible) file.
  const std::filesystem::path parent = std::filesystem::path(path_).parent_path();
  const int dfd = ::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace ssm::io
