// What the configuration tests share: a config text written to a file of
// its own and loaded, the smallest valid configuration, and the errors of a
// load as text for failure messages.
#pragma once

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "mta/config/config.h"
#include "mta/server/self_signed_certificate.h"
#include "tests/support/temporary_directory.h"

namespace stokend::testing {

inline void write_file(const std::filesystem::path& path, const std::string& contents) {
  std::ofstream stream(path, std::ios::binary);
  stream << contents;
  REQUIRE(stream.good());
}

// Every error of result, one a line, for test failure messages.
inline std::string all_errors(const ConfigLoadResult& result) {
  std::string text;
  for (const ConfigError& error : result.errors) text += error.to_string() + "\n";
  return text;
}

// A real PEM certificate and its key, made in folder (as the daemon's
// self-signed one), for the checks that load them.
inline server::CertificatePaths pem_pair(const std::filesystem::path& folder) {
  std::string error;
  auto paths = server::ensure_self_signed_certificate(folder, "mx.example.test", error);
  INFO(error);
  REQUIRE(paths);
  return *paths;
}

// The smallest valid configuration: the two required keys.
inline const std::string minimal_config =
    "local_domains: [example.test]\n"
    "listeners:\n"
    "  - {role: mx, port: 2525}\n";

// Loads text as a config file named stokend.yaml in its own folder.
struct LoadedText {
  TemporaryDirectory directory;
  std::filesystem::path file;
  ConfigLoadResult result;

  explicit LoadedText(const std::string& text) : file(directory.path() / "stokend.yaml") {
    write_file(file, text);
    result = load_config(file);
  }

  std::vector<std::string> errors() const {
    std::vector<std::string> texts;
    for (const ConfigError& error : result.errors) texts.push_back(error.to_string());
    return texts;
  }
  // The one expected error, as "LINE:COL: message" (the file name stripped).
  std::string only_error() const {
    REQUIRE(result.errors.size() == 1);
    const std::string text = result.errors[0].to_string();
    REQUIRE(text.starts_with(file.string() + ":"));
    return text.substr(file.string().size() + 1);
  }
};

}  // namespace stokend::testing
