/*
 * RV32 startup for QEMU `-M virt` (machine mode, no libc needed).
 * QEMU's reset ROM at 0x1000 jumps to the ELF entry (_start) with
 * `-bios none -kernel app.elf`.
 *   - sets gp (linker relaxation) and sp = __stack_top (top of RAM),
 *   - points mtvec at tml_trap_entry (any trap ends the program),
 *   - copies .data from flash, zeroes .bss, runs .init_array,
 *   - calls board_init(), then board_exit(main()).
 */
    .section .text.start, "ax", @progbits
    .globl _start
_start:
    .option push
    .option norelax
    la      gp, __global_pointer$
    .option pop
    la      sp, __stack_top
    .option push
    .option arch, +zicsr
    la      t0, tml_trap_entry
    csrw    mtvec, t0
    .option pop

    la      t0, __data_load
    la      t1, __data_start
    la      t2, __data_end
1:  bgeu    t1, t2, 2f
    lw      t3, 0(t0)
    sw      t3, 0(t1)
    addi    t0, t0, 4
    addi    t1, t1, 4
    j       1b
2:  la      t1, __bss_start
    la      t2, __bss_end
3:  bgeu    t1, t2, 4f
    sw      zero, 0(t1)
    addi    t1, t1, 4
    j       3b
4:  la      s0, __init_array_start
    la      s1, __init_array_end
5:  bgeu    s0, s1, 6f
    lw      t0, 0(s0)
    jalr    t0
    addi    s0, s0, 4
    j       5b
6:  call    board_init
    call    main
    tail    board_exit

    /* mtvec needs 4-byte alignment (direct mode). */
    .balign 4
tml_trap_entry:
    la      sp, __stack_top
    call    tml_trap_handler
7:  j       7b
