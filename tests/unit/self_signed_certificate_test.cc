// Unit tests for the generated self-signed certificate
// (mta/server/self_signed_certificate.h).
#include "mta/server/self_signed_certificate.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "tests/support/temporary_directory.h"

using stokend::testing::read_whole_file;
using stokend::testing::TemporaryDirectory;

namespace fs = std::filesystem;
using stokend::server::CertificatePaths;
using stokend::server::ensure_self_signed_certificate;

namespace {

template <auto free_function>
struct OpenSslDeleter {
  template <typename Object>
  void operator()(Object* object) const {
    free_function(object);
  }
};
using Certificate = std::unique_ptr<X509, OpenSslDeleter<X509_free>>;
using PrivateKey = std::unique_ptr<EVP_PKEY, OpenSslDeleter<EVP_PKEY_free>>;
using Bio = std::unique_ptr<BIO, OpenSslDeleter<BIO_free_all>>;
using Store = std::unique_ptr<X509_STORE, OpenSslDeleter<X509_STORE_free>>;
using StoreContext = std::unique_ptr<X509_STORE_CTX, OpenSslDeleter<X509_STORE_CTX_free>>;
using GeneralNames = std::unique_ptr<GENERAL_NAMES, OpenSslDeleter<GENERAL_NAMES_free>>;

Certificate load_certificate(const fs::path& path) {
  const Bio bio(BIO_new_file(path.c_str(), "r"));
  REQUIRE(bio);
  return Certificate(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

PrivateKey load_key(const fs::path& path) {
  const Bio bio(BIO_new_file(path.c_str(), "r"));
  REQUIRE(bio);
  return PrivateKey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

CertificatePaths generate(const fs::path& directory, const std::string& hostname) {
  std::string error;
  const auto paths = ensure_self_signed_certificate(directory, hostname, error);
  INFO(error);
  REQUIRE(paths);
  CHECK(error.empty());
  return *paths;
}

// Verifies certificate as a client would that trusts exactly this certificate
// (a pinned self-signed one) and expects it to be for hostname.
int verify_as_pinned(X509* certificate, const std::string& hostname) {
  const Store store(X509_STORE_new());
  REQUIRE(store);
  REQUIRE(X509_STORE_add_cert(store.get(), certificate) == 1);
  const StoreContext context(X509_STORE_CTX_new());
  REQUIRE(context);
  REQUIRE(X509_STORE_CTX_init(context.get(), store.get(), certificate, nullptr) == 1);
  X509_VERIFY_PARAM* parameters = X509_STORE_CTX_get0_param(context.get());
  X509_VERIFY_PARAM_set_flags(parameters, X509_V_FLAG_X509_STRICT);
  X509_VERIFY_PARAM_set_purpose(parameters, X509_PURPOSE_SSL_SERVER);
  REQUIRE(X509_VERIFY_PARAM_set1_host(parameters, hostname.c_str(), hostname.size()) == 1);
  X509_verify_cert(context.get());
  return X509_STORE_CTX_get_error(context.get());
}

}  // namespace

TEST_CASE("a self-signed certificate is generated for the host name") {
  TemporaryDirectory directory;
  const fs::path tls_directory = directory.path() / "var" / "tls";  // created on demand
  const CertificatePaths paths = generate(tls_directory, "mx.example.test");
  CHECK(paths.certificate == tls_directory / "cert.pem");
  CHECK(paths.private_key == tls_directory / "key.pem");

  struct stat status {};
  REQUIRE(::stat(paths.private_key.c_str(), &status) == 0);
  CHECK((status.st_mode & 0777) == 0600);

  const Certificate certificate = load_certificate(paths.certificate);
  REQUIRE(certificate);
  const PrivateKey key = load_key(paths.private_key);
  REQUIRE(key);

  CHECK(X509_get_version(certificate.get()) == X509_VERSION_3);
  CHECK(X509_check_private_key(certificate.get(), key.get()) == 1);
  CHECK(EVP_PKEY_is_a(key.get(), "EC") == 1);
  std::array<char, 64> curve{};
  REQUIRE(EVP_PKEY_get_group_name(key.get(), curve.data(), curve.size(), nullptr) == 1);
  CHECK(std::string(curve.data()) == "prime256v1");

  std::array<char, 256> common_name{};
  REQUIRE(X509_NAME_get_text_by_NID(X509_get_subject_name(certificate.get()), NID_commonName,
                                    common_name.data(), common_name.size()) > 0);
  CHECK(std::string(common_name.data()) == "mx.example.test");

  const GeneralNames names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(certificate.get(), NID_subject_alt_name, nullptr, nullptr)));
  REQUIRE(names);
  REQUIRE(sk_GENERAL_NAME_num(names.get()) == 1);
  const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), 0);
  REQUIRE(name->type == GEN_DNS);
  const ASN1_IA5STRING* dns_name = name->d.dNSName;
  CHECK(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns_name)),
                    static_cast<std::size_t>(ASN1_STRING_length(dns_name))) == "mx.example.test");

  // Valid now and for about a year.
  std::time_t now = std::time(nullptr);
  std::time_t in_364_days = now + 364L * 24 * 60 * 60;
  std::time_t in_366_days = now + 366L * 24 * 60 * 60;
  CHECK(X509_cmp_time(X509_get0_notBefore(certificate.get()), &now) < 0);
  CHECK(X509_cmp_time(X509_get0_notAfter(certificate.get()), &in_364_days) > 0);
  CHECK(X509_cmp_time(X509_get0_notAfter(certificate.get()), &in_366_days) < 0);

  CHECK(verify_as_pinned(certificate.get(), "mx.example.test") == X509_V_OK);
  CHECK(verify_as_pinned(certificate.get(), "other.example.test") == X509_V_ERR_HOSTNAME_MISMATCH);
}

