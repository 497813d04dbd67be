// Checks of the PEM files the configuration names, made the way the daemon
// will load them (the same OpenSSL calls as mta/server/tls_context.cc and
// mta/client/client_tls.cc), so that `stokend --check-config` and a reload
// refuse a certificate, key or CA file the daemon could not use.
//
// Contract: each returns why the file cannot serve, in words for an
// operator, or nothing when it can. None prompts for a passphrase (an
// encrypted key is reported as such) and none leaves errors on OpenSSL's
// queue.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace stokend::config_reading {

// A certificate chain: at least one PEM certificate, the server's first.
std::optional<std::string> certificate_chain_problem(const std::filesystem::path& file);

// A PEM private key, unencrypted.
std::optional<std::string> private_key_problem(const std::filesystem::path& file);

// The key belongs to the first certificate of the chain (both load).
std::optional<std::string> key_mismatch(const std::filesystem::path& certificate_chain,
                                        const std::filesystem::path& private_key);

// Trust anchors: a PEM file with at least one certificate.
std::optional<std::string> ca_file_problem(const std::filesystem::path& file);

}  // namespace stokend::config_reading
