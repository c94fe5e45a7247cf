#ifndef BRIDGE_HAL_HOST_H
#define BRIDGE_HAL_HOST_H
#include "../src/hal.h"

/* Serve the bridge over `fd` (a pty master or a connected socket), physics `speed` times real time. */
void hal_host_init(int fd, double speed);
/* What the simulated hardware is doing, for the simulator's own log. */
uint8_t hal_host_relay(uint8_t relay);
uint8_t hal_host_heater(void);
#endif
