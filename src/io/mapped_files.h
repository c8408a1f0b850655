// Memory-mapped files that change under a running job. Reading a page of a mapping whose file was
// truncated raises SIGBUS, which would kill the process without a word. Every mapping of a file the
// framework reads (token shards, safetensors files) is registered here; a SIGBUS handler (installed,
// or put back, at each registration) finds the mapping the faulting address lies in and ends the
// process with a message naming the file and exit code 1. A SIGBUS elsewhere keeps its default
// action. The handler is async-signal-safe: it reads the registry without locks and writes with
// write(2), then calls _exit.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace am {

// `what` names the kind of file in the message ("token shard"). Registration takes a lock; the
// registry holds at most kMaxMappedFiles mappings at a time (beyond that, a mapping is simply not
// named: its SIGBUS is reported without the file).
inline constexpr int kMaxMappedFiles = 4096;
void register_mapping(const void* addr, size_t bytes, const std::string& path, std::string_view what);
void unregister_mapping(const void* addr);

}  // namespace am
