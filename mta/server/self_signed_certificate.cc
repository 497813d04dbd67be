// Generating (once) and reusing a self-signed TLS certificate.
//
// Contract: see self_signed_certificate.h. The key is written before the
// certificate, so an interrupted first start leaves at most a key without a
// certificate, which the next start replaces with a fresh pair.
#include "mta/server/self_signed_certificate.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include "common/durable_file.h"
#include "common/event_handles.h"
#include "common/openssl_text.h"
#include "mta/server/tls_context.h"

namespace stokend::server {
namespace {

constexpr long seconds_per_day = 24 * 60 * 60;
constexpr long validity_days = 365;
// Starting validity an hour in the past tolerates clients whose clock is
// slightly behind the server's.
constexpr long backdating_seconds = 60 * 60;
// X.509 caps a commonName at 64 characters (RFC 5280 ub-common-name); a
// longer host name is still in the subjectAltName, which is what clients check.
constexpr std::size_t max_common_name_length = 64;
// 159 random bits with the top one set: a positive serial of exactly 20
// octets at most, as RFC 5280 §4.1.2.2 requires, and never zero.
constexpr int serial_bits = 159;

using PrivateKey = std::unique_ptr<EVP_PKEY, CallFree<EVP_PKEY_free>>;
using Certificate = std::unique_ptr<X509, CallFree<X509_free>>;
using BigNumber = std::unique_ptr<BIGNUM, CallFree<BN_free>>;
using MemoryBio = std::unique_ptr<BIO, CallFree<BIO_free_all>>;
using Extension = std::unique_ptr<X509_EXTENSION, CallFree<X509_EXTENSION_free>>;
using GeneralNames = std::unique_ptr<GENERAL_NAMES, CallFree<GENERAL_NAMES_free>>;
using GeneralName = std::unique_ptr<GENERAL_NAME, CallFree<GENERAL_NAME_free>>;
// Octet strings (IP addresses) and IA5 strings (DNS names) are both ASN1_STRINGs.
using Asn1String = std::unique_ptr<ASN1_STRING, CallFree<ASN1_STRING_free>>;

// A failed step, with OpenSSL's own reasons appended (openssl_errors()
// empties OpenSSL's error queue, so later checks do not report stale errors).
std::string openssl_failure(const std::string& step) { return step + ": " + openssl_errors(); }

// The subjectAltName entry for hostname: an iPAddress when it is an IP
// literal (clients match those against IP entries only), else a dNSName.
GeneralName subject_alternative_name(const std::string& hostname) {
  GeneralName name(GENERAL_NAME_new());
  if (!name) return nullptr;
  std::array<unsigned char, 16> address{};
  std::size_t address_length = 0;
  if (::inet_pton(AF_INET, hostname.c_str(), address.data()) == 1) {
    address_length = 4;
  } else if (::inet_pton(AF_INET6, hostname.c_str(), address.data()) == 1) {
    address_length = 16;
  }
  const bool is_address = address_length > 0;
  Asn1String value(is_address ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new());
  const bool set =
      value &&
      (is_address
           ? ASN1_STRING_set(value.get(), address.data(), static_cast<int>(address_length))
           : ASN1_STRING_set(value.get(), hostname.data(), static_cast<int>(hostname.size()))) == 1;
  if (!set) return nullptr;
  GENERAL_NAME_set0_value(name.get(), is_address ? GEN_IPADD : GEN_DNS, value.release());
  return name;
}

std::optional<std::string> add_extension(X509* certificate, X509V3_CTX& context, int nid,
                                         const char* value) {
  const Extension extension(X509V3_EXT_conf_nid(nullptr, &context, nid, value));
  if (!extension || X509_add_ext(certificate, extension.get(), -1) != 1) {
    return openssl_failure(std::string("cannot add certificate extension ") + OBJ_nid2sn(nid));
  }
  return std::nullopt;
}

std::optional<std::string> add_extensions(X509* certificate, const std::string& hostname) {
  X509V3_CTX context;
  X509V3_set_ctx(&context, certificate, certificate, nullptr, nullptr, 0);
  // A server leaf certificate: not a CA, signs handshakes only. RFC 5280
  // asks for the key identifiers, and strict verifiers check for them.
  const std::array<std::pair<int, const char*>, 5> extensions = {{
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature"},
      {NID_ext_key_usage, "serverAuth"},
      {NID_subject_key_identifier, "hash"},
      {NID_authority_key_identifier, "keyid:always"},
  }};
  for (const auto& [nid, value] : extensions) {
    if (auto error = add_extension(certificate, context, nid, value)) return error;
  }

  // Built from objects, not from a "DNS:..." text, so that no character of
  // hostname can be read as extension syntax.
  GeneralNames names(sk_GENERAL_NAME_new_null());
  GeneralName name = subject_alternative_name(hostname);
  if (!names || !name || sk_GENERAL_NAME_push(names.get(), name.get()) == 0) {
    return openssl_failure("cannot build the subjectAltName");
  }
  name.release();  // now owned by names
  if (X509_add1_ext_i2d(certificate, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) !=
      1) {
    return openssl_failure("cannot add the subjectAltName");
  }
  return std::nullopt;
}

std::optional<std::string> fill_certificate(X509* certificate, EVP_PKEY* key,
                                            const std::string& hostname) {
  if (X509_set_version(certificate, X509_VERSION_3) != 1) {
    return openssl_failure("cannot set the certificate version");
  }
  const BigNumber serial(BN_new());
  if (!serial || BN_rand(serial.get(), serial_bits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(certificate)) == nullptr) {
    return openssl_failure("cannot set a random serial number");
  }
  if (X509_gmtime_adj(X509_getm_notBefore(certificate), -backdating_seconds) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(certificate), validity_days * seconds_per_day) ==
          nullptr) {
    return openssl_failure("cannot set the validity period");
  }
  X509_NAME* subject = X509_get_subject_name(certificate);
  if (hostname.size() <= max_common_name_length &&
      X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(hostname.c_str()), -1, -1,
                                 0) != 1) {
    return openssl_failure("cannot set the subject name");
  }
  if (X509_set_issuer_name(certificate, subject) != 1) {
    return openssl_failure("cannot set the issuer name");
  }
  if (X509_set_pubkey(certificate, key) != 1) {
    return openssl_failure("cannot set the public key");
  }
  if (auto error = add_extensions(certificate, hostname)) return error;
  if (X509_sign(certificate, key, EVP_sha256()) <= 0) {
    return openssl_failure("cannot sign the certificate");
  }
  return std::nullopt;
}

