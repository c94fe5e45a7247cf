#!/usr/bin/env python3
"""A child process for observer tests: opens and closes descriptors on command, one command per
line on stdin, and answers each with one line on stdout. It blocks between commands, so what it
holds is exactly what the test asked for."""
import os
import socket
import sys

held = {}
for line in sys.stdin:
    cmd = line.split()
    if not cmd:
        continue
    try:
        if cmd[0] == "file":
            fd = os.open(cmd[1], os.O_RDONLY)
            reply = str(fd)
        elif cmd[0] == "pipe":
            r, w = os.pipe()
            reply = f"{r} {w}"
        elif cmd[0] == "tcp-listen":
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            s.listen()
            held[s.fileno()] = s
            reply = f"{s.fileno()} {s.getsockname()[1]}"
        elif cmd[0] == "tcp-connect":
            s = socket.create_connection(("127.0.0.1", int(cmd[1])))
            held[s.fileno()] = s
            reply = f"{s.fileno()} {s.getsockname()[1]}"
        elif cmd[0] == "tcp6-listen":
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.bind(("::1", 0))
            s.listen()
            held[s.fileno()] = s
            reply = f"{s.fileno()} {s.getsockname()[1]}"
        elif cmd[0] == "udp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            held[s.fileno()] = s
            reply = f"{s.fileno()} {s.getsockname()[1]}"
        elif cmd[0] == "unix-listen":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(cmd[1])
            s.listen()
            held[s.fileno()] = s
            reply = str(s.fileno())
        elif cmd[0] == "unix-pair":
            a, b = socket.socketpair()
            held[a.fileno()] = a
            held[b.fileno()] = b
            reply = f"{a.fileno()} {b.fileno()}"
        elif cmd[0] == "eventfd":
            reply = str(os.eventfd(0))
        elif cmd[0] == "close":
            fd = int(cmd[1])
            s = held.pop(fd, None)
            if s is not None:
                s.close()
            else:
                os.close(fd)
            reply = "ok"
        elif cmd[0] == "ping":
            reply = "pong"
        elif cmd[0] == "exit":
            sys.exit(0)
        else:
            reply = "err unknown command"
    except OSError as e:
        reply = f"err {e.errno}"
    print(reply, flush=True)
