"""RtspTestServer: a real RTSP server (GStreamer's, in a /usr/bin/python3 subprocess) streaming
sample videos in a loop, for tests of RTSP ingest, reconnects and outages.

    with RtspTestServer({"walk": videos["people_walk"].path}) as server:
        container = av.open(server.url("walk"))
        server.stop()   # an outage: clients see the connection drop
        server.start()  # back on the same port and paths
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from vigil.logs import get_logger

log = get_logger("vigil.samples.rtsp")

SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's: the only one with python3-gi and GStreamer
INSTALL_HINT = "run scripts/install-system-deps (as root) to install GStreamer's RTSP server and python3-gi"
MISSING_DEPS_EXIT = 3  # rtsp_server.py's exit status when gi or GStreamer pieces are missing


class RtspServerError(RuntimeError):
    """The RTSP test server could not start or does not answer."""


def describe(url: str, timeout_s: float = 5.0) -> str:
    """Send an RTSP DESCRIBE and return the SDP; raises RtspServerError unless the answer is 200."""
    parts = urlsplit(url)
    request = (f"DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n"
               "User-Agent: vigil-samples\r\n\r\n").encode()
    try:
        with socket.create_connection((parts.hostname, parts.port or 554), timeout=timeout_s) as sock:
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            status = head.split(b"\r\n", 1)[0].decode(errors="replace")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(body) < length:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                body += chunk
    except OSError as exc:
        raise RtspServerError(f"DESCRIBE {url}: {exc}") from exc
    if " 200 " not in f"{status} ":
        raise RtspServerError(f"DESCRIBE {url}: {status or 'no answer'}")
    return body.decode(errors="replace")


class RtspTestServer:
    """Serves each file at rtsp://HOST:PORT/<name>, looping, H.264 passed through unchanged.

    port=0 picks a free port at the first start and keeps it for restarts, so URLs stay valid
    across stop()/start(). Every client gets its own stream from the file's first frame."""

    def __init__(self, files: Mapping[str, Path | str], port: int = 0, *, host: str = "127.0.0.1",
                 python: str = SYSTEM_PYTHON, start_timeout_s: float = 30.0):
        if not files:
            raise ValueError("RtspTestServer needs at least one file to serve")
        self.files = {name: Path(path).resolve() for name, path in files.items()}
        for name, path in self.files.items():
            if not name or "/" in name:
                raise ValueError(f"stream name {name!r} must be non-empty and contain no '/'")
            if not path.is_file():
                raise FileNotFoundError(f"cannot serve {name!r}: no file {path} (build it: `vigil samples build`)")
        self.host, self.port = host, port
        self.python, self.start_timeout_s = python, start_timeout_s
        self._process: subprocess.Popen | None = None
        self._log_dir = Path(tempfile.mkdtemp(prefix="vigil-rtsp-"))
        self._log_path = self._log_dir / "rtsp_server.log"

    # --- public API -------------------------------------------------------------------------

    def url(self, name: str) -> str:
        if name not in self.files:
            raise KeyError(f"no stream {name!r}; serving {', '.join(sorted(self.files))}")
        if not self.port:
            raise RtspServerError("the server has not started yet: its port is chosen at the first start()")
        return f"rtsp://{self.host}:{self.port}/{name}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> RtspTestServer:
        """Start the server and return once every stream answers DESCRIBE."""
        if self.running:
            return self
        if shutil.which(self.python) is None:
            raise RtspServerError(f"{self.python} not found: the RTSP test server runs on the system Python; "
                                  f"{INSTALL_HINT}")
        command = [self.python, str(SERVER_SCRIPT), "--host", self.host, "--port", str(self.port),
                   *(f"{name}={path}" for name, path in self.files.items())]
        log_file = open(self._log_path, "ab")  # noqa: SIM115
        # a clean environment for Debian's Python: the venv's variables would point it at our site-packages
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log_file, env=env,
                                         start_new_session=True)
        log_file.close()
        try:
            self.port = self._wait_ready()
            deadline = time.monotonic() + self.start_timeout_s
            for name in self.files:
                self._wait_describe(self.url(name), deadline)
        except BaseException:
            self.stop()
            raise
        log.info("rtsp test server started", port=self.port, streams=sorted(self.files), pid=self._process.pid)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server; connected clients see their connection close."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout_s)
        if process.stdout is not None:
            process.stdout.close()
        log.info("rtsp test server stopped", port=self.port, exit_code=process.returncode)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._log_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_) -> None:
        self.close()

    # --- start-up ---------------------------------------------------------------------------

    def _wait_ready(self) -> int:
        """The port from the server's "READY port=N" line; the reason when it exits first."""
        process = self._process
        deadline = time.monotonic() + self.start_timeout_s
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if selector.select(timeout=0.2):
                    chunk = os.read(process.stdout.fileno(), 4096)
                    buffer += chunk
                    for line in buffer.decode(errors="replace").splitlines():
                        if line.startswith("READY port="):
                            return int(line.split("=", 1)[1])
                    if not chunk:  # stdout closed: the process is exiting
                        process.wait(5)
                if process.poll() is not None:
                    raise self._exit_error(process.returncode)
        raise RtspServerError(f"the RTSP test server did not get ready in {self.start_timeout_s:.0f}s; "
                              f"its log: {self._log_tail()}")

    def _wait_describe(self, url: str, deadline: float) -> None:
        while True:
            try:
                describe(url, timeout_s=max(0.5, min(5.0, deadline - time.monotonic())))
                return
            except RtspServerError as exc:
                if self._process.poll() is not None:
                    raise self._exit_error(self._process.returncode) from exc
                if time.monotonic() > deadline:
                    raise RtspServerError(f"{exc}; server log: {self._log_tail()}") from exc
                time.sleep(0.1)

    def _exit_error(self, code: int) -> RtspServerError:
        tail = self._log_tail()
        if code == MISSING_DEPS_EXIT:
            return RtspServerError(f"the RTSP test server cannot run: {tail}. {INSTALL_HINT}")
        return RtspServerError(f"the RTSP test server exited with status {code}: {tail}")

    def _log_tail(self, chars: int = 800) -> str:
        try:
            text = self._log_path.read_text(errors="replace").strip()
        except OSError:
            return "(no log)"
        return text[-chars:] or "(empty log)"
