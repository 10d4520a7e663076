/*
 * tml_board.h - tiny board-support API for the emulated test boards of
 * platformio-tinyml (QEMU mps2-an385 / mps2-an386 / mps3-an547, simavr
 * atmega328p / atmega2560, QEMU riscv32 virt).
 *
 * The firmware provides main(); the board's startup code runs before it
 * (vector table, .data copy, .bss zeroing, FPU enable) and calls
 * board_exit(main()) when main returns, so calling board_init() and
 * board_exit() yourself is optional but harmless.
 *
 * No libc is needed by anything declared here.
 */
#ifndef TML_BOARD_H
#define TML_BOARD_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Enable the UART and start the instruction/cycle counter. Idempotent. */
void board_init(void);

/* Write one byte to the console UART (blocking). '\n' is not translated. */
void board_putc(char c);

/* Write a NUL-terminated string. */
void board_puts(const char *s);

/* Write v in decimal, with a leading '-' when negative (INT32_MIN works). */
void board_print_i32(int32_t v);

/* Write v as exactly 8 lower-case hex digits, no prefix. */
void board_print_u32_hex(uint32_t v);

/*
 * Work done since board_init(), modulo 2^32; 0 when the board has no counter.
 *   mps2-an385, mps2-an386: guest instructions (exact under -icount shift=0)
 *   mps3-an547:             guest instructions (exact under -icount shift=0)
 *   atmega328p, atmega2560: CPU cycles (Timer1, simavr is cycle-accurate)
 *   riscv32-virt:           retired instructions (minstret CSR)
 * TML_BOARD_COUNTER_UNIT is "instructions", "cycles" or "none".
 */
uint32_t board_instructions(void);

/* Stop the emulator with this exit code (0 = success). Never returns. */
void board_exit(int code) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif /* TML_BOARD_H */
