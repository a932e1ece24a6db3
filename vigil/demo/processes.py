"""The demo's child processes (control plane, pipeline node): started in their own session so
that a Ctrl+C in the terminal reaches only the demo, which then stops them in order; their
output goes to log files, not to the screen."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from vigil.logs import get_logger

log = get_logger("vigil.demo")


class ChildError(RuntimeError):
    """A child process failed; the message says what to look at."""


class Child:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_file: Path):
        self.name = name
        self.argv = argv
        self.env = env
        self.log_file = log_file
        self.proc: subprocess.Popen | None = None

    def start(self) -> int:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            out.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} {' '.join(self.argv)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        log.info("child started", child=self.name, pid=self.proc.pid, log=str(self.log_file))
        return self.proc.pid

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def exited(self) -> int | None:
        """The exit code once the process has ended, else None."""
        return None if self.proc is None else self.proc.poll()

    def log_tail(self, lines: int = 15) -> str:
        try:
            with open(self.log_file, errors="replace") as fh:
                return "".join(deque(fh, maxlen=lines)).rstrip()
        except OSError:
            return ""

    def failure(self, what: str) -> ChildError:
        return ChildError(f"{what}. Last lines of {self.log_file}:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 20.0) -> str:
        """SIGINT (a graceful drain), then SIGTERM, then SIGKILL. Returns how it ended, in words."""
        if self.proc is None:
            return "not started"
        if self.proc.poll() is not None:
            return f"had exited with code {self.proc.returncode}"
        for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                break
            try:
                code = self.proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                log.warning("child did not stop in time", child=self.name, signal=sig.name, waited_s=wait_s)
                continue
            log.info("child stopped", child=self.name, signal=sig.name, code=code)
            return "stopped" if sig is signal.SIGINT else f"stopped with {sig.name}"
        return "stopped"


def vigil_argv(*args: str) -> list[str]:
    """The `vigil` command of this interpreter (the venv's), whatever PATH says."""
    return [sys.executable, "-m", "vigil.cli", *args]


def child_env(**overrides: str) -> dict[str, str]:
    # JSON logs: the children's log files are for tools as much as for people
    return {**os.environ, "VIGIL_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1", **overrides}


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
