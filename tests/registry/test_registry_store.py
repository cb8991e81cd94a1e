"""Publishing, finding and maintaining entries in local, fsspec and read-only stores."""

from __future__ import annotations

import json
import sqlite3
import uuid

import pytest
from registry_helpers import METRICS, make_lora_dir

from adapterhub import registry
from adapterhub.errors import ConflictError, IntegrityError, NotFoundError, RegistryError
from adapterhub.registry.manifest import read_card_front_matter
from adapterhub.registry.stores import FsspecStore, LocalStore


def test_publish_writes_the_format_md_layout(backbone, lora_dir, store_dir):
    manifest = registry.publish(
        lora_dir,
        "sentiment/de@nlp-team:1.0.0",
        backbone=backbone,
        metrics=METRICS,
        recipe={"epochs": 2},
        parents=["lang/de@adapterhub:1.0.0"],
        store=store_dir,
    )
    entry = store_dir / "nlp-team" / "sentiment" / "de" / "1.0.0"
    assert sorted(p.name for p in entry.iterdir()) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "head.safetensors",
        "manifest.json",
    ]
    on_disk = json.loads((entry / "manifest.json").read_text())
    assert on_disk["backbone"] == {"name": backbone.name, "fingerprint": backbone.fingerprint}
    assert on_disk["labels"] == ["negative", "positive"] and on_disk["method"] == "lora"
    assert on_disk["metrics"]["accuracy"] == 0.81 and on_disk["parents"] == manifest.parents
    assert set(on_disk["files"]) == {
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "head.safetensors",
    }
    front = read_card_front_matter((entry / "README.md").read_text())
    assert front["adapterhub"]["id"] == "sentiment/de@nlp-team:1.0.0"
    assert registry.verify_adapter_dir(entry, backbone).manifest.id == manifest.id


def test_published_versions_are_immutable(backbone, lora_dir, store_dir, tmp_path):
    registry.publish(lora_dir, "sentiment/de:1.0.0", backbone=backbone, store=store_dir)
    before = (store_dir / "local/sentiment/de/1.0.0/adapter_model.safetensors").read_bytes()
    other = make_lora_dir(backbone, tmp_path / "other", seed=7)
    with pytest.raises(ConflictError, match="immutable"):
        registry.publish(other, "sentiment/de:1.0.0", backbone=backbone, store=store_dir)
    after = (store_dir / "local/sentiment/de/1.0.0/adapter_model.safetensors").read_bytes()
    assert before == after


def test_bare_id_resolves_to_newest_non_yanked(backbone, lora_dir, store_dir):
    for version in ("1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1"):
        registry.publish(lora_dir, f"sentiment/de:{version}", backbone=backbone, store=store_dir)
    registry.publish(lora_dir, "sentiment/de@other:9.0.0", backbone=backbone, store=store_dir)
    assert str(registry.find("sentiment/de", store=store_dir, sources=[])) == (
        "sentiment/de@local:1.10.0"
    )
    registry.yank("sentiment/de:1.10.0", "bad labels", store=store_dir)
    path = registry.resolve("sentiment/de", store=store_dir, sources=[], backbone=backbone)
    assert path == store_dir / "local/sentiment/de/1.2.0"
    # a yanked version stays loadable by its exact id, and its files are untouched
    exact = registry.resolve("sentiment/de:1.10.0", store=store_dir, sources=[])
    assert (exact / "yanked.json").is_file()
    assert registry.show("sentiment/de:1.10.0", store=store_dir).yanked
    assert registry.verify("sentiment/de:1.10.0", store=store_dir) == [
        ("sentiment/de@local:1.10.0", None)
    ]
    with pytest.raises(NotFoundError, match="no published"):
        registry.find("pos/de", store=store_dir, sources=[])


