"""Local store hardening: the index heals itself from the committed manifests, an entry whose
folder names another version than its manifest is refused wherever it is read, and files are
refused from their declared sizes before they are read."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from registry_helpers import METRICS

from adapterhub import registry
from adapterhub.cli import main
from adapterhub.errors import IntegrityError
from adapterhub.registry.ids import AdapterId
from adapterhub.registry.stores import LocalStore
from adapterhub.registry.verify import MAX_WEIGHTS_BYTES, verify_adapter_dir


def _listed(store, capsys) -> dict[str, bool]:
    """``{id: yanked}`` as `adapterhub registry list --store STORE --json` prints it."""
    capsys.readouterr()
    assert main(["registry", "list", "--store", str(store), "--json"]) == 0
    return {row["id"]: row["yanked"] for row in json.loads(capsys.readouterr().out)}


def test_list_repairs_the_index_from_the_committed_manifests(backbone, lora_dir, tmp_path, capsys):
    store = tmp_path / "store"
    registry.publish(lora_dir, "sentiment/de@team:1.0.0", backbone=backbone, store=store)
    assert _listed(store, capsys) == {"sentiment/de@team:1.0.0": False}

    # a publisher killed between its commit (the rename of a whole entry folder into place)
    # and its index update: the entry is committed, the index never heard of it
    scratch = tmp_path / "scratch"
    registry.publish(lora_dir, "sentiment/fr@team:1.0.0", backbone=backbone, store=scratch)
    final = store / "team/sentiment/fr/1.0.0"
    final.parent.mkdir(parents=True)
    os.rename(scratch / "team/sentiment/fr/1.0.0", final)
    assert _listed(store, capsys) == {
        "sentiment/de@team:1.0.0": False,
        "sentiment/fr@team:1.0.0": False,
    }
    assert [m.id for m in registry.search(store=store, lang="fr")] == ["sentiment/fr@team:1.0.0"]

    # a yanker killed after writing the marker, and an entry removed by hand
    (final / "yanked.json").write_text(json.dumps({"reason": "bad"}))
    shutil.rmtree(store / "team/sentiment/de/1.0.0")
    assert _listed(store, capsys) == {"sentiment/fr@team:1.0.0": True}
    assert [m.id for m in registry.search(store=store, include_yanked=False)] == []


def test_open_reads_only_what_changed(backbone, lora_dir, tmp_path, capsys, caplog):
    store = tmp_path / "store"
    registry.publish(lora_dir, "sentiment/de@team:1.0.0", backbone=backbone, store=store)
    # an unreadable manifest is kept out of the listing, and read (and warned about) once
    broken = store / "team/sentiment/nl/1.0.0"
    broken.mkdir(parents=True)
    (broken / "manifest.json").write_text("{not json")
    with caplog.at_level("WARNING", logger="adapterhub.registry.stores"):
        assert _listed(store, capsys) == {"sentiment/de@team:1.0.0": False}
        assert "sentiment/nl@team:1.0.0" in caplog.text
        caplog.clear()
        assert _listed(store, capsys) == {"sentiment/de@team:1.0.0": False}
        assert caplog.text == ""
        # once it changes it is read again
        shutil.rmtree(broken)
        registry.publish(
            lora_dir, "sentiment/nl@team:1.0.0", backbone=backbone, store=tmp_path / "s"
        )
        os.rename(tmp_path / "s/team/sentiment/nl/1.0.0", broken)
        assert set(_listed(store, capsys)) == {
            "sentiment/de@team:1.0.0",
            "sentiment/nl@team:1.0.0",
        }


@pytest.fixture
def moved_entry(backbone, lora_dir, tmp_path):
    """An entry whose folder says 2.0.0 while its manifest is the one of 1.0.0."""
    store = tmp_path / "store"
    registry.publish(
        lora_dir, "sentiment/de@team:1.0.0", backbone=backbone, metrics=METRICS, store=store
    )
    os.rename(store / "team/sentiment/de/1.0.0", store / "team/sentiment/de/2.0.0")
    return store


NAMES_BOTH = r"sentiment/de@team:2\.0\.0.*sentiment/de@team:1\.0\.0"


def test_a_folder_version_that_differs_from_the_manifest_id_is_refused(
    moved_entry, backbone, capsys
):
    store = moved_entry
    ((aid, error),) = registry.verify(store=store)
    assert aid == "sentiment/de@team:2.0.0"
    assert error is not None and "sentiment/de@team:1.0.0" in error
    with pytest.raises(IntegrityError, match=NAMES_BOTH):
        registry.resolve("sentiment/de@team", store=store)
    with pytest.raises(IntegrityError, match=NAMES_BOTH):
        registry.resolve("sentiment/de@team:2.0.0", backbone=backbone, store=store)
    # what the runtime calls to serve an adapter
    with pytest.raises(IntegrityError, match=NAMES_BOTH):
        registry.open_adapter("sentiment/de@team", backbone, store=store)
    with pytest.raises(IntegrityError, match=NAMES_BOTH):
        registry.export_bundle("sentiment/de@team", store / "out.tar", store=store)
    capsys.readouterr()
    assert main(["registry", "verify", "--all", "--store", str(store)]) == 5
    out = capsys.readouterr().out
    assert "BAD sentiment/de@team:2.0.0" in out and "sentiment/de@team:1.0.0" in out


def _replace_weights_with_larger(entry):
    weights = entry / "adapter_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data + b"\0" * len(data))
    return weights


def test_a_weights_file_larger_than_declared_is_refused_before_it_is_read(
    backbone, lora_dir, tmp_path
):
    source = tmp_path / "source"
    registry.publish(lora_dir, "sentiment/de@team:1.0.0", backbone=backbone, store=source)
    entry = source / "team/sentiment/de/1.0.0"
    _replace_weights_with_larger(entry)
    aid = AdapterId.parse("sentiment/de@team:1.0.0")

    # copying out of the store (pull from a directory store): refused before the copy
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(IntegrityError, match="declares"):
        LocalStore(source).fetch(aid, dest)
    assert not (dest / "adapter_model.safetensors").exists()
    with pytest.raises(IntegrityError, match="declares"):
        registry.pull("sentiment/de@team:1.0.0", str(source), store=tmp_path / "mine")
    assert LocalStore(tmp_path / "mine").ids() == []
    # loading it in place (what every resolve and serve runs)
    with pytest.raises(IntegrityError, match="manifest lists"):
        verify_adapter_dir(entry, backbone, require_manifest=True)


def test_a_declared_size_over_the_cap_is_refused_unread(backbone, lora_dir, tmp_path):
    store = tmp_path / "store"
    registry.publish(lora_dir, "sentiment/de@team:1.0.0", backbone=backbone, store=store)
    entry = store / "team/sentiment/de/1.0.0"
    # a sparse file as large as its (hostile) manifest says: stat and declaration agree
    os.truncate(entry / "adapter_model.safetensors", MAX_WEIGHTS_BYTES + 1)
    manifest = json.loads((entry / "manifest.json").read_text())
    manifest["files"]["adapter_model.safetensors"]["bytes"] = MAX_WEIGHTS_BYTES + 1
    (entry / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="over the .* byte cap"):
        verify_adapter_dir(entry, require_manifest=True)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(IntegrityError, match="over the .* byte cap"):
        LocalStore(store).fetch(AdapterId.parse("sentiment/de@team:1.0.0"), dest)
