// See metrics.h. The text format is Prometheus' exposition format 0.0.4:
// https://prometheus.io/docs/instrumenting/exposition_formats/
#include "common/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace stokend::metrics {

// ---- Histogram -------------------------------------------------------------

Histogram::Histogram(std::span<const double> upper_bounds) {
  if (upper_bounds.size() > max_bounds) throw std::invalid_argument("histogram: too many buckets");
  for (std::size_t i = 0; i < upper_bounds.size(); ++i) {
    if (!std::isfinite(upper_bounds[i]) || (i > 0 && upper_bounds[i] <= upper_bounds[i - 1])) {
      throw std::invalid_argument("histogram: bounds must be finite and ascending");
    }
    bounds_[i] = upper_bounds[i];
  }
  bound_count_ = upper_bounds.size();
}

void Histogram::observe(double value) noexcept {
  // A few bounds: a linear scan beats a binary search and touches one line.
  std::size_t bucket = 0;
  while (bucket < bound_count_ && value > bounds_[bucket]) ++bucket;
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot snapshot;
  snapshot.upper_bounds.assign(bounds_.begin(), bounds_.begin() + bound_count_);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= bound_count_; ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    snapshot.buckets.push_back(running);
  }
  snapshot.count = running;
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

// ---- text format -----------------------------------------------------------

namespace text {
namespace {

const char* type_name(Type type) {
  switch (type) {
    case Type::counter:
      return "counter";
    case Type::gauge:
      return "gauge";
    case Type::histogram:
      return "histogram";
  }
  return "untyped";
}

bool name_character(char c, bool first, bool colon_allowed) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
  if (colon_allowed && c == ':') return true;
  return !first && c >= '0' && c <= '9';
}

void append_labels(std::string& out, const Labels& labels) {
  if (labels.empty()) return;
  out += '{';
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ',';
    out += labels[i].first;
    out += "=\"";
    out += escape_label_value(labels[i].second);
    out += '"';
  }
  out += '}';
}

}  // namespace

bool valid_metric_name(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!name_character(name[i], i == 0, true)) return false;
  }
  return true;
}

bool valid_label_name(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;  // reserved for Prometheus
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!name_character(name[i], i == 0, false)) return false;
  }
  return true;
}

std::string escape_label_value(std::string_view value) {
  std::string escaped;
  escaped.reserve(value.size());
  for (const char c : value) {
    if (c == '\\') {
      escaped += "\\\\";
    } else if (c == '"') {
      escaped += "\\\"";
    } else if (c == '\n') {
      escaped += "\\n";
    } else {
      escaped += c;
    }
  }
  return escaped;
}

std::string format_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[32];
  const auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value);
  if (error != std::errc{}) return "NaN";
  return std::string(buffer, end);
}

void append_family_header(std::string& out, std::string_view name, std::string_view help,
                          Type type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  // The format escapes only backslash and line feed in HELP.
  for (const char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type_name(type);
  out += '\n';
}

void append_sample(std::string& out, std::string_view name, const Labels& labels, double value) {
  out += name;
  append_labels(out, labels);
  out += ' ';
  out += format_value(value);
  out += '\n';
}

void append_sample(std::string& out, std::string_view name, const Labels& labels,
                   std::uint64_t value) {
  out += name;
  append_labels(out, labels);
  out += ' ';
  out += std::to_string(value);
  out += '\n';
}

}  // namespace text

// ---- Registry --------------------------------------------------------------

