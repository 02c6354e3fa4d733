"""File tools: a model's vocabulary and tokenizer (vocab.py), conversion to .safetensors, the ONNX export."""
