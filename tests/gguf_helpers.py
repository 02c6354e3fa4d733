"""GGUF files in tests: what one stores, read back, and a file written anew, through the gguf package's own reader and
writer (an outside reading of the files this project writes and reads)."""

from __future__ import annotations

import gguf
import numpy as np


def stored(path):
    """{name: (ggml type name, ggml shape, numpy data as stored)} and {key: value} through gguf.GGUFReader."""
    reader = gguf.GGUFReader(path)
    tensors = {t.name: (t.tensor_type.name, [int(n) for n in t.shape], np.array(t.data)) for t in reader.tensors}
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.") and k != "tokenizer.ggml.tokens"}
    return tensors, fields


def copy_gguf(src, dst, tensors_of, arch=None):
    """src's metadata (under another architecture name if given) and the tensors tensors_of(reader.tensors) yields as
    (name, numpy data, GGML type), written anew through the gguf package's own reader and writer."""
    reader = gguf.GGUFReader(src)
    writer = gguf.GGUFWriter(str(dst), arch or reader.fields["general.architecture"].contents())
    for key, field in reader.fields.items():
        if not key.startswith("GGUF.") and key != "general.architecture":
            if field.types[0] == gguf.GGUFValueType.ARRAY:  # tokens (strings) and token types (int32)
                writer.add_array(key, field.contents())
            else:
                writer.add_key_value(key, field.contents(), field.types[0])
    for name, data, kind in tensors_of(reader.tensors):
        writer.add_tensor(name, data, raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst
