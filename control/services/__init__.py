"""The implemented gRPC services. Each module here declares

    SERVICE = (servicer class taking the ControlApp, add-to-server function, full service name)

and is picked up by the server, the reflection list and the RPC-wide tests automatically."""

import importlib
import pkgutil


def _discover():
    found = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        declared = getattr(importlib.import_module(f"{__name__}.{module.name}"), "SERVICE", None)
        if declared:
            found.append(declared)
    return found


SERVICES = _discover()
