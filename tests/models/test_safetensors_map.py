"""models.safetensors_map: a .safetensors file's tensors as views of its mapping, equal to what the safetensors
package reads; what it does not take as is goes back to the package."""

from __future__ import annotations

import json
import struct
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from ai_writer.models.checkpoint import ModelFileError, read_weights
from ai_writer.models.safetensors_map import map_safetensors


def sample_tensors() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "f32": torch.randn(5, 7, generator=generator),
        "f16": torch.randn(3, 4, generator=generator).half(),
        "bf16": torch.randn(9, generator=generator).bfloat16(),
        "i64": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "u8": torch.arange(5, dtype=torch.uint8),
        "flags": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 4),
    }


def test_every_tensor_is_what_the_safetensors_package_reads(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file(sample_tensors(), str(path), metadata={"format": "pt"})
    mapped, read = map_safetensors(path), load_file(str(path))
    assert mapped is not None and set(mapped) == set(read)
    for name, tensor in read.items():
        assert mapped[name].dtype == tensor.dtype and mapped[name].shape == tensor.shape, name
        assert torch.equal(mapped[name], tensor), name


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/maps names the mapped file")
def test_the_tensors_lie_in_the_file_s_mapping_and_writing_one_leaves_the_file_alone(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({"w": torch.ones(1024, 64)}, str(path))
    before = path.read_bytes()
    weight = map_safetensors(path)["w"]
    address = weight.data_ptr()
    regions = [line.split() for line in open("/proc/self/maps") if line.rstrip().endswith(str(path))]
    assert any(int(r[0].split("-")[0], 16) <= address < int(r[0].split("-")[1], 16) for r in regions)
    weight.mul_(3)  # copy-on-write: private pages
    assert float(weight[0, 0]) == 3.0 and path.read_bytes() == before


def write_raw(path, header: dict, data: bytes, pad_to: int = 0) -> None:
    text = json.dumps(header).encode()
    text += b" " * pad_to
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def test_a_misaligned_tensor_is_read_by_the_package_instead(tmp_path):
    path = tmp_path / "odd.safetensors"
    values = torch.arange(4, dtype=torch.float32)
    header = {"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
    text = json.dumps(header).encode()
    write_raw(path, header, values.numpy().tobytes(), pad_to=(1 - (8 + len(text))) % 4)  # data at 1 mod 4
    assert (len(path.read_bytes()) - 16) % 4 == 1  # where the data starts
    assert map_safetensors(path) is None
    assert torch.equal(read_weights(path)["x"], values)  # through the package, which copes


@pytest.mark.parametrize("damage", ["truncated", "offsets beyond the end", "not json", "short"])
def test_a_damaged_file_is_not_mapped_and_is_one_line_naming_it(tmp_path, damage):
    path = tmp_path / "bad.safetensors"
    header = {"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
    data = bytes(16)
    if damage == "truncated":
        data = data[:8]
    elif damage == "offsets beyond the end":
        header["x"]["data_offsets"] = [0, 64]
        header["x"]["shape"] = [16]
    write_raw(path, header, data, pad_to=0)
    if damage == "not json":
        raw = bytearray(path.read_bytes())
        raw[8] = ord("}")
        path.write_bytes(bytes(raw))
    elif damage == "short":
        path.write_bytes(b"\x01\x02")
    assert map_safetensors(path) is None
    with pytest.raises(ModelFileError) as caught:
        read_weights(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def mapped_rss_kb(path) -> int:
    """Resident kB of this process's mappings of `path` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in open("/proc/self/smaps"):
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:  # a mapping's first line
            inside = line.rstrip().endswith(str(path))
        elif inside and fields[0] == "Rss:":
            total += int(fields[1])
    return total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc/self/smaps")
def test_the_pages_of_a_converted_matrix_can_be_dropped_and_read_again(tmp_path):
    from ai_writer.backends.engines.native_step import file_mappings, release_file_pages

    path = tmp_path / "big.safetensors"
    save_file({"w": torch.full((2048, 1024), 0.5)}, str(path))  # 8 MB
    weight = map_safetensors(path)["w"]
    assert float(weight.sum()) == 2048 * 1024 * 0.5  # every page read
    assert mapped_rss_kb(path) >= 7 * 1024
    assert release_file_pages(weight, file_mappings())
    assert mapped_rss_kb(path) < 1024
    assert float(weight[-1, -1]) == 0.5  # read again from the file, unchanged
    assert not release_file_pages(torch.ones(2048, 1024))  # anonymous memory: left alone
