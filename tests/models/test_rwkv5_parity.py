"""RWKV-5.2 against the reference: the `rwkv` PyPI package 0.8.32 (its v5.2 path), strategy "cpu fp32".

The shared tests (tests/models/rwkv_parity.py): random checkpoints with BlinkDL's x052 key names
and shapes, the package saying it read them as v5.2, max |Δlogit| <= 1e-4 after a 64-token
sequence and after each of 16 single steps, for the loop and the chunked form; then the forms
against each other. Here too: the key set and its shape read back, and the RWKV-5.0/5.1 files
this module does not run refused in one line.
"""

import pytest
import torch

from ai_writer.backends import load
from ai_writer.backends.errors import LoadError
from ai_writer.models import rwkv5
from ai_writer.models.checkpoint import detect_architecture
from ai_writer.models.rwkv5 import RWKV5, RWKV5Config, init_weights
from tests.models.rwkv_parity import HeadStateParity, random_weights, write_model


class TestRWKV5(HeadStateParity):
    module, model_class, config_class = rwkv5, RWKV5, RWKV5Config
    version, architecture, fast_form = "5.2", "rwkv5", "chunked_on_cpu"


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
