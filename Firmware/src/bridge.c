/* The bench bridge's protocol and safety logic. See bridge.h and Firmware/README.md. */
#include "bridge.h"
#include "hal.h"

#include <stdio.h>
#include <string.h>

static char line[BRIDGE_LINE_MAX + 1];
static uint8_t line_length;
static uint8_t line_overflow;
static const char *serial_number = "0";

static struct { int16_t code; const char *text; } errors[BRIDGE_ERROR_QUEUE];
static uint8_t error_count;

static uint32_t last_contact;
static uint32_t watchdog_ms = BRIDGE_WATCHDOG_DEFAULT_MS;
static uint8_t tripped;

/* Outputs as commanded (the safe state is all zero). */
static uint8_t gpio_out[HAL_GPIO_COUNT];
static uint16_t pwm[HAL_PWM_COUNT];
static uint8_t relay[HAL_RELAY_COUNT];
static uint8_t heater_percent;
static uint16_t supply_mv, supply_limit_ma = 1000;
static uint8_t supply_on;
static int32_t axis_position, axis_target;
static uint32_t last_axis_step;

static void queue_error(int16_t code, const char *text) {
    if (error_count < BRIDGE_ERROR_QUEUE) {
        errors[error_count].code = code;
        errors[error_count].text = text;
        error_count++;
    } else {
        errors[BRIDGE_ERROR_QUEUE - 1].code = -350;
        errors[BRIDGE_ERROR_QUEUE - 1].text = "Queue overflow";
    }
}

static void reply(const char *text) {
    hal_serial_write(text);
    hal_serial_write("\n");
}

static void reply_milli(int32_t milli) {
    char buffer[24];
    int32_t whole = milli / 1000, frac = milli % 1000;
    if (frac < 0) frac = -frac;
    snprintf(buffer, sizeof buffer, "%s%ld.%03ld", (milli < 0 && whole == 0) ? "-" : "", (long)whole, (long)frac);
    reply(buffer);
}

static void reply_int(int32_t value) {
    char buffer[16];
    snprintf(buffer, sizeof buffer, "%ld", (long)value);
    reply(buffer);
}

static int any_output_active(void) {
    for (uint8_t i = 0; i < HAL_GPIO_COUNT; i++) if (gpio_out[i]) return 1;
    for (uint8_t i = 0; i < HAL_PWM_COUNT; i++) if (pwm[i]) return 1;
    for (uint8_t i = 0; i < HAL_RELAY_COUNT; i++) if (relay[i]) return 1;
    return heater_percent || supply_on || axis_target != axis_position;
}

void bridge_safe_state(void) {
    for (uint8_t i = 0; i < HAL_GPIO_COUNT; i++) { gpio_out[i] = 0; hal_gpio_set(i, 0); }
    for (uint8_t i = 0; i < HAL_PWM_COUNT; i++) { pwm[i] = 0; hal_pwm_set(i, 0); }
    for (uint8_t i = 0; i < HAL_RELAY_COUNT; i++) { relay[i] = 0; hal_relay_set(i, 0); }
    heater_percent = 0;
    hal_heater_set(0);
    supply_on = 0;
    hal_supply_set(supply_mv, supply_limit_ma, 0);
    axis_target = axis_position;
}

void bridge_init(const char *serial) {
    serial_number = serial;
    line_length = 0;
    line_overflow = 0;
    error_count = 0;
    tripped = 0;
    watchdog_ms = BRIDGE_WATCHDOG_DEFAULT_MS;
    supply_mv = 0;
    supply_limit_ma = 1000;
    axis_position = axis_target = 0;
    bridge_safe_state();
    last_contact = hal_millis();
    last_axis_step = last_contact;
}

int bridge_watchdog_tripped(void) { return tripped; }

/* Case-insensitive comparison of a header with its expected spelling. */
static int is(const char *header, const char *expected) {
    for (; *header && *expected; header++, expected++) {
        char a = *header, b = *expected;
        if (a >= 'a' && a <= 'z') a = (char)(a - 32);
        if (a != b) return 0;
    }
    return *header == 0 && *expected == 0;
}

/* A decimal number ("5", "-2", "12.345") as thousandths. 0 on success. */
static int parse_milli(const char *text, int32_t *out) {
    int32_t sign = 1, whole = 0, frac = 0, scale = 1000;
    if (!text || !*text) return -1;
    if (*text == '-') { sign = -1; text++; } else if (*text == '+') { text++; }
    if (*text < '0' || *text > '9') return -1;
    while (*text >= '0' && *text <= '9') {
        whole = whole * 10 + (*text++ - '0');
        if (whole > 1000000) return -1;
    }
    if (*text == '.') {
        text++;
        while (*text >= '0' && *text <= '9') {
            if (scale > 1) { scale /= 10; frac += (*text - '0') * scale; }
            text++;
        }
    }
    if (*text) return -1;
    *out = sign * (whole * 1000 + frac);
    return 0;
}

