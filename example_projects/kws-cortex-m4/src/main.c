/* One inference of the KWS model on the embedded test input.
 * Prints "output: v0 v1 ..." (int8 scores, decimal) and the instruction count. */
#include <stdint.h>

#include "tml_board.h"
#include "kws.h"
#include "kws_test_input.h"

static int8_t scores[KWS_OUTPUT_BYTES];

int main(void)
{
    uint32_t start = board_instructions();
    int rc = kws_invoke(kws_test_input, scores);
    uint32_t used = board_instructions() - start;

    board_puts("output:");
    for (int i = 0; i < KWS_OUTPUT_BYTES; i++) {
        board_putc(' ');
        board_print_i32(scores[i]);
    }
    board_puts("\ninstructions: ");
    board_print_i32((int32_t)used);
    board_puts("\n");
    return rc;
}
