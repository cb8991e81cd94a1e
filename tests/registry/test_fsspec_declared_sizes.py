"""An fsspec store (``memory://``, ``file://``, ``s3://``) hands out only what its manifest
declares: a file of another size is refused before it is read, one that streams past its declared
size is cut at the first byte over, and manifests and yank markers are capped like a local
store's."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from adapterhub import registry
from adapterhub.errors import IntegrityError
from adapterhub.registry.ids import AdapterId
from adapterhub.registry.manifest import YANKED
from adapterhub.registry.stores import MAX_MANIFEST_BYTES, MAX_REMOTE_FILE_BYTES, LocalStore

AID = AdapterId.parse("sentiment/de@team:1.0.0")
WEIGHTS = "adapter_model.safetensors"


@pytest.fixture
def remote(backbone, lora_dir):
    store = registry.open_store(f"memory://declared-{uuid.uuid4().hex}")
    registry.publish(lora_dir, str(AID), backbone=backbone, store=store)
    return store


def _path(store, name: str) -> str:
    return f"{store.root}/{AID.relpath}/{name}"


def test_a_file_swapped_for_a_larger_one_is_refused_before_it_is_read(remote, tmp_path):
    data = remote.fs.cat_file(_path(remote, WEIGHTS))
    remote.fs.pipe_file(_path(remote, WEIGHTS), data + b"\0" * len(data))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(IntegrityError, match="declares"):
        remote.fetch(AID, dest)
    assert not (dest / WEIGHTS).exists()
    with pytest.raises(IntegrityError, match="declares"):
        registry.pull(str(AID), remote, store=tmp_path / "mine")
    assert LocalStore(tmp_path / "mine").ids() == []


def test_a_file_that_streams_past_its_declared_size_is_cut_off(remote, tmp_path, monkeypatch):
    # a store whose listing and content disagree (an object replaced between the stat and the
    # read, or a server that lists one size and sends more): the listing says the declared size
    declared = len(remote.fs.cat_file(_path(remote, WEIGHTS)))
    remote.fs.pipe_file(_path(remote, WEIGHTS), b"\0" * (declared + 4096))
    listed = remote.fs.info

    def stale_info(path, **kwargs):
        info = dict(listed(path, **kwargs))
        if path.endswith(WEIGHTS):
            info["size"] = declared
        return info

    monkeypatch.setattr(remote.fs, "info", stale_info)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(IntegrityError, match=f"past its declared {declared} bytes"):
        remote.fetch(AID, dest)


def test_a_declared_size_over_the_cap_is_refused_unread(backbone, lora_dir, tmp_path):
    root = tmp_path / "fs-store"
    store = registry.open_store(f"file://{root}")
    registry.publish(lora_dir, str(AID), backbone=backbone, store=store)
    entry = root / AID.relpath
    # a sparse file as large as its (hostile) manifest says: listing and declaration agree
    os.truncate(entry / WEIGHTS, MAX_REMOTE_FILE_BYTES + 1)
    manifest = json.loads((entry / "manifest.json").read_text())
    manifest["files"][WEIGHTS]["bytes"] = MAX_REMOTE_FILE_BYTES + 1
    (entry / "manifest.json").write_text(json.dumps(manifest))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(IntegrityError, match="over the .* byte cap"):
        store.fetch(AID, dest)
    assert not (dest / WEIGHTS).exists()


def test_manifests_and_yank_markers_are_capped(remote, tmp_path):
    registry.yank(str(AID), "broken", store=remote)
    remote.fs.pipe_file(_path(remote, YANKED), b" " * (MAX_MANIFEST_BYTES + 1))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(IntegrityError, match="over the .* byte cap"):
        remote.fetch(AID, dest)
    remote.fs.pipe_file(_path(remote, "manifest.json"), b" " * (MAX_MANIFEST_BYTES + 1))
    with pytest.raises(IntegrityError, match="over the .* byte cap"):
        remote.read_manifest(AID)
