/* The bench bridge's HAL on Linux: the simulator. The serial link is a pseudo-terminal or a
   socket; the hardware is physics:
   - a heater (20 W at 100 %) with thermal inertia (40 J/K) losing 0.2 W/K to a 25 °C room, read by
     a 10 mV/°C sensor on ADC channel 0;
   - two relays, two PWM channels and eight GPIO lines (outputs read back as set);
   - an axis of 0..1000 steps with limit switches at both ends;
   - a lab supply driving a 10 Ω load, current-limited (constant current when over the limit),
     its voltage divided by 6 onto ADC channel 1.
   --speed N runs the physics N times faster than real time (the watchdog stays in real time).
   Faults, for the task generator (`worldos generate`): replies delayed, bytes lost at random
   (seeded, so a run is reproducible), a relay stuck where it is, a heater element cut. */
#define _GNU_SOURCE
#include "hal_host.h"

#include <errno.h>
#include <time.h>
#include <unistd.h>

static int link_fd = -1;
static struct timespec started;
static double physics_speed = 1.0;
static uint32_t physics_at;

static uint8_t gpio[HAL_GPIO_COUNT];
static uint16_t pwm[HAL_PWM_COUNT];
static uint8_t relays[HAL_RELAY_COUNT];
static uint8_t heater_percent;
static double temperature = 25.0;
static int32_t axis = 100;
static uint16_t supply_mv, supply_limit_ma;
static uint8_t supply_on;
static struct hal_host_faults faults = {.stuck_relay = -1, .cut_heater_s = -1};
/* Simulated seconds since start. */
static double simulated_s;
static uint32_t fault_random = 1;

#define AMBIENT 25.0
#define HEATER_WATTS 20.0
#define LOSS_W_PER_K 0.2
#define HEAT_CAPACITY_J_PER_K 40.0
#define LOAD_OHMS 10.0
#define AXIS_MAX 1000

void hal_host_faults(struct hal_host_faults f) {
    faults = f;
    fault_random = f.seed ? f.seed : 1;
}

/* xorshift32: a fault schedule that a seed repeats. */
static uint32_t next_random(void) {
    fault_random ^= fault_random << 13;
    fault_random ^= fault_random >> 17;
    fault_random ^= fault_random << 5;
    return fault_random;
}

void hal_host_init(int fd, double speed) {
    link_fd = fd;
    physics_speed = speed > 0 ? speed : 1.0;
    clock_gettime(CLOCK_MONOTONIC, &started);
    physics_at = 0;
}

uint32_t hal_millis(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint32_t)((now.tv_sec - started.tv_sec) * 1000 + (now.tv_nsec - started.tv_nsec) / 1000000);
}

/* Advance the heater's temperature to now, in small steps so the model stays stable. */
static void physics(void) {
    uint32_t now = hal_millis();
    double seconds = (double)(now - physics_at) / 1000.0 * physics_speed;
    physics_at = now;
    while (seconds > 0) {
        double dt = seconds > 0.5 ? 0.5 : seconds;
        int cut = faults.cut_heater_s >= 0 && simulated_s >= faults.cut_heater_s;
        double watts = (cut ? 0.0 : HEATER_WATTS * heater_percent / 100.0) - LOSS_W_PER_K * (temperature - AMBIENT);
        temperature += watts / HEAT_CAPACITY_J_PER_K * dt;
        simulated_s += dt;
        seconds -= dt;
    }
}

int hal_serial_read(uint8_t *byte) {
    if (link_fd < 0) return 0;
    ssize_t n = read(link_fd, byte, 1);
    return n == 1;
}

static void hal_serial_write_raw(const char *text);

void hal_serial_write(const char *text) {
    size_t length = 0;
    while (text[length]) length++;
    if (faults.slow_ms) usleep(faults.slow_ms * 1000u);
    if (faults.drop_percent && length > 0 && next_random() % 100 < faults.drop_percent) {
        /* A byte lost on the line: the reply arrives garbled, or without its end. */
        char copy[128];
        size_t at = next_random() % length, n = length < sizeof copy ? length : sizeof copy - 1;
        for (size_t i = 0, j = 0; i < n; i++) if (i != at) copy[j++] = text[i];
        copy[n - (at < n ? 1 : 0)] = 0;
        hal_serial_write_raw(copy);
        return;
    }
    hal_serial_write_raw(text);
}

static void hal_serial_write_raw(const char *text) {
    size_t length = 0;
    while (text[length]) length++;
    while (length > 0 && link_fd >= 0) {
        ssize_t n = write(link_fd, text, length);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) { usleep(200); continue; }
            return;
        }
        text += n;
        length -= (size_t)n;
    }
}

void hal_gpio_set(uint8_t line, uint8_t value) { if (line < HAL_GPIO_COUNT) gpio[line] = value ? 1 : 0; }
uint8_t hal_gpio_get(uint8_t line) { return line < HAL_GPIO_COUNT ? gpio[line] : 0; }

uint16_t hal_adc_read(uint8_t channel) {
    switch (channel) {
    case 0: physics(); return (uint16_t)(temperature * 0.010 / 5.0 * 1023.0 + 0.5);
    case 1: return (uint16_t)(hal_supply_measured_millivolts() / 6.0 / 5000.0 * 1023.0 + 0.5);
    case 2: return 512;
    default: return 0;
    }
}

void hal_pwm_set(uint8_t channel, uint16_t permille) { if (channel < HAL_PWM_COUNT) pwm[channel] = permille; }
void hal_relay_set(uint8_t relay, uint8_t on) {
    if (relay < HAL_RELAY_COUNT && (int)relay != faults.stuck_relay) relays[relay] = on ? 1 : 0;
}

void hal_heater_set(uint8_t percent) {
    physics();
    heater_percent = percent > 100 ? 100 : percent;
}

int16_t hal_heater_temperature_decidegrees(void) {
    physics();
    return (int16_t)(temperature * 10.0 + (temperature >= 0 ? 0.5 : -0.5));
}

int hal_axis_step(int8_t direction) {
    if ((direction > 0 && axis >= AXIS_MAX) || (direction < 0 && axis <= 0)) return 0;
    axis += direction;
    return 1;
}

uint8_t hal_axis_limits(void) { return (uint8_t)((axis <= 0 ? 1 : 0) | (axis >= AXIS_MAX ? 2 : 0)); }

void hal_supply_set(uint16_t millivolts, uint16_t current_limit_milliamps, uint8_t on) {
    supply_mv = millivolts;
    supply_limit_ma = current_limit_milliamps;
    supply_on = on;
}

uint16_t hal_supply_measured_milliamps(void) {
    if (!supply_on) return 0;
    double ma = supply_mv / LOAD_OHMS;
    return (uint16_t)(ma > supply_limit_ma ? supply_limit_ma : ma);
}

uint16_t hal_supply_measured_millivolts(void) {
    if (!supply_on) return 0;
    return (uint16_t)(hal_supply_measured_milliamps() * LOAD_OHMS);
}

uint8_t hal_host_relay(uint8_t relay) { return relay < HAL_RELAY_COUNT ? relays[relay] : 0; }
uint8_t hal_relay_get(uint8_t relay) { return hal_host_relay(relay); }
uint8_t hal_host_heater(void) { return heater_percent; }
