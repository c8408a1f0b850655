#include "train/optimizer.h"

#include "dist/grad_sync.h"

#include <cmath>
#include <cstring>

namespace am {
namespace {

// Elements [begin, begin + n) of x as a flat tensor.
Tensor flat(Tensor x, int64_t begin, int64_t n) {
  return Tensor(static_cast<char*>(x.data) + static_cast<size_t>(begin) * dtype_size(x.dtype), x.dtype, {n});
}

}  // namespace

AdamW::AdamW(ParamStore& store, const TrainConfig& cfg, const DistContext* zero1)
    : store_(store), cfg_(cfg), dist_(zero1) {
  Backend& be = store.backend();
  int64_t n = store.table().total();
  if (zero1) {
    AM_CHECK(zero1->world && zero1->replica, "ZeRO-1 needs the run's world and replica communicators");
    shard_ = make_zero_shard(store.table(), zero1->world->size(), zero1->world->rank(), zero1->replica->size(),
                             zero1->replica->rank());
    n = shard_->numel();
  }
  m_ = TensorBuf(be, be.dtype(), {n});
  v_ = TensorBuf(be, be.dtype(), {n});
  be.zero(m_);
  be.zero(v_);
  flag_ = TensorBuf(be, be.dtype(), {1});
  be.clear_update_flag();
  upload_chunks();
}

// adamw_update_multi's table: every trainable tensor (or this rank's pieces of them), uploaded once.
void AdamW::upload_chunks() {
  Backend& be = store_.backend();
  const ParamTable& t = store_.table();
  std::vector<AdamWChunk> rows;
  if (!sharded()) {
    for (int i = 0; i < t.size(); ++i) {
      const ParamSpec& p = t.at(i);
      if (p.trainable) append_adamw_chunks(rows, p.offset, p.offset, p.numel(), p.decay, i + 1);
    }
  } else {
    for (const std::vector<ShardPiece>* part : {&shard_->dense, &shard_->expert}) {
      const int64_t base = part == &shard_->dense ? 0 : shard_->dense_numel;
      for (const ShardPiece& p : *part) {
        append_adamw_chunks(rows, t.at(p.tensor).offset + p.begin, base + p.at, p.numel(), t.at(p.tensor).decay,
                            p.tensor + 1);
      }
    }
  }
  chunks_ = TensorBuf(be, DType::I32, {static_cast<int64_t>(rows.size()), kAdamWChunkWords});
  if (!rows.empty()) be.upload(chunks_, rows.data());
  const std::vector<SumSquaresSpan> spans = grad_norm_spans(t);
  norm_spans_ = TensorBuf(be, DType::I32, {static_cast<int64_t>(spans.size()), kSumSquaresSpanWords});
  if (!spans.empty()) be.upload(norm_spans_, spans.data());
}

Tensor AdamW::view(const TensorBuf& b, int i) const {
  AM_CHECK(!sharded(), "per-tensor moments of a ZeRO-1 optimizer (it holds only its shard)");
  const ParamSpec& s = store_.table().at(i);
  return Tensor(static_cast<char*>(b.t().data) + static_cast<size_t>(s.offset) * dtype_size(b.t().dtype), b.t().dtype,
                s.shape);
}

Tensor AdamW::all_m() const {
  AM_CHECK(!sharded(), "all moments of a ZeRO-1 optimizer (it holds only its shard)");
  return m_;
}

Tensor AdamW::all_v() const {
  AM_CHECK(!sharded(), "all moments of a ZeRO-1 optimizer (it holds only its shard)");
  return v_;
}

const ZeroShard& AdamW::shard() const {
  AM_CHECK(sharded(), "the shard of an unsharded optimizer");
  return *shard_;
}

Tensor AdamW::state_part(Moment which, int64_t at, int64_t n) const {
  return flat(which == Moment::M ? m_.t() : v_.t(), at, n);
}

size_t AdamW::state_bytes() const { return m_.t().nbytes() + v_.t().nbytes(); }

size_t AdamW::unsharded_state_bytes() const {
  return 2 * static_cast<size_t>(store_.table().total()) * dtype_size(store_.backend().dtype());
}

double AdamW::grad_norm() const { return std::sqrt(store_.backend().sum_squares(store_.all_grads())); }

void AdamW::update(int64_t step, double lr, double grad_norm) {
  AdamWStep s;
  s.lr = lr;
  s.beta1 = cfg_.beta1;
  s.beta2 = cfg_.beta2;
  s.eps = cfg_.eps;
  s.step = step + 1;
  last_lr_ = lr;
  // PyTorch's clip_grad_norm_: scale by clip / (norm + 1e-6) when that is below 1.
  s.grad_scale = 1.0;
  if (cfg_.grad_clip > 0) s.grad_scale = std::min(1.0, cfg_.grad_clip / (grad_norm + 1e-6));
  if (sharded()) {
    update_sharded(s);
    return;
  }
  Backend& be = store_.backend();
  for (int i = 0; i < store_.table().size(); ++i) {
    if (!store_.table().at(i).trainable) continue;
    s.weight_decay = store_.table().at(i).decay ? cfg_.weight_decay : 0.0;
    s.tag = i + 1;
    be.adamw_update(store_.value(i), store_.grad(i), m(i), v(i), s);
  }
}

void AdamW::update_device(int64_t step, double lr, Tensor norm_sq) {
  AdamWStep s;
  s.lr = lr;
  s.beta1 = cfg_.beta1;
  s.beta2 = cfg_.beta2;
  s.eps = cfg_.eps;
  s.weight_decay = cfg_.weight_decay;
  s.step = step + 1;
  last_lr_ = lr;
  Backend& be = store_.backend();
  be.adamw_update_multi(store_.all_values(), store_.all_grads(), m_, v_, chunks_, norm_sq, cfg_.grad_clip, s);
  if (sharded()) gather_updated();
}

// This rank's pieces, then every run of the parameter buffer all-gathered over its kind's group.
void AdamW::update_sharded(AdamWStep s) {
  Backend& be = store_.backend();
  const ParamTable& t = store_.table();
  const ZeroShard& z = *shard_;
  for (const std::vector<ShardPiece>* part : {&z.dense, &z.expert}) {
    const int64_t base = part == &z.dense ? 0 : z.dense_numel;
    for (const ShardPiece& p : *part) {
      s.weight_decay = t.at(p.tensor).decay ? cfg_.weight_decay : 0.0;
      s.tag = p.tensor + 1;
      be.adamw_update(flat(store_.value(p.tensor), p.begin, p.numel()), flat(store_.grad(p.tensor), p.begin, p.numel()),
                      state_part(Moment::M, base + p.at, p.numel()), state_part(Moment::V, base + p.at, p.numel()), s);
    }
  }
  gather_updated();
}

void AdamW::gather_updated() {
  const ParamTable& t = store_.table();
  const ZeroShard& z = *shard_;
  const Tensor values = store_.all_values();
  for (const GatherRun& run : z.runs) {
    Comm* comm = run.kind == ShardKind::Dense ? dist_->world : dist_->replica;
    if (comm->size() == 1) continue;
    const ParamSpec &a = t.at(run.first), &b = t.at(run.last);
    comm->all_gather(flat(values, a.offset, b.offset + b.numel() - a.offset), run.counts, run.offsets);
  }
}

int AdamW::read_update_flag() const {
  Backend& be = store_.backend();
  be.copy_update_flag(flag_);
  return static_cast<int>(download_as_double(be, flag_).front());
}

void AdamW::check_update_flag(int flag, int64_t step) const {
  if (flag == 0) return;
  const ParamTable& t = store_.table();
  const std::string name = flag >= 1 && flag <= t.size() ? t.at(flag - 1).name : fmt::format("#{}", flag);
  throw UserError(fmt::format("diverged: the AdamW update of step {} (learning rate {:g}) made tensor {} "
                              "non-finite; stopping without writing a checkpoint of the broken state",
                              step, last_lr_, name),
                  "lower train.lr (or train.weight_decay) or raise train.warmup_steps; "
                  "resume from the last checkpoint with --resume");
}

std::vector<char> AdamW::gather_moment(Moment which) const {
  Backend& be = store_.backend();
  const ParamTable& t = store_.table();
  const size_t es = dtype_size(be.dtype());
  if (!sharded()) {
    const Tensor all = which == Moment::M ? m_.t() : v_.t();
    std::vector<char> host(all.nbytes());
    be.download(host.data(), all);
    return host;
  }
  const ZeroShard& z = *shard_;
  std::vector<char> mine(static_cast<size_t>(z.numel()) * es);
  if (z.numel() > 0) be.download(mine.data(), state_part(which, 0, z.numel()));
  const bool receives = dist_->world->rank() == 0 || dist_->replica->rank() == 0;
  std::vector<char> out(receives ? static_cast<size_t>(t.total()) * es : 0);
  auto place = [&](const std::vector<ShardPiece>& pieces, const char* src) {
    for (const ShardPiece& p : pieces) {
      std::memcpy(out.data() + static_cast<size_t>(t.at(p.tensor).offset + p.begin) * es,
                  src + static_cast<size_t>(p.at) * es, static_cast<size_t>(p.numel()) * es);
    }
  };
  // Every rank sends its part of one kind to rank 0 of the kind's group, which places all parts.
  // Dense over the world first, then experts over the replica group: the only receiver of the
  // first phase is world rank 0, which takes the parts in rank order, so no send waits on a
  // receiver that is itself waiting.
  auto collect = [&](Comm& comm, ShardKind kind, const std::vector<ShardPiece>& own, const char* own_data,
                     int64_t own_n) {
    if (comm.rank() != 0) {
      comm.send(own_data, static_cast<size_t>(own_n) * es, 0);
      return;
    }
    place(own, own_data);
    for (int q = 1; q < comm.size(); ++q) {
      const std::vector<ShardPiece> theirs = shard_pieces(t, kind, comm.size(), q);
      int64_t n = 0;
      for (const ShardPiece& p : theirs) n += p.numel();
      std::vector<char> buf(static_cast<size_t>(n) * es);
      recv_expecting(comm, buf.data(), buf.size(), q,
                     fmt::format("checkpoint gather: rank {}'s ZeRO-1 shard of the {} AdamW moments", q,
                                 kind == ShardKind::Dense ? "dense" : "expert"));
      place(theirs, buf.data());
    }
  };
  collect(*dist_->world, ShardKind::Dense, z.dense, mine.data(), z.dense_numel);
  collect(*dist_->replica, ShardKind::Expert, z.expert, mine.data() + static_cast<size_t>(z.dense_numel) * es,
          z.expert_numel);
  return out;
}

void AdamW::set_moment(int i, Moment which, const void* host) {
  Backend& be = store_.backend();
  if (!sharded()) {
    be.upload(which == Moment::M ? m(i) : v(i), host);
    return;
  }
  const std::optional<ShardKind> kind = shard_kind(store_.table().at(i));
  const int p = shard_->piece_of[static_cast<size_t>(i)];
  if (!kind || p < 0) return;  // not trained, or in another rank's shard
  const bool dense = *kind == ShardKind::Dense;
  const ShardPiece& piece = (dense ? shard_->dense : shard_->expert)[static_cast<size_t>(p)];
  const int64_t at = (dense ? 0 : shard_->dense_numel) + piece.at;
  be.upload(state_part(which, at, piece.numel()),
            static_cast<const char*>(host) + static_cast<size_t>(piece.begin) * dtype_size(be.dtype()));
}

}  // namespace am
