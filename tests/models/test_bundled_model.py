"""The model shipped in models/bundled/: it loads, its vocabulary fits, and it still predicts text.

The bits-per-character guard uses a fixed slice of held-out text; its threshold sits
a little above the value measured when the model was exported (see
models/bundled/README.md), so a broken export or a damaged file fails here.
"""

import json
from pathlib import Path

from ai_writer.backends import load
from ai_writer.backends.writing.evaluation import text_bits
from ai_writer.studio.config import load_config
from tests.helpers import FIXTURES, REPO

BUNDLED = REPO / "models" / "bundled"
MODEL = BUNDLED / "zh-novel-rwkv7.safetensors"
# the first 3,000 characters of the corpus's heldout/hongloumeng.txt (tests/fixtures/README.md)
HELDOUT = FIXTURES / "hongloumeng-heldout-3000.txt"
FACTS = json.loads((BUNDLED / "eval.json").read_text(encoding="utf-8"))


def test_the_default_config_points_at_the_bundled_model(tmp_path):
    config = load_config(user_path=tmp_path / "none.toml")
    assert Path(config.model.path) == MODEL.resolve()


def test_the_bundled_model_loads_with_a_vocabulary_that_fits():
    engine = load(MODEL, backend="torch", device="cpu")
    assert engine.info.architecture == "rwkv7"
    assert engine.tokenizer.vocab_size == engine.info.vocab_size == FACTS["vocab_size"]
    assert engine.tokenizer.unknown_id is not None and "\n" in engine.tokenizer.char_to_id
    assert MODEL.stat().st_size + MODEL.with_suffix(".json").stat().st_size < 32 * 2**20


def test_bits_per_char_on_a_fixed_heldout_slice_stays_under_its_guard():
    engine = load(MODEL, backend="torch", device="cpu")
    text = HELDOUT.read_text(encoding="utf-8")[: FACTS["guard"]["chars"]]
    assert len(text) == FACTS["guard"]["chars"], f"{HELDOUT} is shorter than the guard's slice"
    bits, chars = text_bits(engine, text)
    measured = bits / chars
    assert measured <= FACTS["guard"]["max_bits_per_char"], measured
    assert measured < 9.0  # far below a uniform guess over the vocabulary (log2 6390 = 12.6)
