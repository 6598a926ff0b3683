#ifndef CLEW_CCRYPTO_SHIM_H
#define CLEW_CCRYPTO_SHIM_H
/* Clew hashes with SHA-256 three times per event (payload, Merkle leaf, interior node). OpenSSL's
   SHA256_CTX functions keep the whole state in a caller-owned struct: no allocation per hash, and a
   state fed with a prefix is copied with a memcpy. OpenSSL 3 marks them deprecated in favour of EVP,
   which allocates a context per digest (about 3x slower on 100-300-byte inputs, measured); they stay
   in every OpenSSL 3 release, and SHA-NI is used when the CPU has it. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#endif
