/* tml_ed25519.h - Ed25519 signature check for the module loader. */
#ifndef TML_ED25519_H
#define TML_ED25519_H

#include <stdint.h>

/* 0 when 'signature' is a valid Ed25519 signature of 'message' by 'public_key', else -1. */
int tml_ed25519_check(const uint8_t signature[64], const uint8_t public_key[32],
                      const uint8_t *message, uint32_t size);

#endif /* TML_ED25519_H */
