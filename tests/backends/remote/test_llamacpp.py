"""A third-party server: llama-cpp-python's `python -m llama_cpp.server` serving a small random RWKV-7 written as GGUF
(backends/files/gguf_write.py), its logits first checked against this engine's, then the studio's RemoteService.

Marked `llamacpp`; skipped unless llama-cpp-python can be run. Building it takes ~20 minutes on 2 cores, so it lives
in a virtual environment of its own (never the project's .venv):

    python3 -m venv /tmp/llamacpp-venv
    CMAKE_BUILD_PARALLEL_LEVEL=2 /tmp/llamacpp-venv/bin/pip install 'llama-cpp-python[server]==0.3.36'
    AI_WRITER_LLAMA_PYTHON=/tmp/llamacpp-venv/bin/python .venv/bin/python -m pytest -m llamacpp tests/backends/remote

(or with llama_cpp importable by the test's own interpreter, no variable needed). Everything goes to 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from ai_writer.backends.remote.engine import connect
from ai_writer.backends.remote.service import RemoteService
from ai_writer.backends.writing.generation import Finished, GenerationRequest, GenerationService
from ai_writer.backends.writing.sampling import SamplingSettings
from ai_writer.models.textprep import TextPrep
from tests.backends.remote.fake_server import free_port
from tests.helpers import random_rwkv7_weights, write_checkpoint

pytestmark = pytest.mark.llamacpp

PYTHON_ENV = "AI_WRITER_LLAMA_PYTHON"
PROMPT = "The little village by the river was quiet that morning."
RAW = TextPrep(strip_indents=False, drop_empty_lines=False, leading_newline=False)  # the prompt as written


def llama_python() -> str | None:
    if importlib.util.find_spec("llama_cpp") is not None:
        return sys.executable
    return os.environ.get(PYTHON_ENV) or None


PYTHON = llama_python()
if PYTHON is None:
    pytest.skip(f"llama-cpp-python is not installed (see this module's docstring: a venv of its own, then "
                f"{PYTHON_ENV}=/path/to/its/bin/python)", allow_module_level=True)

LOGITS = """
import json, sys
from llama_cpp import Llama
model = Llama(model_path=sys.argv[1], n_ctx=256, logits_all=True, verbose=False)
tokens = model.tokenize(sys.argv[2].encode("utf-8"), add_bos=False, special=False)
model.eval(tokens)
print(json.dumps({"tokens": tokens, "logits": [float(x) for x in model.scores[len(tokens) - 1]]}))
"""


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """(the source .pth, its GGUF): a random 2 x 64 RWKV-7 with the World vocabulary's 65,536 rows."""
    from ai_writer.backends.files.gguf_write import write_gguf

    folder = tmp_path_factory.mktemp("llamacpp")
    weights = random_rwkv7_weights(2, 64, 65536, seed=3)
    source = write_checkpoint(folder / "tiny-world.pth", weights)
    return source, write_gguf(weights, folder / "tiny-world.gguf", name="tiny-world")


@pytest.fixture(scope="module")
def engine(model_files):
    from ai_writer.backends import load

    return load(model_files[0], backend="torch", device="cpu")


@pytest.fixture(scope="module")
def server(model_files):
    port = free_port()
    process = subprocess.Popen([PYTHON, "-m", "llama_cpp.server", "--model", str(model_files[1]), "--host", "127.0.0.1",
                                "--port", str(port), "--n_ctx", "512", "--logits_all", "true",
                                "--model_alias", "tiny-world"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    engine = None
    while engine is None and time.monotonic() < deadline and process.poll() is None:
        try:
            engine = connect(url, "", timeout=10, retry_delays=())
        except Exception:  # not listening yet
            time.sleep(0.3)
    if engine is None:
        process.kill()
        pytest.fail(f"llama_cpp.server did not start: {process.communicate(timeout=10)[0][-2000:]}")
    yield engine
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def test_llama_cpp_reads_the_gguf_as_this_engine_reads_the_pth(model_files, engine):
    done = subprocess.run([PYTHON, "-c", LOGITS, str(model_files[1]), PROMPT], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    ids = engine.tokenizer.encode(PROMPT)
    assert theirs["tokens"] == ids  # the same World tokenization
    ours = engine.forward([ids])[0][0]
    logits = np.asarray(theirs["logits"], dtype=np.float32)
    assert logits.shape == ours.shape == (65536,)
    assert np.abs(logits - ours).max() < 1e-4 * max(1.0, float(np.abs(ours).max()))  # float32 on both sides
    assert int(np.argmax(logits)) == int(np.argmax(ours))


def test_the_studio_writes_with_llama_cpp_server(server, engine):
    assert server.server.name == "llama-cpp-python" and server.model == "tiny-world"
    remote = RemoteService(server)
    local = GenerationService(engine, state_store=None)
    try:
        greedy = GenerationRequest(PROMPT, n=2, length=12, prep=RAW, sampling=SamplingSettings(temperature=0.0),
                                   alternatives=3)
        job = remote.submit(greedy, lambda e: None)
        assert job.wait(60)
        events = list(remote.generate(greedy, timeout=60))
        own = local.submit(greedy, lambda e: None)
        assert own.wait(60)
        final = events[-1]
        assert isinstance(final, Finished) and not final.cancelled, final
        assert final.texts[0] == final.texts[1] == own.choices.text(0)  # greedy: what this engine writes
        log = job.choices  # --logits_all: the server's probabilities, as the view reads them
        assert log is not None and log.text(0) == log.text(1) == final.texts[0]
        steps = min(log.steps(0), own.choices.steps(0))
        assert steps >= 3
        for step in range(steps):
            theirs, mine = log.choice(0, step), own.choices.choice(0, step)
            assert theirs.text == mine.text
            assert theirs.p == pytest.approx(mine.p_raw, rel=0.02, abs=1e-4)  # the model's own, before sampling
            assert theirs.alternatives[0].text == mine.alternatives[0].text
        sampled = list(remote.generate(GenerationRequest(PROMPT, n=3, length=10, prep=RAW,
                                                         sampling=SamplingSettings(seed=5, top_p=0.9)), timeout=60))[-1]
        assert isinstance(sampled, Finished) and all(0 < len(t) <= 10 for t in sampled.texts)
        print(f"\nllama-cpp-python: greedy {final.texts[0]!r} (as this engine), sampled {sampled.texts!r}, "
              f"{steps} token probabilities as this engine's")
    finally:
        remote.close()
        local.close()
