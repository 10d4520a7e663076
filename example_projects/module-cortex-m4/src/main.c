/* Module-updatable firmware: the model comes from flash slot A or B, not from
 * the build. Boots slot A, tries slot B as an update (switched to only once it
 * is fully verified), runs one inference on the input vector at INPUT_ADDR and
 * prints "output: v0 v1 ..." (int8, decimal). It first prints its own version
 * ("firmware version 1.0.0"; build with -DFIRMWARE_VERSION='"x"' for another),
 * which the device agent reports as LwM2M Firmware Version (/3/0/3). */
#include <stdint.h>
#include <string.h>

#include "tml_board.h"
#include "tml_module.h"
#include "tml_module_key.h"

#define SLOT_A_ADDR 0x00200000u
#define SLOT_B_ADDR 0x00300000u
#define SLOT_SIZE 0x00100000u
#define INPUT_ADDR 0x00180000u
#ifndef FIRMWARE_VERSION
#define FIRMWARE_VERSION "1.0.0"
#endif

static uint8_t arena[32 * 1024] __attribute__((aligned(16)));

static void say(const char *what, int err)
{
    board_puts(what);
    board_puts(tml_module_strerror(err));
    board_putc('\n');
}

int main(void)
{
    tml_slots_t slots;
    uint32_t n, len, k;
    memset(&slots, 0, sizeof slots);
    slots.base[0] = (const uint8_t *)SLOT_A_ADDR;
    slots.base[1] = (const uint8_t *)SLOT_B_ADDR;
    slots.size[0] = slots.size[1] = SLOT_SIZE;
    slots.public_key = tml_module_pubkey;
    slots.arena = arena;
    slots.arena_bytes = sizeof arena;

    board_puts("firmware version " FIRMWARE_VERSION);
    board_putc('\n');
    /* A real device passes the slot and version it persisted at the last install. */
    say("slot A: ", tml_slots_boot(&slots, 0, 0));
    say("update from slot B: ", tml_slots_install(&slots, 1));
    if (slots.active < 0) return 1;
    board_puts("running module version ");
    board_print_i32((int32_t)slots.installed_version);
    board_putc('\n');

    uint8_t *in = tml_module_input(&slots.module, 0, &n);
    memcpy(&len, (const void *)INPUT_ADDR, 4);
    if (in == 0 || len != n) return 2;
    memcpy(in, (const uint8_t *)INPUT_ADDR + 4, n);
    tml_module_invoke(&slots.module);

    const int8_t *out = tml_module_output(&slots.module, 0, &n);
    board_puts("output:");
    for (k = 0; k < n; ++k) {
        board_putc(' ');
        board_print_i32(out[k]);
    }
    board_putc('\n');
    return 0;
}
