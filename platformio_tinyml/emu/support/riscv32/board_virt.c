/*
 * tml_board.h for QEMU `qemu-system-riscv32 -M virt` (rv32imac, M-mode).
 *
 * QEMU virt memory map used here:
 *   0x00100000  SiFive test device ("sifive_test"): exit
 *   0x10000000  NS16550A UART0 (THR at +0, LSR at +5, bit5 = THR empty)
 *   0x80000000  DRAM (size from -m; run.py passes 128M): linked as
 *               16 MiB "flash" + 16 MiB RAM, see machines/riscv32-virt/link.ld
 *
 * Exit: writing 0x5555 to the test device ends QEMU with status 0;
 * (code << 16) | 0x3333 ends it with status `code`.
 *
 * Counter: the minstret CSR. Under `-icount shift=0` QEMU derives it from
 * the instruction count, so it is exact and repeatable; without -icount it
 * follows host time.
 */
#include <stdint.h>
#include "tml_board.h"

#define UART_THR (*(volatile uint8_t *)0x10000000u)
#define UART_LSR (*(volatile uint8_t *)0x10000005u)
#define UART_LSR_THRE 0x20u
#define SIFIVE_TEST (*(volatile uint32_t *)0x00100000u)
#define SIFIVE_TEST_PASS 0x5555u
#define SIFIVE_TEST_FAIL 0x3333u

/* The exit code a trap produces. */
#define TML_EXIT_FAULT 126

void tml_trap_handler(void);

static uint32_t tml_minstret_start;
static int tml_board_ready;

/* csrr with Zicsr enabled locally, so callers may use plain rv32imac. */
static uint32_t tml_read_csr_minstret(void)
{
    uint32_t v;

    __asm__ volatile(".option push\n\t"
                     ".option arch, +zicsr\n\t"
                     "csrr %0, minstret\n\t"
                     ".option pop"
                     : "=r"(v));
    return v;
}

static uint32_t tml_read_csr_mcause(void)
{
    uint32_t v;

    __asm__ volatile(".option push\n\t"
                     ".option arch, +zicsr\n\t"
                     "csrr %0, mcause\n\t"
                     ".option pop"
                     : "=r"(v));
    return v;
}

void board_init(void)
{
    if (tml_board_ready) {
        return;
    }
    tml_board_ready = 1;
    /* QEMU's 16550 needs no set-up for output. */
    tml_minstret_start = tml_read_csr_minstret();
}

void board_putc(char c)
{
    while ((UART_LSR & UART_LSR_THRE) == 0u) {
    }
    UART_THR = (uint8_t)c;
}

uint32_t board_instructions(void)
{
    if (!tml_board_ready) {
        return 0u;
    }
    return tml_read_csr_minstret() - tml_minstret_start;
}

void board_exit(int code)
{
    uint32_t c = (uint32_t)code & 0xFFFFu;

    SIFIVE_TEST = (c == 0u) ? SIFIVE_TEST_PASS : ((c << 16) | SIFIVE_TEST_FAIL);
    for (;;) {
    }
}

void tml_trap_handler(void)
{
    board_puts("\n[tml] unexpected trap, mcause ");
    board_print_u32_hex(tml_read_csr_mcause());
    board_putc('\n');
    board_exit(TML_EXIT_FAULT);
}
