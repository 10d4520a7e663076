/* tml_ed25519.c - Ed25519 (RFC 8032, PureEdDSA) signature check.
 *
 * h = SHA-512(R || A || message) reduced mod L, then Monocypher's
 * crypto_eddsa_check_equation() verifies [s]B = R + [h]A, rejects s >= L and
 * points off the curve. SHA-512 is HACL*'s (formally verified, MIT), used
 * through its block interface so the message is hashed where it lies (in
 * flash) without a copy. Both are fetched by scripts/fetch_crypto.sh into
 * third_party/ (monocypher/: BSD-2-Clause OR CC0-1.0; hacl/) and copied
 * next to this file by platformio_tinyml.module.firmware.write_runtime(). */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE 1   /* glibc declares htobe64 & co. (HACL*'s headers) only then under -std=c99 */
#endif
#include "tml_ed25519.h"

#include <string.h>

#include "internal/Hacl_Hash_SHA2.h"
#include "monocypher.h"

/* HACL*'s functions take uint8_t * for inputs they only read. */
static uint8_t *unconst(const uint8_t *p) { return (uint8_t *)(uintptr_t)p; }

int tml_ed25519_check(const uint8_t signature[64], const uint8_t public_key[32],
                      const uint8_t *message, uint32_t size)
{
    uint64_t st[8];
    uint8_t block[128], digest[64], h[32];
    const uint32_t head = size < 64u ? size : 64u;     /* message bytes in the first block */
    const uint32_t rest = size - head, full = rest - rest % 128u;
    memcpy(block, signature, 32);                      /* R */
    memcpy(block + 32, public_key, 32);                /* A */
    memcpy(block + 64, message, head);
    Hacl_Hash_SHA2_sha512_init(st);
    if (head == 64u) {                                  /* a whole first block, then the message in place */
        Hacl_Hash_SHA2_sha512_update_nblocks(128u, block, st);
        Hacl_Hash_SHA2_sha512_update_nblocks(full, unconst(message + 64), st);
        Hacl_Hash_SHA2_sha512_update_last(FStar_UInt128_uint64_to_uint128((uint64_t)size + 64u), rest - full,
                                          unconst(message + 64 + full), st);
    } else {
        Hacl_Hash_SHA2_sha512_update_last(FStar_UInt128_uint64_to_uint128((uint64_t)size + 64u), 64u + head,
                                          block, st);
    }
    Hacl_Hash_SHA2_sha512_finish(st, digest);
    crypto_eddsa_reduce(h, digest);
    return crypto_eddsa_check_equation(signature, public_key, h);
}
