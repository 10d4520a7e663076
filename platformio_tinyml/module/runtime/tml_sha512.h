/* tml_sha512.h - streaming SHA-512 used by the module loader's Ed25519 check. */
#ifndef TML_SHA512_H
#define TML_SHA512_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t h[8];
    uint64_t bytes;
    uint8_t buf[128];
    unsigned fill;
} tml_sha512_t;

void tml_sha512_init(tml_sha512_t *c);
void tml_sha512_update(tml_sha512_t *c, const uint8_t *data, size_t n);
void tml_sha512_final(tml_sha512_t *c, uint8_t out[64]);

#endif /* TML_SHA512_H */
