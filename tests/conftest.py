import pytest

from tests.helpers import write_model_with_vocab


def _cache_in(tmp_path_factory, name: str, variable: str):
    import os

    folder = tmp_path_factory.mktemp(name)
    old, os.environ[variable] = os.environ.get(variable), str(folder)
    yield folder
    if old is None:
        os.environ.pop(variable, None)
    else:
        os.environ[variable] = old


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory):
    """ONNX exports (the torch+onnx backend exports the model's step) go to a temporary folder, not the user's cache."""
    from ai_writer.backends.files.onnx_export import CACHE_ENV

    yield from _cache_in(tmp_path_factory, "onnx-cache", CACHE_ENV)


@pytest.fixture(scope="session", autouse=True)
def native_cache(tmp_path_factory):
    """The native step (backend auto on a CPU builds it for an RWKV-7) is compiled into a temporary folder."""
    from ai_writer.backends.engines.native_step import CACHE_ENV

    yield from _cache_in(tmp_path_factory, "native-cache", CACHE_ENV)


@pytest.fixture(scope="session", autouse=True)
def state_cache(tmp_path_factory):
    """Prompt states kept on disk (backends.writing.state_store) go to a temporary folder, not the user's cache."""
    from ai_writer.backends.writing.state_store import CACHE_ENV

    yield from _cache_in(tmp_path_factory, "state-cache", CACHE_ENV)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Path of a random 2 x 64 RWKV-7 .safetensors with the real AI-Writer vocabulary beside it."""
    return write_model_with_vocab(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def tiny_engine(tiny_model):
    from ai_writer.backends import load

    return load(tiny_model, backend="torch", device="cpu")


@pytest.fixture
def fake_model(tmp_path):
    """A [model] path for the fake engine (tests/fake_engine.py): a file it checks exists and never reads."""
    from tests.fake_engine import write_fake_model

    return write_fake_model(tmp_path)


@pytest.fixture
def fake_engine():
    """A FakeEngine: the engine contract on a deterministic character model, no torch (tests/fake_engine.py)."""
    from tests.fake_engine import FakeEngine

    return FakeEngine()
