"""Vigil's child processes, one wrapper for all: each runs in a session of its own (a Ctrl+C in the
terminal reaches only its parent, which stops it in order) and writes to a log file.

    ManagedProcess   an embedded server started detached from the CLI, found again by its pid file
                     (vigil stack: PostgreSQL, Valkey, SeaweedFS, Triton);
    Child            a child the parent holds and stops with a graceful drain (the demo's and the
                     load tests' control planes and pipeline nodes);
and the port checks both need.
"""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil

from vigil.logs import get_logger

log = get_logger("vigil.process")

# PostgreSQL refuses to run as root; when Vigil runs as root, its servers run as this system user.
SERVICE_USER = "vigil"


class StackError(RuntimeError):
    """A problem the operator can act on; the message says what to do next."""


class ChildError(RuntimeError):
    """A child process failed; the message says what to look at."""


def port_holder(host: str, port: int) -> str | None:
    """Describe who listens on host:port, or None when the port is free to bind."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
            return None
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                return f"cannot bind ({exc.strerror})"
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                try:
                    proc = psutil.Process(conn.pid)
                    return f"pid {conn.pid} ({' '.join(proc.cmdline()[:3])})"
                except psutil.Error:
                    return f"pid {conn.pid}"
    except psutil.Error:
        pass
    return "another process"


def port_is_free(host: str, port: int) -> bool:
    return port_holder(host, port) is None


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def vigil_argv(*args: str) -> list[str]:
    """The `vigil` command of this interpreter (the venv's), whatever PATH says."""
    return [sys.executable, "-m", "vigil.cli", *args]


def child_env(**overrides: str) -> dict[str, str]:
    # JSON logs: the children's log files are for tools as much as for people
    return {**os.environ, "VIGIL_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1", **overrides}


def _popen(name: str, argv: list[str], log_file: Path, *, env: dict[str, str] | None = None,
           cwd: Path | None = None, user: str | None = None, capture_stdout: bool = False) -> subprocess.Popen:
    """Start argv in a session of its own, stderr (and stdout unless captured) appended to log_file
    after a line saying what started when."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S%z')} starting {name}: {' '.join(argv)}\n".encode())
        out.flush()
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if capture_stdout else out,
                                stderr=out if capture_stdout else subprocess.STDOUT, env=env, cwd=cwd, user=user,
                                start_new_session=True)  # Ctrl+C in the terminal reaches only the parent


def log_tail(log_file: Path, lines: int = 15) -> str:
    try:
        with open(log_file, errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines)).rstrip()
    except OSError:
        return "(no log)"


def service_user() -> str | None:
    """The user embedded servers run as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        nologin = shutil.which("nologin") or "/usr/sbin/nologin"
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", nologin, SERVICE_USER],
            check=True,
            capture_output=True,
        )
    return SERVICE_USER


def chown_for_service(path: Path) -> None:
    user = service_user()
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


@dataclass
class ManagedProcess:
    """A long-running server started detached from the CLI, found again through its pid file."""

    name: str
    pid_file: Path
    log_file: Path
    # A word every command line of this server contains, so a recycled pid is not mistaken for it.
    marker: str

    def read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def process(self) -> psutil.Process | None:
        """The live process behind the pid file; a stale pid file is removed."""
        pid = self.read_pid()
        if pid is None:
            return None
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE and self._is_ours(proc):
                return proc
        except psutil.Error:
            pass
        self.pid_file.unlink(missing_ok=True)
        return None

    def _is_ours(self, proc: psutil.Process) -> bool:
        # A server rewriting its process title (valkey does) briefly shows an empty cmdline.
        for _ in range(5):
            cmdline = proc.cmdline()
            if cmdline:
                return any(self.marker in part for part in cmdline)
            time.sleep(0.02)
        return True

    def spawn(self, argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
              user: str | None = None) -> int:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        proc = _popen(self.name, argv, self.log_file, env=env, cwd=cwd, user=user)  # outlives the CLI
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc.pid

    def exited_early(self) -> bool:
        return self.read_pid() is not None and self.process() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> bool:
        """Stop the process (and its children); True when something was stopped."""
        proc = self.process()
        if proc is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        children = proc.children(recursive=True)
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
        _, alive = psutil.wait_procs([proc], timeout=timeout)
        for straggler in alive + [c for c in children if c.is_running()]:
            try:
                straggler.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive + children, timeout=5)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 15) -> str:
        return log_tail(self.log_file, lines)


class Child:
    """A child process the parent holds: started, watched (exited()), stopped with a graceful drain.
    capture_stdout: its stdout is a pipe the parent reads (proc.stdout); stderr still goes to the log."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_file: Path, *,
                 capture_stdout: bool = False):
        self.name = name
        self.argv = argv
        self.env = env
        self.log_file = log_file
        self.capture_stdout = capture_stdout
        self.proc: subprocess.Popen | None = None

    def start(self) -> int:
        self.proc = _popen(self.name, self.argv, self.log_file, env=self.env, capture_stdout=self.capture_stdout)
        log.info("child started", child=self.name, pid=self.proc.pid, log=str(self.log_file))
        return self.proc.pid

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def stdout(self) -> IO[bytes] | None:
        return self.proc.stdout if self.proc else None

    def exited(self) -> int | None:
        """The exit code once the process has ended, else None."""
        return None if self.proc is None else self.proc.poll()

    def log_tail(self, lines: int = 15) -> str:
        return log_tail(self.log_file, lines)

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
