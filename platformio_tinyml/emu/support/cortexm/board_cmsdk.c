/*
 * tml_board.h for the QEMU Arm MPS2/MPS3 machines: CMSDK APB UART0 console,
 * SysTick instruction counter and semihosting exit.
 *
 * Machine constants come from tml_machine.h (machines/<machine>/):
 *   TML_UART0_BASE          CMSDK APB UART0 base address
 *   TML_INSNS_PER_TICK_NUM  instructions per SysTick tick under
 *   TML_INSNS_PER_TICK_DEN  `-icount shift=0` = (1 ns) / (1 / CPU clock),
 *                           as the fraction NUM/DEN
 *
 * UART (CMSDK APB UART): DATA at +0x0, STATE at +0x4 (bit0 TX buffer full),
 * CTRL at +0x8 (bit0 TX enable). QEMU sends DATA to -serial.
 *
 * Counter: SysTick clocked from the processor clock (CSR = ENABLE|TICKINT|
 * CLKSOURCE = 7), reload 0xFFFFFF, counting down; the SysTick interrupt
 * counts 2^24-tick wraps, and a wrap not yet serviced is seen as PENDSTSET
 * in ICSR while board_instructions() has interrupts masked. With
 * `-icount shift=0` every guest instruction takes 1 ns of virtual time, so
 * ticks convert exactly to instructions, to within one tick
 * (the wrap interrupt's own ~10 instructions per 2^24 ticks are included).
 *
 * Exit: semihosting SYS_EXIT_EXTENDED (0x20) via `bkpt 0xab`, which makes
 * QEMU exit with the given status; needs
 * `-semihosting-config enable=on,target=native`. Without semihosting the
 * bkpt raises HardFault, whose handler prints a message and locks up in
 * its own bkpt; the host-side timeout then applies.
 */
#include <stdint.h>
#include "tml_board.h"
#include "tml_machine.h"

#define UART_DATA  (*(volatile uint32_t *)(TML_UART0_BASE + 0x0u))
#define UART_STATE (*(volatile uint32_t *)(TML_UART0_BASE + 0x4u))
#define UART_CTRL  (*(volatile uint32_t *)(TML_UART0_BASE + 0x8u))
#define UART_STATE_TXFULL 0x1u
#define UART_CTRL_TXEN    0x1u

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define SYST_CSR_ENABLE_CPUCLK 0x5u
#define SYST_CSR_ENABLE_TICKINT_CPUCLK 0x7u
#define SYST_RELOAD 0xFFFFFFu
#define ICSR_PENDSTSET (1u << 26)
#define ICSR_PENDSTCLR (1u << 25)

#define SEMIHOSTING_SYS_EXIT_EXTENDED 0x20u
#define ADP_STOPPED_APPLICATION_EXIT  0x20026u

static volatile uint32_t tml_systick_wraps;
static int tml_board_ready;

void SysTick_Handler(void)
{
    tml_systick_wraps++;
}

void board_init(void)
{
    if (tml_board_ready) {
        return;
    }
    tml_board_ready = 1;
    UART_CTRL = UART_CTRL_TXEN;
    SYST_CSR = 0u;
    SYST_RVR = SYST_RELOAD;
    SYST_CVR = 0u; /* any write clears the counter and COUNTFLAG */
    /* Start without the interrupt and wait for the first reload from 0,
     * which QEMU reports as a wrap; then forget it and count from here. */
    SYST_CSR = SYST_CSR_ENABLE_CPUCLK;
    while (SYST_CVR == 0u) {
    }
    (void)SYST_CSR; /* reading clears COUNTFLAG */
    SCB_ICSR = ICSR_PENDSTCLR;
    tml_systick_wraps = 0u;
    SYST_CSR = SYST_CSR_ENABLE_TICKINT_CPUCLK;
}

void board_putc(char c)
{
    while ((UART_STATE & UART_STATE_TXFULL) != 0u) {
    }
    UART_DATA = (uint32_t)(unsigned char)c;
}

/* Processor-clock ticks since board_init(), 64-bit. */
static uint64_t tml_systick_ticks(void)
{
    uint32_t wraps, cvr;

    /* With interrupts masked, a wrap that has happened but not yet been
     * counted shows as a pending SysTick exception; count it here. */
    __asm volatile("cpsid i" ::: "memory");
    wraps = tml_systick_wraps;
    cvr = SYST_CVR;
    if ((SCB_ICSR & ICSR_PENDSTSET) != 0u) {
        wraps++;
        cvr = SYST_CVR; /* re-read: certainly after the reload now */
    }
    __asm volatile("cpsie i" ::: "memory");
    /* Counting starts at 0 after the CVR write, reloads to 0xFFFFFF. */
    return (uint64_t)wraps * (SYST_RELOAD + 1u) + (uint64_t)(SYST_RELOAD - cvr);
}

uint32_t board_instructions(void)
{
    if (!tml_board_ready) {
        return 0u;
    }
    return (uint32_t)(tml_systick_ticks() * TML_INSNS_PER_TICK_NUM /
                      TML_INSNS_PER_TICK_DEN);
}

void board_exit(int code)
{
    volatile uint32_t block[2];

    block[0] = ADP_STOPPED_APPLICATION_EXIT;
    block[1] = (uint32_t)code;
    __asm volatile("mov r0, %0\n\t"
                   "mov r1, %1\n\t"
                   "bkpt 0xab"
                   :
                   : "r"(SEMIHOSTING_SYS_EXIT_EXTENDED), "r"(block)
                   : "r0", "r1", "memory");
    for (;;) {
    }
}
