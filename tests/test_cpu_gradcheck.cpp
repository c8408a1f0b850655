// The finite-difference checker itself (tests/support/gradcheck.h): it passes a right gradient,
// catches a wrong entry and names it, and samples entries deterministically.
#include "support/gradcheck.h"

#include <cmath>
#include <set>

using namespace am::test;

TEST_CASE("gradcheck: passes a correct gradient, names the one wrong entry", "[cpu]") {
  const int64_t n = 12;
  std::vector<double> x(n), c(n), g(n);
  for (int64_t i = 0; i < n; ++i) {
    x[i] = 0.3 * static_cast<double>(i) - 1.0;
    c[i] = 1.0 + 0.1 * static_cast<double>(i);
  }
  auto loss = [&] {  // L = sum c_i sin(x_i) + (sum x_i)^2 / 2
    double s = 0, t = 0;
    for (int64_t i = 0; i < n; ++i) {
      s += c[i] * std::sin(x[i]);
      t += x[i];
    }
    return s + 0.5 * t * t;
  };
  double t = 0;
  for (double v : x) t += v;
  for (int64_t i = 0; i < n; ++i) g[i] = c[i] * std::cos(x[i]) + t;
  const std::vector<double> x0 = x;
  const GradcheckResult ok = check_gradient(loss, x.data(), g.data(), n, {.what = "sin"});
  CHECK(ok.ok());
  CHECK(ok.checked == n);
  CHECK(ok.worst_rel < 1e-8);
  CHECK(x == x0);  // parameters restored bit-exactly

  g[7] *= 1.001;  // a 0.1% error in one entry
  const GradcheckResult bad = check_gradient(loss, x.data(), g.data(), n, {.report = false});
  CHECK(bad.failures == 1);
  CHECK(bad.worst_index == 7);
  CHECK(bad.worst_analytic == g[7]);
  CHECK(bad.worst_numeric == Approx(g[7] / 1.001).epsilon(1e-8));
}

TEST_CASE("gradcheck: sampled entries are distinct, sorted, deterministic, with both ends", "[cpu]") {
  const std::vector<int64_t> a = gradcheck_indices(1000, 50, 7), b = gradcheck_indices(1000, 50, 7);
  CHECK(a == b);
  REQUIRE(a.size() == 50);
  CHECK(a.front() == 0);
  CHECK(a.back() == 999);
  CHECK(std::set<int64_t>(a.begin(), a.end()).size() == a.size());
  CHECK(std::is_sorted(a.begin(), a.end()));
  CHECK(gradcheck_indices(1000, 50, 8) != a);
  CHECK(gradcheck_indices(30, 50, 7).size() == 30);
  CHECK(gradcheck_indices(30, 0, 7).size() == 30);
}
