"""Native libraries' chatter kept out of vedit's output.

The person models' runtime (``ai-edge-litert``, TensorFlow Lite) writes lines such as
``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` and glog lines straight to
file descriptor 2 from C++, where no environment variable (``TF_CPP_MIN_LOG_LEVEL``,
``GLOG_minloglevel``) reaches them. :func:`native_chatter_dropped` catches what fd 2
receives while a model is made, drops those lines, and writes the rest back: errors,
and anything another thread printed meanwhile, still reach stderr.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

CHATTER = re.compile(
    rb"^(?:"
    rb"(?:INFO|WARNING): "  # TensorFlow Lite's own log (TFLITE_LOG_PROD): errors are kept
    rb"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w./-]+:\d+\] "  # glog/absl info and warnings
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb")"
)
_LOCK = threading.Lock()  # one redirection of fd 2 at a time in a process


@contextmanager
def native_chatter_dropped() -> Iterator[None]:
    """Run the block with fd 2 caught; afterwards write back every caught line but the
    runtime's info and warning chatter (:data:`CHATTER`)."""
    with _LOCK, tempfile.TemporaryFile() as caught:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            if sys.stderr is not None:
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = b"".join(line for line in caught if not CHATTER.match(line))
            while kept:
                kept = kept[os.write(2, kept) :]
