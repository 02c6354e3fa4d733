import pytest

from tests.helpers import write_model_with_vocab


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Path of a random 2 x 64 RWKV-7 .safetensors with the real AI-Writer vocabulary beside it."""
    return write_model_with_vocab(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def tiny_engine(tiny_model):
    from backends import load

    return load(tiny_model, backend="torch", device="cpu")
