"""Detached service processes tracked by pid files, and port ownership checks."""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

# PostgreSQL refuses to run as root; when Vigil runs as root, its servers run as this system user.
SERVICE_USER = "vigil"


class StackError(RuntimeError):
    """A problem the operator can act on; the message says what to do next."""


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
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S%z')} starting {self.name}: {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                user=user,
                start_new_session=True,  # outlives the CLI and ignores its Ctrl+C
            )
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
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"
