"""`vigil stack up | status | down`: start, check and stop the embedded services together."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from vigil.endpoints import Endpoints, resolve
from vigil.logs import get_logger
from vigil.settings import VigilSettings
from vigil.stack.process import StackError, port_holder
from vigil.stack.services import SERVICE_TYPES, Health, Service

log = get_logger("vigil.stack")


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    mode: str  # embedded | external
    address: str
    pid: int | None
    health: Health


class Stack:
    def __init__(self, settings: VigilSettings):
        self.settings = settings
        self.state_dir = settings.resolved_state_dir()
        self.endpoints: Endpoints = resolve(settings)
        self.services: list[Service] = [cls(settings, self.endpoints) for cls in SERVICE_TYPES]

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One `up`/`down` at a time per state directory."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "stack.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def up(
        self, *, migrate: bool = True, on_ready: Callable[[ServiceStatus], None] | None = None
    ) -> list[ServiceStatus]:
        """Start what is not running, wait until all are healthy, then migrate. Idempotent."""
        with self._lock():
            starting: list[Service] = []
            for svc in self.services:
                if svc.external:
                    continue
                if svc.process.process() is not None:  # also drops a stale pid file
                    log.debug("already running", service=svc.name, pid=svc.process.read_pid())
                    continue
                for port in svc.ports():
                    holder = port_holder(self.settings.host, port)
                    if holder:
                        raise StackError(
                            f"{svc.name}: port {port} on {self.settings.host} is held by {holder}. "
                            f"Stop that process, or give Vigil other ports (see `vigil config show`; "
                            f"e.g. VIGIL_DATABASE__PORT, VIGIL_REDIS__PORT, VIGIL_S3__PORT, VIGIL_TRITON__GRPC_PORT)."
                        )
            for svc in self.services:
                if not svc.external and svc.process.process() is None:
                    pid = svc.start()
                    log.info("started", service=svc.name, pid=pid, log=str(svc.process.log_file))
                    starting.append(svc)
            self._wait_healthy(on_ready)
            for svc in self.services:
                svc.after_healthy()
            if migrate:
                from vigil.storage.migrate import migrate as run_migrations

                applied = run_migrations(self.endpoints.database_dsn)
                if applied:
                    log.info("migrations applied", versions=[m.version for m in applied])
            return self.status()

    def _wait_healthy(self, on_ready: Callable[[ServiceStatus], None] | None) -> None:
        deadline = time.monotonic() + self.settings.start_timeout_s
        pending = list(self.services)
        last: dict[str, Health] = {}
        while pending:
            for svc in list(pending):
                if not svc.external and svc.process.exited_early():
                    raise StackError(
                        f"{svc.name} exited while starting. Last lines of {svc.process.log_file}:\n"
                        f"{svc.process.log_tail()}"
                    )
                health = svc.health()
                last[svc.name] = health
                if health.ok:
                    pending.remove(svc)
                    if on_ready:
                        on_ready(self._status_of(svc, health))
            if not pending:
                return
            if time.monotonic() > deadline:
                details = "; ".join(f"{s.name}: {last[s.name].detail}" for s in pending)
                logs = ", ".join(str(s.process.log_file) for s in pending if not s.external)
                raise StackError(
                    f"not healthy after {self.settings.start_timeout_s:.0f}s: {details}. See {logs or 'the service'}."
                )
            time.sleep(0.25)

    def _status_of(self, svc: Service, health: Health | None = None) -> ServiceStatus:
        return ServiceStatus(
            name=svc.name,
            mode="external" if svc.external else "embedded",
            address=svc.address,
            pid=None if svc.external else (svc.process.read_pid() if svc.process.process() else None),
            health=health or svc.health(),
        )

    def status(self) -> list[ServiceStatus]:
        return [self._status_of(svc) for svc in self.services]

    def down(self) -> list[str]:
        """Stop every embedded service this state directory started; returns the names stopped."""
        stopped = []
        with self._lock():
            for svc in reversed(self.services):
                if not svc.external and svc.stop():
                    log.info("stopped", service=svc.name)
                    stopped.append(svc.name)
        return stopped
