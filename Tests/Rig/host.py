#!/usr/bin/env python3
"""Host side of the hardware rig: serves requests the guest's tests send over a virtio-serial
channel, by driving QEMU through QMP and by holding the host end of the FTDI serial socket.

Requests are one line each, `ID COMMAND ARGS...`; replies are `ID ok DATA` or `ID err MESSAGE`.
  screendump NAME               QMP screendump to NAME inside the results folder (PPM)
  ftdi-send HEX                 write bytes to the FTDI device's host end
  ftdi-recv N TIMEOUT_MS        bytes the guest wrote to /dev/ttyUSB0 (up to N), as hex
  ftdi-clear                    forget what was received so far
  usb-unplug ID [DELAY_MS]      QMP device_del, now or after a delay (replies at once)
  usb-plug ID                   QMP device_add with the device's original arguments
                                (the touchscreen touch0 too)
  touch X Y                     a tap on the touchscreen at X, Y (fractions of the screen):
                                QMP input-send-event down, then up, on the console video0
"""
import json
import os
import socket
import sys
import threading
import time

sockets, results = sys.argv[1], sys.argv[2]
# The USB devices the rig can unplug and plug again, with the arguments QEMU created them with.
DEVICES = {
    "ftdi0": {"driver": "usb-serial", "bus": "xhci.0", "chardev": "ftdi", "id": "ftdi0"},
    "tablet0": {"driver": "usb-tablet", "bus": "xhci.0", "id": "tablet0"},
    "touch0": {"driver": "virtio-tablet-pci", "bus": "rp-touch", "id": "touch0", "display": "video0"},
}
ABS_MAX = 0x7FFF  # QEMU's absolute axis range, which the virtio tablet reports


def log(message):
    with open(os.path.join(results, "host.log"), "a") as f:
        f.write(f"{time.monotonic():.3f} {message}\n")


def connect(name, deadline):
    path = os.path.join(sockets, name)
    while True:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            return s
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class QMP:
    def __init__(self, sock):
        self.sock = sock
        self.file = sock.makefile("rwb")
        self.lock = threading.Lock()
        self.file.readline()  # greeting
        self.command("qmp_capabilities")

    def command(self, name, **arguments):
        with self.lock:
            message = {"execute": name}
            if arguments:
                message["arguments"] = arguments
            self.file.write(json.dumps(message).encode() + b"\n")
            self.file.flush()
            while True:
                reply = json.loads(self.file.readline())
                if "event" in reply:
                    log(f"qmp event {reply['event']}")
                    continue
                if "error" in reply:
                    raise RuntimeError(reply["error"].get("desc", str(reply["error"])))
                return reply.get("return")


class FTDI:
    def __init__(self, sock):
        self.sock = sock
        self.received = bytearray()
        self.cond = threading.Condition()
        threading.Thread(target=self.reader, daemon=True).start()

    def reader(self):
        while True:
            data = self.sock.recv(4096)
            if not data:
                return
            with self.cond:
                self.received += data
                self.cond.notify_all()

    def recv(self, n, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.received) < n and time.monotonic() < deadline:
                self.cond.wait(deadline - time.monotonic())
            out = bytes(self.received[:n])
            del self.received[:n]
            return out


def main():
    deadline = time.monotonic() + 30
    qmp = QMP(connect("qmp.sock", deadline))
    ftdi = FTDI(connect("ftdi.sock", deadline))
    control = connect("control.sock", deadline)
    log("connected")
    lines = control.makefile("rb")

    def reply(rid, text):
        control.sendall(f"{rid} {text}\n".encode())

    def unplug(device):
        qmp.command("device_del", id=device)
        log(f"unplugged {device}")

    for raw in lines:
        parts = raw.decode(errors="replace").strip().split()
        if len(parts) < 2:
            continue
        rid, command, args = parts[0], parts[1], parts[2:]
        try:
            if command == "screendump":
                name = os.path.basename(args[0])
                qmp.command("screendump", filename=os.path.join(results, name))
                reply(rid, "ok " + name)
            elif command == "ftdi-send":
                ftdi.sock.sendall(bytes.fromhex(args[0]))
                reply(rid, "ok")
            elif command == "ftdi-recv":
                reply(rid, "ok " + (ftdi.recv(int(args[0]), int(args[1]) / 1000).hex() or "-"))
            elif command == "ftdi-clear":
                with ftdi.cond:
                    ftdi.received.clear()
                reply(rid, "ok")
            elif command == "usb-unplug":
                device = args[0]
                if device not in DEVICES:
                    raise RuntimeError(f"unknown device {device}; known: {', '.join(DEVICES)}")
                delay = int(args[1]) / 1000 if len(args) > 1 else 0
                if delay:
                    threading.Timer(delay, unplug, [device]).start()
                else:
                    unplug(device)
                reply(rid, "ok")
            elif command == "touch":
                x, y = (round(float(a) * ABS_MAX) for a in args[:2])
                at = [{"type": "abs", "data": {"axis": "x", "value": x}}, {"type": "abs", "data": {"axis": "y", "value": y}}]
                qmp.command("input-send-event", device="video0",
                            events=at + [{"type": "btn", "data": {"down": True, "button": "left"}}])
                time.sleep(0.05)
                qmp.command("input-send-event", device="video0",
                            events=at + [{"type": "btn", "data": {"down": False, "button": "left"}}])
                log(f"touch {x} {y}")
                reply(rid, "ok")
            elif command == "usb-plug":
                qmp.command("device_add", **DEVICES[args[0]])
                reply(rid, "ok")
            else:
                reply(rid, f"err unknown command {command}")
        except Exception as e:  # the guest gets the reason; the helper keeps serving
            log(f"{command} failed: {e}")
            reply(rid, f"err {e}")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        log(f"host helper stopped: {e}")
