#include "params/params.h"

#include "core/bf16.h"
#include "core/rng.h"

namespace am {

int64_t ParamSpec::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

int ParamTable::add(const std::string& name, std::vector<int64_t> shape, Init init, double std) {
  AM_CHECK(!has(name), "parameter {} declared twice", name);
  ParamSpec s;
  s.name = name;
  s.shape = std::move(shape);
  s.init = init;
  s.std = std;
  s.decay = s.shape.size() == 2;
  s.offset = total_;
  total_ += s.numel();
  specs_.push_back(std::move(s));
  by_name_[name] = size() - 1;
  return size() - 1;
}

int ParamTable::add_state(const std::string& name, std::vector<int64_t> shape, Init init, double value) {
  const int i = add(name, std::move(shape), init, value);
  specs_.back().trainable = false;
  specs_.back().decay = false;
  return i;
}

int ParamTable::add_expert(const std::string& name, std::vector<int64_t> shape, Init init, double std, int expert) {
  const int i = add(name, std::move(shape), init, std);
  specs_.back().expert = expert;
  return i;
}

int ParamTable::index(const std::string& name) const {
  auto it = by_name_.find(name);
  AM_CHECK(it != by_name_.end(), "no parameter named {}", name);
  return it->second;
}

void init_param_host(const ParamSpec& spec, uint64_t seed, double* out) {
  const int64_t n = spec.numel();
  switch (spec.init) {
    case Init::Ones:
      for (int64_t i = 0; i < n; ++i) out[i] = 1.0;
      return;
    case Init::Zeros:
      for (int64_t i = 0; i < n; ++i) out[i] = 0.0;
      return;
    case Init::Constant:
      for (int64_t i = 0; i < n; ++i) out[i] = spec.std;
      return;
    case Init::Normal: {
      const uint64_t key = stream_key(seed, spec.name);
      for (int64_t i = 0; i < n; ++i) out[i] = spec.std * normal01(key, static_cast<uint64_t>(i));
      return;
    }
  }
}

ParamStore::ParamStore(Backend& backend, ParamTable table) : backend_(backend), table_(std::move(table)) {
  const size_t bytes = static_cast<size_t>(table_.total()) * dtype_size(backend_.dtype());
  values_ = backend_.alloc(bytes);
  grads_ = backend_.alloc(bytes);
  backend_.zero(all_values());
  backend_.zero(all_grads());
}

Tensor ParamStore::view(const Buffer& b, int i) const {
  const ParamSpec& s = table_.at(i);
  Tensor t(static_cast<char*>(b.get()) + static_cast<size_t>(s.offset) * dtype_size(backend_.dtype()), backend_.dtype(),
           s.shape);
  return t;
}

void ParamStore::init(uint64_t seed) {
  std::vector<double> host;
  for (int i = 0; i < table_.size(); ++i) {
    host.resize(static_cast<size_t>(table_.at(i).numel()));
    init_param_host(table_.at(i), seed, host.data());
    upload_from_double(backend_, value(i), host);
  }
}

std::vector<double> download_as_double(Backend& be, Tensor t) {
  std::vector<double> out(static_cast<size_t>(t.numel()));
  if (t.dtype == DType::F64) {
    be.download(out.data(), t);
  } else if (t.dtype == DType::BF16) {
    std::vector<uint16_t> tmp(out.size());
    be.download(tmp.data(), t);
    for (size_t i = 0; i < out.size(); ++i) out[i] = bf16_bits_to_f32(tmp[i]);
  } else {
    AM_CHECK(t.dtype == DType::F32, "download_as_double of {}", dtype_name(t.dtype));
    std::vector<float> tmp(out.size());
    be.download(tmp.data(), t);
    for (size_t i = 0; i < out.size(); ++i) out[i] = tmp[i];
  }
  return out;
}

void upload_from_double(Backend& be, Tensor t, const std::vector<double>& host) {
  AM_CHECK(static_cast<int64_t>(host.size()) == t.numel(), "upload of {} values into {}", host.size(), t.shape_str());
  if (t.dtype == DType::F64) {
    be.upload(t, host.data());
  } else if (t.dtype == DType::BF16) {  // rounded to nearest even from the float value
    std::vector<uint16_t> tmp(host.size());
    for (size_t i = 0; i < host.size(); ++i) tmp[i] = f32_to_bf16_bits(static_cast<float>(host[i]));
    be.upload(t, tmp.data());
  } else {
    AM_CHECK(t.dtype == DType::F32, "upload_from_double into {}", dtype_name(t.dtype));
    std::vector<float> tmp(host.begin(), host.end());
    be.upload(t, tmp.data());
  }
}

}  // namespace am
