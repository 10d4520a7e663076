/*
 * Cortex-M startup for the QEMU MPS2/MPS3 test machines (no libc needed).
 *
 * Provides the vector table (section .isr_vector, placed at the reset
 * VTOR by the machine's link.ld) and Reset_Handler, which:
 *   1. copies .data from its load address in flash to RAM,
 *   2. zeroes .bss,
 *   3. enables CP10/CP11 in CPACR when compiled for a hard-float FPU,
 *   4. runs .preinit_array/.init_array constructors (C++ / attribute),
 *   5. calls board_init(), then board_exit(main()).
 * Every other exception ends the program through tml_fault_handler().
 *
 * Linker symbols used (defined by machines/<machine>/link.ld):
 *   __stack_top, __data_load, __data_start, __data_end,
 *   __bss_start, __bss_end, __preinit_array_start/_end,
 *   __init_array_start/_end.
 */
#include <stdint.h>
#include "tml_board.h"

/* The .data/.bss loops must not become memcpy/memset calls (no libc). */
#pragma GCC optimize("no-tree-loop-distribute-patterns")

int main(void);
void Reset_Handler(void) __attribute__((noreturn));
void tml_fault_handler(void);
void SysTick_Handler(void); /* in board_cmsdk.c */

extern uint32_t __stack_top;
extern uint32_t __data_load, __data_start, __data_end;
extern uint32_t __bss_start, __bss_end;
typedef void (*tml_ctor_fn)(void);
extern tml_ctor_fn __preinit_array_start[], __preinit_array_end[];
extern tml_ctor_fn __init_array_start[], __init_array_end[];

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)

/* The exit code a fault produces (the host sees it as qemu's status). */
#define TML_EXIT_FAULT 126

typedef void (*tml_vector_fn)(void);

/* 16 system exceptions + 32 IRQs; unused IRQs are never enabled. */
__attribute__((section(".isr_vector"), used))
const tml_vector_fn tml_vector_table[16 + 32] = {
    (tml_vector_fn)(uintptr_t)&__stack_top,
    Reset_Handler,
    tml_fault_handler, /* NMI */
    tml_fault_handler, /* HardFault */
    tml_fault_handler, /* MemManage */
    tml_fault_handler, /* BusFault */
    tml_fault_handler, /* UsageFault */
    tml_fault_handler, /* SecureFault (v8-M) */
    0, 0, 0,
    tml_fault_handler, /* SVCall */
    tml_fault_handler, /* DebugMonitor */
    0,
    tml_fault_handler, /* PendSV */
    SysTick_Handler,
    [16 ... 47] = tml_fault_handler,
};

void tml_fault_handler(void)
{
    uint32_t ipsr;

    __asm volatile("mrs %0, ipsr" : "=r"(ipsr));
    board_puts("\n[tml] unexpected exception ");
    board_print_i32((int32_t)(ipsr & 0x1FFu));
    board_putc('\n');
    board_exit(TML_EXIT_FAULT);
}

static void tml_run_ctors(tml_ctor_fn *start, tml_ctor_fn *end)
{
    for (; start < end; start++) {
        (*start)();
    }
}

void Reset_Handler(void)
{
    uint32_t *src = &__data_load;
    uint32_t *dst = &__data_start;

    while (dst < &__data_end) {
        *dst++ = *src++;
    }
    for (dst = &__bss_start; dst < &__bss_end; dst++) {
        *dst = 0u;
    }
#if defined(__ARM_FP) && !defined(__SOFTFP__)
    /* Full access to CP10/CP11 before any FP instruction runs. */
    SCB_CPACR |= (0xFu << 20);
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif
    tml_run_ctors(__preinit_array_start, __preinit_array_end);
    tml_run_ctors(__init_array_start, __init_array_end);
    board_init();
    board_exit(main());
}
