#!/usr/bin/env python3
"""A touchscreen made by a program through uinput, as an attacker with /dev/uinput would make
one to tap the panel for its operator. Stays until its stdin closes (or 60 s)."""
import fcntl
import os
import select
import struct
import sys

UI_SET_EVBIT, UI_SET_KEYBIT, UI_SET_ABSBIT, UI_DEV_CREATE = 0x40045564, 0x40045565, 0x40045567, 0x5501
EV_KEY, EV_ABS, BTN_TOUCH, ABS_X, ABS_Y = 1, 3, 0x14A, 0, 1

fd = os.open("/dev/uinput", os.O_WRONLY | os.O_NONBLOCK)
fcntl.ioctl(fd, UI_SET_EVBIT, EV_KEY)
fcntl.ioctl(fd, UI_SET_KEYBIT, BTN_TOUCH)
fcntl.ioctl(fd, UI_SET_EVBIT, EV_ABS)
fcntl.ioctl(fd, UI_SET_ABSBIT, ABS_X)
fcntl.ioctl(fd, UI_SET_ABSBIT, ABS_Y)
absmax = [0] * 64
absmax[ABS_X] = absmax[ABS_Y] = 1000
# struct uinput_user_dev: name[80], input_id (4 × u16), ff_effects_max, absmax/absmin/absfuzz/absflat[64]
device = struct.pack("80sHHHHI", b"WorldOS forged touch", 3, 1, 1, 1, 0) + struct.pack("64i", *absmax) + bytes(3 * 64 * 4)
os.write(fd, device)
fcntl.ioctl(fd, UI_DEV_CREATE)
print("created", flush=True)
select.select([sys.stdin], [], [], 60)