def test_search_by_every_field_and_reindex(backbone, lora_dir, store_dir, tmp_path):
    registry.publish(
        lora_dir, "sentiment/de:1.0.0", backbone=backbone, metrics=METRICS, store=store_dir
    )
    registry.publish(
        lora_dir,
        "sentiment/fr@team:1.0.0",
        backbone=backbone,
        metrics={**METRICS, "accuracy": 0.6},
        store=store_dir,
    )
    registry.publish(
        lora_dir,
        "pos/de:0.1.0",
        backbone={"name": "other-backbone", "fingerprint": "sha256:" + "1" * 64},
        store=store_dir,
    )

    def ids(**filters):
        return [m.id for m in registry.search(store=store_dir, **filters)]

    assert ids(task="sentiment") == ["sentiment/de@local:1.0.0", "sentiment/fr@team:1.0.0"]
    assert ids(lang="de") == ["pos/de@local:0.1.0", "sentiment/de@local:1.0.0"]
    assert ids(namespace="team") == ["sentiment/fr@team:1.0.0"]
    assert ids(backbone="other-backbone") == ["pos/de@local:0.1.0"]
    assert ids(backbone=backbone.fingerprint) == [
        "sentiment/de@local:1.0.0",
        "sentiment/fr@team:1.0.0",
    ]
    assert ids(method="ia3") == []
    assert ids(metric="accuracy") == ["sentiment/de@local:1.0.0", "sentiment/fr@team:1.0.0"]
    assert ids(metric="accuracy", min_value=0.7) == ["sentiment/de@local:1.0.0"]
    registry.yank("pos/de:0.1.0", store=store_dir)
    assert "pos/de@local:0.1.0" not in ids(include_yanked=False)

    # the index is a cache: wipe it and rebuild it from the manifests
    index = store_dir / ".index.sqlite"
    with sqlite3.connect(index) as db:
        db.execute("DELETE FROM entries")
    assert ids() == []
    assert registry.reindex(store=store_dir) == 3
    assert len(ids()) == 3 and ids(include_yanked=False) == [
        "sentiment/de@local:1.0.0",
        "sentiment/fr@team:1.0.0",
    ]
    index.unlink()
    assert len(ids()) == 3  # rebuilt on demand


@pytest.mark.parametrize("scheme", ["file", "memory"])
def test_fsspec_stores_publish_pull_push(backbone, lora_dir, store_dir, tmp_path, scheme):
    url = (
        f"file://{tmp_path / 'fs-store'}"
        if scheme == "file"
        else f"memory://reg-{uuid.uuid4().hex}"
    )
    remote = registry.open_store(url)
    assert isinstance(remote, FsspecStore)
    registry.publish(
        lora_dir, "sentiment/de:1.0.0", backbone=backbone, metrics=METRICS, store=remote
    )
    with pytest.raises(ConflictError):
        registry.publish(lora_dir, "sentiment/de:1.0.0", backbone=backbone, store=remote)
    assert [str(a) for a in remote.ids()] == ["sentiment/de@local:1.0.0"]
    assert [m.id for m in remote.search(task="sentiment")] == ["sentiment/de@local:1.0.0"]

    pulled = registry.pull("sentiment/de", remote, store=store_dir)
    assert pulled.id == "sentiment/de@local:1.0.0"
    assert registry.verify(store=store_dir) == [("sentiment/de@local:1.0.0", None)]

    registry.publish(lora_dir, "sentiment/de:1.1.0", backbone=backbone, store=store_dir)
    registry.push("sentiment/de:1.1.0", remote, store=store_dir)
    registry.yank("sentiment/de:1.1.0", store=remote)
    assert str(registry.find("sentiment/de", store=tmp_path / "empty", sources=[remote])) == (
        "sentiment/de@local:1.0.0"
    )
    # a corrupted remote file is caught on pull, and nothing lands locally
    entry = "local/sentiment/de/1.1.0/adapter_model.safetensors"
    data = bytearray(remote.fs.cat_file(f"{remote.root}/{entry}"))
    data[-1] ^= 0xFF
    remote.fs.pipe_file(f"{remote.root}/{entry}", bytes(data))
    fresh = tmp_path / "fresh"
    with pytest.raises(IntegrityError, match="sha256"):
        registry.pull("sentiment/de:1.1.0", remote, store=fresh)
    assert LocalStore(fresh).ids() == []


def test_fsspec_gc_removes_a_dead_claim(backbone, lora_dir, tmp_path):
    remote = registry.open_store(f"file://{tmp_path / 'fs-store'}")
    entry = tmp_path / "fs-store/local/sentiment/de/1.0.0"
    entry.mkdir(parents=True)
    (entry / ".claim").write_text(json.dumps({"host": "elsewhere", "pid": 1, "time": 0}))
    (entry / "adapter_model.safetensors").write_bytes(b"half")
    with pytest.raises(ConflictError, match="gc"):
        registry.publish(lora_dir, "sentiment/de:1.0.0", backbone=backbone, store=remote)
    assert remote.ids() == []
    assert registry.gc(store=remote) == [str(entry)]
    registry.publish(lora_dir, "sentiment/de:1.0.0", backbone=backbone, store=remote)


