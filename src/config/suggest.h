// "Did you mean ...?" for unknown config keys.
#pragma once

#include <string>

namespace am {

// Edit distance with adjacent transpositions (optimal string alignment): "d_modle" -> "d_model"
// is 1.
int edit_distance(const std::string& a, const std::string& b);

// The closest known key or section to the unknown dotted `path`, comparing the full dotted path
// with every key path and the last name with the names of its siblings; "" when nothing is
// close enough to be a plausible typo.
std::string suggest_key(const std::string& path);

// What an unknown-key message should end with: "did you mean model.d_model?" or, with no close
// match, the valid names in the enclosing section ("valid keys in model.moe: n_experts, ...").
std::string unknown_key_hint(const std::string& path);

}  // namespace am
