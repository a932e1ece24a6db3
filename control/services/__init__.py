"""The implemented gRPC services: (factory taking the ControlApp, add-to-server function, full name)."""

from vigil.api.v1 import watchlist_pb2_grpc
from vigil.control.services.watchlists import WatchlistService

SERVICES = [
    (WatchlistService, watchlist_pb2_grpc.add_WatchlistServiceServicer_to_server, "vigil.v1.WatchlistService"),
]
