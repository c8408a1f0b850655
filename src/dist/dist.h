// The layout of a multi-process run (docs/distributed.md): every rank is a data-parallel replica
// with its own data; ranks are grouped into expert-parallel groups of ep consecutive ranks, and
// rank r of a group holds experts [r n/ep, (r+1) n/ep) of every MoE layer. Dense parameters
// (attention, norms, embedding, router, AoE's W_down) are replicated on all ranks; an expert's
// weights on the ranks with the same position in their group (the "replica" group).
#pragma once

#include "dist/comm.h"

#include <memory>

namespace am {

struct DistContext {
  Comm* world = nullptr;    // every rank
  Comm* ep = nullptr;       // this rank's expert-parallel group
  Comm* replica = nullptr;  // the ranks holding the same experts as this one
  int ep_size = 1;
  int ep_rank = 0;

  int world_size() const { return world ? world->size() : 1; }
  int rank() const { return world ? world->rank() : 0; }
  bool is_root() const { return rank() == 0; }
};

// Owns the group communicators of a DistContext (the world communicator is the caller's).
class Distributed {
 public:
  // ep must divide the world size (UserError otherwise).
  Distributed(Comm& world, int ep);
  const DistContext& context() const { return ctx_; }

 private:
  std::unique_ptr<Comm> ep_, replica_;
  DistContext ctx_;
};

}  // namespace am
