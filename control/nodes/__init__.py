"""Pipeline nodes on the control-plane side: where streams run (planner), keeping the fleet's
assignments right (reconciler), waking watchers when they change (signal), and what a node is
told about each stream (streams)."""
