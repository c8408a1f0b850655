// The error reporting every command-line tool of the project shares (autonomoe, the benchmarks):
// runs `body` and turns what it throws into a message on stderr and the exit code -- 2 for a
// malformed command line (UsageError), 1 for bad input (UserError, with its hint), 3 for a bug.
// Under mpirun an error ends the whole job, since the other ranks may wait in a collective.
#pragma once

#include <functional>

namespace am {

int run_guarded(const std::function<int()>& body);

}  // namespace am