TEST_CASE("an existing certificate is reused, not regenerated") {
  TemporaryDirectory directory;
  const CertificatePaths first = generate(directory.path(), "mx.example.test");
  const std::string certificate_pem = read_whole_file(first.certificate);
  const std::string key_pem = read_whole_file(first.private_key);

  const CertificatePaths second = generate(directory.path(), "another-name.example.test");
  CHECK(second.certificate == first.certificate);
  CHECK(second.private_key == first.private_key);
  CHECK(read_whole_file(second.certificate) == certificate_pem);
  CHECK(read_whole_file(second.private_key) == key_pem);
}

TEST_CASE("a certificate without its key is regenerated as a pair") {
  TemporaryDirectory directory;
  const CertificatePaths first = generate(directory.path(), "mx.example.test");
  const std::string old_certificate = read_whole_file(first.certificate);
  fs::remove(first.private_key);
  const CertificatePaths second = generate(directory.path(), "mx.example.test");
  CHECK(read_whole_file(second.certificate) != old_certificate);
  const Certificate certificate = load_certificate(second.certificate);
  const PrivateKey key = load_key(second.private_key);
  REQUIRE(certificate);
  REQUIRE(key);
  CHECK(X509_check_private_key(certificate.get(), key.get()) == 1);
}

TEST_CASE("serial numbers are random") {
  TemporaryDirectory first_directory;
  TemporaryDirectory second_directory;
  const Certificate first =
      load_certificate(generate(first_directory.path(), "mx.example.test").certificate);
  const Certificate second =
      load_certificate(generate(second_directory.path(), "mx.example.test").certificate);
  REQUIRE(first);
  REQUIRE(second);
  CHECK(ASN1_INTEGER_cmp(X509_get0_serialNumber(first.get()),
                         X509_get0_serialNumber(second.get())) != 0);
}

TEST_CASE("an IP address host name gets an IP subjectAltName") {
  TemporaryDirectory directory;
  const Certificate certificate =
      load_certificate(generate(directory.path(), "127.0.0.1").certificate);
  REQUIRE(certificate);
  CHECK(X509_check_ip_asc(certificate.get(), "127.0.0.1", 0) == 1);
}

TEST_CASE("an empty host name is refused") {
  TemporaryDirectory directory;
  std::string error;
  CHECK_FALSE(ensure_self_signed_certificate(directory.path(), "", error));
  CHECK(error == "cannot generate a certificate: the host name is empty");
  CHECK_FALSE(fs::exists(directory.path() / "key.pem"));
}
