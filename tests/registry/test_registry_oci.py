"""Round trips through a real OCI registry (Debian's docker-registry on a loopback port)."""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import shutil
import signal
import time
import traceback
from pathlib import Path

import pytest
from registry_helpers import METRICS, make_lora_dir

from adapterhub import registry
from adapterhub.errors import (
    AdapterHubError,
    AuthError,
    ConflictError,
    IntegrityError,
    RegistryError,
)
from adapterhub.registry.ids import AdapterId
from adapterhub.registry.stores import LocalStore, OCIStore
from adapterhub.registry.verify import sha256_file


def _files(entry):
    return {p.name: sha256_file(p)[0] for p in sorted(entry.iterdir())}


def test_push_pull_round_trip_is_byte_identical(backbone, lora_dir, tmp_path, oci_registry):
    url = oci_registry.url(f"rt/{tmp_path.name[-20:].lower().replace('_', '-')}")
    home_store = tmp_path / "team-a"
    registry.publish(
        lora_dir, "sentiment/de@team:1.0.0", backbone=backbone, metrics=METRICS, store=home_store
    )
    registry.push("sentiment/de@team:1.0.0", url, store=home_store)
    remote = registry.open_store(url)
    assert isinstance(remote, OCIStore) and remote.insecure
    assert [str(a) for a in remote.ids()] == ["sentiment/de@team:1.0.0"]
    assert remote.read_manifest(AdapterId.parse("sentiment/de@team:1.0.0")).metrics.values == {
        "accuracy": 0.81,
        "macro_f1": 0.79,
    }
    with pytest.raises(ConflictError, match="immutable"):
        registry.push("sentiment/de@team:1.0.0", url, store=home_store)

    other_team = tmp_path / "team-b"
    pulled = registry.pull("sentiment/de@team", url, store=other_team)
    assert pulled.id == "sentiment/de@team:1.0.0"
    a = home_store / "team/sentiment/de/1.0.0"
    b = other_team / "team/sentiment/de/1.0.0"
    assert _files(a) == _files(b)
    registry.verify_adapter_dir(b, backbone)

    # newest non-yanked across the remote; yank travels through a tag, files stay
    second = make_lora_dir(backbone, tmp_path / "second", seed=3)
    registry.publish(second, "sentiment/de@team:1.1.0", backbone=backbone, store=home_store)
    registry.push("sentiment/de@team:1.1.0", url, store=home_store)
    assert str(registry.find("sentiment/de@team", store=tmp_path / "c", sources=[remote])) == (
        "sentiment/de@team:1.1.0"
    )
    registry.yank("sentiment/de@team:1.1.0", "regression", store=remote)
    assert remote.read_manifest(AdapterId.parse("sentiment/de@team:1.1.0")).yanked
    assert str(registry.find("sentiment/de@team", store=tmp_path / "c", sources=[remote])) == (
        "sentiment/de@team:1.0.0"
    )
    # resolve on a miss pulls from the remote; a pinned yanked version still pulls, marked
    path = registry.resolve("sentiment/de@team:1.1.0", store=tmp_path / "c", sources=[remote])
    assert (path / "yanked.json").is_file()
    assert registry.show("sentiment/de@team:1.1.0", store=tmp_path / "c").yanked


def test_a_corrupted_blob_on_the_server_is_refused(backbone, tmp_path, oci_registry):
    url = oci_registry.url("corrupt/adapters")
    store = tmp_path / "a"
    # blobs are shared by digest across repositories: corrupt one no other test pushes
    lora_dir = make_lora_dir(backbone, tmp_path / "unique", seed=4242)
    registry.publish(lora_dir, "pos/fr:1.0.0", backbone=backbone, store=store)
    registry.push("pos/fr:1.0.0", url, store=store)
    digest = sha256_file(store / "local/pos/fr/1.0.0/adapter_model.safetensors")[0]
    blob = next((oci_registry.folder / "data").rglob(f"blobs/sha256/{digest[:2]}/{digest}/data"))
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    fresh = tmp_path / "fresh"
    with pytest.raises(IntegrityError, match="digest"):
        registry.pull("pos/fr:1.0.0", url, store=fresh)
    assert LocalStore(fresh).ids() == []


def test_hostile_artifact_file_names_are_refused(tmp_path, oci_registry):
    import oras.client

    (tmp_path / "evil").mkdir()
    payload = tmp_path / "evil" / "run.sh"
    payload.write_text("echo owned")
    client = oras.client.OrasClient(hostname=oci_registry.host, insecure=True)
    tag = "local__sentiment__de__6.6.6"
    client.push(
        target=f"{oci_registry.host}/hostile/adapters:{tag}",
        files=[str(payload)],
        disable_path_validation=True,
    )
    with pytest.raises(IntegrityError, match="unexpected file"):
        registry.pull(
            "sentiment/de:6.6.6", oci_registry.url("hostile/adapters"), store=tmp_path / "s"
        )
    assert not (tmp_path / "s").exists() or LocalStore(tmp_path / "s").ids() == []


