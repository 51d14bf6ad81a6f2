"""A deployable model: the trained network with its preprocessing inside, as ONNX or
TorchScript, checked against PyTorch on the test split (`parity`), timed (`latency`) and
described (`card`); `predict` serves it with ONNX Runtime, Pillow and NumPy alone.

`serving` and the exporters may import `trainable.model`, `trainable.training` and
`trainable.files`; `predict` imports none of the training stack (no torch, no Ray), so a
serving machine needs only `pip install onnxruntime pillow numpy`.
"""
