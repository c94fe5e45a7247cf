#!/usr/bin/env python3
"""A vendor-class USB function served from user space through FunctionFS: one interface with a
bulk OUT and a bulk IN endpoint; whatever arrives on OUT is sent back on IN. Runs in the guest."""
import os
import struct
import sys
import threading
import time

mount = sys.argv[1]
FUNCTIONFS_DESCRIPTORS_MAGIC_V2, FUNCTIONFS_STRINGS_MAGIC = 3, 2
HAS_FS_DESC, HAS_HS_DESC = 1, 2


def descriptors(packet):
    interface = struct.pack("<BBBBBBBBB", 9, 4, 0, 0, 2, 0xFF, 0, 0, 1)
    out = struct.pack("<BBBBHB", 7, 5, 0x01, 2, packet, 0)
    inn = struct.pack("<BBBBHB", 7, 5, 0x82, 2, packet, 0)
    return interface + out + inn


body = struct.pack("<II", 3, 3) + descriptors(64) + descriptors(512)
head = struct.pack("<III", FUNCTIONFS_DESCRIPTORS_MAGIC_V2, 12 + len(body), HAS_FS_DESC | HAS_HS_DESC)
text = b"WorldOS rig bulk echo\0"
strings = struct.pack("<IIIIH", FUNCTIONFS_STRINGS_MAGIC, 16 + 2 + len(text), 1, 1, 0x0409) + text

ep0 = os.open(os.path.join(mount, "ep0"), os.O_RDWR)
os.write(ep0, head + body)
os.write(ep0, strings)


def events():
    while True:
        os.read(ep0, 12 * 4)  # ENABLE/DISABLE/SETUP events; nothing to answer for bulk echo


threading.Thread(target=events, daemon=True).start()
while True:
    try:
        out = os.open(os.path.join(mount, "ep1"), os.O_RDONLY)
        inn = os.open(os.path.join(mount, "ep2"), os.O_WRONLY)
        while True:
            data = os.read(out, 512)
            os.write(inn, data)
    except OSError:  # not bound to a host yet, or the host went away: try again
        time.sleep(0.05)
