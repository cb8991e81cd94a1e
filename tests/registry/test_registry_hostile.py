"""A corpus of hostile adapter files, generated here: each must be refused with a clear error and
without running or trusting anything it carries."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import struct
import tarfile

import pytest
import torch
from registry_helpers import make_lora_dir
from safetensors.torch import load_file, save_file

from adapterhub import registry
from adapterhub.errors import BackboneMismatchError, IntegrityError
from adapterhub.registry.bundle import extract_bundle
from adapterhub.registry.verify import load_safetensors, read_safetensors_header


class _Detonator:
    """Unpickling this runs code: proof that a pickle was never opened is that it did not."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


@pytest.mark.parametrize("name", ["adapter_model.bin", "weights.pt", "head.pkl", "model.pth"])
def test_pickle_files_are_refused_unread(backbone, lora_dir, store_dir, tmp_path, name):
    marker = tmp_path / "pickle-ran"
    (lora_dir / name).write_bytes(pickle.dumps(_Detonator(marker)))
    with pytest.raises(IntegrityError, match="pickle"):
        registry.verify_adapter_dir(lora_dir)
    with pytest.raises(IntegrityError, match="pickle"):
        registry.publish(lora_dir, "sentiment/de:1.0.0", backbone=backbone, store=store_dir)
    with pytest.raises(IntegrityError, match="pickle"):
        registry.import_adapter(lora_dir, "sentiment/de:1.0.0", backbone=backbone, store=store_dir)
    assert not marker.exists()
    assert registry.LocalStore(store_dir).ids() == []


def test_a_peft_folder_with_only_pickle_weights_is_refused(backbone, tmp_path, store_dir):
    folder = tmp_path / "peft-bin"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    marker = tmp_path / "pickle-ran"
    (folder / "adapter_model.bin").write_bytes(pickle.dumps(_Detonator(marker)))
    with pytest.raises(IntegrityError, match="pickle"):
        registry.import_adapter(folder, "sentiment/de:1.0.0", backbone=backbone, store=store_dir)
    assert not marker.exists()


def _published(backbone, lora_dir, store_dir):
    registry.publish(lora_dir, "sentiment/de:1.0.0", backbone=backbone, store=store_dir)
    return store_dir / "local/sentiment/de/1.0.0"


def test_a_flipped_byte_fails_the_sha256(backbone, lora_dir, store_dir):
    entry = _published(backbone, lora_dir, store_dir)
    path = entry / "adapter_model.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # still a valid safetensors file, just different numbers
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256"):
        registry.verify_adapter_dir(entry)
    with pytest.raises(IntegrityError, match="sha256"):
        registry.resolve("sentiment/de", store=store_dir, sources=[])
    ((aid, problem),) = registry.verify(store=store_dir)
    assert "sha256" in problem


def test_unlisted_files_and_foreign_manifests_are_tampering(backbone, lora_dir, store_dir):
    entry = _published(backbone, lora_dir, store_dir)
    (entry / "extra.json").write_text("{}")
    with pytest.raises(IntegrityError, match="does not list"):
        registry.verify_adapter_dir(entry)
    (entry / "extra.json").unlink()
    manifest = json.loads((entry / "manifest.json").read_text())
    manifest["id"] = "sentiment/fr@local:1.0.0"
    manifest["lang"] = "fr"
    (entry / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="sentiment/fr"):
        registry.show("sentiment/de:1.0.0", store=store_dir)


def test_a_symlinked_weight_file_is_refused(backbone, lora_dir, store_dir, tmp_path):
    outside = tmp_path / "outside.safetensors"
    shutil.move(lora_dir / "adapter_model.safetensors", outside)
    (lora_dir / "adapter_model.safetensors").symlink_to(outside)
    with pytest.raises(IntegrityError, match="symbolic link"):
        registry.verify_adapter_dir(lora_dir)
    with pytest.raises(IntegrityError, match="symbolic link"):
        registry.publish(lora_dir, "sentiment/de:1.0.0", backbone=backbone, store=store_dir)


