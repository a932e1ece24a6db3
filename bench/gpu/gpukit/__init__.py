"""The GPU kit's runtime: measures decode, inference and face alignment on a GPU (when there is
one) and the same work on the CPU, in one run. Self-contained on purpose: it runs from the carry
directory on machines where Vigil is not installed, so it imports only numpy, onnx, onnxruntime,
OpenCV and, where present, PyAV, PyTorch + onnx2torch, CuPy and PyNvVideoCodec; never `vigil`."""

KIT_VERSION = 1
