"""Drives a program through a real pseudo-terminal, for tests.

Usage: pty_drive.py STEPS_JSON PROGRAM ARG...
STEPS_JSON is a list of {"expect": TEXT, "send": TEXT, "run": SHELL?}: wait
until TEXT has appeared on the terminal, run SHELL (if given), then type
SEND. Afterwards everything the program wrote is printed on stdout, with a
line "@@STEP N@@" inserted where each step's text was found, and the
program's exit code becomes this script's exit code.
"""
import json
import os
import pty
import select
import subprocess
import sys
import time

steps = json.loads(sys.argv[1])
argv = sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)

buf = b""
marks = []


def read_some(timeout):
    global buf
    r, _, _ = select.select([fd], [], [], timeout)
    if not r:
        return False
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None
    if not data:
        return None
    buf += data
    return True


for i, step in enumerate(steps):
    want = step["expect"].encode()
    deadline = time.time() + 60
    while want not in buf:
        got = read_some(max(0.0, deadline - time.time()))
        if got is None or time.time() > deadline:
            sys.stdout.buffer.write(buf)
            sys.stdout.write("\n@@NOT FOUND %r@@\n" % step["expect"])
            sys.exit(99)
    marks.append((buf.index(want) + len(want), i))
    if step.get("run"):
        subprocess.run(step["run"], shell=True, check=True)
    time.sleep(0.2)
    os.write(fd, step["send"].encode())

while read_some(60):
    pass
_, status = os.waitpid(pid, 0)
out = buf
for pos, i in sorted(marks, reverse=True):
    out = out[:pos] + b"\n@@STEP %d@@\n" % i + out[pos:]
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