def test_lora_shapes_from_another_backbone_are_refused(backbone, tmp_path, store_dir):
    from types import SimpleNamespace

    from transformers import BertConfig, BertModel

    bigger = BertModel(
        BertConfig(
            vocab_size=50,
            hidden_size=48,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
        ),
        add_pooling_layer=False,
    )
    foreign = make_lora_dir(
        SimpleNamespace(model=bigger, hidden_size=48), tmp_path / "foreign", labels=()
    )
    registry.verify_adapter_dir(foreign)  # self-consistent on its own
    with pytest.raises(IntegrityError, match=r"A \(4, 48\).*backbone module is 32->32"):
        registry.verify_adapter_dir(foreign, backbone)
    with pytest.raises(IntegrityError, match="48"):
        registry.publish(foreign, "sentiment/de:1.0.0", backbone=backbone, store=store_dir)


def test_keys_for_modules_the_backbone_lacks_are_refused(backbone, lora_dir):
    path = lora_dir / "adapter_model.safetensors"
    tensors = load_file(path)
    key = next(iter(tensors))
    tensors[key.replace("layer.0.", "layer.7.")] = tensors.pop(key)
    save_file(tensors, str(path))
    with pytest.raises(IntegrityError, match="does not have|incomplete"):
        registry.verify_adapter_dir(lora_dir, backbone)


def test_inconsistent_lora_ranks_are_refused(lora_dir):
    path = lora_dir / "adapter_model.safetensors"
    tensors = load_file(path)
    key = next(k for k in tensors if k.endswith("lora_A.weight"))
    tensors[key] = torch.zeros(3, tensors[key].shape[1])
    save_file(tensors, str(path))
    with pytest.raises(IntegrityError, match="rank-r pair"):
        registry.verify_adapter_dir(lora_dir)


def test_a_head_for_another_hidden_size_is_refused(backbone, lora_dir):
    save_file(
        {"weight": torch.zeros(2, backbone.hidden_size + 1), "bias": torch.zeros(2)},
        str(lora_dir / "head.safetensors"),
        metadata={"labels": json.dumps(["a", "b"])},
    )
    registry.verify_adapter_dir(lora_dir)
    with pytest.raises(IntegrityError, match="hidden size"):
        registry.verify_adapter_dir(lora_dir, backbone)
    save_file(
        {"weight": torch.zeros(2, backbone.hidden_size), "bias": torch.zeros(2)},
        str(lora_dir / "head.safetensors"),
        metadata={"labels": json.dumps(["only-one"])},
    )
    with pytest.raises(IntegrityError, match="label names"):
        registry.verify_adapter_dir(lora_dir)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("target", ["adapter_model.safetensors", "head.safetensors"])
def test_non_finite_weights_are_refused(backbone, lora_dir, store_dir, bad, target):
    path = lora_dir / target
    tensors = load_file(path)
    key = sorted(tensors)[0]
    tensors[key].view(-1)[0] = bad
    metadata = (
        {"labels": json.dumps(["negative", "positive"])} if target.startswith("head") else None
    )
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(IntegrityError, match="NaN or Inf"):
        registry.publish(lora_dir, "sentiment/de:1.0.0", backbone=backbone, store=store_dir)
    assert registry.LocalStore(store_dir).ids() == []


def test_a_wrong_backbone_fingerprint_names_both(backbone, lora_dir, store_dir):
    other = {"name": "some-other-encoder", "fingerprint": "sha256:" + "f" * 64}
    registry.publish(lora_dir, "sentiment/de:1.0.0", backbone=other, store=store_dir)
    entry = store_dir / "local/sentiment/de/1.0.0"
    registry.verify_adapter_dir(entry)  # fine without a backbone to compare with
    with pytest.raises(BackboneMismatchError) as caught:
        registry.verify_adapter_dir(entry, backbone)
    message = str(caught.value)
    assert "some-other-encoder" in message and "sha256:" + "f" * 64 in message
    assert backbone.fingerprint in message and backbone.name in message
    with pytest.raises(BackboneMismatchError):
        registry.open_adapter("sentiment/de", backbone, store=store_dir, sources=[])