static int parse_int(const char *text, int32_t *out) {
    int32_t milli;
    if (parse_milli(text, &milli) != 0 || milli % 1000 != 0) return -1;
    *out = milli / 1000;
    return 0;
}

static int parse_on_off(const char *text, uint8_t *out) {
    if (!text) return -1;
    if (is(text, "ON") || is(text, "1")) { *out = 1; return 0; }
    if (is(text, "OFF") || is(text, "0")) { *out = 0; return 0; }
    return -1;
}

/* Refuse an output change while the watchdog trip is latched. */
static int outputs_locked(void) {
    if (tripped) { queue_error(-300, "Watchdog tripped; send SYST:WDOG:ACK"); return 1; }
    return 0;
}

void bridge_handle_line(char *text) {
    char *header = text;
    while (*header == ' ') header++;
    if (!*header) return;
    char *arguments = strchr(header, ' ');
    char *first = 0, *second = 0;
    if (arguments) {
        *arguments++ = 0;
        while (*arguments == ' ') arguments++;
        first = *arguments ? arguments : 0;
        if (first) {
            char *comma = strchr(first, ',');
            if (comma) { *comma = 0; second = comma + 1; while (*second == ' ') second++; }
            char *end = first + strlen(first);
            while (end > first && end[-1] == ' ') *--end = 0;
        }
    }
    int32_t a, b;
    uint8_t on;

    if (is(header, "*IDN?")) {
        hal_serial_write(BRIDGE_IDN);
        hal_serial_write(serial_number);
        reply("," BRIDGE_VERSION);
    } else if (is(header, "*OPC?")) {
        reply("1");
    } else if (is(header, "*RST")) {
        bridge_safe_state();
        supply_mv = 0;
        supply_limit_ma = 1000;
    } else if (is(header, "*CLS")) {
        error_count = 0;
    } else if (is(header, "SYST:ERR?")) {
        if (error_count == 0) { reply("0,\"No error\""); return; }
        char buffer[64];
        snprintf(buffer, sizeof buffer, "%d,\"%s\"", errors[0].code, errors[0].text);
        memmove(&errors[0], &errors[1], sizeof errors[0] * (size_t)(error_count - 1));
        error_count--;
        reply(buffer);
    } else if (is(header, "SYST:WDOG?")) {
        char buffer[24];
        snprintf(buffer, sizeof buffer, "%lu,%d", (unsigned long)watchdog_ms, tripped);
        reply(buffer);
    } else if (is(header, "SYST:WDOG")) {
        if (!first) queue_error(-109, "Missing parameter");
        else if (parse_int(first, &a) != 0 || a < 100 || a > 60000) queue_error(-222, "Data out of range");
        else watchdog_ms = (uint32_t)a;
    } else if (is(header, "SYST:WDOG:ACK")) {
        tripped = 0;
    } else if (is(header, "GPIO?")) {
        if (!first || parse_int(first, &a) != 0 || a < 0 || a >= HAL_GPIO_COUNT) queue_error(-222, "Data out of range");
        else reply_int(hal_gpio_get((uint8_t)a));
    } else if (is(header, "GPIO")) {
        if (!first || !second) queue_error(-109, "Missing parameter");
        else if (parse_int(first, &a) != 0 || a < 0 || a >= HAL_GPIO_COUNT || parse_on_off(second, &on) != 0) queue_error(-222, "Data out of range");
        else if (!outputs_locked()) { gpio_out[a] = on; hal_gpio_set((uint8_t)a, on); }
    } else if (is(header, "MEAS:ADC?")) {
        if (!first || parse_int(first, &a) != 0 || a < 0 || a >= HAL_ADC_COUNT) queue_error(-222, "Data out of range");
        else reply_int(hal_adc_read((uint8_t)a));
    } else if (is(header, "MEAS:TEMP?")) {
        reply_milli((int32_t)hal_heater_temperature_decidegrees() * 100);
    } else if (is(header, "PWM?")) {
        if (!first || parse_int(first, &a) != 0 || a < 0 || a >= HAL_PWM_COUNT) queue_error(-222, "Data out of range");
        else reply_int(pwm[a]);
    } else if (is(header, "PWM")) {
        if (!first || !second) queue_error(-109, "Missing parameter");
        else if (parse_int(first, &a) != 0 || a < 0 || a >= HAL_PWM_COUNT || parse_int(second, &b) != 0 || b < 0 || b > 1000) queue_error(-222, "Data out of range");
        else if (!outputs_locked()) { pwm[a] = (uint16_t)b; hal_pwm_set((uint8_t)a, (uint16_t)b); }
    } else if (is(header, "RELAY?")) {
        if (!first || parse_int(first, &a) != 0 || a < 0 || a >= HAL_RELAY_COUNT) queue_error(-222, "Data out of range");
        else reply_int(hal_relay_get((uint8_t)a));
    } else if (is(header, "RELAY")) {
        if (!first || !second) queue_error(-109, "Missing parameter");
        else if (parse_int(first, &a) != 0 || a < 0 || a >= HAL_RELAY_COUNT || parse_on_off(second, &on) != 0) queue_error(-222, "Data out of range");
        else if (!outputs_locked()) { relay[a] = on; hal_relay_set((uint8_t)a, on); }
    } else if (is(header, "HEAT:POW?")) {
        reply_int(heater_percent);
    } else if (is(header, "HEAT:POW")) {
        if (!first) queue_error(-109, "Missing parameter");
        else if (parse_int(first, &a) != 0 || a < 0 || a > 100) queue_error(-222, "Data out of range");
        else if (!outputs_locked()) { heater_percent = (uint8_t)a; hal_heater_set((uint8_t)a); }
    } else if (is(header, "AXIS:POS?")) {
        reply_int(axis_position);
    } else if (is(header, "AXIS:LIM?")) {
        reply_int(hal_axis_limits());
    } else if (is(header, "AXIS:MOVE")) {
        if (!first) queue_error(-109, "Missing parameter");
        else if (parse_int(first, &a) != 0 || a < -100000 || a > 100000) queue_error(-222, "Data out of range");
        else if (!outputs_locked()) axis_target = axis_position + a;
    } else if (is(header, "AXIS:STOP")) {
        axis_target = axis_position;
    } else if (is(header, "SOUR:VOLT?")) {
        reply_milli(supply_mv);
    } else if (is(header, "SOUR:VOLT")) {
        if (!first) queue_error(-109, "Missing parameter");
        else if (parse_milli(first, &a) != 0 || a < 0 || a > 30000) queue_error(-222, "Data out of range");
        else if (!outputs_locked()) { supply_mv = (uint16_t)a; hal_supply_set(supply_mv, supply_limit_ma, supply_on); }
    } else if (is(header, "SOUR:CURR:LIM?")) {
        reply_milli(supply_limit_ma);
    } else if (is(header, "SOUR:CURR:LIM")) {
        if (!first) queue_error(-109, "Missing parameter");
        else if (parse_milli(first, &a) != 0 || a < 0 || a > 3000) queue_error(-222, "Data out of range");
        else if (!outputs_locked()) { supply_limit_ma = (uint16_t)a; hal_supply_set(supply_mv, supply_limit_ma, supply_on); }
    } else if (is(header, "OUTP?")) {
        reply_int(supply_on);
    } else if (is(header, "OUTP")) {
        if (!first) queue_error(-109, "Missing parameter");
        else if (parse_on_off(first, &on) != 0) queue_error(-222, "Data out of range");
        else if (!outputs_locked()) { supply_on = on; hal_supply_set(supply_mv, supply_limit_ma, on); }
    } else if (is(header, "MEAS:VOLT?")) {
        reply_milli(hal_supply_measured_millivolts());
    } else if (is(header, "MEAS:CURR?")) {
        reply_milli(hal_supply_measured_milliamps());
    } else {
        queue_error(-113, "Undefined header");
    }
}

void bridge_poll(void) {
    uint8_t byte;
    while (hal_serial_read(&byte)) {
        last_contact = hal_millis();
        if (byte == '\r') continue;
        if (byte == '\n') {
            if (line_overflow) queue_error(-100, "Command error; line too long");
            else { line[line_length] = 0; bridge_handle_line(line); }
            line_length = 0;
            line_overflow = 0;
        } else if (line_length < BRIDGE_LINE_MAX) {
            line[line_length++] = (char)byte;
        } else {
            line_overflow = 1;
        }
    }
    uint32_t now = hal_millis();
    /* The axis moves one step per millisecond towards its target, stopping at a limit. */
    while (axis_target != axis_position && now - last_axis_step >= 1) {
        int8_t direction = axis_target > axis_position ? 1 : -1;
        last_axis_step++;
        if (!hal_axis_step(direction)) {
            axis_target = axis_position;
            queue_error(-200, "Execution error; axis at limit");
            break;
        }
        axis_position += direction;
    }
    if (axis_target == axis_position) last_axis_step = now;
    /* The host went quiet: every output to its safe state, latched until acknowledged. */
    if (now - last_contact > watchdog_ms && any_output_active()) {
        bridge_safe_state();
        tripped = 1;
    }
}
