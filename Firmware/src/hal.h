/* The bench bridge's hardware abstraction: everything the protocol and safety logic (bridge.c)
   needs from a board. avr/hal_avr.c implements it on an ATmega328P; host/hal_host.c on Linux,
   with simulated physics behind it. */
#ifndef BRIDGE_HAL_H
#define BRIDGE_HAL_H
#include <stdint.h>

#define HAL_GPIO_COUNT 8
#define HAL_PWM_COUNT 2
#define HAL_RELAY_COUNT 2
#define HAL_ADC_COUNT 4

/* Milliseconds since start; wraps after ~49 days (compare with subtraction). */
uint32_t hal_millis(void);

/* Serial link to the host: a byte if one is waiting (returns 1), else 0. */
int hal_serial_read(uint8_t *byte);
void hal_serial_write(const char *text);

void hal_gpio_set(uint8_t line, uint8_t value);
uint8_t hal_gpio_get(uint8_t line);
/* 10-bit ADC reading of a channel. */
uint16_t hal_adc_read(uint8_t channel);
/* Duty in permille (0..1000). */
void hal_pwm_set(uint8_t channel, uint16_t permille);
void hal_relay_set(uint8_t relay, uint8_t on);
/* The relay as it is (read back), which a stuck contact can make differ from what was set. */
uint8_t hal_relay_get(uint8_t relay);
/* Heater power in percent (0..100), driven as PWM on real boards. */
void hal_heater_set(uint8_t percent);
/* Heater temperature in tenths of a degree Celsius, from the board's sensor. */
int16_t hal_heater_temperature_decidegrees(void);
/* One step of the axis motor (+1 or -1); returns 0 if a limit switch stops it. */
int hal_axis_step(int8_t direction);
/* Limit switches: bit 0 the minimum end, bit 1 the maximum end. */
uint8_t hal_axis_limits(void);
/* The lab supply: setpoints in millivolts and milliamps, output on/off, and what it measures. */
void hal_supply_set(uint16_t millivolts, uint16_t current_limit_milliamps, uint8_t on);
uint16_t hal_supply_measured_millivolts(void);
uint16_t hal_supply_measured_milliamps(void);

#endif
