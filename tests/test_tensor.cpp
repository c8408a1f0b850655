#include "core/tensor.h"

#include <catch2/catch.hpp>

#include <vector>

using namespace am;

TEST_CASE("tensor views: numel, rows, reshape", "[core]") {
  std::vector<float> mem(24);
  Tensor t(mem.data(), DType::F32, {2, 3, 4});
  CHECK(t.numel() == 24);
  CHECK(t.dim(-1) == 4);
  CHECK(t.shape_str() == "(2, 3, 4)");
  Tensor r = t.rows(1, 1);
  CHECK(r.as<float>() == mem.data() + 12);
  CHECK(r.numel() == 12);
  CHECK(t.reshape({6, 4}).dim(0) == 6);
  CHECK_THROWS_AS(t.reshape({5, 4}), InternalError);
  CHECK_THROWS_AS(t.as<double>(), InternalError);
  CHECK_THROWS_AS(t.rows(1, 2), InternalError);
}

TEST_CASE("dtype names round-trip and unknown names are user errors", "[core]") {
  for (DType d : {DType::F32, DType::F64, DType::BF16, DType::I32}) {
    CHECK(dtype_from_name(dtype_name(d)) == d);
  }
  CHECK_THROWS_AS(dtype_from_name("F16"), UserError);
}
