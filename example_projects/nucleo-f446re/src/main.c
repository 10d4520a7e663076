/* One KWS inference on the embedded test input, on a Nucleo-F446RE.
 * The scores land in kws_scores (read them with a debugger: `pio debug`);
 * the LED (PA5) lights when the inference succeeded. */
#include <stdint.h>

#include "stm32f4xx_hal.h"
#include "kws.h"
#include "kws_test_input.h"

volatile int8_t kws_scores[KWS_OUTPUT_BYTES];

void SysTick_Handler(void)
{
    HAL_IncTick();
}

int main(void)
{
    static int8_t scores[KWS_OUTPUT_BYTES];
    GPIO_InitTypeDef led = {.Pin = GPIO_PIN_5, .Mode = GPIO_MODE_OUTPUT_PP, .Pull = GPIO_NOPULL,
                            .Speed = GPIO_SPEED_FREQ_LOW};

    HAL_Init();
    __HAL_RCC_GPIOA_CLK_ENABLE();
    HAL_GPIO_Init(GPIOA, &led);

    int rc = kws_invoke(kws_test_input, scores);
    for (int i = 0; i < KWS_OUTPUT_BYTES; i++) {
        kws_scores[i] = scores[i];
    }
    HAL_GPIO_WritePin(GPIOA, GPIO_PIN_5, rc == 0 ? GPIO_PIN_SET : GPIO_PIN_RESET);
    for (;;) {
    }
}
