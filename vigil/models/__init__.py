"""Face models: preparing the Triton model repository, serving it from the embedded Triton, and
the client the enrolment and the pipeline use (detect, align, embed, quality).

Modules import their heavy dependencies (onnx, onnxruntime, OpenCV, tritonclient) themselves,
so importing `vigil.models.cli` stays cheap for the `vigil` command.
"""
