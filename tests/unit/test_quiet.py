"""engines/quiet.py: what native code writes to fd 2 while a model is made — its chatter is
dropped, everything else still reaches stderr (in a child process, whose fd 2 is real)."""

from __future__ import annotations

import subprocess
import sys

CHILD = r"""
import os, sys
from vedit.engines.quiet import native_chatter_dropped
print("before", file=sys.stderr, flush=True)
with native_chatter_dropped():
    os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
    os.write(2, b"I0000 00:00:1745000000.123456   4242 gl_context.cc:369] GL version: 3.2\n")
    os.write(2, b"W0000 00:00:1745000000.223456   4242 feedback_manager.cc:114] Feedback manager\n")
    os.write(2, b"ERROR: failed to load the model\n")
    os.write(2, b"E0000 00:00:1745000000.323456   4242 op.cc:1] a real error\n")
    print("a python line meanwhile", file=sys.stderr)
print("after", file=sys.stderr, flush=True)
print("stdout is untouched")
"""


def test_chatter_is_dropped_and_the_rest_is_kept() -> None:
    run = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "stdout is untouched\n"
    assert run.stderr.splitlines() == [
        "before",
        "ERROR: failed to load the model",
        "E0000 00:00:1745000000.323456   4242 op.cc:1] a real error",
        "a python line meanwhile",
        "after",
    ]
