// The trainer's progress, as trainer_state.json in a checkpoint holds it:
//   {"format": "autonomoe-trainer-state", "version": 1, "step": N, "tokens": N, "elapsed_s": x,
//    "train_loader": {...DataLoader::state()}, "dtype": "F32", "has_optimizer": true}
// Reading it back checks every key like a user's config is checked: an error names the file, the
// key and what was expected (never an internal error deep inside the optimizer or loader).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace am {

struct TrainerState {
  int64_t step = 0;             // optimizer steps completed
  int64_t tokens = 0;           // training tokens consumed
  double elapsed_s = 0;         // wall time spent training so far
  nlohmann::json train_loader;  // DataLoader::state()
  bool has_optimizer = false;   // read back: the checkpoint holds optimizer.safetensors
};

nlohmann::json trainer_state_to_json(const TrainerState& s, const std::string& dtype, bool has_optimizer);

// UserError naming `path` and the key on a wrong format, version, type or range (a dtype other
// than F32 or F64). The step's agreement with its checkpoint is load_checkpoint's to check.
TrainerState trainer_state_from_json(const nlohmann::json& j, const std::string& path);

}  // namespace am
