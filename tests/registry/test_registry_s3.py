"""S3 as a store, against a real S3 API: moto's server on a loopback port, started here.

Publish, push, pull, list and yank through ``s3://``; N processes racing to publish one version
(exactly one wins, through S3's conditional writes); a server that ignores those is refused; a
missing bucket, an unreachable endpoint, missing credentials and a missing ``s3`` extra are one
clear line each.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import sys
import traceback
import uuid
from pathlib import Path

import pytest
from registry_helpers import METRICS, _free_port, make_lora_dir

from adapterhub import registry
from adapterhub.cli import main
from adapterhub.errors import (
    AdapterHubError,
    AuthError,
    ConflictError,
    NotFoundError,
    RegistryError,
)
from adapterhub.registry.stores import LocalStore, S3Store

FORK = multiprocessing.get_context("fork")
ADAPTER_ID = "sentiment/de@team:1.0.0"


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 API server on a free loopback port, for the whole session."""
    pytest.importorskip(
        "moto.server",
        reason="moto is not installed (pip install 'moto[server]', in the dev extra); the S3 "
        "store tests need a real S3 API server",
    )
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _aws_env(monkeypatch, tmp_path, endpoint: str | None) -> None:
    """Only what the test sets: no profile, config file or instance metadata of the machine."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # an unreachable endpoint fails at once
    if endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    _fresh_clients()


def _fresh_clients() -> None:
    # s3fs keeps one client per set of options, made with the environment of its first use
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3_client(s3_server, monkeypatch, tmp_path):
    """A boto3 client on the server, with the environment pointing adapterhub at it."""
    import boto3

    _aws_env(monkeypatch, tmp_path, s3_server)
    yield boto3.client("s3")
    _fresh_clients()


@pytest.fixture
def bucket(s3_client) -> str:
    name = f"hub-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_url(bucket) -> str:
    return f"s3://{bucket}/adapters"


def _keys(s3_client, bucket: str) -> list[str]:
    listing = s3_client.list_objects_v2(Bucket=bucket)
    return sorted(obj["Key"] for obj in listing.get("Contents", []))


def _digests(folder: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir())
        if path.is_file()
    }


def test_publish_list_push_pull_yank_through_s3(
    backbone, lora_dir, tmp_path, monkeypatch, isolated_home, s3_client, bucket, s3_url
):
    remote = registry.open_store(s3_url)
    assert isinstance(remote, S3Store)
    assert remote.ids() == []

    # published straight to S3, and immutable there
    registry.publish(
        lora_dir, "sentiment/de@team:1.0.0", backbone=backbone, metrics=METRICS, store=s3_url
    )
    with pytest.raises(ConflictError, match="immutable"):
        registry.publish(lora_dir, "sentiment/de@team:1.0.0", backbone=backbone, store=s3_url)
    # pushed from the local store of this home
    registry.publish(lora_dir, "sentiment/de@team:1.1.0", backbone=backbone)
    registry.push("sentiment/de@team:1.1.0", s3_url)
    # the entries are plain objects at <prefix>/<namespace>/<task>/<lang>/<version>/
    keys = _keys(s3_client, bucket)
    assert "adapters/team/sentiment/de/1.1.0/manifest.json" in keys
    assert "adapters/team/sentiment/de/1.1.0/adapter_model.safetensors" in keys
    assert not [key for key in keys if key.startswith("adapters/.probe~")]

    assert sorted(str(aid) for aid in remote.ids()) == [
        "sentiment/de@team:1.0.0",
        "sentiment/de@team:1.1.0",
    ]
    found = registry.search(store=s3_url, metric="accuracy", min_value=0.8)
    assert [m.id for m in found] == ["sentiment/de@team:1.0.0"]

    # pulled into another home: the same bytes, digest for digest
    pushed = isolated_home / "registry/team/sentiment/de/1.1.0"
    other_home = tmp_path / "other-home"
    other_home.mkdir()
    monkeypatch.setenv("ADAPTERHUB_HOME", str(other_home))
    for version in ("1.0.0", "1.1.0"):
        manifest = registry.pull(f"sentiment/de@team:{version}", s3_url)
        assert manifest.id == f"sentiment/de@team:{version}"
    pulled = other_home / "registry/team/sentiment/de/1.1.0"
    assert _digests(pulled) == _digests(pushed)
    for name, info in registry.show("sentiment/de@team:1.0.0").files.items():
        data = (other_home / "registry/team/sentiment/de/1.0.0" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == info.sha256
    assert registry.verify() == [
        ("sentiment/de@team:1.0.0", None),
        ("sentiment/de@team:1.1.0", None),
    ]

    # what another client (another process, another machine) publishes and yanks is seen at
    # once by a store that has listed before: no stale listings
    elsewhere = S3Store(s3_url, skip_instance_cache=True)
    registry.publish(lora_dir, "sentiment/de@team:1.2.0", backbone=backbone, store=elsewhere)
    assert len(remote.ids()) == 3
    fresh = tmp_path / "fresh"
    newest = registry.find("sentiment/de@team", store=fresh, sources=[remote])
    assert str(newest) == "sentiment/de@team:1.2.0"
    registry.yank("sentiment/de@team:1.2.0", store=elsewhere, reason="leaked test data")
    assert remote.read_manifest(registry.AdapterId.parse("sentiment/de@team:1.2.0")).yanked
    newest = registry.find("sentiment/de@team", store=fresh, sources=[remote])
    assert str(newest) == "sentiment/de@team:1.1.0"


def test_an_s3_remote_through_the_cli(tiny_backbone_path, lora_dir, tmp_path, capsys, s3_url):
    publish = ["registry", "publish", str(lora_dir), "--backbone", str(tiny_backbone_path)]
    assert main([*publish, "--id", "pos/de@team:1.0.0"]) == 0
    assert main(["registry", "remote", "add", "team", s3_url]) == 0
    assert main(["registry", "push", "pos/de@team:1.0.0", "--to", "team"]) == 0
    assert main(["registry", "list", "--from", "team"]) == 0
    assert "pos/de@team:1.0.0" in capsys.readouterr().out
    assert main(["registry", "push", "pos/de@team:1.0.0", "--to", "team"]) == 4
    assert "immutable" in capsys.readouterr().err
    assert main(["registry", "pull", "pos/de@team:1.0.0", "--store", str(tmp_path / "b")]) == 0
    assert LocalStore(tmp_path / "b").ids() == [registry.AdapterId.parse("pos/de@team:1.0.0")]


def _race_child(adapter_dir, url, backbone_ref, barrier, messages):
    import torch

    torch.set_num_threads(1)  # OpenMP pools do not survive fork
    try:
        barrier.wait(timeout=60)
        registry.publish(adapter_dir, ADAPTER_ID, backbone=backbone_ref, store=url)
    except AdapterHubError as exc:
        outcome = (os.getpid(), type(exc).__name__, str(exc), exc.exit_code)
    except BaseException:
        outcome = (os.getpid(), "crash", traceback.format_exc(), 99)
    else:
        outcome = (os.getpid(), "won", str(adapter_dir), 0)
    messages.put(outcome)
    messages.close()
    messages.join_thread()  # flush before os._exit skips the queue's own shutdown
    os._exit(outcome[3])


def test_exactly_one_of_n_racing_s3_publishers_wins(backbone, tmp_path, s3_url):
    racers = 6
    dirs = [make_lora_dir(backbone, tmp_path / f"a{i}", seed=i) for i in range(racers)]
    ref = {"name": backbone.name, "fingerprint": backbone.fingerprint}
    store = registry.open_store(s3_url)
    assert store.ids() == []  # listed once before the race: later listings must not be stale
    barrier = FORK.Barrier(racers)
    messages = FORK.Queue()
    children = [
        FORK.Process(target=_race_child, args=(d, s3_url, ref, barrier, messages)) for d in dirs
    ]
    for child in children:
        child.start()
    reports = [messages.get(timeout=180) for _ in children]
    for child in children:
        child.join(timeout=30)
    assert sorted(child.exitcode for child in children) == [0] + [4] * (racers - 1), reports
    winners = [r for r in reports if r[1] == "won"]
    losers = [r for r in reports if r[1] != "won"]
    assert len(winners) == 1, reports
    assert all(r[1] == "ConflictError" for r in losers), losers
    assert all("already exists" in r[2] or "another publisher" in r[2] for r in losers), losers

    # the entry is the winner's, whole: its files match the manifest and the winner's folder
    (aid,) = store.ids()
    assert str(aid) == ADAPTER_ID
    folder = tmp_path / "check"
    folder.mkdir()
    store.fetch(aid, folder)
    registry.verify_adapter_dir(folder, backbone, require_manifest=True)
    winner = Path(winners[0][2])
    for name in ("adapter_model.safetensors", "head.safetensors"):
        assert (folder / name).read_bytes() == (winner / name).read_bytes()


def test_a_server_that_ignores_conditional_writes_is_refused(
    backbone, lora_dir, s3_client, bucket, s3_url
):
    # what a server without conditional writes does: store the PUT whatever If-None-Match says
    store = S3Store(s3_url, skip_instance_cache=True)

    def drop_condition(params, **kwargs):
        params.pop("IfNoneMatch", None)

    store.fs.connect()
    store.fs.s3.meta.events.register("before-parameter-build.s3.PutObject", drop_condition)
    with pytest.raises(RegistryError, match="If-None-Match") as caught:
        registry.publish(lora_dir, ADAPTER_ID, backbone=backbone, store=store)
    assert "two publishers of one version could both succeed" in str(caught.value)
    assert _keys(s3_client, bucket) == []  # nothing written, the probe removed
    # the same bucket through a client that sends the header takes the entry
    registry.publish(lora_dir, ADAPTER_ID, backbone=backbone, store=s3_url)
    assert [str(a) for a in registry.open_store(s3_url).ids()] == [ADAPTER_ID]


def test_gc_removes_what_a_dead_s3_publisher_left(backbone, lora_dir, s3_client, bucket, s3_url):
    entry = "adapters/team/sentiment/de/1.0.0"
    dead = json.dumps({"host": "elsewhere", "pid": 1, "time": 0}).encode()
    s3_client.put_object(Bucket=bucket, Key=f"{entry}/.claim", Body=dead)
    s3_client.put_object(Bucket=bucket, Key=f"{entry}/adapter_model.safetensors", Body=b"half")
    s3_client.put_object(Bucket=bucket, Key="adapters/.probe~elsewhere~1~0123456789ab", Body=b"")
    with pytest.raises(ConflictError, match="gc"):
        registry.publish(lora_dir, ADAPTER_ID, backbone=backbone, store=s3_url)
    assert registry.open_store(s3_url).ids() == []
    removed = registry.gc(store=s3_url, grace_s=0)
    assert sorted(removed) == [
        f"{bucket}/adapters/.probe~elsewhere~1~0123456789ab",
        f"{bucket}/{entry}",
    ]
    assert _keys(s3_client, bucket) == []
    registry.publish(lora_dir, ADAPTER_ID, backbone=backbone, store=s3_url)
    assert registry.gc(store=s3_url, grace_s=0) == []  # a committed entry and its claim stay
    assert f"{entry}/.claim" in _keys(s3_client, bucket)


def test_a_missing_bucket_is_an_error_and_is_not_created(backbone, lora_dir, s3_client):
    name = f"absent-{uuid.uuid4().hex[:12]}"
    with pytest.raises(NotFoundError, match=f"bucket '{name}' does not exist"):
        registry.publish(lora_dir, ADAPTER_ID, backbone=backbone, store=f"s3://{name}/adapters")
    buckets = [b["Name"] for b in s3_client.list_buckets().get("Buckets", [])]
    assert name not in buckets


def test_unreachable_endpoint_and_missing_credentials_are_one_clear_line(
    s3_server, monkeypatch, tmp_path
):
    _aws_env(monkeypatch, tmp_path, f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(RegistryError, match="cannot reach the S3 endpoint") as caught:
        registry.open_store("s3://hub/adapters").ids()
    assert "AWS_ENDPOINT_URL" in str(caught.value) and "\n" not in str(caught.value)

    _aws_env(monkeypatch, tmp_path, s3_server)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(AuthError, match="AWS_ACCESS_KEY_ID"):
        registry.open_store("s3://hub/adapters").ids()
    _fresh_clients()


def test_a_missing_s3_extra_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "s3fs", None)  # `import s3fs` now fails, as when absent
    with pytest.raises(RegistryError) as caught:
        registry.open_store("s3://hub/adapters")
    message = str(caught.value)
    assert "pip install 'adapterhub[s3]'" in message and "\n" not in message
    assert main(["registry", "remote", "add", "team", "s3://hub/adapters"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"error: {message}"
    assert "Traceback" not in err and "Install s3fs" not in err
    assert registry.list_remotes().get("team") is None  # nothing was configured
