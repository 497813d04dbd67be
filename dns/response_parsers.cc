// Adapters from the c-ares reply parsers (which allocate linked lists) to
// vectors of stokend's record types.
#include "dns/response_parsers.h"

#include <arpa/inet.h>

#include "dns/ares_handles.h"

namespace stokend::dns {
namespace {

int length_of(std::span<const unsigned char> response) { return static_cast<int>(response.size()); }

std::string name_or_root(const char* name) {
  std::string text = name ? name : "";
  return text.empty() ? "." : text;
}

int parse_addresses(std::span<const unsigned char> response, int family,
                    std::vector<std::string>& addresses) {
  hostent* parsed = nullptr;
  int status =
      family == AF_INET
          ? ares_parse_a_reply(response.data(), length_of(response), &parsed, nullptr, nullptr)
          : ares_parse_aaaa_reply(response.data(), length_of(response), &parsed, nullptr, nullptr);
  HostentPtr host(parsed);
  if (status != ARES_SUCCESS || !host) return status;
  for (char** address = host->h_addr_list; address && *address; ++address) {
    char text[INET6_ADDRSTRLEN] = {};
    if (inet_ntop(family, *address, text, sizeof text)) addresses.emplace_back(text);
  }
  return ARES_SUCCESS;
}

}  // namespace

int parse_mx_records(std::span<const unsigned char> response, std::vector<MxRecord>& records) {
  ares_mx_reply* parsed = nullptr;
  int status = ares_parse_mx_reply(response.data(), length_of(response), &parsed);
  AresDataPtr<ares_mx_reply> list(parsed);
  if (status != ARES_SUCCESS) return status;
  for (const ares_mx_reply* mx = list.get(); mx; mx = mx->next) {
    records.push_back(MxRecord{mx->priority, name_or_root(mx->host)});
  }
  return ARES_SUCCESS;
}

int parse_srv_records(std::span<const unsigned char> response, std::vector<SrvRecord>& records) {
  ares_srv_reply* parsed = nullptr;
  int status = ares_parse_srv_reply(response.data(), length_of(response), &parsed);
  AresDataPtr<ares_srv_reply> list(parsed);
  if (status != ARES_SUCCESS) return status;
  for (const ares_srv_reply* srv = list.get(); srv; srv = srv->next) {
    records.push_back(SrvRecord{srv->priority, srv->weight, srv->port, name_or_root(srv->host)});
  }
  return ARES_SUCCESS;
}

int parse_txt_records(std::span<const unsigned char> response, std::vector<std::string>& records) {
  ares_txt_ext* parsed = nullptr;
  int status = ares_parse_txt_reply_ext(response.data(), length_of(response), &parsed);
  AresDataPtr<ares_txt_ext> list(parsed);
  if (status != ARES_SUCCESS) return status;
  // c-ares lists every character-string; record_start marks a record's first.
  for (const ares_txt_ext* text = list.get(); text; text = text->next) {
    if (text->record_start || records.empty()) records.emplace_back();
    records.back().append(reinterpret_cast<const char*>(text->txt), text->length);
  }
  return ARES_SUCCESS;
}

int parse_ipv4_addresses(std::span<const unsigned char> response,
                         std::vector<std::string>& addresses) {
  return parse_addresses(response, AF_INET, addresses);
}

int parse_ipv6_addresses(std::span<const unsigned char> response,
                         std::vector<std::string>& addresses) {
  return parse_addresses(response, AF_INET6, addresses);
}

}  // namespace stokend::dns
