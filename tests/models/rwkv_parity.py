"""What the parity tests against the `rwkv` PyPI package 0.8.32 share (strategy "cpu fp32").

The oracle (tests/oracle/rwkv_package_run.py) runs in a subprocess of its own per checkpoint,
RWKV_V7_ON set for RWKV-7 only, and says which version it read the checkpoint as. Random
checkpoints carry BlinkDL's key names and shapes. `PackageParity` holds the tests every RWKV-4/5/6
module passes; tests/models/test_rwkv{4,5,6}_parity.py subclass it for their architecture.
Tolerance: max |Δlogit| <= 1e-4 after a 64-token sequence and after each of 16 single steps.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from ai_writer.backends import load
from tests.helpers import REPO, write_checkpoint, write_model_with_chars

ORACLE = REPO / "tests" / "oracle" / "rwkv_package_run.py"
TOLERANCE = 1e-4
SHAPES = [  # (n_layer, n_embd, vocab, seed, spread)
    (2, 128, 500, 1, 1.0),
    (3, 192, 1000, 2, 3.0),  # the widest decay ranges (w = 0 in float32 for some), mixes over the whole 0..1 range
]


def run_oracle(folder, checkpoint, prompt, steps, version: str, state_file=None, strategy: str = "cpu fp32") -> dict:
    """The package's logits after `prompt` and each of `steps`, and its final state, for the .pth `checkpoint`
    (float32 on the CPU, whatever the strategy)."""
    request = folder / "request.json"
    request.write_text(json.dumps({"prompt": prompt, "steps": steps, "state_file": state_file and str(state_file)}))
    out = folder / "oracle.pt"
    subprocess.run([sys.executable, str(ORACLE), str(checkpoint), str(request), str(out), version, strategy],
                   check=True, capture_output=True, timeout=300)
    return torch.load(out, weights_only=True)


def random_weights(model_class, config_class, init, n_layer, n_embd, vocab_size, seed=0, spread=1.0) -> dict:
    """A random state dict with BlinkDL's exact key names and shapes (never a model to ship)."""
    model = init(model_class(config_class(n_layer, n_embd, vocab_size)), seed=seed, spread=spread)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def write_model(folder, weights, vocab: int):
    """The weights as model.safetensors with a character vocabulary beside them, for backends.load."""
    return write_model_with_chars(folder, weights, [chr(0x4E00 + i) for i in range(vocab)], stem="model")


def run(model_or_engine, tokens, state):
    """(logits of the last position as a tensor, state) from an engine or a model, one row."""
    if hasattr(model_or_engine, "info"):
        logits, state = model_or_engine.forward([tokens], state)
        return torch.from_numpy(logits[0]), state
    with torch.inference_mode():
        logits, state = model_or_engine(torch.tensor([tokens]), state)
    return logits[0], state


def logit_differences(runner, prompt, steps, oracle):
    """max |Δlogit| after the prompt, then after each step; and the final state."""
    logits, state = run(runner, prompt, None)
    diffs = [(logits - oracle["prompt"]).abs().max().item()]
    for i, token in enumerate(steps):
        logits, state = run(runner, [token], state)
        diffs.append((logits - oracle["steps"][i]).abs().max().item())
    return diffs, state


def check_batch_rows(engine, prompt, oracle):
    """Two prompts as one batch: row 0 as the package's, row 1 as the same prompt alone."""
    other = list(reversed(prompt))
    logits, _ = engine.forward([prompt, other], None)
    assert np.abs(logits[0] - oracle["prompt"].numpy()).max() <= TOLERANCE
    alone, _ = engine.forward([other], None)
    assert np.abs(logits[1] - alone[0]).max() <= TOLERANCE


def check_auto_backend(path, oracle, prompt, architecture):
    """backend "auto" on the CPU: torch (the C step and the ONNX step run RWKV-7/RWKV-4 only)."""
    engine = load(path, backend="auto", device="cpu")
    assert (engine.info.backend, engine.info.architecture) == ("torch", architecture)
    logits, state = engine.forward([prompt], None)
    assert np.abs(logits[0] - oracle["prompt"].numpy()).max() <= TOLERANCE
    assert np.isfinite(engine.forward([[1]], state)[0]).all()


