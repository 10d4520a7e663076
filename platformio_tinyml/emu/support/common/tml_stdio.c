/*
 * printf/puts/putchar to the emulator console, for firmware linked with the
 * board's C library (not built with nostdlib). Every byte goes through
 * board_putc(), unchanged ('\n' is not translated).
 *
 *   Arm, newlib-nano + nosys: _write() for file descriptors 1 and 2. nosys's
 *       _fstat() reports a character device, so stdout is line-buffered:
 *       output appears at each '\n' (call fflush(stdout) for a partial line).
 *   RISC-V, picolibc: the stdout/stderr FILE pointers picolibc leaves to the
 *       application, unbuffered.
 *   AVR, avr-libc: stdout and stderr point at an unbuffered stream from
 *       start-up (.init8) on, before main().
 *
 * Firmware that never uses stdio links none of this except, on AVR, the
 * 6-byte stream table and this stream's 14 bytes.
 */
#include <stdio.h>
#include "tml_board.h"

#if defined(__AVR__)

static int tml_stdio_put(char c, FILE *stream)
{
    (void)stream;
    board_putc(c);
    return 0;
}

static FILE tml_stdio_stream = FDEV_SETUP_STREAM(tml_stdio_put, NULL, _FDEV_SETUP_WRITE);

void tml_stdio_init(void) __attribute__((naked, used, section(".init8")));
void tml_stdio_init(void)
{
    stdout = &tml_stdio_stream;
    stderr = &tml_stdio_stream;
}

#elif defined(__PICOLIBC__)

static int tml_stdio_put(char c, FILE *stream)
{
    (void)stream;
    board_putc(c);
    return (unsigned char)c;
}

static FILE tml_stdio_stream = FDEV_SETUP_STREAM(tml_stdio_put, NULL, NULL, _FDEV_SETUP_WRITE);
FILE *const stdout = &tml_stdio_stream;
FILE *const stderr = &tml_stdio_stream;

#else /* newlib */

int _write(int fd, const char *buf, int len);
int _write(int fd, const char *buf, int len)
{
    int i;

    if (fd != 1 && fd != 2) {
        return -1;
    }
    for (i = 0; i < len; i++) {
        board_putc(buf[i]);
    }
    return len;
}

#endif
