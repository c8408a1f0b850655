// The parameter table (llm.c style): every parameter tensor declared once, with its export name
// (HF Mixtral convention, [out, in] layout), shape, initialisation and weight-decay flag, laid out
// back to back in one buffer. ParamStore owns that buffer and its gradient twin on a backend.
#pragma once

#include "core/backend.h"

#include <string>
#include <unordered_map>
#include <vector>

namespace am {

enum class Init { Normal, Ones, Zeros, Constant };

struct ParamSpec {
  std::string name;            // export name, e.g. model.layers.0.self_attn.q_proj.weight
  std::vector<int64_t> shape;  // [out, in] for matrices
  Init init = Init::Normal;
  double std = 0;         // standard deviation (Normal) or the value (Constant)
  bool decay = false;     // weight decay applies (every matrix; not norm weights)
  bool trainable = true;  // false: state the optimizer leaves alone (the selection bias)
  int expert = -1;        // >= 0: a weight of this (global) expert, sharded by expert
                          // parallelism and reduced over the ranks holding the same experts
  int64_t offset = 0;     // elements from the start of the buffer
  int64_t numel() const;
};

class ParamTable {
 public:
  // Appends a tensor right after the previous one; returns its index. Tensors that a kernel reads
  // as one matrix (q, k, v; an expert's w1 and w3) are added consecutively.
  int add(const std::string& name, std::vector<int64_t> shape, Init init, double std = 0);
  // A tensor that is saved and loaded with the model but not trained (no gradient step, no decay).
  int add_state(const std::string& name, std::vector<int64_t> shape, Init init, double value = 0);
  // An expert's weight (see ParamSpec::expert).
  int add_expert(const std::string& name, std::vector<int64_t> shape, Init init, double std, int expert);
  const std::vector<ParamSpec>& specs() const { return specs_; }
  const ParamSpec& at(int i) const { return specs_.at(static_cast<size_t>(i)); }
  int size() const { return static_cast<int>(specs_.size()); }
  int index(const std::string& name) const;  // AM_CHECK that it exists
  bool has(const std::string& name) const { return by_name_.count(name) > 0; }
  int64_t total() const { return total_; }

 private:
  std::vector<ParamSpec> specs_;
  std::unordered_map<std::string, int> by_name_;
  int64_t total_ = 0;
};

// The initial value of every element, in double: a pure function of (seed, name, element index)
// (see core/rng.h), so all backends and layouts start from the same model.
void init_param_host(const ParamSpec& spec, uint64_t seed, double* out);

// Parameters and their gradients, each one buffer laid out by the table, in the backend's dtype.
class ParamStore {
 public:
  ParamStore(Backend& backend, ParamTable table);
  const ParamTable& table() const { return table_; }
  Backend& backend() const { return backend_; }

  Tensor value(int i) const { return view(values_, i); }
  Tensor grad(int i) const { return view(grads_, i); }
  Tensor all_values() const { return values_.view(backend_.dtype(), {table_.total()}); }
  Tensor all_grads() const { return grads_.view(backend_.dtype(), {table_.total()}); }

  void init(uint64_t seed);  // every tensor from init_param_host
  void zero_grads() { backend_.zero(all_grads()); }

 private:
  Tensor view(const Buffer& b, int i) const;
  Backend& backend_;
  ParamTable table_;
  Buffer values_, grads_;
};

// Host <-> backend copies of one tensor in double (tests, checkpoints of F64 runs) or float.
std::vector<double> download_as_double(Backend& be, Tensor t);
void upload_from_double(Backend& be, Tensor t, const std::vector<double>& host);

}  // namespace am
