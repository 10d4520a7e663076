/* QEMU mps2-an385: Cortex-M3, 25 MHz; UART0 at 0x40004000.
 * Under -icount shift=0: 1 tick = 40 ns = 40 instructions. */
#ifndef TML_MACHINE_H
#define TML_MACHINE_H
#define TML_MACHINE_NAME "mps2-an385"
#define TML_UART0_BASE 0x40004000u
#define TML_INSNS_PER_TICK_NUM 40u
#define TML_INSNS_PER_TICK_DEN 1u
#endif
