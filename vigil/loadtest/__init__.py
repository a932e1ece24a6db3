"""`vigil loadtest`: synthetic cameras against a real control plane.

    vigil loadtest control  --cameras M --fps F --objects K   # IngestService alone, no video
    vigil loadtest pipeline --streams N [--rtsp]              # the sample video through a portable node

Both start what they measure as child processes (the control plane, the pipeline node) on the
embedded stack of the current settings (VIGIL_STATE_DIR, ports), so the figures of each process
(CPU, RSS) are its own, and the harness's own work (generating batches, reading the feed) never
shares a GIL with what it measures.
"""
