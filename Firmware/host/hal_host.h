#ifndef BRIDGE_HAL_HOST_H
#define BRIDGE_HAL_HOST_H
#include "../src/hal.h"

/* Serve the bridge over `fd` (a pty master or a connected socket), physics `speed` times real time. */
void hal_host_init(int fd, double speed);
/* Injected faults: each reply delayed by slow_ms; one byte of it lost with drop_percent % chance (seeded);
   relay stuck_relay (-1: none) ignores every set; the heater's element cut after cut_heater_s seconds
   of simulated time (negative: never): the power still reads as set, and nothing heats. */
struct hal_host_faults {
    unsigned slow_ms;
    unsigned drop_percent;
    int stuck_relay;
    unsigned seed;
    double cut_heater_s;
};
void hal_host_faults(struct hal_host_faults faults);
/* What the simulated hardware is doing, for the simulator's own log. */
uint8_t hal_host_relay(uint8_t relay);
uint8_t hal_host_heater(void);
#endif
