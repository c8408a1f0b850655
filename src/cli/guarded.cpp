#include "cli/guarded.h"

#include "cli/args.h"
#include "dist/launch.h"

#include <cstdio>

namespace am {

int run_guarded(const std::function<int()>& body) {
  int code = 0;
  try {
    return body();
  } catch (const UsageError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    code = 2;
  } catch (const UserError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    code = 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error (a bug in autonomoe; please report it): %s\n", e.what());
    code = 3;
  }
  if (mpi_active()) abort_job(code);
  return code;
}

}  // namespace am