std::string bio_contents(BIO* bio) {
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  return length > 0 ? std::string(data, static_cast<std::size_t>(length)) : std::string();
}

// Writes key and certificate as PEM; the key first (see the file comment).
std::optional<std::string> write_pair(const CertificatePaths& paths, EVP_PKEY* key,
                                      X509* certificate) {
  const MemoryBio key_bio(BIO_new(BIO_s_mem()));
  const MemoryBio certificate_bio(BIO_new(BIO_s_mem()));
  if (!key_bio || !certificate_bio ||
      PEM_write_bio_PrivateKey(key_bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1 ||
      PEM_write_bio_X509(certificate_bio.get(), certificate) != 1) {
    return openssl_failure("cannot encode the key and certificate as PEM");
  }
  std::string key_pem = bio_contents(key_bio.get());
  const durable::WriteResult key_written = durable::replace_file(paths.private_key, key_pem, 0600);
  OPENSSL_cleanse(key_pem.data(), key_pem.size());
  if (!key_written) {
    return "cannot write " + paths.private_key.string() + " (" + key_written.step +
           "): " + key_written.error.message();
  }
  const durable::WriteResult certificate_written =
      durable::replace_file(paths.certificate, bio_contents(certificate_bio.get()), 0644);
  if (!certificate_written) {
    return "cannot write " + paths.certificate.string() + " (" + certificate_written.step +
           "): " + certificate_written.error.message();
  }
  return std::nullopt;
}

}  // namespace

std::optional<CertificatePaths> ensure_self_signed_certificate(
    const std::filesystem::path& directory, const std::string& hostname, std::string& error) {
  const CertificatePaths paths{directory / "cert.pem", directory / "key.pem"};
  std::error_code certificate_error;
  std::error_code key_error;
  if (std::filesystem::exists(paths.certificate, certificate_error) &&
      std::filesystem::exists(paths.private_key, key_error)) {
    return paths;
  }
  if (hostname.empty()) {
    error = "cannot generate a certificate: the host name is empty";
    return std::nullopt;
  }

  const PrivateKey key(EVP_EC_gen("P-256"));
  if (!key) {
    error = openssl_failure("cannot generate an ECDSA P-256 key");
    return std::nullopt;
  }
  const Certificate certificate(X509_new());
  if (!certificate) {
    error = openssl_failure("cannot allocate a certificate");
    return std::nullopt;
  }
  if (auto failure = fill_certificate(certificate.get(), key.get(), hostname)) {
    error = std::move(*failure);
    return std::nullopt;
  }
  if (const auto directory_error = durable::make_directories(directory)) {
    error = "cannot create folder " + directory.string() + ": " + directory_error.message();
    return std::nullopt;
  }
  if (auto failure = write_pair(paths, key.get(), certificate.get())) {
    error = std::move(*failure);
    return std::nullopt;
  }
  return paths;
}

}  // namespace stokend::server