Registry::Family& Registry::family(std::string_view name, std::string_view help, Type type,
                                   const Labels& labels) {
  if (!text::valid_metric_name(name)) {
    throw std::invalid_argument("metric name '" + std::string(name) + "' is not valid");
  }
  if (type == Type::counter && !name.ends_with("_total")) {
    throw std::invalid_argument("counter '" + std::string(name) + "' must end in _total");
  }
  std::vector<std::string> label_names;
  for (const auto& [label, value] : labels) {
    if (!text::valid_label_name(label) || (type == Type::histogram && label == "le")) {
      throw std::invalid_argument("label name '" + label + "' of " + std::string(name) +
                                  " is not valid");
    }
    label_names.push_back(label);
  }
  for (Family& existing : families_) {
    if (existing.name != name) continue;
    if (existing.type != type || existing.help != help || existing.label_names != label_names) {
      throw std::invalid_argument("metric '" + std::string(name) +
                                  "' registered again with another type, help or labels");
    }
    return existing;
  }
  families_.push_back({std::string(name), std::string(help), type, std::move(label_names), {}});
  return families_.back();
}

const void* Registry::find(const Family& family, const Labels& labels) {
  for (const Child& child : family.children) {
    if (child.labels == labels) return child.metric;
  }
  return nullptr;
}

Counter& Registry::counter(std::string_view name, std::string_view help, Labels labels) {
  const std::lock_guard lock(mutex_);
  Family& found = family(name, help, Type::counter, labels);
  if (const void* existing = find(found, labels)) {
    return *const_cast<Counter*>(static_cast<const Counter*>(existing));
  }
  Counter& made = counters_.emplace_back();
  found.children.push_back({std::move(labels), &made});
  return made;
}

Gauge& Registry::gauge(std::string_view name, std::string_view help, Labels labels) {
  const std::lock_guard lock(mutex_);
  Family& found = family(name, help, Type::gauge, labels);
  if (const void* existing = find(found, labels)) {
    return *const_cast<Gauge*>(static_cast<const Gauge*>(existing));
  }
  Gauge& made = gauges_.emplace_back();
  found.children.push_back({std::move(labels), &made});
  return made;
}

Histogram& Registry::histogram(std::string_view name, std::string_view help,
                               std::span<const double> upper_bounds, Labels labels) {
  const std::lock_guard lock(mutex_);
  Family& found = family(name, help, Type::histogram, labels);
  if (!found.children.empty()) {
    const auto* first = static_cast<const Histogram*>(found.children.front().metric);
    const auto bounds = first->snapshot().upper_bounds;
    if (!std::equal(bounds.begin(), bounds.end(), upper_bounds.begin(), upper_bounds.end())) {
      throw std::invalid_argument("histogram '" + std::string(name) +
                                  "' registered again with other buckets");
    }
  }
  if (const void* existing = find(found, labels)) {
    return *const_cast<Histogram*>(static_cast<const Histogram*>(existing));
  }
  Histogram& made = histograms_.emplace_back(upper_bounds);
  found.children.push_back({std::move(labels), &made});
  return made;
}

void Registry::render(std::string& out) const {
  const std::lock_guard lock(mutex_);
  for (const Family& family : families_) {
    text::append_family_header(out, family.name, family.help, family.type);
    for (const Child& child : family.children) {
      switch (family.type) {
        case Type::counter:
          text::append_sample(out, family.name, child.labels,
                              static_cast<const Counter*>(child.metric)->value());
          break;
        case Type::gauge:
          text::append_sample(
              out, family.name, child.labels,
              static_cast<double>(static_cast<const Gauge*>(child.metric)->value()));
          break;
        case Type::histogram: {
          const auto snapshot = static_cast<const Histogram*>(child.metric)->snapshot();
          const std::string bucket_name = family.name + "_bucket";
          Labels labels = child.labels;
          labels.emplace_back("le", "");
          for (std::size_t i = 0; i < snapshot.buckets.size(); ++i) {
            labels.back().second = i < snapshot.upper_bounds.size()
                                       ? text::format_value(snapshot.upper_bounds[i])
                                       : "+Inf";
            text::append_sample(out, bucket_name, labels, snapshot.buckets[i]);
          }
          text::append_sample(out, family.name + "_sum", child.labels, snapshot.sum);
          text::append_sample(out, family.name + "_count", child.labels, snapshot.count);
          break;
        }
      }
    }
  }
}

Registry& default_registry() {
  static Registry registry;
  return registry;
}

}  // namespace stokend::metrics
