/* The bench bridge firmware's command parser as a libFuzzer target: the input is what arrives on
   its serial line, split into lines as bridge_poll does (carriage returns dropped, a line longer
   than BRIDGE_LINE_MAX refused), each handed to bridge_handle_line. Replies go to /dev/null. */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "bridge.h"
#include "hal_host.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int started = 0;
    if (!started) {
        hal_host_init(open("/dev/null", O_WRONLY), 1.0);
        bridge_init("FUZZ-0001");
        started = 1;
    }
    char line[BRIDGE_LINE_MAX + 1];
    size_t length = 0;
    int overflow = 0;
    for (size_t i = 0; i < size; i++) {
        uint8_t byte = data[i];
        if (byte == '\r') continue;
        if (byte == '\n') {
            if (!overflow) { line[length] = 0; bridge_handle_line(line); }
            length = 0;
            overflow = 0;
        } else if (length < BRIDGE_LINE_MAX) {
            line[length++] = (char)byte;
        } else {
            overflow = 1;
        }
    }
    bridge_safe_state();
    return 0;
}
