// Unit tests for the metrics registry and the Prometheus text format
// (common/metrics.h): samples and their order, label escaping, histogram
// buckets (cumulative, +Inf equal to _count), and the registration rules.
#include "common/metrics.h"

#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace stokend::metrics;
using stokend::metrics::text::escape_label_value;
using stokend::metrics::text::format_value;

namespace {

std::string rendered(const Registry& registry) {
  std::string out;
  registry.render(out);
  return out;
}

}  // namespace

TEST_CASE("metrics: a counter renders with HELP, TYPE and its labels", "[metrics]") {
  Registry registry;
  Counter& mx = registry.counter("stokend_x_total", "Things.", {{"role", "mx"}});
  Counter& submission = registry.counter("stokend_x_total", "Things.", {{"role", "submission"}});
  mx.inc();
  mx.inc(2);
  submission.inc();
  CHECK(rendered(registry) ==
        "# HELP stokend_x_total Things.\n"
        "# TYPE stokend_x_total counter\n"
        "stokend_x_total{role=\"mx\"} 3\n"
        "stokend_x_total{role=\"submission\"} 1\n");
}

TEST_CASE("metrics: registering the same labels again gives the same metric", "[metrics]") {
  Registry registry;
  Counter& first = registry.counter("stokend_x_total", "Things.", {{"role", "mx"}});
  Counter& again = registry.counter("stokend_x_total", "Things.", {{"role", "mx"}});
  CHECK(&first == &again);
  first.inc();
  CHECK(again.value() == 1);
}

TEST_CASE("metrics: label values are escaped, HELP too", "[metrics]") {
  Registry registry;
  registry
      .counter("stokend_x_total", "A \\ help\nover two lines.",
               {{"reason", "quote \" backslash \\ newline \n end"}})
      .inc();
  const std::string text = rendered(registry);
  CHECK(text.find("# HELP stokend_x_total A \\\\ help\\nover two lines.\n") != std::string::npos);
  CHECK(text.find("stokend_x_total{reason=\"quote \\\" backslash \\\\ newline \\n end\"} 1\n") !=
        std::string::npos);
  CHECK(escape_label_value("plain") == "plain");
}

TEST_CASE("metrics: a gauge goes up and down", "[metrics]") {
  Registry registry;
  Gauge& open = registry.gauge("stokend_open", "Open now.", {{"listener", "mx"}});
  open.add(3);
  open.add(-1);
  CHECK(rendered(registry) ==
        "# HELP stokend_open Open now.\n"
        "# TYPE stokend_open gauge\n"
        "stokend_open{listener=\"mx\"} 2\n");
  open.set(-4);
  CHECK(open.value() == -4);
}

TEST_CASE("metrics: histogram buckets are cumulative and +Inf equals _count", "[metrics]") {
  Registry registry;
  constexpr std::array<double, 3> bounds = {0.5, 1, 2};
  Histogram& latency = registry.histogram("stokend_latency_seconds", "Latency.", bounds);
  latency.observe(0.25);  // first bucket
  latency.observe(0.5);   // le is inclusive: still the first
  latency.observe(1.5);   // third
  latency.observe(7);     // only +Inf
  CHECK(rendered(registry) ==
        "# HELP stokend_latency_seconds Latency.\n"
        "# TYPE stokend_latency_seconds histogram\n"
        "stokend_latency_seconds_bucket{le=\"0.5\"} 2\n"
        "stokend_latency_seconds_bucket{le=\"1\"} 2\n"
        "stokend_latency_seconds_bucket{le=\"2\"} 3\n"
        "stokend_latency_seconds_bucket{le=\"+Inf\"} 4\n"
        "stokend_latency_seconds_sum 9.25\n"
        "stokend_latency_seconds_count 4\n");
}

