// Experts factorized: the AoE expert, W_g = W_down W_up of rank d_low (FactorizedExperts,
// experts.h; AoE Eq. 3), its width by AoE Eq. 5 unless given.
#include <fmt/format.h>

#include <cmath>

#include "moe/experts.h"
#include "moe/strategies.h"

namespace am {

FactorizedExperts::FactorizedExperts(Backend& be, ExpertNames names, int n_experts, ExpertShard shard, int d_model,
                                     int d_low, int d_wide, double init_std, double out_std)
    : be_(be),
      names_(std::move(names)),
      n_(n_experts),
      shard_(shard),
      d_(d_model),
      dl_(d_low),
      w_(d_wide),
      init_std_(init_std),
      out_std_(out_std) {}

void FactorizedExperts::register_params(ParamTable& table) {
  // Every expert's W_down first, back to back: together they are the (n*d_low, d) matrix of AoE's
  // single scoring GEMM (Eq. 4).
  for (int e = 0; e < n_; ++e) {
    down_index_.push_back(table.add(expert_param_name(names_.w1_down, e), {dl_, d_}, Init::Normal, init_std_));
  }
  for (int e = shard_.first; e < shard_.first + shard_.count; ++e) {
    up_index_.push_back(table.add_expert(expert_param_name(names_.w1_up, e), {w_, dl_}, Init::Normal, init_std_, e));
    w3_index_.push_back(table.add_expert(expert_param_name(names_.w3, e), {w_, d_}, Init::Normal, init_std_, e));
    w2_index_.push_back(table.add_expert(expert_param_name(names_.w2, e), {d_, w_}, Init::Normal, out_std_, e));
  }
}

void FactorizedExperts::bind(ParamStore& store) {
  const Tensor first = store.value(down_index_[0]), dfirst = store.grad(down_index_[0]);
  down_all_ = Tensor(first.data, first.dtype, {static_cast<int64_t>(n_) * dl_, d_});
  ddown_all_ = Tensor(dfirst.data, dfirst.dtype, {static_cast<int64_t>(n_) * dl_, d_});
  for (int e = 0; e < n_; ++e) {
    down_.push_back(store.value(down_index_[e]));
    ddown_.push_back(store.grad(down_index_[e]));
  }
  for (int e = 0; e < shard_.count; ++e) {
    up_.push_back(store.value(up_index_[e]));
    dup_.push_back(store.grad(up_index_[e]));
    w3_.push_back(store.value(w3_index_[e]));
    dw3_.push_back(store.grad(w3_index_[e]));
    w2_.push_back(store.value(w2_index_[e]));
    dw2_.push_back(store.grad(w2_index_[e]));
  }
}

void FactorizedExperts::allocate(int64_t max_rows) {
  const DType dt = be_.dtype(), at = be_.act_dtype();  // saved activations in act_dtype()
  tail_.allocate(be_, max_rows, w_);
  c_ = TensorBuf(be_, at, {max_rows, dl_});
  dc_ = TensorBuf(be_, dt, {max_rows, dl_});
}

// Every product is one grouped GEMM over the experts that have rows (Backend::matmul_grouped),
// and the SwiGLU one element-wise pass over all their rows [off[0], off[n]). Local expert e uses
// the global expert's W_down (down_[shard_.first + e]).
void FactorizedExperts::forward(Tensor x, Tensor latent, const std::vector<int64_t>& off, Tensor y) {
  const bool cached = latent.data != nullptr;
  const ExpertBlocks blk(off);
  if (blk.live.empty()) return;
  const std::vector<Tensor> xs = blk.rows(x), c = blk.rows(cached ? latent : Tensor(c_));
  if (!cached) be_.matmul_grouped(c, xs, false, blk.pick(down_, shard_.first), true, 1.0, 0.0);  // c = x W_down^T
  be_.matmul_grouped(blk.rows(tail_.g), c, false, blk.pick(up_), true, 1.0, 0.0);   // g (rows, w) = c W_up^T
  be_.matmul_grouped(blk.rows(tail_.u), xs, false, blk.pick(w3_), true, 1.0, 0.0);  // u (rows, w) = x w3^T
  tail_.forward(be_, blk, w2_, y);                                                  // y (rows, d) = (SiLU(g) * u) w2^T
}

void FactorizedExperts::backward(Tensor x, Tensor latent, const std::vector<int64_t>& off, Tensor dy, Tensor dx,
                                 Tensor dlatent) {
  const bool cached = latent.data != nullptr;
  const ExpertBlocks blk(off);
  if (blk.live.empty()) return;
  tail_.backward(be_, blk, w2_, dw2_, dy);  // dg, du (rows, w); dw2 accumulated
  const std::vector<Tensor> xs = blk.rows(x), dxs = blk.rows(dx);
  const std::vector<Tensor> dg = blk.rows(tail_.dg), du = blk.rows(tail_.du);
  const std::vector<Tensor> c = blk.rows(cached ? latent : Tensor(c_)), dc = blk.rows(cached ? dlatent : Tensor(dc_));
  be_.matmul_grouped(blk.pick(dw3_), du, true, xs, false, 1.0, 1.0);   // dw3 (w, d) += du^T x
  be_.matmul_grouped(dxs, du, false, blk.pick(w3_), false, 1.0, 0.0);  // dx = du w3 (+ dc W_down below)
  be_.matmul_grouped(blk.pick(dup_), dg, true, c, false, 1.0, 1.0);    // dW_up (w, d_low) += dg^T c
  be_.matmul_grouped(dc, dg, false, blk.pick(up_), false, 1.0, 0.0);   // dc (rows, d_low) = dg W_up
  if (!cached) {
    be_.matmul_grouped(blk.pick(ddown_, shard_.first), dc, true, xs, false, 1.0, 1.0);   // dW_down += dc^T x
    be_.matmul_grouped(dxs, dc, false, blk.pick(down_, shard_.first), false, 1.0, 1.0);  // dx += dc W_down
  }
}

void FactorizedExperts::node_activation(int e, const std::string& node, Tensor x, Tensor out, Tensor g, Tensor u) {
  AM_CHECK(shard_.first == 0 && shard_.count == n_, "router-free scoring needs every expert on this rank");
  const int64_t N = x.dim(0);
  Tensor c = Tensor(c_).rows(0, std::min<int64_t>(N, Tensor(c_).dim(0)));
  AM_CHECK(c.dim(0) == N, "node activation of {} rows with a cache of {}", N, Tensor(c_).dim(0));
  be_.matmul(c, x, false, down_[e], true, 1.0, 0.0);  // (N, d_low)
  be_.matmul(g, c, false, up_[e], true, 1.0, 0.0);    // (N, w)
  be_.matmul(u, x, false, w3_[e], true, 1.0, 0.0);
  node_from_gate_up(be_, node, g, u, w2_[e], out);
}

namespace {

using Msg = std::optional<std::string>;

// d_wide, or AoE Eq. 5: d_low d + d_low w + 2 d w = 3 d d_ffn (the parameters of a SwiGLU expert),
// rounded to the nearest multiple_of.
int factorized_width(const MoeConfig& moe, int d_model) {
  const ExpertConfig& e = moe.expert;
  if (e.d_wide > 0) return e.d_wide;
  const double d = d_model, f = moe.d_ffn, low = e.d_low;
  const double exact = (3 * d * f - low * d) / (low + 2 * d);
  const int64_t nearest = std::llround(exact);
  const int64_t m = e.multiple_of > 0 ? e.multiple_of : 1;
  return static_cast<int>(std::llround(static_cast<double>(nearest) / m) * m);
}

std::vector<KeySpec> factorized_keys() {
  return {
      config_key("model.moe.expert.d_low", "0", at_least(0),
                 "rank of the factorized W_g (factorized experts, where it must be in [1, d_model)); "
                 "also sizes a large_router whose d_hidden is 0; 0 = unset",
                 AM_FIELD(model.moe.expert.d_low)),
      config_key("model.moe.expert.d_wide", "0", at_least(0),
                 "hidden width of a factorized expert; 0 = derived so that an expert has the "
                 "parameters of a d_ffn SwiGLU expert (AoE Eq. 5: (3 d d_ffn - d_low d) / (d_low + 2 d))",
                 AM_FIELD(model.moe.expert.d_wide)),
      config_key("model.moe.expert.multiple_of", "1", at_least(1),
                 "round a derived d_wide to the nearest multiple of this (ignored when d_wide is set)",
                 AM_FIELD(model.moe.expert.multiple_of)),
  };
}

std::vector<CrossRule> factorized_rules() {
  return {
      {"model.moe.expert.type factorized needs 1 <= model.moe.expert.d_low < model.d_model",
       [](const Config& c, const ShowKey& show) -> Msg {
         const ExpertConfig& e = c.model.moe.expert;
         if (e.type != "factorized" || (e.d_low >= 1 && e.d_low < c.model.d_model)) return std::nullopt;
         return fmt::format(
             "{} needs 1 <= model.moe.expert.d_low < model.d_model, but {} and {} (AoE uses "
             "d_low 64 to 512 with d_model 768)",
             show("model.moe.expert.type"), show("model.moe.expert.d_low"), show("model.d_model"));
       }},
      {"a factorized expert's width d_wide (given, or derived by AoE Eq. 5) is at least 1",
       [](const Config& c, const ShowKey& show) -> Msg {
         const MoeConfig& m = c.model.moe;
         if (m.expert.type != "factorized" || m.expert.d_wide > 0 || m.expert.d_low < 1 ||
             m.expert.d_low >= c.model.d_model || m.hidden_width(c.model.d_model) >= 1) {
           return std::nullopt;
         }
         return fmt::format(
             "the d_wide that AoE Eq. 5 derives from {}, {}, {} and {} is {}; it must be >= 1: "
             "set model.moe.expert.d_wide, raise model.moe.d_ffn or lower "
             "model.moe.expert.d_low",
             show("model.d_model"), show("model.moe.d_ffn"), show("model.moe.expert.d_low"),
             show("model.moe.expert.multiple_of"), m.hidden_width(c.model.d_model));
       }},
      {"model.moe.expert.d_wide is 0 unless model.moe.expert.type is factorized",
       [](const Config& c, const ShowKey& show) -> Msg {
         const ExpertConfig& e = c.model.moe.expert;
         if (e.d_wide == 0 || e.type == "factorized") return std::nullopt;
         return fmt::format(
             "{} has no effect with {}: a swiglu expert's width is model.moe.d_ffn; remove "
             "d_wide, or set model.moe.expert.type: factorized",
             show("model.moe.expert.d_wide"), show("model.moe.expert.type"));
       }},
  };
}

const bool kRegistered = register_strategy([] {
  ExpertStrategy s;
  s.name = "factorized";
  s.order = 2;
  s.doc = "the AoE expert, W_g = W_down (d_model x d_low) W_up (d_low x d_wide)";
  s.keys = factorized_keys();
  s.rules = factorized_rules();
  s.hidden_width = factorized_width;
  s.latent = true;
  s.params = [](const MoeConfig& m, int d_model) -> int64_t {
    const int64_t d = d_model, low = m.expert.d_low, w = factorized_width(m, d_model);
    return d * low + low * w + 2 * d * w;  // w1_down [low, d], w1_up [w, low], w3, w2
  };
  s.make = [](Backend& be, const ExpertArgs& a) -> std::unique_ptr<Experts> {
    const MoeConfig& m = a.cfg.moe;
    return std::make_unique<FactorizedExperts>(be, a.names, m.n_experts, a.shard, a.cfg.d_model, m.expert.d_low,
                                               factorized_width(m, a.cfg.d_model), a.init_std, a.out_std);
  };
  return s;
}());

}  // namespace

}  // namespace am
