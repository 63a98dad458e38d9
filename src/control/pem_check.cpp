#include "control/pem_check.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

namespace nimbus::control {

namespace {

std::string opensslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no PEM data found";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

BioPtr memBio(std::string_view pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
}

// Reads every certificate; returns the first one (null when none) and the count.
X509Ptr readCerts(std::string_view pem, int* count) {
  auto bio = memBio(pem);
  X509Ptr first(nullptr, &X509_free);
  *count = 0;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    if (*count == 0) {
      first.reset(cert);
    } else {
      X509_free(cert);
    }
    ++*count;
  }
  ERR_clear_error();  // the read past the last certificate
  return first;
}

}  // namespace

Result<void> checkUpstreamTlsPem(std::string_view caPem, std::string_view certPem,
                                 std::string_view keyPem) {
  ERR_clear_error();
  if (!caPem.empty()) {
    int count = 0;
    readCerts(caPem, &count);
    if (count == 0) {
      return makeError(ErrorKind::Invalid,
                       "the CA file holds no PEM certificate (-----BEGIN CERTIFICATE-----); pass "
                       "the certificate of the authority that signed the upstream's certificate");
    }
  }
  if (certPem.empty() != keyPem.empty()) {
    return makeError(ErrorKind::Invalid,
                     "a client certificate needs its private key and the other way round; pass "
                     "both --cert and --key");
  }
  if (certPem.empty()) return success();
  int count = 0;
  X509Ptr cert = readCerts(certPem, &count);
  if (!cert) {
    return makeError(ErrorKind::Invalid,
                     "the client certificate file holds no PEM certificate "
                     "(-----BEGIN CERTIFICATE-----)");
  }
  auto bio = memBio(keyPem);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  if (!key) {
    return makeError(ErrorKind::Invalid,
                     "the key file holds no readable PEM private key (" + opensslError() +
                         "); pass an unencrypted PEM key");
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return makeError(ErrorKind::Invalid,
                     "the private key does not belong to the client certificate; pass the key "
                     "that was generated with that certificate");
  }
  return success();
}

}  // namespace nimbus::control
