/* tml_speed.h - the hot kernels at -O2 inside an -Os build.
 *
 * Included first by the kernel files where the time goes (convolutions,
 * depthwise, fully connected, pooling, elementwise). PlatformIO and most
 * firmware builds compile with -Os; with GCC these files then still get -O2
 * code generation and the hand-scheduled Arm DSP paths (TML_ARM_FAST in
 * tml_dot_s8.h), while the rest of the firmware keeps -Os. Define
 * TML_OPTIMIZE_SIZE (custom_tinyml_optimize = size) for the smallest flash:
 * the kernels then follow the build's own flags. Other compilers ignore this.
 */
#ifndef TML_SPEED_H
#define TML_SPEED_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__OPTIMIZE_SIZE__) && !defined(TML_OPTIMIZE_SIZE)
#pragma GCC optimize("O2")
#define TML_SPEED_KERNELS 1
#else
#define TML_SPEED_KERNELS 0
#endif

#endif