# --------------------------------------------------------------------------- safetensors framing


def _safetensors(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


GOOD = {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "truncated"),
        (b"\x05\x00\x00", "truncated"),
        (struct.pack("<Q", 10**9) + b"{}", "claims"),
        (struct.pack("<Q", 4) + b"\xff\xfe{}", "not JSON"),
        (_safetensors([1, 2], b""), "not a JSON object"),
        (_safetensors(GOOD, b"\x00" * 8), "outside"),  # data cut short
        (
            _safetensors(
                {"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 16]}}, b"\0" * 16
            ),
            "header lies",
        ),
        (
            _safetensors(
                {
                    "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                    "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
                },
                b"\0" * 12,
            ),
            "overlap",
        ),
        (_safetensors(GOOD, b"\0" * 32), "accounts for"),  # trailing bytes
        (
            _safetensors({"w": {"dtype": "OBJ", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8),
            "dtype",
        ),
        (
            _safetensors({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}}, b""),
            "invalid shape",
        ),
        (_safetensors({**GOOD, "__metadata__": {"labels": ["x"]}}, b"\0" * 16), "__metadata__"),
    ],
)
def test_lying_or_truncated_safetensors_are_refused(tmp_path, content, match):
    path = tmp_path / "adapter_model.safetensors"
    path.write_bytes(content)
    with pytest.raises(IntegrityError, match=match):
        read_safetensors_header(path)


def test_tensors_read_from_checked_bytes_equal_the_safetensors_library(tmp_path):
    # the runtime slices tensors out of the bytes it hashed; mixed dtypes put an F32 tensor at an
    # offset that is not a multiple of 4, which must still load exactly
    tensors = {
        "a_half": torch.arange(3, dtype=torch.float16),
        "b_float": torch.randn(2, 3),
        "c_bf16": torch.randn(4).to(torch.bfloat16),
        "d_long": torch.tensor([[-(2**40), 7]]),
        "e_bool": torch.tensor([True, False, True]),
        "f_scalar": torch.tensor(2.5),
        "g_empty": torch.zeros(0, 4),
    }
    path = tmp_path / "mixed.safetensors"
    save_file(tensors, str(path))
    loaded, _ = load_safetensors(path, path.read_bytes())
    expected = load_file(str(path))
    assert set(loaded) == set(expected)
    for name, tensor in expected.items():
        assert loaded[name].dtype == tensor.dtype and loaded[name].shape == tensor.shape, name
        assert torch.equal(loaded[name], tensor), name
    loaded["b_float"].add_(1)  # writable, and not aliasing the caller's bytes
    assert torch.equal(load_safetensors(path, path.read_bytes())[0]["b_float"], tensors["b_float"])
    # written by hand: the F32 tensor starts at byte 6 of the data section
    half, single = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float16), torch.tensor([0.1])
    header = json.dumps(
        {
            "h": {"dtype": "F16", "shape": [3], "data_offsets": [0, 6]},
            "s": {"dtype": "F32", "shape": [1], "data_offsets": [6, 10]},
        }
    ).encode()
    data = half.numpy().tobytes() + single.numpy().tobytes()
    unaligned = tmp_path / "unaligned.safetensors"
    unaligned.write_bytes(struct.pack("<Q", len(header)) + header + data)
    loaded, _ = load_safetensors(unaligned, unaligned.read_bytes())
    assert torch.equal(loaded["h"], half) and torch.equal(loaded["s"], single)
    header = json.dumps({"b": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}).encode()
    lying_bool = tmp_path / "bool.safetensors"
    lying_bool.write_bytes(struct.pack("<Q", len(header)) + header + bytes([1, 7]))
    with pytest.raises(IntegrityError, match="BOOL"):
        load_safetensors(lying_bool, lying_bool.read_bytes())


