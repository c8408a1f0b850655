// safetensors files (https://github.com/huggingface/safetensors format):
//   [u64 little-endian N][N bytes of JSON header, space-padded][data section]
// The header maps tensor name -> {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}
// (offsets relative to the data section) plus an optional "__metadata__": {string: string}.
// This project writes the data section at an 8-byte-aligned file offset and the tensors
// back to back in the order given (no gaps, as the reference reader requires).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"

namespace am {

// One tensor to write. `data` is host memory holding numel(shape) * dtype_size(dtype) bytes,
// little-endian, row-major. A shape of {} is a scalar (1 element); a 0 anywhere gives 0 elements.
struct StEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
};

// Writes `tensors` in the given order, atomically (temp name + rename). Tensor data is streamed
// from the given pointers (no copy of the whole file in memory). UserError on duplicate or empty
// names, a name "__metadata__", or an I/O failure; the target is untouched on failure.
void write_safetensors(const std::string& path, const std::vector<StEntry>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

struct StInfo {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  size_t bytes = 0;   // end - begin == numel(shape) * dtype_size(dtype)
  size_t offset = 0;  // begin, relative to the data section
};

// Product of dims; 1 for {} (a scalar). AM_CHECKs non-negative dims.
int64_t st_numel(const std::vector<int64_t>& shape);
std::string shape_to_string(const std::vector<int64_t>& shape);  // "[2, 3]"

// A validated, memory-mapped safetensors file (read-only; unmapped on destruction).
// The constructor checks everything the format promises and throws a UserError naming the file
// (and the tensor) on the first violation, so that the accessors below cannot read out of bounds.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  SafetensorsFile(SafetensorsFile&& o) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& o) noexcept;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const std::vector<std::string>& names() const { return names_; }  // in header order
  bool has(const std::string& name) const { return infos_.count(name) != 0; }
  // UserError naming the file and the tensor, with the closest existing name, if absent.
  const StInfo& info(const std::string& name) const;
  // Pointer into the mapping; valid while this object lives. Not necessarily aligned to the
  // dtype (only the data section start is 8-byte aligned): copy, or use copy_to.
  const void* data(const std::string& name) const;
  // Copies the tensor into dst (info(name).bytes bytes) after checking dtype and shape;
  // UserError naming file, tensor, found and expected on mismatch.
  void copy_to(const std::string& name, void* dst, DType expected_dtype,
               const std::vector<int64_t>& expected_shape) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  void parse_header(const std::string& header, size_t data_size);
  void unmap() noexcept;

  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const char* data_section_ = nullptr;
  std::vector<std::string> names_;
  std::unordered_map<std::string, StInfo> infos_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace am
