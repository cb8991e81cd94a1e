"""Publish races between processes, and publishers killed at random points."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
import traceback

import pytest
from registry_helpers import make_lora_dir

from adapterhub import registry
from adapterhub.errors import AdapterHubError
from adapterhub.registry.stores import LocalStore

# fork: the children inherit torch and the adapter folders, so a race costs no imports
FORK = multiprocessing.get_context("fork")
ADAPTER_ID = "sentiment/de:1.0.0"


def _report(messages, *report):
    messages.put(report)
    messages.close()
    messages.join_thread()  # flush before os._exit skips the queue's own shutdown


def _child_setup():
    import torch

    torch.set_num_threads(1)  # as DataLoader workers do: OpenMP pools do not survive fork


def _race_child(adapter_dir, store, backbone_ref, barrier, messages):
    _child_setup()
    try:
        barrier.wait(timeout=60)
        registry.publish(adapter_dir, ADAPTER_ID, backbone=backbone_ref, store=store)
    except AdapterHubError as exc:
        _report(messages, os.getpid(), type(exc).__name__, str(exc))
        os._exit(exc.exit_code)
    except BaseException:
        _report(messages, os.getpid(), "crash", traceback.format_exc())
        os._exit(99)
    _report(messages, os.getpid(), "won", "")
    os._exit(0)


def _ref(backbone):
    return {"name": backbone.name, "fingerprint": backbone.fingerprint}


def _warm_up(adapter_dir, tmp_path, backbone, store_url=None):
    """Publish once before forking, so no child needs a lazy import (whose lock another thread
    of a busy test session might hold at the moment of the fork).

    Returns how long one publish into a store of the kind under test takes here and now, so
    kills can be spread over a few publishes however loaded the machine is."""
    registry.publish(adapter_dir, "warm/up:0.0.1", backbone=_ref(backbone), store=tmp_path / "warm")
    registry.open_store(f"file://{tmp_path / 'warm-fs'}").ids()
    started = time.perf_counter()
    registry.publish(
        adapter_dir,
        "warm/up:0.0.2",
        backbone=_ref(backbone),
        store=store_url or str(tmp_path / "warm"),
    )
    return time.perf_counter() - started


@pytest.mark.parametrize("kind", ["local", "fsspec-file"])
def test_exactly_one_of_n_racing_publishers_wins(backbone, tmp_path, kind):
    racers = 8
    dirs = [make_lora_dir(backbone, tmp_path / f"a{i}", seed=i) for i in range(racers)]
    store = str(tmp_path / "store") if kind == "local" else f"file://{tmp_path / 'store'}"
    _warm_up(dirs[0], tmp_path, backbone)
    barrier = FORK.Barrier(racers)
    messages = FORK.Queue()
    children = [
        FORK.Process(target=_race_child, args=(d, store, _ref(backbone), barrier, messages))
        for d in dirs
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
    codes = sorted(child.exitcode for child in children)
    reports = [messages.get(timeout=5) for _ in children]
    assert codes == [0] + [4] * (racers - 1), reports
    losers = [r for r in reports if r[1] != "won"]
    assert all(r[1] == "ConflictError" for r in losers), losers
    assert all("already exists" in r[2] or "another publisher" in r[2] for r in losers), losers
    # the winner's entry is whole: every file matches the manifest (no mix of two publishers)
    opened = registry.open_store(store)
    (aid,) = opened.ids()
    manifest = opened.read_manifest(aid)
    folder = tmp_path / "check"
    folder.mkdir()
    opened.fetch(aid, folder)
    registry.verify_adapter_dir(folder, backbone, require_manifest=True)
    assert manifest.id == "sentiment/de@local:1.0.0"


def test_cli_racers_exit_non_zero_with_a_message(tiny_backbone_path, tmp_path):
    racers = 3
    from adapterhub.backbone import load_backbone

    backbone = load_backbone(str(tiny_backbone_path), device="cpu")
    dirs = [make_lora_dir(backbone, tmp_path / f"a{i}", seed=i) for i in range(racers)]
    store = tmp_path / "store"
    gate = tmp_path / "gate"
    gate.mkdir()
    # a file barrier: each racer imports everything first, then all start publishing together
    script = (
        "import os, sys, time\n"
        "import adapterhub.backbone, adapterhub.registry\n"
        "from adapterhub.cli import main\n"
        f"gate = {str(gate)!r}\n"
        "open(os.path.join(gate, str(os.getpid())), 'w').close()\n"
        f"while len(os.listdir(gate)) < {racers}: time.sleep(0.01)\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, "registry", "publish", str(d), "--id", ADAPTER_ID]
            + ["--backbone", str(tiny_backbone_path), "--store", str(store)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for d in dirs
    ]
    results = [(p.wait(timeout=180), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 4, 4], results
    for code, out, err in results:
        if code == 0:
            assert "published sentiment/de@local:1.0.0" in out
        else:
            assert err.strip().splitlines()[-1].startswith("error: sentiment/de@local:1.0.0")
            assert "immutable" in err


def _publish_forever(adapter_dir, store, backbone_ref, ready, minor):
    _child_setup()
    ready.set()
    for patch in range(10_000):
        registry.publish(
            adapter_dir, f"sentiment/de:1.{minor}.{patch}", backbone=backbone_ref, store=store
        )


def test_a_publisher_killed_anywhere_leaves_no_visible_half_entry(backbone, tmp_path):
    store_dir = tmp_path / "store"
    adapter_dir = make_lora_dir(backbone, tmp_path / "adapter")
    store = LocalStore(store_dir)
    publish_s = _warm_up(adapter_dir, tmp_path, backbone)
    rng = random.Random(1234)
    leftovers = kills = 0
    while kills < 60 and (kills < 10 or leftovers == 0):
        _start_and_kill(adapter_dir, str(store_dir), backbone, kills, rng, publish_s)
        kills += 1
        # every visible entry is whole; no entry folder exists without its manifest
        for aid in store.ids():
            registry.verify_adapter_dir(store.entry_path(aid), backbone, require_manifest=True)
        for folder in store_dir.glob("*/*/*/*"):
            if not folder.relative_to(store_dir).parts[0].startswith("."):
                assert (folder / "manifest.json").is_file(), f"half entry visible: {folder}"
        removed = registry.gc(store=store_dir)  # the dead publisher's staging, at once
        leftovers += len(removed)
        assert all("/.tmp/" in path for path in removed)
        assert list((store_dir / ".tmp").iterdir()) == []
        # the index agrees with the manifests after gc
        assert sorted(m.id for m in registry.search(store=store_dir)) == sorted(
            str(a) for a in store.ids()
        )
    assert leftovers > 0, "no kill landed inside a publish; the test did not test anything"
    # after all the kills the store still takes the next version
    registry.publish(adapter_dir, "sentiment/de:2.0.0", backbone=backbone, store=store_dir)


def test_a_killed_fsspec_publisher_leaves_only_an_invisible_claim(backbone, tmp_path):
    root = tmp_path / "fs-store"
    url = f"file://{root}"
    adapter_dir = make_lora_dir(backbone, tmp_path / "adapter")
    store = registry.open_store(url)
    publish_s = _warm_up(adapter_dir, tmp_path, backbone, f"file://{tmp_path / 'warm-fs'}")
    rng = random.Random(99)
    claims = kills = 0
    while kills < 60 and (kills < 10 or claims == 0):
        _start_and_kill(adapter_dir, url, backbone, kills, rng, publish_s)
        kills += 1
        visible = store.ids()
        for aid in visible:  # whatever is visible fetches and verifies whole
            folder = tmp_path / f"check-{kills}-{aid.oci_tag}"
            folder.mkdir()
            store.fetch(aid, folder)
            registry.verify_adapter_dir(folder, backbone, require_manifest=True)
        claims += len(_uncommitted_claims(root))
        registry.gc(store=url)
        assert _uncommitted_claims(root) == []
        for folder in root.glob("*/*/*/*"):
            assert (folder / "manifest.json").is_file(), f"half entry left after gc: {folder}"
        assert store.ids() == visible
    assert claims > 0, "no kill landed inside a publish; the test did not test anything"


def _uncommitted_claims(root):
    return [c for c in root.glob("*/*/*/*/.claim") if not (c.parent / "manifest.json").exists()]


def _start_and_kill(adapter_dir, store, backbone, minor, rng, publish_s):
    ready = FORK.Event()
    child = FORK.Process(
        target=_publish_forever, args=(adapter_dir, store, _ref(backbone), ready, minor)
    )
    child.start()
    assert ready.wait(timeout=60), f"publisher {minor} did not start (exit {child.exitcode})"
    # anywhere within the first few publishes, scaled to this machine's current speed
    time.sleep(rng.uniform(0.0, max(0.25, 3 * publish_s)))
    os.kill(child.pid, signal.SIGKILL)
    child.join(timeout=30)
    assert child.exitcode == -signal.SIGKILL


def test_gc_spares_a_live_publishers_staging(backbone, tmp_path, lora_dir):
    store = LocalStore(tmp_path / "store")
    live = store.staging("publish")  # ours: this process is alive
    assert registry.gc(store=store.root) == []
    assert live.exists()
    assert registry.gc(store=store.root, grace_s=0) == [str(live)]
