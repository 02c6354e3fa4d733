"""llama.cpp as bench_sizes.py's outside reference: a GGUF RWKV-7 through llama-cpp-python's low-level API.

Runs in a virtual environment of its own that has llama-cpp-python (it builds llama.cpp from source, ~20
minutes on 2 cores) and numpy, never torch or this project:

    python3 -m venv /tmp/llamacpp-venv
    CMAKE_BUILD_PARALLEL_LEVEL=2 /tmp/llamacpp-venv/bin/pip install llama-cpp-python==0.3.36 numpy
    .venv/bin/python bench/bench_sizes.py --llama-python /tmp/llamacpp-venv/bin/python

The GGUF files are written by this project (`ai-writer convert MODEL OUT.gguf --type f32|f16|q8_0`) from the
same random weights the other rows run. One llama.cpp context holds 5 recurrent states (n_seq_max 5): a
prompt is read into sequence 4 and kept there; a state here is the list of (sequence id, next position) its
rows own; forking copies sequence 4 into rows 0..n-1 (llama_memory_seq_cp), and 4 rows decode as one
llama_batch of 4 tokens, one per sequence.
"""

from __future__ import annotations

import ctypes

import numpy as np

ROWS = 4  # rows decoded together: decode N=4
KEPT = ROWS  # the sequence holding the last prompt's state, forked from every time (rows 0 .. ROWS-1 move on)
BATCH = 512  # tokens per llama_decode (a prompt of 512 in one)


class LlamaEngine:
    def __init__(self, path: str, threads: int):
        import llama_cpp

        self.api = api = llama_cpp
        api.llama_backend_init()
        self.model = api.llama_model_load_from_file(str(path).encode(), api.llama_model_default_params())
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {path}")
        params = api.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch, params.n_seq_max = 4096, BATCH, BATCH, ROWS + 1
        params.n_threads = params.n_threads_batch = threads
        self.context = api.llama_init_from_model(self.model, params)
        if not self.context:
            raise RuntimeError(f"llama.cpp could not make a context for {path}")
        self.memory = api.llama_get_memory(self.context)
        self.vocab = api.llama_vocab_n_tokens(api.llama_model_get_vocab(self.model))
        self.batch = api.llama_batch_init(BATCH, 0, ROWS + 1)
        described = ctypes.create_string_buffer(256)
        api.llama_model_desc(self.model, described, 256)
        self.info = f"llama-cpp-python {api.__version__}: {described.value.decode()}, {threads} threads"
        self.weight_bytes = api.llama_model_size(self.model)

    def _decode(self, rows) -> np.ndarray:
        """rows: [(sequence, first position, tokens)] -> (len(rows), V) logits of each row's last token."""
        batch, n, last = self.batch, 0, []
        for sequence, position, tokens in rows:
            for j, token in enumerate(tokens):
                batch.token[n], batch.pos[n] = token, position + j
                batch.n_seq_id[n], batch.seq_id[n][0] = 1, sequence
                batch.logits[n] = j == len(tokens) - 1
                n += 1
            last.append(n - 1)
        batch.n_tokens = n
        if self.api.llama_decode(self.context, batch) != 0:
            raise RuntimeError("llama_decode failed")
        return np.stack([np.ctypeslib.as_array(self.api.llama_get_logits_ith(self.context, i), shape=(self.vocab,))
                         for i in last])

    def prompt(self, tokens):
        self.api.llama_memory_clear(self.memory, True)
        for start in range(0, len(tokens), BATCH):
            logits = self._decode([(KEPT, start, tokens[start:start + BATCH])])
        return logits, [(KEPT, len(tokens))]

    def step(self, tokens, state):
        logits = self._decode([(sequence, position, [token]) for (sequence, position), token in zip(state, tokens)])
        return logits, [(sequence, position + 1) for sequence, position in state]

    def fork(self, state, n):
        """n rows, each a copy of the last prompt's state (state: what prompt() returned)."""
        (sequence, position), = state
        for row in range(n):
            self.api.llama_memory_seq_rm(self.memory, row, -1, -1)
            self.api.llama_memory_seq_cp(self.memory, sequence, row, -1, -1)
        return [(row, position) for row in range(n)]
