"""The event stream CloudFormation shows for a stack operation, printed as it happens, and
kept for the verdict."""

import sys
import threading
import time


class Events:
    def __init__(self, out=sys.stdout):
        self.out = out
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.all = []

    def emit(self, stack, logical, kind, status, reason=""):
        with self.lock:
            self.all.append((stack, logical, kind, status, reason))
            elapsed = time.monotonic() - self.started
            line = f"{elapsed:7.1f}s  {stack:<22} {logical:<28} {kind:<34} {status}"
            if reason:
                line += f"  ({reason})"
            print(line, file=self.out, flush=True)

    def note(self, text):
        with self.lock:
            print(text, file=self.out, flush=True)
