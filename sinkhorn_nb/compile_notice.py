"""A one-time note on stderr while Numba compiles this package's kernels.

The first call that needs a kernel not yet in Numba's on-disk cache compiles it
(the kernels of the README's example take 30-45 s on 2 cores); later processes
load it from the cache (the same example then runs in 2-3 s).  So that this wait does not pass in
silence, the first compilation in a process writes one line to stderr, a
running count of compiled kernels while it lasts (on a terminal, in place), and
a closing line with the time it took.  Nothing is written when every kernel
comes from the cache.

Silence it with the environment variable ``SINKHORN_NB_COMPILE_NOTICE=0`` (set
before ``import sinkhorn_nb``) or :func:`set_enabled` ``(False)``.
"""
import atexit
import os
import sys
import threading
import time

from numba.core import event

#: Seconds without a compilation after which the closing line is written.
QUIET_SECONDS = 1.5

PACKAGE = __name__.rsplit(".", 1)[0]


def _enabled_by_environment():
    return os.environ.get("SINKHORN_NB_COMPILE_NOTICE", "1").strip().lower() not in (
        "0", "false", "no", "off")


class CompileNotice(event.Listener):
    """Listener of Numba's ``numba:compile`` events (which fire on cache misses
    only) for the functions of this package."""

    def __init__(self, stream=None):
        self.enabled = _enabled_by_environment()
        self._stream = stream
        self._lock = threading.Lock()
        self._depth = 0
        self._count = 0
        self._started = None
        self._timer = None
        self.announced = False

    @property
    def stream(self):
        return self._stream if self._stream is not None else sys.stderr

    @staticmethod
    def _ours(ev):
        dispatcher = (ev.data or {}).get("dispatcher")
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
        return module == PACKAGE or module.startswith(PACKAGE + ".")

    def on_start(self, ev):
        if not (self.enabled and self._ours(ev)):
            return
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._depth == 0 and self._started is None:
                self._started = time.perf_counter()
                self._count = 0
                if not self.announced:
                    self._write("sinkhorn_nb: compiling kernels for their first use (once: "
                                "they are cached on disk and later runs load them in "
                                "seconds; SINKHORN_NB_COMPILE_NOTICE=0 silences this)\n")
                    self.announced = True
            self._depth += 1

    def on_end(self, ev):
        if not (self.enabled and self._ours(ev)):
            return
        with self._lock:
            self._depth = max(self._depth - 1, 0)
            self._count += 1
            if self._started is None:
                return
            if self._interactive():
                self._write(f"\r  {self._count} kernels compiled, "
                            f"{time.perf_counter() - self._started:.0f} s")
            if self._depth == 0:
                self._timer = threading.Timer(QUIET_SECONDS, self.finish)
                self._timer.daemon = True
                self._timer.start()

    def finish(self):
        """Write the closing line of the current compilation (if any)."""
        with self._lock:
            if self._started is None or self._depth:
                return
            seconds = time.perf_counter() - self._started
            prefix = "\r" if self._interactive() else ""
            self._write(f"{prefix}sinkhorn_nb: compiled {self._count} kernels in "
                        f"{seconds:.0f} s (cached for later runs)\n")
            self._started, self._timer = None, None

    def _interactive(self):
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):
            return False

    def _write(self, text):
        try:
            self.stream.write(text)
            self.stream.flush()
        except (AttributeError, ValueError, OSError):    # closed or missing stderr
            pass


NOTICE = CompileNotice()


def install():
    """Listen to Numba's compilations (once per process)."""
    if not getattr(install, "done", False):
        event.register("numba:compile", NOTICE)
        atexit.register(NOTICE.finish)          # a process that ends while compiling
        install.done = True


def set_enabled(enabled):
    """Turn the compilation note on or off for this process."""
    NOTICE.enabled = bool(enabled)
