/*
 * tml_board.h for AVR (atmega328p, atmega2560) under the simavr CLI.
 *
 * Startup: avr-libc's crt (vector table, stack at RAMEND) and libgcc's
 * .data copy / .bss clear, as for any avr-gcc program; no libc function is
 * called from here. A hook in .init8 calls board_init() before main(), and
 * one in .fini8 passes main's return value (still in r24:r25 when exit()
 * falls through the .fini sections) to board_exit(). Flash and RAM are the
 * MCU's own (328p: 32 KiB flash, 2 KiB SRAM; 2560: 256 KiB flash, 8 KiB
 * SRAM).
 *
 * Console: simavr's "console register". A tag in the ELF section .mmcu
 * (read by simavr's ELF loader, never loaded into the MCU) names GPIOR0;
 * simavr buffers bytes written there and prints the buffer as one line
 * "O:<text>" on each '\r'. Bytes below ' ' are dropped by simavr, so
 * board_putc('\n') writes '\r' and '\t' is sent as a space. The hardware
 * UART is not used: simavr's UART log mangles control characters and cuts
 * lines at 255 bytes.
 *
 * Exit: the console line "@@tml-exit=<code>", then `cli; sleep`, on which
 * simavr stops ("sleeping with interrupts off, quitting gracefully").
 * simavr's own exit status is always 0, so the host reads the code from
 * that line (platformio_tinyml.emu.run does).
 *
 * Counter: CPU cycles from Timer1 (normal mode, clk/1) plus a 16-bit
 * overflow count kept by TIMER1_OVF_vect; simavr is cycle-accurate.
 * The link needs: -Wl,--undefined=tml_simavr_mmcu
 *                 -Wl,--section-start=.mmcu=0x910000
 * so that --gc-sections keeps the tag and it lands outside flash/RAM.
 */
#include <stdint.h>
#include <avr/io.h>
#include <avr/interrupt.h>
#include "tml_board.h"

/* simavr avr_mcu_section.h: tag AVR_MMCU_TAG_SIMAVR_CONSOLE = 11, then a
 * length byte and the data-space address of the register (2 bytes). */
#define TML_SIMAVR_TAG_CONSOLE 11u
#define TML_CONSOLE_REG GPIOR0

struct tml_simavr_addr_tag {
    uint8_t tag;
    uint8_t len;
    uint16_t addr;
} __attribute__((packed));

__attribute__((section(".mmcu"), used))
const struct tml_simavr_addr_tag tml_simavr_mmcu = {
    TML_SIMAVR_TAG_CONSOLE, 2u, (uint16_t)(uintptr_t)&TML_CONSOLE_REG
};

static volatile uint16_t tml_timer1_wraps;
static uint8_t tml_board_ready;
static uint8_t tml_line_open; /* bytes written since the last '\r' */

ISR(TIMER1_OVF_vect)
{
    tml_timer1_wraps++;
}

/* Runs after .data/.bss set-up (.init4), before main (.init9). */
__attribute__((naked, used, section(".init8")))
static void tml_init8(void)
{
    board_init();
}

/* exit(code) falls through .fini9..0; the code is still in r24:r25 here.
 * %~ picks rcall or call to suit the device. */
__attribute__((naked, used, section(".fini8")))
static void tml_fini8(void)
{
    __asm__ volatile("%~call board_exit" ::);
}

void board_init(void)
{
    if (tml_board_ready) {
        return;
    }
    tml_board_ready = 1u;
    TCCR1A = 0u;
    TCNT1 = 0u;
    TIFR1 = (uint8_t)(1u << TOV1);
    TIMSK1 = (uint8_t)(1u << TOIE1);
    TCCR1B = (uint8_t)(1u << CS10); /* normal mode, no prescaler */
    sei();
}

void board_putc(char c)
{
    if (c == '\n') {
        TML_CONSOLE_REG = '\r';
        tml_line_open = 0u;
        return;
    }
    TML_CONSOLE_REG = (uint8_t)((c == '\t') ? ' ' : c);
    tml_line_open = 1u;
}

uint32_t board_instructions(void)
{
    uint8_t sreg = SREG;
    uint16_t wraps, count;

    if (!tml_board_ready) {
        return 0u;
    }
    cli();
    wraps = tml_timer1_wraps;
    count = TCNT1;
    /* A wrap not yet seen by the ISR: count it, re-read after it. */
    if ((TIFR1 & (1u << TOV1)) != 0u) {
        wraps++;
        count = TCNT1;
    }
    SREG = sreg;
    return ((uint32_t)wraps << 16) | count;
}

void board_exit(int code)
{
    if (tml_line_open) {
        board_putc('\n');
    }
    board_puts("@@tml-exit=");
    board_print_i32((int32_t)code);
    board_putc('\n');
    cli();
    SMCR = (uint8_t)(1u << SE); /* idle mode, sleep enabled */
    for (;;) {
        __asm__ volatile("sleep");
    }
}
