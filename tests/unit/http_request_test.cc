// Unit tests for reading the head of an HTTP/1.x request (common/http_request.h),
// what the metrics endpoint answers from.
#include "common/http_request.h"

#include <catch2/catch.hpp>
#include <string>

using stokend::http::parse_request_head;
using Status = stokend::http::RequestHead::Status;

TEST_CASE("http: a scraper's request", "[http]") {
  const auto head = parse_request_head(
      "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9325\r\nUser-Agent: Prometheus/2.42.0\r\n"
      "Accept: text/plain;version=0.0.4\r\n\r\n",
      8192);
  REQUIRE(head.status == Status::complete);
  CHECK(head.method == "GET");
  CHECK(head.path == "/metrics");
}

TEST_CASE("http: the query is not part of the path; HTTP/1.0 and bare LF are read", "[http]") {
  const auto head = parse_request_head("GET /healthz?verbose=1 HTTP/1.0\n\n", 8192);
  REQUIRE(head.status == Status::complete);
  CHECK(head.path == "/healthz");
  // RFC 9112 §2.2: empty lines before the request line are skipped.
  CHECK(parse_request_head("\r\nGET / HTTP/1.1\r\n\r\n", 100).status == Status::complete);
}

TEST_CASE("http: a head still arriving, and one over the limit", "[http]") {
  CHECK(parse_request_head("GET /metrics HTTP/1.1\r\nHost: x\r\n", 8192).status ==
        Status::incomplete);
  CHECK(parse_request_head("", 8192).status == Status::incomplete);
  const std::string huge = "GET /metrics HTTP/1.1\r\nX-Filler: " + std::string(9000, 'a');
  CHECK(parse_request_head(huge, 8192).status == Status::too_large);
  // Complete, but its end lies past the limit.
  CHECK(parse_request_head(huge + "\r\n\r\n", 8192).status == Status::too_large);
}

TEST_CASE("http: malformed request lines", "[http]") {
  for (const std::string line :
       {"GET\r\n\r\n", "GET /metrics\r\n\r\n", " /metrics HTTP/1.1\r\n\r\n",
        "GET /metrics HTTP/2\r\n\r\n", "GET metrics HTTP/1.1\r\n\r\n",
        "GET http://x/metrics HTTP/1.1\r\n\r\n", "G(T /metrics HTTP/1.1\r\n\r\n",
        "GET /met\rrics HTTP/1.1\r\n\r\n", "GET /m\xc3\xa9 HTTP/1.1\r\n\r\n",
        "GET /metrics  HTTP/1.1\r\n\r\n"}) {
    INFO(line);
    const auto head = parse_request_head(line, 8192);
    CHECK(head.status == Status::malformed);
    CHECK_FALSE(head.error.empty());
  }
}

TEST_CASE("http: methods are kept as sent", "[http]") {
  CHECK(parse_request_head("POST /metrics HTTP/1.1\r\n\r\n", 100).method == "POST");
  CHECK(parse_request_head("get /metrics HTTP/1.1\r\n\r\n", 100).method == "get");
}
