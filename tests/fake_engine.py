"""A small fake engine for the studio's UI tests: the engine contract (backends.engines.base.Engine), no model file.

    engine = FakeEngine(delay=0.0)                 # or, for StudioApp(engine_loader=...):
    loader = fake_loader(delay=0.05)               # [model] section dict -> FakeEngine, LoadError if no file

The "model" is deterministic and character-level, with a real CharTokenizer over a few hundred
hanzi, CJK punctuation and the characters of the tests' manuscripts. Its state is the last CONTEXT
token ids of each row (one int64 array, layer x row x CONTEXT, -1 before the first id); its logits
are a bias plus one row of a seeded random table per remembered id, by position: a peaked
distribution that depends on what was read. So the sampler's seeds, the prompt cache, forking rows
and cancelling behave as with a real RWKV, with a few numpy operations a step: no torch, C or ONNX.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np

from ai_writer.backends import EngineError, LoadError
from ai_writer.backends.engines import state_rows as state_ops
from ai_writer.backends.engines.base import EngineInfo, check_batch
from ai_writer.models.tokenizer import DEFAULT_UNKNOWN_CHAR, CharTokenizer

CONTEXT = 3  # ids a state remembers
SCALE = 1.5  # spread of each table row: the sum of CONTEXT rows gives a peaked softmax
PUNCTUATION = "　，。、；：？！“”‘’（）《》…—·「」『』"
# Common hanzi, then those of the tests' manuscripts that are not among them.
HANZI = (
    "的一是不了人我在有他这中大来上个国到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而"
    "能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意"
    "进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口"
    "使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数"
    "件安表原车白应路期叫死常提感金何更反合放做系计或利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望"
    "直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近"
    "留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未"
    "持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造"
    "落视济喜离虽坏兴切团玩酒底注夜雨云雪星河湖桥楼窗灯茶杯剑刀客侠仙魔章坐桌盯屏幕闪烁标迟晕圈昏偶尔汽驶溅哗母推端热课"
    "冲差段睡叹低喝烫醒键盘默念故抬序存紧"
)
# How much more (or less) likely than a hanzi: commas and stops often, a new paragraph now and then,
# other punctuation (PUNCTUATION_BIAS) seldom.
PUNCTUATION_BIAS = -3.0
BIAS = {"，": 3.0, "。": 2.5, "“": 0.5, "”": 0.5, "\n": -1.0, "　": -6.0}


def fake_vocabulary() -> list[str]:
    """Newline, UNKNOWN_CHAR, punctuation, hanzi: each once, always in this order."""
    return list(dict.fromkeys(["\n", DEFAULT_UNKNOWN_CHAR, *PUNCTUATION, *HANZI]))


def fake_tokenizer() -> CharTokenizer:
    return CharTokenizer(fake_vocabulary())


@functools.lru_cache(maxsize=4)
def _table(seed: int, vocab_size: int) -> np.ndarray:
    """table[k, id]: what id, k positions back, adds to the logits; row vocab_size stands for "nothing yet".
    Shared by the engines of one seed (read only)."""
    rng = np.random.default_rng(seed)
    table = (rng.standard_normal((CONTEXT, vocab_size + 1, vocab_size)) * SCALE).astype(np.float32)
    table.flags.writeable = False
    return table


class FakeEngine:
    """The contract of backends.engines.torch_engine.TorchEngine: tokenizer, info, forward, state row operations."""

    selection = None  # no backend was chosen for it (backends.load sets this on real engines)

    def __init__(self, delay: float = 0.0, seed: int = 0, model_path: str = "fake.model"):
        self.tokenizer = fake_tokenizer()
        vocab_size = self.tokenizer.vocab_size
        self.info = EngineInfo("fake", "fake", "cpu", str(model_path), 1, CONTEXT, vocab_size)
        self.delay = delay  # seconds each forward() call takes, so candidates arrive over time
        self.tokens_processed = 0  # positions read, all rows counted, as TorchEngine counts them
        self.table = _table(seed, vocab_size)
        self.bias = np.zeros(vocab_size, dtype=np.float32)
        for char, value in {**dict.fromkeys(PUNCTUATION, PUNCTUATION_BIAS), **BIAS}.items():
            self.bias[self.tokenizer.char_to_id[char]] = value

    def zero_state(self, batch: int = 1):
        return (np.full((1, batch, CONTEXT), -1, dtype=np.int64),)

    def _logits(self, window: np.ndarray) -> np.ndarray:
        """(B, CONTEXT) remembered ids, oldest first -> (B, V) float32."""
        ids = np.where(window < 0, self.info.vocab_size, window)
        logits = np.repeat(self.bias[None, :], len(ids), axis=0)
        for back in range(CONTEXT):
            logits += self.table[back, ids[:, CONTEXT - 1 - back]]
        return logits

    def forward(self, token_lists, state=None, full_output: bool = False):
        """B equal-length id lists (and a state of B rows, or None) -> (logits, new state).

        logits: float32 (B, V) after each last id, or (B, T, V) after every id with full_output.
        The given state is not modified."""
        batch = check_batch(token_lists, self.info.vocab_size)
        rows, length = batch.shape
        if state is None:
            state = self.zero_state(rows)
        if state_ops.batch_size(state) != rows:
            raise EngineError(f"forward() got {rows} id lists for a state of {state_ops.batch_size(state)} rows")
        if self.delay:
            time.sleep(self.delay)
        seen = np.concatenate([state[0][0], batch], axis=1)  # (B, CONTEXT + T)
        if full_output:
            logits = np.stack([self._logits(seen[:, t + 1 : t + 1 + CONTEXT]) for t in range(length)], axis=1)
        else:
            logits = self._logits(seen[:, -CONTEXT:])
        self.tokens_processed += batch.size
        return logits, (seen[None, :, -CONTEXT:].copy(),)

    copy_state = staticmethod(state_ops.copy_state)
    take_rows = staticmethod(state_ops.take_rows)
    repeat_rows = staticmethod(state_ops.repeat_rows)


def fake_loader(delay: float = 0.0, seed: int = 0):
    """A StudioApp engine_loader: the [model] section -> a FakeEngine named after its path.

    As backends.load does, a path that is no file is a LoadError naming it (the file is not read)."""

    def load(model) -> FakeEngine:
        path = Path(model.path).expanduser()
        if not path.is_file():
            raise LoadError(f"{path}: no such model file")
        return FakeEngine(delay=delay, seed=seed, model_path=str(path))

    return load


def write_fake_model(folder: Path, name: str = "fake.model") -> Path:
    """A file for a config's [model] path to name when the fake engine runs it (its bytes are never read)."""
    path = Path(folder) / name
    path.write_text("a stand-in model file: tests/fake_engine.py computes the model\n", encoding="utf-8")
    return path
