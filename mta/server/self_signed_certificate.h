// A self-signed certificate for a server that has not been given one.
//
// Contract: ensure_self_signed_certificate() returns the paths of
// directory/cert.pem and directory/key.pem. When both already exist they are
// returned as they are, so the certificate stays the same across restarts
// (clients that pinned it keep working). Otherwise a new ECDSA P-256 key and
// a self-signed X.509 v3 certificate for hostname (CN and subjectAltName,
// valid for one year, random serial) are written durably, the key with mode
// 0600, creating directory if needed. On failure returns nullopt and sets
// error to a message saying which step failed.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace stokend::server {

struct CertificatePaths {
  std::filesystem::path certificate;
  std::filesystem::path private_key;
};

std::optional<CertificatePaths> ensure_self_signed_certificate(
    const std::filesystem::path& directory, const std::string& hostname, std::string& error);

}  // namespace stokend::server