TEST_CASE("metrics: a histogram's labels come before le", "[metrics]") {
  Registry registry;
  constexpr std::array<double, 1> bounds = {1};
  registry.histogram("stokend_h_seconds", "H.", bounds, {{"route", "mx"}}).observe(2);
  const std::string text = rendered(registry);
  CHECK(text.find("stokend_h_seconds_bucket{route=\"mx\",le=\"1\"} 0\n") != std::string::npos);
  CHECK(text.find("stokend_h_seconds_bucket{route=\"mx\",le=\"+Inf\"} 1\n") != std::string::npos);
  CHECK(text.find("stokend_h_seconds_count{route=\"mx\"} 1\n") != std::string::npos);
}

TEST_CASE("metrics: the snapshot of a histogram", "[metrics]") {
  constexpr std::array<double, 2> bounds = {1, 2};
  Histogram histogram(bounds);
  for (int i = 0; i < 5; ++i) histogram.observe(1.5);
  const auto snapshot = histogram.snapshot();
  CHECK(snapshot.buckets == std::vector<std::uint64_t>{0, 5, 5});
  CHECK(snapshot.count == 5);
  CHECK(snapshot.sum == Approx(7.5));
}

TEST_CASE("metrics: values that are not plain numbers", "[metrics]") {
  CHECK(format_value(std::numeric_limits<double>::infinity()) == "+Inf");
  CHECK(format_value(-std::numeric_limits<double>::infinity()) == "-Inf");
  CHECK(format_value(std::nan("")) == "NaN");
  CHECK(format_value(0.25) == "0.25");
  CHECK(format_value(42) == "42");
}

TEST_CASE("metrics: names, labels and types that break the rules are refused", "[metrics]") {
  Registry registry;
  CHECK_THROWS_AS(registry.counter("stokend_things", "No _total."), std::invalid_argument);
  CHECK_THROWS_AS(registry.counter("9_total", "Starts with a digit."), std::invalid_argument);
  CHECK_THROWS_AS(registry.counter("stokend-x_total", "A hyphen."), std::invalid_argument);
  CHECK_THROWS_AS(registry.counter("stokend_x_total", "X.", {{"__reserved", "x"}}),
                  std::invalid_argument);
  CHECK_THROWS_AS(registry.counter("stokend_x_total", "X.", {{"bad-label", "x"}}),
                  std::invalid_argument);
  constexpr std::array<double, 1> bounds = {1};
  CHECK_THROWS_AS(registry.histogram("stokend_h", "H.", bounds, {{"le", "1"}}),
                  std::invalid_argument);
  constexpr std::array<double, 2> descending = {2, 1};
  CHECK_THROWS_AS(registry.histogram("stokend_d", "D.", descending), std::invalid_argument);

  registry.counter("stokend_y_total", "Y.", {{"role", "mx"}});
  // The same name again as another type, with other help, or other label names.
  CHECK_THROWS_AS(registry.gauge("stokend_y_total", "Y."), std::invalid_argument);
  CHECK_THROWS_AS(registry.counter("stokend_y_total", "Other help.", {{"role", "mx"}}),
                  std::invalid_argument);
  CHECK_THROWS_AS(registry.counter("stokend_y_total", "Y.", {{"listener", "mx"}}),
                  std::invalid_argument);
  constexpr std::array<double, 1> other_bounds = {2};
  registry.histogram("stokend_z", "Z.", bounds, {{"route", "mx"}});
  CHECK_THROWS_AS(registry.histogram("stokend_z", "Z.", other_bounds, {{"route", "lmtp"}}),
                  std::invalid_argument);
}

TEST_CASE("metrics: increments from several threads are all counted", "[metrics]") {
  Registry registry;
  Counter& counter = registry.counter("stokend_threads_total", "Threads.");
  constexpr std::array<double, 1> bounds = {0.5};
  Histogram& histogram = registry.histogram("stokend_threads_seconds", "Threads.", bounds);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        counter.inc();
        histogram.observe(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(counter.value() == 40000);
  CHECK(histogram.snapshot().count == 40000);
  CHECK(histogram.snapshot().sum == Approx(40000));
}
