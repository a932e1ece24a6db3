"""`vigil demo`: the main job on the embedded defaults, for a person watching the terminal.

It brings up the embedded stack, the face models and the sample videos, starts a control plane
and a portable pipeline node as child processes, configures a site with two replayed cameras, a
restricted zone, a watchlist with one enrolled person and alert rules through the public gRPC
API (idempotently: a second run reuses them), then shows the live feed of events and alerts
until both videos have ended (or Ctrl+C), stops its children and prints a summary.
"""
