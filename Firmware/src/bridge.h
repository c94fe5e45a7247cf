/* The bench bridge: a SCPI-style line protocol for GPIO, ADC, PWM, relays, a heater, an axis and a
   lab supply, with a watchdog that drives every output to its safe state when the host goes quiet.
   Board-independent: it talks to the board through hal.h only. */
#ifndef BRIDGE_H
#define BRIDGE_H
#include <stdint.h>

#define BRIDGE_IDN "WorldOS,BenchBridge,"
#define BRIDGE_VERSION "0.1"
#define BRIDGE_LINE_MAX 96
#define BRIDGE_ERROR_QUEUE 8
#define BRIDGE_WATCHDOG_DEFAULT_MS 3000u

void bridge_init(const char *serial_number);
/* Feed received bytes and run timers; call as often as possible. */
void bridge_poll(void);
/* Drive every output to its safe state (relays off, heater 0, PWM 0, supply off, GPIO low). */
void bridge_safe_state(void);
/* 1 after the watchdog tripped, until the host acknowledges with SYST:WDOG:ACK. */
int bridge_watchdog_tripped(void);
/* Handle one complete line (without terminator); exposed for tests. */
void bridge_handle_line(char *line);

#endif