# -- forms against each other (no package) ---------------------------------------------------------


def check_sequence_equals_stepping(model):
    """A sequence from a non-empty state against the same tokens stepped one by one: the logits at every
    position and the token-shift states. Returns (the sequence's state, the steps' state)."""
    vocab = model.config.vocab_size
    tokens = torch.randint(0, vocab, (3, 37), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        _, warm = model(tokens[:, :5])  # a non-empty incoming state
        full, state = model(tokens[:, 5:], warm, full_output=True)
        stepped, s = [], warm
        for t in range(5, 37):
            logits, s = model.step(tokens[:, t], s)
            stepped.append(logits)
    assert (full - torch.stack(stepped, dim=1)).abs().max().item() <= 1e-4
    assert torch.allclose(state.att_x_prev, s.att_x_prev, atol=1e-5)
    assert torch.allclose(state.ffn_x_prev, s.ffn_x_prev, atol=1e-5)
    return state, s


def check_batched_step_equals_single_rows(model):
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(1)
    prompts = torch.randint(0, vocab, (4, 9), generator=gen)
    nxt = torch.randint(0, vocab, (4,), generator=gen)
    with torch.inference_mode():
        _, state = model(prompts)
        batched, _ = model.step(nxt, state)
        for row in range(4):
            _, alone_state = model(prompts[row : row + 1])
            alone, _ = model.step(nxt[row : row + 1], alone_state)
            assert (batched[row] - alone[0]).abs().max().item() <= 1e-5


def check_given_state_unchanged(model):
    with torch.inference_mode():
        _, state = model(torch.tensor([[1, 2, 3], [4, 5, 6]]))
        before = [t.clone() for t in state]
        model.step(torch.tensor([4, 7]), state)
        model(torch.tensor([[4, 5, 6], [7, 8, 9]]), state)
    assert all(torch.equal(a, b) for a, b in zip(before, state))


def check_low_precision_runs(model_class, config_class, init, tmp_path):
    """bfloat16 weights (as the engines' float16 on a GPU): the state's kv stays float32, logits near float32's."""
    weights = random_weights(model_class, config_class, init, 2, 128, 300, seed=3)
    path = write_model(tmp_path, weights, 300)
    full = load(path, backend="torch", device="cpu")
    half = load(path, backend="torch", device="cpu", dtype="bfloat16")
    tokens = list(range(1, 40))
    ref, _ = full.forward([tokens], None)
    logits, state = half.forward([tokens], None)
    logits, state = half.forward([[5]], state)
    assert state.att_kv.dtype == torch.float32 and state.att_x_prev.dtype == torch.bfloat16
    assert np.isfinite(logits).all()
    assert np.abs(half.forward([tokens], None)[0] - ref).max() <= 0.1 * np.abs(ref).max()


# -- the tests every RWKV-4/5/6 module passes --------------------------------------------------------


class PackageParity:
    """Subclassed once per architecture (pytest collects the subclasses named Test...). The "loop" form is
    what the engine runs on a CPU (the per-position recurrence); "chunked" the model built with its
    `fast_form` flag set, running the chunked form other devices run."""

    module = model_class = config_class = None  # models.rwkvN (its init_weights, prepare_for_inference), its model, config
    version = ""  # the package's name for it: "4", "5.2", "6"
    architecture = ""  # EngineInfo.architecture
    fast_form = ""  # the model's constructor flag for the chunked form on a CPU
    small_shape = (2, 128, 300)  # (n_layer, n_embd, vocab) of the models the forms are compared on

    def new_model(self, config, chunked: bool):
        """chunked: the chunked form on a CPU too."""
        return self.model_class(config, **{self.fast_form: chunked})

    def check_state_layout(self, state, oracle_state):
        """Ours (L, B, ...) row 0 against the package's tensors per layer."""
        raise NotImplementedError

    def check_states_agree(self, sequence_state, stepped_state):
        """The time mixing's state after a sequence against the same tokens stepped."""
        raise NotImplementedError

    @pytest.fixture(scope="class", params=SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
    def case(self, request, tmp_path_factory):
        """(engine, chunked model, prompt, steps, oracle results, model path) for one shape."""
        n_layer, n_embd, vocab, seed, spread = request.param
        tmp = tmp_path_factory.mktemp(f"parity{self.version}")
        weights = random_weights(self.model_class, self.config_class, self.module.init_weights, *request.param)
        rng = np.random.default_rng(seed)
        prompt = rng.integers(0, vocab, 64).tolist()
        steps = rng.integers(0, vocab, 16).tolist()
        oracle = run_oracle(tmp, write_checkpoint(tmp / "model.pth", weights), prompt, steps, self.version)
        path = write_model(tmp, weights, vocab)
        engine = load(path, backend="torch", device="cpu")
        chunked = self.new_model(self.config_class.from_state_dict(weights), chunked=True)
        chunked.load_state_dict(weights, strict=True)
        return engine, self.module.prepare_for_inference(chunked), prompt, steps, oracle, path

    def test_the_engine_loads_the_checkpoint(self, case):
        engine = case[0]
        assert engine.info.architecture == self.architecture
        assert engine.info.backend == "torch"
        assert type(engine.model) is self.model_class

    @pytest.mark.parametrize("form", ["loop", "chunked"])
    def test_sequence_then_steps_match_the_package(self, case, form):
        engine, chunked, prompt, steps, oracle, _ = case
        diffs, _ = logit_differences(engine if form == "loop" else chunked, prompt, steps, oracle)
        assert max(diffs) <= TOLERANCE, f"max |Δlogit| per position: {diffs}"

    @pytest.mark.parametrize("form", ["loop", "chunked"])
    def test_final_state_matches_the_package_layout(self, case, form):
        engine, chunked, prompt, steps, oracle, _ = case
        _, state = logit_differences(engine if form == "loop" else chunked, prompt, steps, oracle)
        self.check_state_layout(state, oracle["state"])

    def test_a_batch_of_prompts_matches_the_package_row_by_row(self, case):
        check_batch_rows(case[0], case[2], case[4])

    @pytest.fixture(scope="class")
    def small(self):
        init, prepare = self.module.init_weights, self.module.prepare_for_inference
        config = self.config_class(*self.small_shape)
        return {form: prepare(init(self.new_model(config, form == "chunked"), seed=5, spread=2.0)) for form in ("loop", "chunked")}

    @pytest.mark.parametrize("form", ["loop", "chunked"])
    def test_sequence_equals_stepping(self, small, form):
        self.check_states_agree(*check_sequence_equals_stepping(small[form]))

    def test_a_batched_step_equals_single_rows(self, small):
        check_batched_step_equals_single_rows(small["loop"])

    def test_the_given_state_is_not_modified(self, small):
        check_given_state_unchanged(small["loop"])


class HeadStateParity(PackageParity):
    """RWKV-5/6: one N x N float32 matrix per head (att_kv, [key, value]), 3 tensors per layer as the package's."""

    def check_state_layout(self, state, oracle_state):
        assert len(oracle_state) == 3 * state.att_kv.shape[0]
        for layer in range(state.att_kv.shape[0]):
            att_x, kv, ffn_x = oracle_state[3 * layer : 3 * layer + 3]
            assert state.att_kv.dtype == torch.float32 and state.att_kv[layer, 0].shape == kv.shape
            assert torch.allclose(state.att_x_prev[layer, 0], att_x, atol=1e-5)
            assert torch.allclose(state.ffn_x_prev[layer, 0], ffn_x, atol=1e-5)
            assert torch.allclose(state.att_kv[layer, 0], kv, rtol=1e-4, atol=1e-4)

    def check_states_agree(self, sequence_state, stepped_state):
        assert torch.allclose(sequence_state.att_kv, stepped_state.att_kv, rtol=1e-4, atol=1e-4)

    def test_backend_auto_runs_it_on_torch(self, case):
        check_auto_backend(case[5], case[4], case[2], self.architecture)

    def test_bfloat16_weights_run_with_a_float32_kv_state(self, tmp_path):
        check_low_precision_runs(self.model_class, self.config_class, self.module.init_weights, tmp_path)