def test_a_truncated_real_adapter_is_refused(backbone, lora_dir, store_dir):
    path = lora_dir / "adapter_model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IntegrityError, match="truncated|outside"):
        registry.publish(lora_dir, "sentiment/de:1.0.0", backbone=backbone, store=store_dir)


# --------------------------------------------------------------------------- tar bundles


def _tar(path, members):
    """members: (TarInfo, bytes | None)."""
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _info(name, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


@pytest.mark.parametrize(
    "members, match",
    [
        ([(_info("../escape.txt"), b"x")], r"'\.\.'"),
        ([(_info("ok/../../escape.txt"), b"x")], r"'\.\.'"),
        ([(_info("/tmp/escape.txt"), b"x")], "absolute"),
        ([(_info("adapter_model.safetensors", tarfile.SYMTYPE, "/etc/passwd"), None)], "link"),
        ([(_info("README.md", tarfile.LNKTYPE, "/etc/passwd"), None)], "link"),
        ([(_info("README.md", tarfile.CHRTYPE), None)], "device"),
        ([(_info("README.md", tarfile.BLKTYPE), None)], "device"),
        ([(_info("README.md", tarfile.FIFOTYPE), None)], "FIFO"),
        ([(_info("sub/README.md"), b"x")], "nested"),
        ([(_info("adapter_model.bin"), b"x")], "pickle"),
        ([(_info("run.sh"), b"x")], "unexpected"),
        ([(_info("README.md"), b"x"), (_info("./README.md"), b"y")], "twice"),
    ],
)
def test_hostile_bundles_are_refused(tmp_path, members, match):
    bundle = _tar(tmp_path / "hostile.tar", members)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(IntegrityError, match=match):
        extract_bundle(bundle, dest)
    assert not (tmp_path / "escape.txt").exists() and not os.path.exists("/tmp/escape.txt")


def test_oversize_members_are_refused_before_reading(tmp_path):
    bundle = _tar(tmp_path / "big.tar", [(_info("README.md"), b"x" * 5000)])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(IntegrityError, match="over the 1024 byte cap"):
        extract_bundle(bundle, dest, max_member_bytes=1024)
    assert list(dest.iterdir()) == []


def test_hostile_bundle_import_writes_nothing(backbone, tmp_path, store_dir):
    bundle = _tar(
        tmp_path / "mixed.tar",
        [(_info("README.md"), b"fine"), (_info("../escape.txt"), b"evil")],
    )
    with pytest.raises(IntegrityError):
        registry.import_adapter(bundle, store=store_dir)
    assert registry.LocalStore(store_dir).ids() == []
    assert not (tmp_path / "escape.txt").exists()


def test_garbage_and_tampered_bundles(backbone, lora_dir, store_dir, tmp_path):
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(os.urandom(3000))
    with pytest.raises(IntegrityError, match="tar"):
        registry.import_adapter(garbage, store=store_dir)
    _published(backbone, lora_dir, store_dir)
    bundle = registry.export_bundle("sentiment/de:1.0.0", tmp_path / "good.tar", store=store_dir)
    # rebuild the bundle with one weight changed but the manifest kept
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    extract_bundle(bundle, unpacked)
    tensors = load_file(unpacked / "adapter_model.safetensors")
    first = sorted(tensors)[0]
    tensors[first] = tensors[first] + 1
    save_file(tensors, str(unpacked / "adapter_model.safetensors"))
    with tarfile.open(tmp_path / "tampered.tar", "w") as tar:
        for path in sorted(unpacked.iterdir()):
            tar.add(path, arcname=path.name)
    other = tmp_path / "other-store"
    with pytest.raises(IntegrityError, match="sha256"):
        registry.import_adapter(tmp_path / "tampered.tar", store=other)
    assert registry.LocalStore(other).ids() == []
