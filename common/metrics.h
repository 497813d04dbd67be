// Metrics: counters, gauges and histograms that cost the code counting them
// one relaxed atomic add, and a registry that writes them in the Prometheus
// text exposition format, version 0.0.4.
//
// Why this shape. Counting sites sit in every layer (queue, tokens, the
// sessions, the client, delivery), so the registry is at the ground floor
// and each folder declares its own metrics on top of it (queue_metrics.h,
// token_metrics.h, mta_metrics.h). A metric's label values form a small
// fixed set chosen when it is registered: each counting site holds the
// handle (a reference to one Counter) resolved once, so an increment takes
// no lock, allocates nothing and looks nothing up.
//
// Contract:
// - Counter, Gauge and Histogram may be updated from any thread; updates
//   are relaxed atomics (a scrape sees each value as of some recent moment,
//   not one consistent instant). A histogram's _count is the sum of its
//   buckets as read, so the +Inf bucket always equals _count.
// - Registration (Registry::counter() etc.) happens at start-up, under a
//   mutex, as does render(): neither is on the mail path. Registering the
//   same name and labels again returns the same metric. A name, label name
//   or type that breaks the format's rules, or a name registered with
//   another type, help or label names, is a programming error:
//   std::invalid_argument, at start-up.
// - Metrics live as long as their registry; default_registry() lives for
//   the whole process.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stokend::metrics {

class Counter {
 public:
  void inc(std::uint64_t amount = 1) noexcept {
    value_.fetch_add(amount, std::memory_order_relaxed);
  }
  std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// A value that goes up and down (open sessions).
class Gauge {
 public:
  void add(std::int64_t amount) noexcept { value_.fetch_add(amount, std::memory_order_relaxed); }
  void set(std::int64_t value) noexcept { value_.store(value, std::memory_order_relaxed); }
  std::int64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

class Histogram {
 public:
  static constexpr std::size_t max_bounds = 24;

  // upper_bounds: finite, strictly ascending, at most max_bounds of them;
  // the +Inf bucket is implied. Otherwise std::invalid_argument.
  explicit Histogram(std::span<const double> upper_bounds);

  void observe(double value) noexcept;

  struct Snapshot {
    std::vector<double> upper_bounds;    // finite ones, ascending
    std::vector<std::uint64_t> buckets;  // cumulative, one per bound, then +Inf
    double sum = 0;
    std::uint64_t count = 0;  // == buckets.back()
  };
  Snapshot snapshot() const;

 private:
  std::array<double, max_bounds> bounds_{};
  std::size_t bound_count_ = 0;
  // Per bucket, not cumulative: an observation touches one counter.
  std::array<std::atomic<std::uint64_t>, max_bounds + 1> buckets_{};
  std::atomic<double> sum_{0};
};

using Labels = std::vector<std::pair<std::string, std::string>>;

enum class Type { counter, gauge, histogram };

// The text format's pieces, also for values computed at scrape time that
// live in no registry (the queue's length).
namespace text {
// "# HELP name help\n# TYPE name type\n"; help escaped (\\ and \n).
void append_family_header(std::string& out, std::string_view name, std::string_view help,
                          Type type);
// name{label="value",...} value\n; label values escaped (\\, \" and \n).
void append_sample(std::string& out, std::string_view name, const Labels& labels, double value);
void append_sample(std::string& out, std::string_view name, const Labels& labels,
                   std::uint64_t value);
// Shortest text that reads back as the same double; +Inf, -Inf, NaN.
std::string format_value(double value);
std::string escape_label_value(std::string_view value);
bool valid_metric_name(std::string_view name);  // [a-zA-Z_:][a-zA-Z0-9_:]*
bool valid_label_name(std::string_view name);   // [a-zA-Z_][a-zA-Z0-9_]*, not __*
}  // namespace text

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // A counter's name ends in _total.
  Counter& counter(std::string_view name, std::string_view help, Labels labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, Labels labels = {});
  // Every histogram of one name has the same bounds.
  Histogram& histogram(std::string_view name, std::string_view help,
                       std::span<const double> upper_bounds, Labels labels = {});

  // Every family, in registration order, each sample in registration order.
  void render(std::string& out) const;

 private:
  struct Child {
    Labels labels;
    const void* metric;
  };
  struct Family {
    std::string name;
    std::string help;
    Type type;
    std::vector<std::string> label_names;
    std::vector<Child> children;
  };
  Family& family(std::string_view name, std::string_view help, Type type, const Labels& labels);
  static const void* find(const Family& family, const Labels& labels);

  mutable std::mutex mutex_;
  std::vector<Family> families_;
  std::deque<Counter> counters_;  // deques: addresses stay put as they grow
  std::deque<Gauge> gauges_;
  std::deque<Histogram> histograms_;
};

// The process's registry: what GET /metrics shows.
Registry& default_registry();

}  // namespace stokend::metrics
