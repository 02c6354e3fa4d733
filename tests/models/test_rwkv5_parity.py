"""RWKV-5.2 against the reference: the `rwkv` PyPI package 0.8.32 (its v5.2 path), strategy "cpu fp32".

As tests/models/test_rwkv6_parity.py (whose helpers this uses): random checkpoints
with BlinkDL's x052 key names and shapes, the package in a subprocess saying it read
them as v5.2, max |Δlogit| <= 1e-4 after a 64-token sequence and after each of 16
single steps, for the loop and the chunked form; then the forms against each other,
and the RWKV-5.0/5.1 files this module does not run refused in one line.
"""

import pytest
import torch

from ai_writer.backends import load
from ai_writer.backends.errors import LoadError
from ai_writer.models.checkpoint import detect_architecture
from ai_writer.models.rwkv5 import RWKV5, RWKV5Config, init_weights, prepare_for_inference
from tests.models.test_rwkv6_parity import (SHAPES, TOLERANCE, check_auto_backend, check_batch_rows,
                                            check_batched_step_equals_single_rows, check_given_state_unchanged,
                                            check_low_precision_runs, check_sequence_equals_stepping,
                                            check_state_layout, logit_differences, make_case, random_weights,
                                            write_model)


@pytest.fixture(scope="module", params=SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def case(request, tmp_path_factory):
    return make_case(tmp_path_factory.mktemp("parity5"), RWKV5, RWKV5Config, init_weights, prepare_for_inference,
                     "5.2", request.param)


def test_the_engine_loads_an_rwkv5_checkpoint(case):
    engine = case[0]
    assert engine.info.architecture == "rwkv5"
    assert engine.info.backend == "torch"
    assert type(engine.model).__name__ == "RWKV5"


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
    check_auto_backend(case[5], case[4], case[2], "rwkv5")


def test_an_rwkv5_key_set_is_detected_and_its_shape_read_back():
    config = RWKV5Config(2, 128, 10, n_ffn=320)
    weights = {k: v.detach() for k, v in init_weights(RWKV5(config), seed=0).state_dict().items()}
    assert detect_architecture(weights) == "rwkv5"
    assert RWKV5Config.from_state_dict(weights) == config


@pytest.mark.parametrize("version", ["5.0", "5.1"])
def test_rwkv5_0_and_5_1_files_are_refused_in_one_line(tmp_path, version):
    weights = random_weights(RWKV5, RWKV5Config, init_weights, 1, 64, 10)
    weights["blocks.0.att.time_decay"] = torch.zeros(1)  # 5.0/5.1: one decay and one time_first per head
    weights["blocks.0.att.time_first"] = weights.pop("blocks.0.att.time_faaaa")[:, :1]
    if version == "5.0":
        del weights["blocks.0.att.gate.weight"], weights["blocks.0.att.time_mix_g"]
    path = write_model(tmp_path, weights, 10)
    with pytest.raises(LoadError) as error:
        load(path, backend="torch", device="cpu")
    message = str(error.value)
    assert f"RWKV-{version} checkpoint" in message and "only RWKV-5.2" in message and "\n" not in message


@pytest.fixture(scope="module")
def small():
    config = RWKV5Config(2, 128, 300)
    return {form: prepare_for_inference(init_weights(RWKV5(config, chunked_on_cpu=form == "chunked"), seed=5, spread=2.0))
            for form in ("loop", "chunked")}


@pytest.mark.parametrize("form", ["loop", "chunked"])
def test_sequence_equals_stepping(small, form):
    check_sequence_equals_stepping(small[form])


def test_a_batched_step_equals_single_rows(small):
    check_batched_step_equals_single_rows(small["loop"])


def test_the_given_state_is_not_modified(small):
    check_given_state_unchanged(small["loop"])


def test_bfloat16_weights_run_with_a_float32_kv_state(tmp_path):
    check_low_precision_runs(RWKV5, RWKV5Config, init_weights, tmp_path)
