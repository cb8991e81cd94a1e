"""Trust checks: what an adapter folder must pass before anything uses its weights.

Only safetensors is read, never pickle. A safetensors header is validated by hand before the
library parses it (so a lying header gets a clear refusal rather than a crash deep inside), every
tensor must be finite, shapes must fit the backbone, sha256 must match the manifest, and the
manifest's backbone fingerprint must be the loading backbone's.

:func:`verify_adapter_dir` is the one entry point the runtime and training call; it returns the
tensors it checked so that what is used is exactly what was verified.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapterhub.errors import BackboneMismatchError, IntegrityError
from adapterhub.methods import method_of
from adapterhub.registry.manifest import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    CARD,
    HEAD,
    MANIFEST,
    SIGNATURE_FILES,
    YANKED,
    Manifest,
)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
"""Files in these formats can run code when loaded; they are refused without being opened."""
MAX_WEIGHTS_BYTES = 1 << 30
MAX_HEADER_BYTES = 8 << 20
MAX_CONFIG_BYTES = 1 << 20

_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
_FLOAT_DTYPES = {"F16", "BF16", "F32", "F64", "F8_E4M3", "F8_E5M2"}
HEAD_BOUND = 1e4
"""Largest |weight| and |bias| a head may hold. Logits over hidden states of up to 1e5 features
of magnitude up to 1e4 then stay below 1e13: finite in fp32 (3.4e38), so scores are numbers. No
trained head comes near it (ours: under 1)."""


def sha256_file(path: str | Path) -> tuple[str, int]:
    """(hex digest, size in bytes) of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def refuse_pickles(folder: str | Path) -> None:
    """Refuse a folder holding pickle-format weights, without opening them."""
    folder = Path(folder)
    for path in sorted(folder.iterdir()):
        if path.name.lower().endswith(PICKLE_SUFFIXES):
            raise IntegrityError(
                f"{path} is a pickle-format file ({path.suffix}); adapterhub only loads "
                "safetensors. Convert it with safetensors (save_pretrained(..., "
                "safe_serialization=True)) and remove the pickle"
            )


def _regular_file(path: Path, what: str) -> Path:
    if path.is_symlink():
        raise IntegrityError(f"{path} is a symbolic link; {what} must be a regular file")
    if not path.is_file():
        raise IntegrityError(f"{path} is missing or not a regular file ({what})")
    return path