def test_read_only_store_is_an_upstream_and_never_written(backbone, lora_dir, tmp_path, store_dir):
    project = tmp_path / "project-registry"
    registry.publish(lora_dir, "sentiment/en:1.0.0", backbone=backbone, store=project)
    (project / ".index.sqlite").unlink()
    before = sorted(str(p) for p in project.rglob("*"))
    upstream = LocalStore(project, read_only=True)
    with pytest.raises(RegistryError, match="read-only"):
        registry.publish(lora_dir, "sentiment/en:2.0.0", backbone=backbone, store=upstream)
    with pytest.raises(RegistryError, match="read-only"):
        upstream.yank(registry.AdapterId.parse("sentiment/en@local:1.0.0"))
    assert [m.id for m in upstream.search(lang="en")] == ["sentiment/en@local:1.0.0"]
    path = registry.resolve("sentiment/en", store=store_dir, sources=[upstream], backbone=backbone)
    assert path == project / "local/sentiment/en/1.0.0"  # used in place
    registry.pull("sentiment/en", upstream, store=store_dir)
    assert LocalStore(store_dir).exists(registry.AdapterId.parse("sentiment/en@local:1.0.0"))
    assert sorted(str(p) for p in project.rglob("*")) == before


def test_project_remote_and_named_remotes(backbone, lora_dir, tmp_path, monkeypatch, isolated_home):
    project = tmp_path / "project-registry"
    project.mkdir()
    # only the project store takes entries in the built-in namespace
    monkeypatch.setenv("ADAPTERHUB_PROJECT_REGISTRY", str(project))
    registry.publish(lora_dir, "langid/multi@adapterhub:1.0.0", backbone=backbone, store=project)
    registry.add_remote("team", f"file://{tmp_path / 'team'}")
    remotes = registry.list_remotes()
    assert remotes["team"]["url"].startswith("file://")
    assert remotes["project"] == {"url": str(project), "read_only": True}
    assert json.loads((isolated_home / "remotes.json").read_text())["remotes"]["team"]
    # the default store and the default sources: resolve finds the project's entry
    path = registry.resolve("langid/multi", backbone=backbone)
    assert path == project / "adapterhub/langid/multi/1.0.0"
    registry.remove_remote("team")
    assert "team" not in registry.list_remotes()


def test_an_exact_local_id_resolves_without_consulting_remotes(
    backbone, lora_dir, store_dir, isolated_home
):
    # the serving runtime's load path: a remotes file that cannot be read must not matter for an
    # entry already here, while anything that needs the remotes still reports the broken file
    registry.publish(lora_dir, "sentiment/de:1.0.0", backbone=backbone, store=store_dir)
    (isolated_home / "remotes.json").write_text("{not json")
    path = registry.resolve("sentiment/de@local:1.0.0", store=store_dir, backbone=backbone)
    assert path == store_dir / "local/sentiment/de/1.0.0"
    assert registry.open_adapter("sentiment/de:1.0.0", backbone, store=store_dir).path == path
    with pytest.raises(RegistryError, match="remotes.json"):
        registry.resolve("sentiment/de:2.0.0", store=store_dir)


def test_bottleneck_adapters_publish_and_are_shape_checked(backbone, tmp_path, store_dir):
    from adapterhub.methods.bottleneck import layer as bottleneck

    adapter = bottleneck.BottleneckAdapter.for_backbone(backbone.model, reduction_factor=4)
    folder = bottleneck.save(adapter, tmp_path / "bn")
    manifest = registry.publish(folder, "lang/fr:1.0.0", backbone=backbone, store=store_dir)
    assert manifest.method == "bottleneck" and manifest.kind == "language"
    registry.verify_adapter_dir(store_dir / "local/lang/fr/1.0.0", backbone)

    wide = bottleneck.BottleneckAdapter(
        bottleneck.BottleneckConfig(hidden_size=backbone.hidden_size * 2, num_layers=2)
    )
    with pytest.raises(IntegrityError, match="hidden size"):
        registry.publish(
            bottleneck.save(wide, tmp_path / "wide"),
            "lang/fr:2.0.0",
            backbone=backbone,
            store=store_dir,
        )
    deep = bottleneck.BottleneckAdapter(
        bottleneck.BottleneckConfig(hidden_size=backbone.hidden_size, num_layers=9)
    )
    with pytest.raises(IntegrityError, match="names layer [2-8]; the backbone has 2"):
        registry.publish(
            bottleneck.save(deep, tmp_path / "deep"),
            "lang/fr:2.0.0",
            backbone=backbone,
            store=store_dir,
        )


def test_resolve_with_a_remote_store_caches_in_the_local_one(
    backbone, lora_dir, tmp_path, isolated_home
):
    remote = f"memory://replica-{uuid.uuid4().hex}"
    registry.publish(lora_dir, "sentiment/it:1.0.0", backbone=backbone, store=remote)
    path = registry.resolve("sentiment/it", store=remote, backbone=backbone)
    assert path == isolated_home / "registry/local/sentiment/it/1.0.0"
    verified = registry.open_adapter("sentiment/it", backbone, store=remote)
    assert verified.labels == ["negative", "positive"] and verified.method == "lora"
    assert set(verified.head) == {"weight", "bias"}
