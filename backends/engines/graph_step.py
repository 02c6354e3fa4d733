"""The torch backend's decode step on a CUDA device, recorded once as a CUDA graph and replayed.

An eager step of RWKV-7 launches hundreds of small kernels (a dozen per layer and row of operations); at
the 1.5B shape (24 x 2048) on an H100 that takes ~13 ms a token where reading the weights takes ~1 ms, so
the step is bound by launching, not by the GPU. torch.cuda.CUDAGraph records the kernels of one step for
B rows once and launches them all again as one:

    graphed = GraphedStep(model)                  # a RWKV-7 in eval mode, on its device
    logits, state = graphed.step(tokens, state)   # tokens (B, 1), state of B rows: as model(tokens, state)

A graph reads and writes fixed memory: each call copies the tokens and the state into its input buffers,
replays, and returns copies of its outputs (the next replay overwrites them), so the caller's state is
never modified and a returned state never changes, as with the eager model. One graph per batch size
(MAX_GRAPHS kept, the least recently used let go), recorded on first use: a few eager warm-up steps on
a side stream (TorchScript settles its kernels), the capture, then one check that the replay gives the
eager step's logits; a capture that fails or disagrees turns recording off for the model (`why_eager`
says why) and the step runs eagerly from then on.

Without CUDA (record=False, or a CPU model) the same buffers and copies run the model eagerly: the tests
on a CPU check everything but the recording itself (tests/backends/test_graph_step.py; its CUDA tests
run where torch sees a GPU).
"""

from __future__ import annotations

import os
from collections import OrderedDict

import torch

SWITCH_ENV = "AI_WRITER_CUDA_GRAPHS"  # "0": a CUDA model's steps run eagerly
MAX_GRAPHS = 8  # batch sizes with a recorded graph (each holds its buffers and the step's scratch memory)
WARMUP_STEPS = 3  # eager steps before a capture
AGREEMENT = 1e-2  # the replay's logits against the eager step's, as max |difference| / max(1, max |eager|)


class _Recording:
    """One batch size's buffers: tokens and state in, logits and state out, and its graph (None: eager)."""

    def __init__(self, model, batch: int):
        self.tokens = torch.zeros(batch, 1, dtype=torch.long, device=_device(model))
        self.state = model.zero_state(batch)
        self.graph = None
        self.logits = self.out_state = None

    def load(self, tokens, state) -> None:
        self.tokens.copy_(tokens)
        for buffer, given in zip(self.state, state, strict=True):
            buffer.copy_(given)


class GraphedStep:
    """model's single-token step through recorded graphs (see the module's text)."""

    def __init__(self, model, record: bool | None = None):
        self.model = model
        self.record = _device(model).type == "cuda" if record is None else record
        self.why_eager = None if self.record else "no CUDA device"
        self._recordings: OrderedDict[int, _Recording] = OrderedDict()
        self.replays = 0  # steps run by replaying a graph (the tests and bench/bench_gpu.py read it)

    def step(self, tokens: torch.Tensor, state):
        """tokens (B, 1) long on the model's device, state of B rows -> (logits (B, V), new state), as
        model(tokens, state); neither input is modified."""
        batch = tokens.shape[0]
        recording = self._recording(batch)
        recording.load(tokens, state)
        if recording.graph is None:
            logits, out_state = self.model(recording.tokens, recording.state)
        else:
            recording.graph.replay()
            logits, out_state = recording.logits, recording.out_state
            self.replays += 1
        return logits.clone(), type(out_state)(*(t.clone() for t in out_state))

    def _recording(self, batch: int) -> _Recording:
        recording = self._recordings.get(batch)
        if recording is not None:
            self._recordings.move_to_end(batch)
            return recording
        while len(self._recordings) >= MAX_GRAPHS:
            self._recordings.popitem(last=False)
        recording = _Recording(self.model, batch)
        if self.record:
            self._capture(recording)
        self._recordings[batch] = recording
        return recording

    def _capture(self, recording: _Recording) -> None:
        """Record recording's graph from its (zero) buffers; on failure or disagreement, record nothing more."""
        model = self.model
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(WARMUP_STEPS):
                    expected, _ = model(recording.tokens, recording.state)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                recording.logits, recording.out_state = model(recording.tokens, recording.state)
            graph.replay()
            torch.cuda.synchronize()
            error = _relative_error(recording.logits, expected)
        except Exception as exc:  # a capture torch cannot make here: run eagerly
            self.record, self.why_eager = False, f"recording failed: {str(exc).splitlines()[0][:200]}"
            recording.logits = recording.out_state = None
            return
        if not error <= AGREEMENT:
            self.record, self.why_eager = False, f"the recorded step disagreed with the eager one ({error:.3g})"
            recording.logits = recording.out_state = None
            return
        recording.graph = graph


RECORDED = ("rwkv7",)  # architectures whose step has no control flow on values (AI-Writer's windows have)


def wanted(device: torch.device, architecture: str) -> bool:
    """Whether a torch model on `device` decodes through recorded graphs: an RWKV-7 on CUDA, unless
    AI_WRITER_CUDA_GRAPHS=0."""
    return device.type == "cuda" and architecture in RECORDED and os.environ.get(SWITCH_ENV, "1") != "0"


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _relative_error(found: torch.Tensor, expected: torch.Tensor) -> float:
    found, expected = found.float(), expected.float()
    scale = max(1.0, float(expected.abs().max()))
    return float((found - expected).abs().max()) / scale
