// Floats in configs: a value that overflows fp32 is refused at validation, and every float key is
// written to YAML as a float that YAML 1.1 parsers (PyYAML) read as a float, not a string
// ("1.0e-08", not "1e-08"), and that reads back as the same double.
#include <yaml-cpp/yaml.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/schema.h"
#include "core/error.h"

using namespace am;

namespace {

const char* kBase = AM_SOURCE_DIR "/tests/data/configs/base.yaml";

// The base-10 float of YAML 1.1 (https://yaml.org/type/float.html), and its .inf / .nan.
const std::regex kYaml11Float(R"([-+]?([0-9][0-9_]*)?\.[0-9.]*([eE][-+][0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN))");

std::string error_of(const std::vector<std::string>& overrides) {
  try {
    load_config(kBase, overrides);
  } catch (const UserError& e) {
    return e.what();
  }
  return "(no error)";
}

// The scalar at dotted `path` of a YAML document.
std::string scalar_at(const YAML::Node& root, const std::string& path) {
  YAML::Node n = root;
  std::stringstream ss(path);
  for (std::string part; std::getline(ss, part, '.');) n.reset(n[part]);  // (n = ... would assign into n)
  return n.Scalar();
}

bool is_float_key(const KeySpec& k) { return k.kind() == KeyKind::Float || k.kind() == KeyKind::Schedule; }

}  // namespace

TEST_CASE("yaml_float writes floats YAML 1.1 reads as floats, and they read back exactly", "[config]") {
  const std::vector<std::pair<double, std::string>> cases = {
      {1e-8, "1.0e-08"}, {1e20, "1.0e+20"},    {10000, "10000.0"}, {0, "0.0"},          {-3e-5, "-3.0e-05"},
      {0.1, "0.1"},      {2.5e-10, "2.5e-10"}, {-2, "-2.0"},       {5e-324, "5.0e-324"}};
  for (const auto& [x, text] : cases) {
    CHECK(yaml_float(x) == text);
  }
  for (double x : {1e-8, 1e20, 3e-4, 0.30000000000000004, 1.7976931348623157e308, 1e-300, 123456789.0, -0.0}) {
    const std::string s = yaml_float(x);
    INFO(s);
    CHECK(std::regex_match(s, kYaml11Float));
    CHECK(std::strtod(s.c_str(), nullptr) == x);
    CHECK(YAML::Load(s).as<double>() == x);
  }
}

TEST_CASE("config_to_yaml writes every float key as a YAML 1.1 float that reads back exactly", "[config]") {
  Config cfg = load_config(kBase);
  // Each float key gets the first of these its range allows (exponent forms first).
  const std::vector<double> candidates = {1e-08, 2e-05, 1e+20, 0.75, 0.999999, 7.0};
  std::vector<std::pair<const KeySpec*, double>> set;
  for (const KeySpec& key : config_schema()) {
    if (!is_float_key(key)) continue;
    for (double v : candidates) {
      if (!key.range.contains(v)) continue;
      key.field.set(cfg, key.kind() == KeyKind::Schedule ? KeyValue(Schedule(v)) : KeyValue(v));
      set.emplace_back(&key, v);
      break;
    }
  }
  REQUIRE(set.size() > 10);
  const YAML::Node root = YAML::Load(config_to_yaml(cfg));
  for (const auto& [key, v] : set) {
    const std::string text = scalar_at(root, key->path);
    INFO(key->path << ": " << text);
    CHECK(std::regex_match(text, kYaml11Float));
    CHECK(std::strtod(text.c_str(), nullptr) == v);
  }
}

TEST_CASE("a float key whose value overflows fp32 is refused at validation, naming key and value", "[config]") {
  CHECK_THAT(error_of({"train.lr=1e39"}),
             Catch::Contains("train.lr: 1e39 does not fit a float (largest magnitude 3.4028235e+38)"));
  CHECK_THAT(error_of({"train.weight_decay=-1e40"}), Catch::Contains("train.weight_decay: -1e40 does not fit a float"));
  CHECK_THAT(error_of({"model.moe.aux.entropy=[[0, 0.01], [10, 4e38]]"}),
             Catch::Contains("model.moe.aux.entropy: pair 2 [10, 4e38]: the value 4e38 does not fit a float"));
  CHECK(load_config(kBase, {"train.lr=3.4e38"}).train.lr == 3.4e38);  // large but finite in fp32
}

TEST_CASE("a nonzero float key that rounds to 0 in fp32 is refused at validation, naming key and value", "[config]") {
  CHECK_THAT(error_of({"train.eps=1e-50"}),
             Catch::Contains("train.eps: 1e-50 is too small for a float (smallest magnitude 1e-45)"));
  CHECK_THAT(error_of({"model.init_std=5e-324"}), Catch::Contains("model.init_std: 5e-324 is too small for a float"));
  CHECK_THAT(error_of({"model.moe.aux.entropy=[[0, 0.01], [10, 1e-60]]"}),
             Catch::Contains("model.moe.aux.entropy: pair 2 [10, 1e-60]: the value 1e-60 is too small for a float"));
  CHECK(load_config(kBase, {"train.eps=1e-40"}).train.eps == 1e-40);  // a subnormal: nonzero in fp32
  CHECK(load_config(kBase, {"train.weight_decay=0"}).train.weight_decay == 0);
}
