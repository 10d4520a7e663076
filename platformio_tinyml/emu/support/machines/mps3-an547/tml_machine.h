/* QEMU mps3-an547: Cortex-M55, 32 MHz; UART0 at 0x49303000.
 * Under -icount shift=0: 1 tick = 31.25 ns = 125/4 instructions. */
#ifndef TML_MACHINE_H
#define TML_MACHINE_H
#define TML_MACHINE_NAME "mps3-an547"
#define TML_UART0_BASE 0x49303000u
#define TML_INSNS_PER_TICK_NUM 125u
#define TML_INSNS_PER_TICK_DEN 4u
#endif
