import pytest

from tests.helpers import write_model_with_vocab


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory):
    """ONNX exports (backend auto on a CPU exports the model's step) go to a temporary folder, not the user's cache."""
    import os

    from backends.onnx_export import CACHE_ENV

    folder = tmp_path_factory.mktemp("onnx-cache")
    old, os.environ[CACHE_ENV] = os.environ.get(CACHE_ENV), str(folder)
    yield folder
    if old is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = old


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Path of a random 2 x 64 RWKV-7 .safetensors with the real AI-Writer vocabulary beside it."""
    return write_model_with_vocab(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def tiny_engine(tiny_model):
    from backends import load

    return load(tiny_model, backend="torch", device="cpu")
