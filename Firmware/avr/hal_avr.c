/* The bench bridge's HAL on an ATmega328P at 16 MHz (Arduino Uno class). Pin map:
     UART          PD0 RX, PD1 TX at 115200 8N1 (U2X), interrupt-driven receive ring
     GPIO 0..5     PD2..PD7 (outputs); GPIO 6, 7 are PB0, PB4: the axis limit switches (inputs, pulled up, active low)
     PWM 0, 1      OC1A PB1 (D9), OC1B PB2 (D10), 10-bit fast PWM
     heater        OC2A PB3 (D11), 8-bit fast PWM to a MOSFET
     relays 0, 1   PC4 (A4), PC5 (A5), active high to relay drivers
     axis          step PC2 (A2), direction PC3 (A3)
     ADC 0         PC0 (A0) heater sensor, 10 mV/°C (LM35-style)
     ADC 1         PC1 (A1) supply sense through a 6:1 divider
   The lab supply is an external instrument: its setpoints are kept and its output is read back
   on ADC 1; the current is not measured on this board. */
#include "../src/hal.h"

#include <avr/interrupt.h>
#include <avr/io.h>
#include <util/delay.h>

static volatile uint32_t millis_count;
static volatile uint8_t rx_buffer[64];
static volatile uint8_t rx_head, rx_tail;
static uint8_t supply_on_flag;

ISR(TIMER0_COMPA_vect) { millis_count++; }

ISR(USART_RX_vect) {
    uint8_t byte = UDR0;
    uint8_t next = (uint8_t)((rx_head + 1) & 63);
    if (next != rx_tail) { rx_buffer[rx_head] = byte; rx_head = next; }
}

void hal_avr_init(void) {
    /* 1 ms tick: Timer0 CTC, prescaler 64, 250 counts. */
    TCCR0A = _BV(WGM01);
    TCCR0B = _BV(CS01) | _BV(CS00);
    OCR0A = 249;
    TIMSK0 = _BV(OCIE0A);
    /* UART 115200 with U2X: UBRR = 16. */
    UCSR0A = _BV(U2X0);
    UBRR0 = 16;
    UCSR0B = _BV(RXEN0) | _BV(TXEN0) | _BV(RXCIE0);
    UCSR0C = _BV(UCSZ01) | _BV(UCSZ00);
    /* Outputs low first, then directions: nothing glitches on at boot. */
    PORTD &= (uint8_t)~0xFC;
    DDRD |= 0xFC;
    DDRB |= _BV(PB1) | _BV(PB2) | _BV(PB3);
    DDRB &= (uint8_t)~(_BV(PB0) | _BV(PB4));
    PORTB |= _BV(PB0) | _BV(PB4);
    PORTC &= (uint8_t)~(_BV(PC2) | _BV(PC3) | _BV(PC4) | _BV(PC5));
    DDRC |= _BV(PC2) | _BV(PC3) | _BV(PC4) | _BV(PC5);
    /* Timer1: 10-bit fast PWM on OC1A/OC1B; Timer2: fast PWM on OC2A. */
    TCCR1A = _BV(COM1A1) | _BV(COM1B1) | _BV(WGM11) | _BV(WGM10);
    TCCR1B = _BV(WGM12) | _BV(CS11);
    OCR1A = 0;
    OCR1B = 0;
    TCCR2A = _BV(COM2A1) | _BV(WGM21) | _BV(WGM20);
    TCCR2B = _BV(CS22);
    OCR2A = 0;
    /* ADC: AVcc reference, prescaler 128. */
    ADMUX = _BV(REFS0);
    ADCSRA = _BV(ADEN) | _BV(ADPS2) | _BV(ADPS1) | _BV(ADPS0);
}

uint32_t hal_millis(void) {
    uint32_t value;
    uint8_t sreg = SREG;
    cli();
    value = millis_count;
    SREG = sreg;
    return value;
}

int hal_serial_read(uint8_t *byte) {
    if (rx_head == rx_tail) return 0;
    *byte = rx_buffer[rx_tail];
    rx_tail = (uint8_t)((rx_tail + 1) & 63);
    return 1;
}

void hal_serial_write(const char *text) {
    while (*text) {
        while (!(UCSR0A & _BV(UDRE0))) {}
        UDR0 = (uint8_t)*text++;
    }
}

void hal_gpio_set(uint8_t line, uint8_t value) {
    if (line > 5) return; /* 6 and 7 are inputs */
    uint8_t bit = (uint8_t)_BV(line + 2);
    if (value) PORTD |= bit; else PORTD &= (uint8_t)~bit;
}

uint8_t hal_gpio_get(uint8_t line) {
    if (line <= 5) return (PIND >> (line + 2)) & 1;
    if (line == 6) return (PINB >> PB0) & 1;
    if (line == 7) return (PINB >> PB4) & 1;
    return 0;
}

uint16_t hal_adc_read(uint8_t channel) {
    if (channel > 1) return 0;
    ADMUX = (uint8_t)(_BV(REFS0) | channel);
    ADCSRA |= _BV(ADSC);
    while (ADCSRA & _BV(ADSC)) {}
    return ADC;
}

void hal_pwm_set(uint8_t channel, uint16_t permille) {
    uint16_t duty = (uint16_t)((uint32_t)permille * 1023u / 1000u);
    if (channel == 0) OCR1A = duty; else if (channel == 1) OCR1B = duty;
}

void hal_relay_set(uint8_t relay, uint8_t on) {
    uint8_t bit = relay == 0 ? _BV(PC4) : relay == 1 ? _BV(PC5) : 0;
    if (on) PORTC |= bit; else PORTC &= (uint8_t)~bit;
}

uint8_t hal_relay_get(uint8_t relay) {
    /* The driver pin as it reads back (PINC): what the relay driver is given. */
    uint8_t bit = relay == 0 ? _BV(PC4) : relay == 1 ? _BV(PC5) : 0;
    return bit && (PINC & bit) ? 1 : 0;
}

void hal_heater_set(uint8_t percent) { OCR2A = (uint8_t)((uint16_t)(percent > 100 ? 100 : percent) * 255u / 100u); }

int16_t hal_heater_temperature_decidegrees(void) {
    /* 10 mV/°C at 5 V over 1023 counts: decidegrees = counts * 5000 / 1023. */
    return (int16_t)((uint32_t)hal_adc_read(0) * 5000u / 1023u);
}

uint8_t hal_axis_limits(void) {
    /* Switches pull to ground when hit. */
    return (uint8_t)((!hal_gpio_get(6) ? 1 : 0) | (!hal_gpio_get(7) ? 2 : 0));
}

int hal_axis_step(int8_t direction) {
    uint8_t limits = hal_axis_limits();
    if ((direction < 0 && (limits & 1)) || (direction > 0 && (limits & 2))) return 0;
    if (direction > 0) PORTC |= _BV(PC3); else PORTC &= (uint8_t)~_BV(PC3);
    PORTC |= _BV(PC2);
    _delay_us(5);
    PORTC &= (uint8_t)~_BV(PC2);
    return 1;
}

void hal_supply_set(uint16_t millivolts, uint16_t current_limit_milliamps, uint8_t on) {
    (void)millivolts;
    (void)current_limit_milliamps;
    supply_on_flag = on;
}

uint16_t hal_supply_measured_millivolts(void) {
    return supply_on_flag ? (uint16_t)((uint32_t)hal_adc_read(1) * 6u * 5000u / 1023u) : 0;
}

uint16_t hal_supply_measured_milliamps(void) { return 0; }
