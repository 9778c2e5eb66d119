"""Services the tests run (Dovecot, Postfix): in the foreground, as child
processes of the test in a process group of their own, stopped when the test
class ends; a watchdog stops them and removes their temporary directory if
the test process dies first (a killed run leaves nothing listening)."""

import contextlib
import os
import shlex
import signal
import subprocess


class ForegroundService:
    """``args`` started in the foreground in its own process group, its
    files in ``root``; ``stop_args``: a graceful stop, tried first."""

    def __init__(self, args, root, stop_args=None):
        self.root, self.stop_args = root, stop_args
        quiet = _devnull()
        self.process = subprocess.Popen(args, start_new_session=True, **quiet)
        group = self.process.pid
        stop = shlex.join(stop_args) + "; sleep 2; " if stop_args else ""
        script = (
            f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; {stop}"
            f"kill -TERM -{group} 2>/dev/null; sleep 2; "
            f"kill -KILL -{group} 2>/dev/null; rm -rf {shlex.quote(root)}"
        )
        self.watchdog = subprocess.Popen(
            ["sh", "-c", script], start_new_session=True, **quiet
        )

    def running(self):
        return self.process.poll() is None

    def stop(self):
        if self.stop_args and self.running():
            subprocess.run(self.stop_args, check=False, timeout=60, **_devnull())
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.process.wait()
        # what the group left behind (children still exiting)
        self._signal(signal.SIGKILL)
        self.watchdog.kill()
        self.watchdog.wait()

    def _signal(self, signum):
        # the group is gone once all its processes have exited
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)


def _devnull():
    return {
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.DEVNULL,
        "stderr": subprocess.DEVNULL,
    }
