// The real resolver: cache in front, c-ares behind, every answer delivered
// through the deferred-call queue.
#include "dns/ares_resolver.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "dns/address_answers.h"
#include "dns/response_parsers.h"
#include "dns/response_ttl.h"

namespace stokend::dns {
namespace {

Status status_of(int ares_status) {
  switch (ares_status) {
    case ARES_SUCCESS:
      return Status::ok;
    case ARES_ENODATA:
      return Status::no_data;
    case ARES_ENOTFOUND:
    case ARES_EBADNAME:  // a name that cannot exist does not exist
      return Status::not_found;
    default:  // ARES_ESERVFAIL, ARES_ETIMEOUT, ARES_EREFUSED, ARES_ECONNREFUSED, ...
      return Status::temporary_failure;
  }
}

std::uint32_t capped(std::uint32_t ttl, std::chrono::seconds cap) {
  return static_cast<std::uint32_t>(std::min<std::int64_t>(ttl, cap.count()));
}

// Waits for both address answers, then hands on their combination.
struct AddressQuestions {
  explicit AddressQuestions(AnswerCallback<std::string> callback) : callback(std::move(callback)) {}

  void answered() {
    if (++answers_received == 2) {
      callback(combine_address_answers(std::move(ipv4), std::move(ipv6)));
    }
  }

  AnswerCallback<std::string> callback;
  Answer<std::string> ipv4;
  Answer<std::string> ipv6;
  int answers_received = 0;
};

}  // namespace

AresResolver::AresResolver(event_base* base, ResolverOptions options)
    : options_(std::move(options)),
      cache_(options_.cache_entries),
      deferred_(base),
      channel_(std::make_unique<AresChannel>(
          base, ChannelOptions{options_.servers, options_.timeout, options_.tries})) {}

AresResolver::~AresResolver() = default;

void AresResolver::resolve_mx(const std::string& domain, AnswerCallback<MxRecord> callback) {
  look_up<MxRecord>(domain, RecordType::mx, &parse_mx_records, std::move(callback));
}

void AresResolver::resolve_addresses(const std::string& host,
                                     AnswerCallback<std::string> callback) {
  if (auto literal = ip_literal_answer(host)) {
    deliver_later(std::move(callback), std::move(*literal));
    return;
  }
  // Both families at once (RFC 5321 section 5.1 lets the client use either).
  auto questions = std::make_shared<AddressQuestions>(std::move(callback));
  look_up<std::string>(host, RecordType::a, &parse_ipv4_addresses,
                       [questions](Answer<std::string> answer) {
                         questions->ipv4 = std::move(answer);
                         questions->answered();
                       });
  look_up<std::string>(host, RecordType::aaaa, &parse_ipv6_addresses,
                       [questions](Answer<std::string> answer) {
                         questions->ipv6 = std::move(answer);
                         questions->answered();
                       });
}

void AresResolver::resolve_srv(const std::string& name, AnswerCallback<SrvRecord> callback) {
  look_up<SrvRecord>(name, RecordType::srv, &parse_srv_records, std::move(callback));
}

void AresResolver::resolve_txt(const std::string& name, AnswerCallback<std::string> callback) {
  look_up<std::string>(name, RecordType::txt, &parse_txt_records, std::move(callback));
}

template <class Record>
void AresResolver::look_up(const std::string& name, RecordType type, Parser<Record> parse,
                           AnswerCallback<Record> callback) {
  if (auto cached = cache_.find<Record>(type, name)) {
    deliver_later(std::move(callback), std::move(*cached));
    return;
  }
  // The channel never calls back after it is destroyed, and it is destroyed
  // before the rest of this object, so capturing this is safe.
  channel_->query(name, type,
                  [this, name, type, parse, callback = std::move(callback)](
                      int ares_status, std::span<const unsigned char> response) mutable {
                    Answer<Record> answer = make_answer(name, type, ares_status, response, parse);
                    cache_.store(type, name, answer);
                    deliver_later(std::move(callback), std::move(answer));
                  });
}

template <class Record>
Answer<Record> AresResolver::make_answer(const std::string& name, RecordType type, int ares_status,
                                         std::span<const unsigned char> response,
                                         Parser<Record> parse) const {
  Answer<Record> answer;
  if (ares_status == ARES_SUCCESS) {
    ares_status = parse(response, answer.records);
    // An answer section with only other types (say, a CNAME) is NODATA.
    if (ares_status == ARES_SUCCESS && answer.records.empty()) ares_status = ARES_ENODATA;
  }
  answer.status = status_of(ares_status);
  switch (answer.status) {
    case Status::ok:
      answer.ttl_seconds = positive_ttl(response);
      return answer;
    case Status::no_data:
    case Status::not_found:
      // An invalid name was never sent: there is no answer to cache.
      if (ares_status != ARES_EBADNAME) answer.ttl_seconds = negative_ttl(response);
      break;
    case Status::temporary_failure:
      break;
  }
  answer.records.clear();
  answer.error =
      std::string(to_string(type)) + " lookup for " + name + ": " + ares_strerror(ares_status);
  if (answer.status == Status::temporary_failure) spdlog::debug("DNS: {}", answer.error);
  return answer;
}

std::uint32_t AresResolver::positive_ttl(std::span<const unsigned char> response) const {
  return capped(lowest_answer_ttl(response).value_or(0), options_.max_positive_ttl);
}

std::uint32_t AresResolver::negative_ttl(std::span<const unsigned char> response) const {
  // RFC 2308 section 5: from the SOA sent along; without one, a short default.
  std::uint32_t ttl = negative_answer_ttl(response).value_or(
      static_cast<std::uint32_t>(options_.default_negative_ttl.count()));
  return capped(ttl, options_.max_negative_ttl);
}

template <class Record>
void AresResolver::deliver_later(AnswerCallback<Record> callback, Answer<Record> answer) {
  deferred_.post([callback = std::move(callback), answer = std::move(answer)]() mutable {
    callback(std::move(answer));
  });
}

}  // namespace stokend::dns
