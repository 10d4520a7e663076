/* tml_ed25519.c - Ed25519 (RFC 8032, PureEdDSA) signature check.
 *
 * h = SHA-512(R || A || message) reduced mod L, then Monocypher's
 * crypto_eddsa_check_equation() verifies [s]B = R + [h]A, rejects s >= L and
 * points off the curve. Monocypher (BSD-2-Clause OR CC0-1.0) is fetched by
 * scripts/fetch_monocypher.sh into third_party/monocypher/. */
#include "tml_ed25519.h"

#include "monocypher.h"
#include "tml_sha512.h"

int tml_ed25519_check(const uint8_t signature[64], const uint8_t public_key[32],
                      const uint8_t *message, uint32_t size)
{
    tml_sha512_t c;
    uint8_t digest[64], h[32];
    tml_sha512_init(&c);
    tml_sha512_update(&c, signature, 32);
    tml_sha512_update(&c, public_key, 32);
    tml_sha512_update(&c, message, size);
    tml_sha512_final(&c, digest);
    crypto_eddsa_reduce(h, digest);
    return crypto_eddsa_check_equation(signature, public_key, h);
}
