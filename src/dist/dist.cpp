#include "dist/dist.h"

#include "core/error.h"

namespace am {

Distributed::Distributed(Comm& world, int ep) {
  const int n = world.size(), r = world.rank();
  if (ep < 1 || n % ep != 0) {
    throw UserError(fmt::format("dist.ep is {} but the run has {} ranks", ep, n),
                    "dist.ep must divide the number of processes (mpirun -np)");
  }
  ep_ = world.split(r / ep, r);
  replica_ = world.split(r % ep, r);
  ctx_.world = &world;
  ctx_.ep = ep_.get();
  ctx_.replica = replica_.get();
  ctx_.ep_size = ep;
  ctx_.ep_rank = r % ep;
}

}  // namespace am
