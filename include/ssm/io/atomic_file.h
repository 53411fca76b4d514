#pragma once
// AtomicFile: writes `path` so that readers see either the old file or the complete new one,
// never a partial write. Bytes go to `path.tmp`; commit() flushes them to disk (fsync),
// renames the temporary over `path` (atomic on POSIX file systems) and syncs the directory.
// If commit() is never reached (an error, an exception) the destructor removes the
// temporary and the old file is left untouched.
#include <cstddef>
#include <string>

namespace ssm::io {

class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);
  void commit();
  const std::string& path() const { return path_; }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace ssm::io
