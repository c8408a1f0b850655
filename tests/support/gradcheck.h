// Finite-difference gradient checking in double precision, for unit tests (Catch2 v2).
//
//   check_gradient(loss, param, analytic, n, {.what = "rmsnorm dx"});
//
// perturbs param[i] by +-eps, evaluates the scalar loss() each time, and compares the central
// difference (L(p + eps) - L(p - eps)) / (2 eps) with analytic[i]. When n is larger than
// max_entries, a deterministic sample of entries (seeded, sorted, always including the first and
// the last) is checked instead. param is restored bit-exactly after each entry. Failing entries
// are reported through Catch2 (index, analytic, numeric) and the result returns the worst one.
//
// Tolerance. An entry passes when |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|).
// In double with eps = 1e-6 the central difference has a truncation error ~ eps^2 |L'''| / 6
// ~ 1e-13 and a rounding error ~ 1e-16 |L| / eps ~ 1e-10 |L|; for the losses of these tests
// (|L| up to ~100) that is at most ~1e-8 absolute, ~1e-8 relative on O(1) gradients. So rtol = 1e-6
// leaves two orders of margin for smooth functions, and atol = 1e-7 absorbs the rounding floor on
// entries whose gradient is ~0 (masked positions, ignored rows). A real bug (a wrong term, index
// or sign) gives errors of the order of the gradient itself, far above both. For a loss much
// larger than ~100 raise atol with it (the rounding floor is ~1e-10 |L|).
//
// The loss must be smooth at the point: keep discrete choices (top-k selection, max, ReLU kinks)
// at least eps away from a switch, e.g. by spacing router scores, or the check measures the jump.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <random>
#include <string>
#include <vector>

namespace am::test {

struct GradcheckOptions {
  double eps = 1e-6;                      // perturbation of each parameter entry
  double rtol = 1e-6;                     // relative tolerance (see the header comment)
  double atol = 1e-7;                     // absolute floor for near-zero gradients
  int64_t max_entries = 200;              // <= 0: check every entry
  uint64_t seed = 0x6a09e667f3bcc908ULL;  // sampling seed when n > max_entries
  int max_reports = 5;                    // failing entries reported individually (then a summary)
  bool report = true;                     // false: no Catch2 assertions, only the returned result
  std::string what = "";                  // label printed with each report, e.g. "attention dqkv"
};

struct GradcheckResult {
  int64_t checked = 0;       // entries compared
  int64_t failures = 0;      // entries over tolerance
  int64_t worst_index = -1;  // entry with the largest error relative to its tolerance
  double worst_rel = 0;      // |a - num| / max(|a|, |num|) over all entries (0 when both are 0)
  double worst_analytic = 0, worst_numeric = 0;
  bool ok() const { return failures == 0; }
};

// The entries to check: all of [0, n) when n <= max (or max <= 0), else `max` sorted distinct
// indices from Knuth's selection sampling (Algorithm S), forcing 0 and n-1 in.
inline std::vector<int64_t> gradcheck_indices(int64_t n, int64_t max, uint64_t seed) {
  std::vector<int64_t> idx;
  if (max <= 0 || n <= max) {
    for (int64_t i = 0; i < n; ++i) idx.push_back(i);
    return idx;
  }
  std::mt19937_64 rng(seed);
  const int64_t inner = n - 2, want = std::max<int64_t>(0, max - 2);
  idx.push_back(0);
  int64_t chosen = 0;
  for (int64_t i = 0; i < inner && chosen < want; ++i) {
    const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;  // uniform [0, 1)
    if (static_cast<double>(inner - i) * u < static_cast<double>(want - chosen)) {
      idx.push_back(i + 1);
      ++chosen;
    }
  }
  idx.push_back(n - 1);
  return idx;
}

inline GradcheckResult check_gradient(const std::function<double()>& loss, double* param, const double* analytic,
                                      int64_t n, const GradcheckOptions& opt = {}) {
  GradcheckResult r;
  double worst_excess = -1;  // |a - num| / (atol + rtol * max(|a|, |num|)); > 1 fails
  for (int64_t i : gradcheck_indices(n, opt.max_entries, opt.seed)) {
    const double p = param[i];
    param[i] = p + opt.eps;
    const double lp = loss();
    const double hp = param[i];
    param[i] = p - opt.eps;
    const double lm = loss();
    const double h = hp - param[i];  // the step actually taken, after rounding
    param[i] = p;
    const double num = (lp - lm) / h;
    const double a = analytic[i];
    const double err = std::fabs(a - num), mag = std::max(std::fabs(a), std::fabs(num));
    const double rel = mag > 0 ? err / mag : 0.0;
    const double excess = err / (opt.atol + opt.rtol * mag);
    ++r.checked;
    r.worst_rel = std::max(r.worst_rel, rel);
    if (!(excess <= worst_excess)) {  // also catches NaN
      worst_excess = excess;
      r.worst_index = i;
      r.worst_analytic = a;
      r.worst_numeric = num;
    }
    if (!(excess <= 1.0)) {
      if (opt.report && r.failures < opt.max_reports) {
        INFO(std::setprecision(12) << opt.what << ": entry " << i << " of " << n << ": analytic " << a << ", numeric "
                                   << num << ", |diff| " << err << ", rel " << rel);
        CHECK(excess <= 1.0);
      }
      ++r.failures;
    }
  }
  if (!opt.report) return r;
  INFO(std::setprecision(12) << opt.what << ": " << r.failures << " of " << r.checked
                             << " entries over tolerance; worst "
                             << "entry " << r.worst_index << " (analytic " << r.worst_analytic << ", numeric "
                             << r.worst_numeric << "), worst relative error " << r.worst_rel);
  CHECK(r.failures == 0);
  CHECK(r.checked > 0);
  return r;
}

}  // namespace am::test
