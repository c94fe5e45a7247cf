/* The bench bridge on an ATmega328P. The hardware watchdog resets the MCU if the loop hangs;
   a reset boots into the safe state (bridge_init drives every output safe before anything else). */
#include "../src/bridge.h"

#include <avr/interrupt.h>
#include <avr/wdt.h>

void hal_avr_init(void);

int main(void) {
    wdt_disable();
    hal_avr_init();
    bridge_init("AVR-0001");
    sei();
    wdt_enable(WDTO_250MS);
    for (;;) {
        wdt_reset();
        bridge_poll();
    }
}
