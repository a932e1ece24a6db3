"""The DeepStream backend: nvurisrcbin sources (their encoded video tapped for clips),
nvstreammux, nvinfer detectors, nvtracker, faces aligned on the GPU surface and embedded through
Triton, the object encoder for snapshots.

Only backend.py imports GStreamer (sources.py and probes.py use the module it hands them) and
only meta.py touches pyds, both imported lazily, so the graph description, the tensor decoding
and the metadata conversion import and test on a machine without DeepStream. See README.md here
for what has and has not been run.
"""