def read_safetensors_header(
    path: str | Path, data: bytes | None = None
) -> tuple[dict[str, dict], dict[str, str]]:
    """Validate a safetensors file's framing and header without loading tensors.

    ``data`` is the file's content when the caller already read it (then the file is not opened
    again). Returns ``(tensors, metadata)`` where tensors maps a name to ``{dtype, shape,
    data_offsets}``. Refuses: a file too short for its header, a header length beyond the file, a
    header that is not a JSON object, unknown dtypes, negative or inconsistent shapes, offsets
    that overlap, leave gaps, or point past the end of the file.
    """
    path = Path(path)
    size = len(data) if data is not None else path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise IntegrityError(f"{path} is {size} bytes, over the {MAX_WEIGHTS_BYTES} byte cap")
    if data is None:
        with open(path, "rb") as handle:
            data = handle.read(8 + MAX_HEADER_BYTES)
    if len(data) < 8:
        raise IntegrityError(f"{path} is truncated: no safetensors header")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > size - 8 or header_len > MAX_HEADER_BYTES:
        raise IntegrityError(
            f"{path} claims a {header_len} byte header in a {size} byte file; "
            "the file is truncated or not safetensors"
        )
    raw = data[8 : 8 + header_len]
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError(
            f"{path} has a header that is not JSON; not a safetensors file"
        ) from exc
    if not isinstance(header, dict):
        raise IntegrityError(f"{path} has a header that is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise IntegrityError(f"{path} has malformed __metadata__ (must map strings to strings)")
    data_len = size - 8 - header_len
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise IntegrityError(f"{path}: tensor {name!r} has a malformed header entry")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _DTYPE_BYTES:
            raise IntegrityError(f"{path}: tensor {name!r} has unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise IntegrityError(f"{path}: tensor {name!r} has an invalid shape {shape!r}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_len
        ):
            raise IntegrityError(
                f"{path}: tensor {name!r} has data offsets {offsets!r} outside the "
                f"{data_len} byte data section (the header lies or the file is truncated)"
            )
        numel = 1
        for d in shape:
            numel *= d
        if numel * _DTYPE_BYTES[dtype] != offsets[1] - offsets[0]:
            raise IntegrityError(
                f"{path}: tensor {name!r} of shape {shape} {dtype} needs "
                f"{numel * _DTYPE_BYTES[dtype]} bytes but its offsets span "
                f"{offsets[1] - offsets[0]}; the header lies"
            )
        spans.append((offsets[0], offsets[1], name))
    position = 0
    for start, end, name in sorted(spans):
        if start != position:
            raise IntegrityError(
                f"{path}: tensor {name!r} starts at {start}, expected {position}; "
                "tensors overlap or leave gaps (the header lies)"
            )
        position = end
    if position != data_len:
        raise IntegrityError(
            f"{path}: the header accounts for {position} data bytes but the file has {data_len}"
        )
    return header, metadata


def load_safetensors(
    path: str | Path, data: bytes | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Load a validated safetensors file; refuses non-finite floating-point values.

    ``data``: the file's content as already read (and hashed) by the caller, so that the bytes
    checked are the bytes loaded.
    """
    import torch
    from safetensors.torch import load as load_bytes

    path = Path(path)
    if data is None:
        path = _regular_file(path, "a weights file")
        header, metadata = read_safetensors_header(path)  # refuses oversize files unread
        data = path.read_bytes()
    raw = data
    header, metadata = read_safetensors_header(path, raw)
    if sys.byteorder == "little":
        tensors = _tensors_from_bytes(path, raw, header)  # the header was parsed and checked once
    else:
        try:
            tensors = load_bytes(raw)
        except Exception as exc:  # the library's own checks, after ours
            raise IntegrityError(f"{path} is not a valid safetensors file ({exc})") from exc
    if set(tensors) != set(header):
        raise IntegrityError(f"{path}: tensors do not match the header")
    if _all_finite_at_once(raw, header):
        return tensors, metadata
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise IntegrityError(
                f"{path}: tensor {name!r} contains NaN or Inf values; the adapter is broken "
                "(retrain it, e.g. with a lower learning rate)"
            )
    return tensors, metadata


_NUMPY_FLOATS = {"F16": "<f2", "F32": "<f4", "F64": "<f8"}
_TORCH_DTYPES = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2", "I16": "int16", "U16": "uint16", "F16": "float16",
    "BF16": "bfloat16", "I32": "int32", "U32": "uint32", "F32": "float32", "I64": "int64",
    "U64": "uint64", "F64": "float64",
}  # fmt: skip


def _tensors_from_bytes(path: Path, raw: bytes, header: dict[str, dict]) -> dict[str, Any]:
    """Tensors over one writable copy of a validated file's data section (little-endian host).

    ``read_safetensors_header`` has checked every dtype, shape and span, so this only slices:
    parsing the header a second time (as ``safetensors.torch.load`` would) is the cost it saves.
    """
    import torch

    (header_len,) = struct.unpack("<Q", raw[:8])
    buffer = bytearray(memoryview(raw)[8 + header_len :])
    tensors = {}
    for name, info in header.items():
        dtype = getattr(torch, _TORCH_DTYPES[info["dtype"]], None)
        if dtype is None:
            raise IntegrityError(
                f"{path}: tensor {name!r} has dtype {info['dtype']}, which this torch lacks"
            )
        start, end = info["data_offsets"]
        size = _DTYPE_BYTES[info["dtype"]]
        if info["dtype"] == "BOOL" and end > start and max(buffer[start:end]) > 1:
            raise IntegrityError(f"{path}: BOOL tensor {name!r} holds bytes other than 0 and 1")
        if end == start:
            tensors[name] = torch.empty(info["shape"], dtype=dtype)
        elif start % size:  # unaligned for its dtype: give it its own buffer
            own = bytearray(buffer[start:end])
            tensors[name] = torch.frombuffer(own, dtype=dtype).view(info["shape"])
        else:
            count = (end - start) // size
            flat = torch.frombuffer(buffer, dtype=dtype, count=count, offset=start)
            tensors[name] = flat.view(info["shape"])
    return tensors


def _all_finite_at_once(raw: bytes, header: dict[str, dict]) -> bool:
    """One vectorised check when every tensor has the same numpy float dtype (the usual adapter).

    The header was validated: its spans tile the data section exactly. Returns False when the
    check does not apply or finds a non-finite value, so the caller looks tensor by tensor (and
    names the culprit).
    """
    import numpy as np

    dtypes = {info["dtype"] for info in header.values()}
    if len(dtypes) != 1 or next(iter(dtypes)) not in _NUMPY_FLOATS:
        return False
    (header_len,) = struct.unpack("<Q", raw[:8])
    data = np.frombuffer(raw, dtype=_NUMPY_FLOATS[dtypes.pop()], offset=8 + header_len)
    return bool(np.isfinite(data).all())


def read_json_file(path: Path, what: str, content: bytes | None = None) -> dict[str, Any]:
    if content is None:
        path = _regular_file(path, what)
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise IntegrityError(f"{path} is too large for {what}")
        content = path.read_bytes()
    if len(content) > MAX_CONFIG_BYTES:
        raise IntegrityError(f"{path} is too large for {what}")
    try:
        data = json.loads(content.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise IntegrityError(f"{path} is not a JSON object")
    return data


@dataclass
class VerifiedAdapter:
    """An adapter folder that passed every check, with the tensors that were checked."""

    path: Path
    method: str
    config: dict[str, Any]
    weights: dict[str, Any]
    head: dict[str, Any] | None = None
    labels: list[str] = field(default_factory=list)
    task_type: str | None = None
    manifest: Manifest | None = None
    settings: Any = None
    """The method's config as its validate_config parsed it (what serving reads)."""


def check_files_against_manifest(folder: Path, manifest: Manifest) -> dict[str, bytes]:
    """Every listed file present with its size and sha256; nothing unlisted.

    Returns each file's content as hashed, so callers parse exactly the bytes that were checked
    (a file swapped after the check is never loaded) and read each file once.
    """
    allowed = set(manifest.files) | {MANIFEST, YANKED, *SIGNATURE_FILES}  # checked by .signing
    for path in folder.iterdir():
        if path.name.startswith(".") and not path.is_symlink():
            continue  # store bookkeeping (.claim, .owner~*, staging); never read as payload
        if path.name not in allowed:
            raise IntegrityError(
                f"{folder} holds {path.name!r}, which its manifest does not list; "
                "the entry was tampered with (pull it again)"
            )
    contents = {}
    for name, info in manifest.files.items():
        if info.bytes > MAX_WEIGHTS_BYTES:
            raise IntegrityError(
                f"{manifest.id}: its manifest declares {name} as {info.bytes} bytes, over the "
                f"{MAX_WEIGHTS_BYTES} byte cap; refusing to read it"
            )
        path = _regular_file(folder / name, f"{name} of {manifest.id}")
        size = path.stat().st_size
        if size != info.bytes:  # refused unread: it may be huge
            raise IntegrityError(
                f"{path} has {size} bytes but the manifest lists {info.bytes} bytes with sha256 "
                f"{info.sha256[:12]}…; the file is corrupt or was tampered with "
                f"(pull {manifest.id} again)"
            )
        with open(path, "rb") as handle:  # bounded: a file growing after the stat stays refused
            content = handle.read(info.bytes + 1)
        digest = hashlib.sha256(content).hexdigest()
        if len(content) != info.bytes or digest != info.sha256:
            raise IntegrityError(
                f"{path}: sha256 {digest[:12]}… ({len(content)} bytes) does not match the "
                f"manifest's {info.sha256[:12]}… ({info.bytes} bytes); the file is corrupt or "
                f"was tampered with (pull {manifest.id} again)"
            )
        contents[name] = content
    return contents


def check_backbone_fingerprint(manifest: Manifest, backbone: Any) -> None:
    theirs = getattr(backbone, "fingerprint", None)
    if theirs and theirs != manifest.backbone.fingerprint:
        raise BackboneMismatchError(
            f"{manifest.id} was trained on backbone {manifest.backbone.name!r} "
            f"({manifest.backbone.fingerprint}) but the loading backbone is "
            f"{getattr(backbone, 'name', '?')!r} ({theirs}); load it on "
            f"{manifest.backbone.name!r} or retrain it on this backbone"
        )


def check_head(
    head: dict[str, Any], metadata: dict[str, str], where: Path, hidden: int | None
) -> tuple[list[str], str]:
    if set(head) != {"weight", "bias"}:
        raise IntegrityError(
            f"{where}: a head holds exactly 'weight' and 'bias', got {sorted(head)}"
        )
    weight, bias = head["weight"], head["bias"]
    if weight.dim() != 2 or bias.dim() != 1 or bias.shape[0] != weight.shape[0]:
        raise IntegrityError(
            f"{where}: head weight {tuple(weight.shape)} and bias {tuple(bias.shape)} "
            "must be [num_labels, hidden] and [num_labels]"
        )
    if hidden is not None and weight.shape[1] != hidden:
        raise IntegrityError(
            f"{where}: head expects hidden size {weight.shape[1]} but the backbone has {hidden}"
        )
    for name, tensor in (("weight", weight), ("bias", bias)):
        largest = float(tensor.float().abs().max()) if tensor.numel() else 0.0
        if not largest <= HEAD_BOUND:
            raise IntegrityError(
                f"{where}: head {name} holds a value of magnitude {largest:.3g}; a head's "
                f"weights and biases must lie within {HEAD_BOUND:g} so its logits stay finite "
                "(retrain the head)"
            )
    try:
        labels = json.loads(metadata.get("labels", "null"))
    except ValueError as exc:
        raise IntegrityError(f"{where}: metadata 'labels' is not JSON") from exc
    if labels is None:
        labels = [f"LABEL_{i}" for i in range(weight.shape[0])]
    if (
        not isinstance(labels, list)
        or len(labels) != weight.shape[0]
        or not all(isinstance(x, str) for x in labels)
    ):
        raise IntegrityError(
            f"{where}: metadata 'labels' must list {weight.shape[0]} label names in index order"
        )
    repeated = sorted(label for label, count in Counter(labels).items() if count > 1)
    if repeated:  # scores are keyed by label: two outputs of one name would collapse into one
        raise IntegrityError(
            f"{where}: metadata 'labels' names {', '.join(map(repr, repeated))} more than once; "
            "give each output of the head its own label and save the head again"
        )
    # the task table imports torch and transformers (~9 s cold): `registry list` and `show`
    # never get here, only a verification that reads the tensors anyway
    from adapterhub.tasks import HEAD_TASK_TYPES

    task_type = metadata.get("task_type", "sequence")
    if task_type not in HEAD_TASK_TYPES:
        raise IntegrityError(
            f"{where}: metadata task_type {task_type!r} is not one of {', '.join(HEAD_TASK_TYPES)}"
        )
    return labels, task_type


def verify_adapter_dir(
    path: str | Path,
    backbone: Any = None,
    *,
    require_manifest: bool = False,
    expected_id: str | None = None,
) -> VerifiedAdapter:
    """Check an adapter folder (a registry entry or a training output) and load its tensors.

    ``backbone`` is an :class:`adapterhub.backbone.Backbone` (or anything with ``fingerprint``,
    ``name`` and optionally ``model`` / ``hidden_size``); with it, the manifest's fingerprint must
    match and every tensor's shape must fit the backbone's modules. When the folder has a
    ``manifest.json`` every file's sha256 and size are checked against it. ``expected_id``: the
    id the folder is read as (a store entry's path); the manifest must be that id's.

    Raises :class:`IntegrityError` (or :class:`BackboneMismatchError`) naming the first problem.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise IntegrityError(f"{folder} is not an adapter folder")
    refuse_pickles(folder)
    manifest = None
    contents: dict[str, bytes] = {}
    if (folder / MANIFEST).exists() or require_manifest:
        manifest = Manifest.from_json(
            _regular_file(folder / MANIFEST, "the manifest").read_bytes(),
            where=str(folder / MANIFEST),
        )
        if expected_id is not None and manifest.id != expected_id:
            raise IntegrityError(
                f"{folder} is the entry {expected_id} but its manifest is for {manifest.id}; "
                f"the entry was moved or tampered with (pull {manifest.id} again, or remove it)"
            )
        yanked = folder / YANKED
        if yanked.is_file():
            manifest.yanked = True
        contents = check_files_against_manifest(folder, manifest)
        if backbone is not None:
            check_backbone_fingerprint(manifest, backbone)
    config = read_json_file(
        folder / ADAPTER_CONFIG, "the adapter config", contents.get(ADAPTER_CONFIG)
    )
    # the method's one verification: the same the runtime and training-time loads run
    method = method_of(config, str(folder / ADAPTER_CONFIG))
    settings = method.validate_config(config, str(folder / ADAPTER_CONFIG))
    if manifest is not None and manifest.method != method.name:
        raise IntegrityError(f"{folder}: manifest says {manifest.method}, the config {method.name}")
    weights, _ = load_safetensors(folder / ADAPTER_WEIGHTS, contents.get(ADAPTER_WEIGHTS))
    hidden = getattr(backbone, "hidden_size", None) if backbone is not None else None
    model = getattr(backbone, "model", None) if backbone is not None else None
    method.check_weights(settings, weights, str(folder), model)
    head = None
    labels: list[str] = []
    task_type = None
    if (folder / HEAD).exists() or (manifest is not None and HEAD in manifest.files):
        head, metadata = load_safetensors(folder / HEAD, contents.get(HEAD))
        labels, task_type = check_head(head, metadata, folder / HEAD, hidden)
        if manifest is not None and manifest.labels and manifest.labels != labels:
            raise IntegrityError(f"{folder}: head labels {labels} differ from the manifest's")
    return VerifiedAdapter(
        folder, method.name, config, weights, head, labels, task_type, manifest, settings
    )


__all__ = [
    "CARD",
    "PICKLE_SUFFIXES",
    "VerifiedAdapter",
    "load_safetensors",
    "read_safetensors_header",
    "refuse_pickles",
    "sha256_file",
    "verify_adapter_dir",
]
