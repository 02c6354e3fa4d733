"""RWKV-6 against the reference: the `rwkv` PyPI package 0.8.32 (its v6 path), strategy "cpu fp32".

Random checkpoints are written with BlinkDL's key names and shapes; the package runs
in a subprocess without RWKV_V7_ON (tests/oracle/rwkv56_package_run.py), and says it
read them as v6. Tolerance: max |Δlogit| <= 1e-4 after a 64-token sequence and after
each of 16 following single steps, for both sequence forms (the per-position loop the
engine runs on a CPU and the chunked form used elsewhere). Then the forms against
each other. The helpers here serve tests/models/test_rwkv5_parity.py too.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from ai_writer.backends import load
from ai_writer.backends.errors import LoadError
from ai_writer.models.checkpoint import detect_architecture
from ai_writer.models.rwkv6 import (RWKV6, RWKV6Config, init_weights, prepare_for_inference, wkv_chunked, wkv_loop,
                                    wkv_step)
from tests.helpers import REPO, write_checkpoint

ORACLE = REPO / "tests" / "oracle" / "rwkv56_package_run.py"
TOLERANCE = 1e-4
SHAPES = [  # (n_layer, n_embd, vocab, seed, spread)
    (2, 128, 500, 1, 1.0),
    (3, 192, 1000, 2, 3.0),  # log decays down to -e^4.5 (w = 0 in float32), mixes over the whole 0..1 range
]


def random_weights(model_class, config_class, init, n_layer, n_embd, vocab_size, seed=0, spread=1.0) -> dict:
    """A random state dict with BlinkDL's exact key names and shapes (never a model to ship)."""
    model = init(model_class(config_class(n_layer, n_embd, vocab_size)), seed=seed, spread=spread)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def run_oracle(tmp_path, weights, prompt, steps, version: str):
    pth = write_checkpoint(tmp_path / "model.pth", weights)
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"prompt": prompt, "steps": steps}))
    out = tmp_path / "oracle.pt"
    subprocess.run([sys.executable, str(ORACLE), str(pth), str(request), str(out), version],
                   check=True, capture_output=True, timeout=300)
    return torch.load(out, weights_only=True)


def write_model(folder, weights, vocab: int):
    """The weights as .safetensors with a character vocabulary beside them, for backends.load."""
    path = write_checkpoint(folder / "model.safetensors", weights)
    (folder / "model.json").write_text(json.dumps({str(i): chr(0x4E00 + i) for i in range(vocab)}, ensure_ascii=False))
    return path


def make_case(tmp, model_class, config_class, init, prepare, version, shape):
    """(engine, chunked model, prompt, steps, oracle results, model path) for one shape."""
    n_layer, n_embd, vocab, seed, spread = shape
    weights = random_weights(model_class, config_class, init, n_layer, n_embd, vocab, seed, spread)
    rng = np.random.default_rng(seed)
    prompt = rng.integers(0, vocab, 64).tolist()
    steps = rng.integers(0, vocab, 16).tolist()
    oracle = run_oracle(tmp, weights, prompt, steps, version)
    path = write_model(tmp, weights, vocab)
    engine = load(path, backend="torch", device="cpu")
    chunked = model_class(config_class.from_state_dict(weights), chunked_on_cpu=True)
    chunked.load_state_dict(weights, strict=True)
    return engine, prepare(chunked), prompt, steps, oracle, path


def run(model_or_engine, tokens, state):
    if hasattr(model_or_engine, "info"):
        logits, state = model_or_engine.forward([tokens], state)
        return torch.from_numpy(logits[0]), state
    with torch.inference_mode():
        logits, state = model_or_engine(torch.tensor([tokens]), state)
    return logits[0], state


def logit_differences(runner, prompt, steps, oracle):
    """max |Δlogit| after the prompt, then after each step."""
    logits, state = run(runner, prompt, None)
    diffs = [(logits - oracle["prompt"]).abs().max().item()]
    for i, token in enumerate(steps):
        logits, state = run(runner, [token], state)
        diffs.append((logits - oracle["steps"][i]).abs().max().item())
    return diffs, state


def check_state_layout(state, oracle_state):
    """Ours (L, B, ...) row 0 against the package's 3 tensors per layer."""
    assert len(oracle_state) == 3 * state.att_kv.shape[0]
    for layer in range(state.att_kv.shape[0]):
        att_x, kv, ffn_x = oracle_state[3 * layer : 3 * layer + 3]
        assert state.att_kv.dtype == torch.float32 and state.att_kv[layer, 0].shape == kv.shape
        assert torch.allclose(state.att_x_prev[layer, 0], att_x, atol=1e-5)
        assert torch.allclose(state.ffn_x_prev[layer, 0], ffn_x, atol=1e-5)
        assert torch.allclose(state.att_kv[layer, 0], kv, rtol=1e-4, atol=1e-4)


def check_batch_rows(engine, prompt, oracle):
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
    assert torch.allclose(state.att_kv, s.att_kv, rtol=1e-4, atol=1e-4)


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


