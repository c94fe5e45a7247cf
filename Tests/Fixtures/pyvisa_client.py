#!/usr/bin/env python3
"""A third-party client for the bench bridge: pyvisa with the pure-Python pyvisa-py backend,
on the simulator's serial resource (ASRL). Prints what it learned as JSON."""
import json
import sys

import pyvisa

port = sys.argv[1]
rm = pyvisa.ResourceManager("@py")
inst = rm.open_resource(f"ASRL{port}::INSTR", baud_rate=115200, read_termination="\n", write_termination="\n", timeout=2000)
result = {"idn": inst.query("*IDN?").strip()}
inst.write("HEAT:POW 20")
result["heat"] = inst.query("HEAT:POW?").strip()
inst.write("NOT:A:COMMAND")
result["error"] = inst.query("SYST:ERR?").strip()
result["empty"] = inst.query("SYST:ERR?").strip()
result["opc"] = inst.query("*OPC?").strip()
inst.write("*RST")
result["after_reset"] = inst.query("HEAT:POW?").strip()
inst.close()
print(json.dumps(result))
