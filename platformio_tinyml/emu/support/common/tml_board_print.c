/*
 * Portable number/string printing for tml_board.h, built only on
 * board_putc(). Shared by every machine; needs no libc.
 */
#include "tml_board.h"

void board_puts(const char *s)
{
    while (*s != '\0') {
        board_putc(*s++);
    }
}

void board_print_u32_hex(uint32_t v)
{
    static const char digits[] = "0123456789abcdef";
    int shift;

    for (shift = 28; shift >= 0; shift -= 4) {
        board_putc(digits[(v >> shift) & 0xFu]);
    }
}

void board_print_i32(int32_t v)
{
    char buf[11];
    int n = 0;
    /* Work on the magnitude as unsigned so INT32_MIN does not overflow. */
    uint32_t mag = (v < 0) ? (0u - (uint32_t)v) : (uint32_t)v;

    if (v < 0) {
        board_putc('-');
    }
    do {
        /* Division by a constant: no libgcc call even on AVR/M0. */
        buf[n++] = (char)('0' + (mag % 10u));
        mag /= 10u;
    } while (mag != 0u);
    while (n > 0) {
        board_putc(buf[--n]);
    }
}