# -- RWKV-6 ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def case(request, tmp_path_factory):
    return make_case(tmp_path_factory.mktemp("parity6"), RWKV6, RWKV6Config, init_weights, prepare_for_inference,
                     "6", request.param)


def test_the_engine_loads_an_rwkv6_checkpoint(case):
    engine = case[0]
    assert engine.info.architecture == "rwkv6"
    assert engine.info.backend == "torch"
    assert type(engine.model).__name__ == "RWKV6"


@pytest.mark.parametrize("form", ["loop", "chunked"])
def test_sequence_then_steps_match_the_package(case, form):
    engine, chunked, prompt, steps, oracle, _ = case
    diffs, _ = logit_differences(engine if form == "loop" else chunked, prompt, steps, oracle)
    assert max(diffs) <= TOLERANCE, f"max |Δlogit| per position: {diffs}"


@pytest.mark.parametrize("form", ["loop", "chunked"])
def test_final_state_matches_the_package_layout(case, form):
    engine, chunked, prompt, steps, oracle, _ = case
    _, state = logit_differences(engine if form == "loop" else chunked, prompt, steps, oracle)
    check_state_layout(state, oracle["state"])


def test_a_batch_of_prompts_matches_the_package_row_by_row(case):
    check_batch_rows(case[0], case[2], case[4])


def test_backend_auto_runs_it_on_torch(case):
    check_auto_backend(case[5], case[4], case[2], "rwkv6")


def test_an_rwkv6_key_set_is_told_from_rwkv5_and_its_shape_read_back():
    config = RWKV6Config(2, 128, 10, n_ffn=320, d_mix=16, d_decay=48)
    weights = {k: v.detach() for k, v in init_weights(RWKV6(config), seed=0).state_dict().items()}
    assert detect_architecture(weights) == "rwkv6"
    assert RWKV6Config.from_state_dict(weights) == config
    assert detect_architecture({k: v for k, v in weights.items() if ".time_maa" not in k}) == "rwkv5"


def test_a_damaged_rwkv6_file_is_one_line_naming_the_tensor(tmp_path):
    weights = random_weights(RWKV6, RWKV6Config, init_weights, 1, 64, 10)
    weights["blocks.0.att.time_maa_w2"] = torch.zeros(5, 32, 65)
    path = write_model(tmp_path, weights, 10)
    with pytest.raises(LoadError) as error:
        load(path, backend="torch", device="cpu")
    message = str(error.value)
    assert "RWKV-6 weights" in message and "time_maa_w2" in message and "\n" not in message


@pytest.fixture(scope="module")
def small():
    config = RWKV6Config(2, 128, 300)
    return {form: prepare_for_inference(init_weights(RWKV6(config, chunked_on_cpu=form == "chunked"), seed=5, spread=2.0))
            for form in ("loop", "chunked")}


@pytest.mark.parametrize("form", ["loop", "chunked"])
def test_sequence_equals_stepping(small, form):
    check_sequence_equals_stepping(small[form])


def test_a_batched_step_equals_single_rows(small):
    check_batched_step_equals_single_rows(small["loop"])


def test_the_given_state_is_not_modified(small):
    check_given_state_unchanged(small["loop"])


def test_bfloat16_weights_run_with_a_float32_kv_state(tmp_path):
    check_low_precision_runs(RWKV6, RWKV6Config, init_weights, tmp_path)


@pytest.mark.parametrize("T", [1, 7, 16, 33, 300])
def test_the_chunked_form_matches_the_loop_in_float64_on_extreme_decays(T):
    gen = torch.Generator().manual_seed(T)
    B, H, N = 2, 3, 16
    r, k, v = (torch.randn(B, T, H, N, generator=gen) for _ in range(3))
    # log decays per position from -e^-9 (w ~ 1) to -e^4 (w ~ 0), a few at 0 exactly
    log_w = -torch.exp(torch.empty(B, T, H, N).uniform_(-9.0, 4.0, generator=gen))
    u = torch.randn(H, N, generator=gen)
    S = torch.randn(B, H, N, N, generator=gen)
    truth = wkv_loop(r.double(), k.double(), v.double(), torch.exp(log_w.double()), u.double(), S.double())
    # max_elements small enough to split 300 positions into segments
    out, state = wkv_chunked(r, k, v, log_w, u, S, chunk=16, max_elements=B * 16 * H * N * 64)
    assert torch.isfinite(out).all() and torch.isfinite(state).all()
    scale = truth[0].abs().max().item()
    assert (out.double() - truth[0]).abs().max().item() <= 2e-5 * scale
    assert (state.double() - truth[1]).abs().max().item() <= 2e-5 * truth[1].abs().max().item()
    if T == 1:
        one, after = wkv_step(r[:, 0], k[:, 0], v[:, 0], torch.exp(log_w[:, 0]), u, S)
        assert torch.allclose(one, out[:, 0], atol=1e-5) and torch.allclose(after, state, atol=1e-5)
