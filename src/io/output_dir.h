// Output directories checked before any work starts: a run directory or an export target that is a
// file, lies inside a file, or cannot be written gives a clear error up front, not after the model
// is built (or, worse, at the first checkpoint).
#pragma once

#include <string>
#include <string_view>

namespace am {

// UserError unless `dir` is a writable directory, or does not exist and could be created: its
// nearest existing ancestor is a writable directory. `what` names it in the message ("run.out_dir").
// Creates nothing.
void check_output_dir(const std::string& dir, std::string_view what);

// Creates `dir` and its missing parents; a failure (a file in the way, a read-only or virtual file
// system such as /sys) is a UserError naming `what`, the path and the reason.
void create_output_dir(const std::string& dir, std::string_view what);

}  // namespace am