def _nothing_written(store_dir):
    return not store_dir.exists() or not any(p.is_file() for p in store_dir.rglob("*"))


def test_auth_missing_wrong_and_right_credentials(
    backbone, lora_dir, tmp_path, oci_registry_auth, monkeypatch
):
    url = oci_registry_auth.url("private/adapters")
    source = tmp_path / "source"
    registry.publish(lora_dir, "sentiment/de:1.0.0", backbone=backbone, store=source)
    local = tmp_path / "local"

    with pytest.raises(AuthError, match="ADAPTERHUB_OCI_USERNAME"):
        registry.push("sentiment/de:1.0.0", url, store=source)
    with pytest.raises(AuthError, match="none are set"):
        registry.pull("sentiment/de:1.0.0", url, store=local)
    assert _nothing_written(local)

    monkeypatch.setenv("ADAPTERHUB_OCI_USERNAME", "alice")
    monkeypatch.setenv("ADAPTERHUB_OCI_PASSWORD", "not-the-password")
    with pytest.raises(AuthError, match="refused"):
        registry.push("sentiment/de:1.0.0", url, store=source)
    with pytest.raises(AuthError, match="refused"):
        registry.pull("sentiment/de", url, store=local)
    assert _nothing_written(local)

    monkeypatch.setenv("ADAPTERHUB_OCI_PASSWORD", "wonderland")
    registry.push("sentiment/de:1.0.0", url, store=source)
    assert registry.pull("sentiment/de", url, store=local).id == "sentiment/de@local:1.0.0"
    docker_config = tmp_path / "docker-config"
    assert not docker_config.exists(), "credentials must never be written to a docker config"

    # the docker config is read when the variables are absent
    monkeypatch.delenv("ADAPTERHUB_OCI_USERNAME")
    monkeypatch.delenv("ADAPTERHUB_OCI_PASSWORD")
    docker_config.mkdir()
    auth = base64.b64encode(b"alice:wonderland").decode()
    (docker_config / "config.json").write_text(
        json.dumps({"auths": {oci_registry_auth.host: {"auth": auth}}})
    )
    assert [str(a) for a in registry.open_store(url).ids()] == ["sentiment/de@local:1.0.0"]


