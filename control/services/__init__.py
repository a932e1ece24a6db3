"""The implemented gRPC services. Each module here declares

    SERVICE = (servicer class, add-to-server function, full service name)

and is picked up by the server, the reflection list and the RPC-wide tests automatically;
`servicers(app)` below builds each one from the parts of the ControlApp it uses (the one place
where servicers are wired)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vigil.control.app import ControlApp


def _discover():
    found = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        declared = getattr(importlib.import_module(f"{__name__}.{module.name}"), "SERVICE", None)
        if declared:
            found.append(declared)
    return found


SERVICES = _discover()


def _wiring(app: ControlApp) -> dict[str, Callable[[], Any]]:
    """Full service name → how its servicer is built. Constructing one starts nothing."""
    from vigil.control.services.alerts import AlertService
    from vigil.control.services.cameras import CameraService
    from vigil.control.services.events import EventService
    from vigil.control.services.ingest import IngestService
    from vigil.control.services.jobs import JobService
    from vigil.control.services.media import MediaService
    from vigil.control.services.nodes import NodeService
    from vigil.control.services.persons import PersonService
    from vigil.control.services.rules import RuleService
    from vigil.control.services.watchlists import WatchlistService

    settings = app.settings
    return {
        "vigil.v1.AlertService": lambda: AlertService(app.db, app.secrets),
        "vigil.v1.CameraService": lambda: CameraService(app.db, app.secrets),
        "vigil.v1.EventService": lambda: EventService(app.db, app.redis, app.ingest.hub, app.metrics),
        "vigil.v1.IngestService": lambda: IngestService(app.db, app.ingest, app.metrics,
                                                        settings.control.ingest_group_batches),
        "vigil.v1.JobService": lambda: JobService(app.jobs, settings.jobs),
        "vigil.v1.MediaService": lambda: MediaService(app.db, app.objects, settings.control),
        "vigil.v1.NodeService": lambda: NodeService(app.db, app.secrets, app.nodes, settings.control,
                                                    timedelta(seconds=settings.jobs.health_log_interval_s)),
        "vigil.v1.PersonService": lambda: PersonService(app.db, app.gallery),
        "vigil.v1.RuleService": lambda: RuleService(app.db),
        "vigil.v1.WatchlistService": lambda: WatchlistService(app.db),
    }


def servicers(app: ControlApp) -> list[tuple[Any, Callable, str]]:
    """(servicer, add-to-server function, full service name) of every implemented service."""
    wiring = _wiring(app)
    missing = [name for _, _, name in SERVICES if name not in wiring]
    if missing:
        raise LookupError(f"no wiring for {', '.join(missing)}: add it to control/services/__init__.py")
    return [(wiring[name](), add, name) for _, add, name in SERVICES]
