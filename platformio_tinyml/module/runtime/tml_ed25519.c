/* tml_ed25519.c - Ed25519 (RFC 8032, PureEdDSA) signature check.
 *
 * h = SHA-512(R || A || message) reduced mod L, then Monocypher's
 * crypto_eddsa_check_equation() verifies [s]B = R + [h]A, rejects s >= L and
 * points off the curve. SHA-512 is libsodium's portable implementation
 * (crypto_hash/sha512/cp/hash_sha512_cp.c, ISC). Both are fetched by
 * scripts/fetch_crypto.sh into third_party/ (monocypher/, libsodium/:
 * Monocypher BSD-2-Clause OR CC0-1.0) and copied next to this file by
 * platformio_tinyml.module.firmware.write_runtime(). */
#include "tml_ed25519.h"

#include <stddef.h>

#include "sodium/crypto_hash_sha512.h"
#include "monocypher.h"

/* The one libsodium utility hash_sha512_cp.c calls (libsodium's utils.c needs
 * the rest of the library): wipe its temporaries. */
void sodium_memzero(void *const pnt, const size_t len)
{
    volatile unsigned char *p = (volatile unsigned char *)pnt;
    size_t i;
    for (i = 0; i < len; ++i) p[i] = 0;
}

int tml_ed25519_check(const uint8_t signature[64], const uint8_t public_key[32],
                      const uint8_t *message, uint32_t size)
{
    crypto_hash_sha512_state c;
    uint8_t digest[64], h[32];
    crypto_hash_sha512_init(&c);
    crypto_hash_sha512_update(&c, signature, 32);
    crypto_hash_sha512_update(&c, public_key, 32);
    crypto_hash_sha512_update(&c, message, size);
    crypto_hash_sha512_final(&c, digest);
    crypto_eddsa_reduce(h, digest);
    return crypto_eddsa_check_equation(signature, public_key, h);
}