def test_cli_remote_add_push_pull(backbone, lora_dir, tmp_path, oci_registry, capsys):
    from adapterhub.cli import main

    store = tmp_path / "mine"
    registry.publish(lora_dir, "langid/multi:1.0.0", backbone=backbone, store=store)
    url = oci_registry.url("cli/adapters")
    assert main(["registry", "remote", "add", "shared", url]) == 0
    assert main(["registry", "remote", "list"]) == 0
    assert url in capsys.readouterr().out
    assert main(["registry", "list", "--from", "shared"]) == 0
    assert capsys.readouterr().err.strip() == "no entries"
    assert (
        main(["registry", "push", "langid/multi:1.0.0", "--to", "shared", "--store", str(store)])
        == 0
    )
    theirs = tmp_path / "theirs"
    assert (
        main(["registry", "pull", "langid/multi", "--from", "shared", "--store", str(theirs)]) == 0
    )
    assert "pulled langid/multi@local:1.0.0" in capsys.readouterr().out
    assert main(["registry", "list", "--from", "shared", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in listed] == ["langid/multi@local:1.0.0"]
    assert main(["registry", "show", "langid/multi", "--from", url]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "langid/multi@local:1.0.0"
    assert (
        main(
            [
                "registry",
                "verify",
                "--all",
                "--backbone",
                str(backbone.path),
                "--store",
                str(theirs),
            ]
        )
        == 0
    )
    # pulling an id the remote lacks: a one-line error, exit 3
    assert (
        main(["registry", "pull", "langid/xx:1.0.0", "--from", "shared", "--store", str(theirs)])
        == 3
    )
    assert capsys.readouterr().err.startswith("error: ")


def test_an_unreachable_registry_fails_fast_and_clearly(tmp_path):
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends
    started = time.monotonic()
    with pytest.raises(RegistryError, match="cannot reach"):
        registry.pull("sentiment/de:1.0.0", f"oci://127.0.0.1:{port}/x/y", store=tmp_path / "s")
    assert time.monotonic() - started < 10
    assert not (tmp_path / "s").exists()


# --------------------------------------------------------------------------- publish races

FORK = multiprocessing.get_context("fork")
RACE_ID = "sentiment/de@team:1.0.0"


def _push_child(url, folder, manifest, barrier, messages):
    """One racer: its own store object, connected before the start, then one put."""
    try:
        store = OCIStore(url)
        store.ids()  # the client and its session exist before the race starts
        barrier.wait(timeout=60)
        store.put(folder, manifest)
    except AdapterHubError as exc:
        messages.put((os.getpid(), type(exc).__name__, str(exc)))
    except BaseException:
        messages.put((os.getpid(), "crash", traceback.format_exc()))
    else:
        messages.put((os.getpid(), "won", str(folder)))
    messages.close()
    messages.join_thread()
    os._exit(0)


def _entries(backbone, lora_dir, tmp_path, count):
    """``count`` local entries of RACE_ID with different bytes (their cards differ)."""
    found = []
    for i in range(count):
        store = tmp_path / f"racer{i}"
        registry.publish(
            lora_dir, RACE_ID, backbone=backbone, store=store, description=f"racer {i}"
        )
        local = LocalStore(store)
        aid = AdapterId.parse(RACE_ID)
        found.append((local.entry_path(aid), local.read_manifest(aid)))
    return found


def test_racing_pushes_of_one_id_have_exactly_one_winner(
    backbone, lora_dir, tmp_path, oci_registry
):
    racers = 8
    url = oci_registry.url("race/adapters")
    entries = _entries(backbone, lora_dir, tmp_path, racers)
    OCIStore(url).ids()  # oras and requests imported before the fork
    barrier = FORK.Barrier(racers)
    messages = FORK.Queue()
    children = [
        FORK.Process(target=_push_child, args=(url, folder, manifest, barrier, messages))
        for folder, manifest in entries
    ]
    for child in children:
        child.start()
    reports = [messages.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=30)
    winners = [r for r in reports if r[1] == "won"]
    assert len(winners) == 1, reports
    losers = [r for r in reports if r[1] != "won"]
    assert [r[1] for r in losers] == ["ConflictError"] * (racers - 1), losers
    reasons = ("another publisher claimed", "is being published", "already exists")
    assert all(any(reason in r[2] for reason in reasons) for r in losers), losers

    # what the registry holds is the winner's entry, whole and verified
    winner = Path(winners[0][2])
    pulled = registry.pull(RACE_ID, url, store=tmp_path / "reader")
    entry = LocalStore(tmp_path / "reader").entry_path(pulled.adapter_id)
    registry.verify_adapter_dir(entry, backbone, require_manifest=True)
    assert _files(entry) == _files(winner)
    assert [str(a) for a in OCIStore(url).ids()] == [RACE_ID]


def _tags(url):
    return set(OCIStore(url)._tags())


def test_a_publisher_killed_after_claiming_blocks_the_version_until_its_claim_is_stale(
    backbone, lora_dir, tmp_path, oci_registry
):
    url = oci_registry.url("killed/adapters")
    ((folder, manifest),) = _entries(backbone, lora_dir, tmp_path, 1)
    OCIStore(url).ids()
    claim_tag = AdapterId.parse(RACE_ID).oci_tag + "__claim"
    child = FORK.Process(
        target=_push_child, args=(url, folder, manifest, FORK.Barrier(1), FORK.Queue())
    )
    child.start()
    deadline = time.monotonic() + 60
    while claim_tag not in _tags(url):  # killed while it waits to read the claim's verdict
        assert time.monotonic() < deadline and child.is_alive(), "the publisher never claimed"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    assert OCIStore(url).ids() == []

    with pytest.raises(ConflictError, match="being published .* or that publisher died"):
        OCIStore(url).put(folder, manifest)
    assert OCIStore(url).ids() == []
    # once the claim is older than the stale age, the next publisher takes it over
    late = OCIStore(url)
    late.claim_stale_s = 0.0
    late.put(folder, manifest)
    assert [str(a) for a in late.ids()] == [RACE_ID]
    with pytest.raises(ConflictError, match="already exists"):
        late.put(folder, manifest)


def test_a_layer_larger_than_its_manifest_declares_is_refused_before_download(
    backbone, lora_dir, tmp_path, oci_registry
):
    import oras.client

    url = oci_registry.url("oversize/adapters")
    ((entry, manifest),) = _entries(backbone, lora_dir, tmp_path, 1)
    # an artifact pushed around the store: the genuine manifest.json, a larger weights file
    hostile = tmp_path / "hostile"
    shutil.copytree(entry, hostile)
    weights = hostile / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes() * 2)
    client = oras.client.OrasClient(hostname=oci_registry.host, insecure=True)
    client.push(
        target=f"{oci_registry.host}/oversize/adapters:{manifest.adapter_id.oci_tag}",
        files=[
            f"{hostile / name}:application/vnd.adapterhub.file.v1"
            for name in (*manifest.files, "manifest.json")
        ],
        disable_path_validation=True,
        quiet=True,
    )
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(IntegrityError, match="adapter_model.safetensors .* declares"):
        OCIStore(url).fetch(manifest.adapter_id, dest)
    assert not (dest / "adapter_model.safetensors").exists()
    with pytest.raises(IntegrityError, match="declares"):
        registry.pull(RACE_ID, url, store=tmp_path / "mine")
    assert LocalStore(tmp_path / "mine").ids() == []
