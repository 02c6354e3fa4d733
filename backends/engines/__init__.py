"""The engines: one model file behind the Engine protocol (base.py), on torch, ONNX Runtime or a C step."""
