#include "sweep/results.h"

#include "io/atomic_file.h"
#include "io/output_dir.h"
#include "model/model_info.h"
#include "train/trainer.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <optional>

namespace am {
namespace fs = std::filesystem;
namespace {

// The summary.json fields of the table, in column order (all numbers; null when unknown).
const std::vector<std::string> kMetrics = {"final_train_loss", "final_val_loss", "tokens_per_s", "experts_per_token",
                                           "ent_load"};
const std::vector<std::string> kMetricHeaders = {"train loss", "val loss", "tokens/s", "experts/token", "Ent_load"};

std::optional<double> metric(const PointResult& r, const std::string& field) {
  if (!r.summary.is_object()) return std::nullopt;
  const auto it = r.summary.find(field);
  if (it == r.summary.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

// The resolved value of `key` in a point's config ("" if absent, which load_config rules out).
std::string key_value(const Config& cfg, const std::string& key) {
  for (const ResolvedKey& r : cfg.resolved) {
    if (r.path == key) return r.value;
  }
  return "";
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string csv_line(const std::vector<std::string>& cells) {
  std::string s;
  for (size_t c = 0; c < cells.size(); ++c) {
    if (c > 0) s += ',';
    s += csv_field(cells[c]);
  }
  return s + "\n";
}

std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

std::string compact_count(int64_t x) {
  const double v = static_cast<double>(x);
  if (v >= 1e9) return fmt::format("{:.2f}B", v / 1e9);
  if (v >= 1e6) return fmt::format("{:.2f}M", v / 1e6);
  if (v >= 1e4) return fmt::format("{:.1f}k", v / 1e3);
  return std::to_string(x);
}

std::string rounded(std::optional<double> v, const std::string& field) {
  if (!v) return "-";
  if (field == "tokens_per_s") return fmt::format("{:.0f}", *v);
  if (field == "experts_per_token") return fmt::format("{:.2f}", *v);
  if (field == "ent_load") return fmt::format("{:.3f}", *v);
  return fmt::format("{:.4f}", *v);
}

}  // namespace

std::string results_csv(const SweepPlan& plan, const std::vector<PointResult>& results) {
  std::vector<std::string> header = {"point"};
  header.insert(header.end(), plan.varying_keys.begin(), plan.varying_keys.end());
  header.insert(header.end(), kMetrics.begin(), kMetrics.end());
  for (const char* h : {"params_total", "params_active", "status", "run_dir"}) header.push_back(h);
  std::string out;
  out += csv_line(header);
  for (size_t i = 0; i < plan.points.size(); ++i) {
    const Config& cfg = plan.configs[i];
    const ParamCounts pc = count_params(cfg.model);
    std::vector<std::string> row = {plan.points[i].id};
    for (const std::string& k : plan.varying_keys) row.push_back(key_value(cfg, k));
    for (const std::string& m : kMetrics) {
      const std::optional<double> v = metric(results[i], m);
      row.push_back(v ? fmt::format("{}", *v) : "");  // shortest text that reads back exactly
    }
    row.push_back(std::to_string(pc.total));
    row.push_back(std::to_string(pc.active));
    row.push_back(status_name(results[i].status));
    row.push_back(run_dir_of(cfg));
    out += csv_line(row);
  }
  return out;
}

std::string results_markdown(const SweepPlan& plan, const std::vector<PointResult>& results) {
  std::vector<std::string> header = {"point"};
  header.insert(header.end(), plan.short_names.begin(), plan.short_names.end());
  header.insert(header.end(), kMetricHeaders.begin(), kMetricHeaders.end());
  for (const char* h : {"params", "active params", "status"}) header.push_back(h);
  std::vector<std::vector<std::string>> rows;
  for (size_t i = 0; i < plan.points.size(); ++i) {
    const Config& cfg = plan.configs[i];
    const ParamCounts pc = count_params(cfg.model);
    std::vector<std::string> row = {plan.points[i].id};
    for (const std::string& k : plan.varying_keys) row.push_back(key_value(cfg, k));
    for (const std::string& m : kMetrics) row.push_back(rounded(metric(results[i], m), m));
    row.push_back(compact_count(pc.total));
    row.push_back(compact_count(pc.active));
    row.push_back(status_name(results[i].status));
    rows.push_back(row);
  }
  // Columns padded to their widest cell, so that the file reads as a table in a terminal too.
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) {
    width[c] = md_cell(header[c]).size();
    for (const auto& row : rows) width[c] = std::max(width[c], md_cell(row[c]).size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s = "|";
    for (size_t c = 0; c < cells.size(); ++c) s += fmt::format(" {:<{}} |", md_cell(cells[c]), width[c]);
    return s + "\n";
  };
  std::string out = fmt::format("# Sweep {}\n\n{} points from {} (base {}).\n\n", plan.file.name, plan.points.size(),
                                plan.file.path, plan.file.base);
  out += line(header);
  std::string rule = "|";
  for (size_t c = 0; c < header.size(); ++c) rule += std::string(width[c] + 2, '-') + "|";
  out += rule + "\n";
  for (const auto& row : rows) out += line(row);
  return out;
}

std::pair<std::string, std::string> write_results(const SweepPlan& plan, const std::vector<PointResult>& results) {
  create_output_dir(plan.dir, "the sweep directory (run.out_dir/<sweep name>)");
  const std::string csv = (fs::path(plan.dir) / "results.csv").string();
  const std::string md = (fs::path(plan.dir) / "results.md").string();
  write_file_atomic(csv, results_csv(plan, results));
  write_file_atomic(md, results_markdown(plan, results));
  return {csv, md};
}

}  // namespace am
