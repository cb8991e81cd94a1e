"""The ``adapterhub registry`` commands, run in-process through the real CLI entry point."""

from __future__ import annotations

import json

from registry_helpers import METRICS

from adapterhub import registry
from adapterhub.cli import main


def test_publish_list_show_yank_verify_gc_reindex(
    tiny_backbone_path, lora_dir, tmp_path, capsys, isolated_home
):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(METRICS))
    publish = ["registry", "publish", str(lora_dir), "--backbone", str(tiny_backbone_path)]
    assert main([*publish, "--id", "sentiment/de:1.0.0", "--metrics", str(metrics)]) == 0
    # a parent's short id is resolved; this one is published nowhere, so it is given exactly
    assert main([*publish, "--id", "sentiment/de:1.1.0", "--parent", "lang/de@local:1.0.0"]) == 0
    assert main([*publish, "--id", "sentiment/fr@team:1.0.0"]) == 0
    # the default store is $ADAPTERHUB_HOME/registry
    assert (isolated_home / "registry/local/sentiment/de/1.0.0/manifest.json").is_file()
    assert main([*publish, "--id", "sentiment/de:1.0.0"]) == 4
    assert capsys.readouterr().err.strip().startswith("error: sentiment/de@local:1.0.0")

    assert main(["registry", "list", "--lang", "de", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == [
        "sentiment/de@local:1.0.0",
        "sentiment/de@local:1.1.0",
    ]
    assert rows[0]["metrics"] == {"accuracy": 0.81, "macro_f1": 0.79}
    assert main(["registry", "list", "--namespace", "team"]) == 0
    assert "sentiment/fr@team:1.0.0" in capsys.readouterr().out
    assert main(["registry", "list", "--metric", "accuracy>=0.8", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ["sentiment/de@local:1.0.0"]

    assert main(["registry", "show", "sentiment/de"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == "sentiment/de@local:1.1.0"
    assert shown["parents"] == ["lang/de@local:1.0.0"]

    assert main(["registry", "yank", "sentiment/de:1.1.0", "--reason", "leaked test data"]) == 0
    assert main(["registry", "show", "sentiment/de"]) == 0
    assert json.loads(_last_json(capsys))["id"] == "sentiment/de@local:1.0.0"
    assert main(["registry", "list", "--task", "sentiment"]) == 0
    assert "[yanked]" in capsys.readouterr().out
    assert main(["registry", "yank", "sentiment/de"]) == 2  # yank needs an exact version

    assert main(["registry", "verify", "--all", "--backbone", str(tiny_backbone_path)]) == 0
    assert capsys.readouterr().out.count("ok ") == 3
    weights = isolated_home / "registry/local/sentiment/de/1.0.0/adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    assert main(["registry", "verify", "--all"]) == 5
    out = capsys.readouterr().out
    assert "BAD sentiment/de@local:1.0.0" in out and "sha256" in out
    assert main(["registry", "verify", "sentiment/fr@team:1.0.0"]) == 0

    leftover = registry.LocalStore(isolated_home / "registry").staging("publish")
    assert main(["registry", "gc", "--grace", "0"]) == 0
    assert str(leftover) in capsys.readouterr().out and not leftover.exists()
    (isolated_home / "registry/.index.sqlite").unlink()
    assert main(["registry", "reindex"]) == 0
    assert "indexed 3 entries" in capsys.readouterr().out


def test_export_import_and_remotes_through_the_cli(backbone, lora_dir, tmp_path, capsys):
    store = tmp_path / "a"
    registry.publish(lora_dir, "pos/de:1.0.0", backbone=backbone, store=store)
    bundle = tmp_path / "pos-de.tar"
    assert main(["registry", "export", "pos/de", "-o", str(bundle), "--store", str(store)]) == 0
    assert main(["registry", "import", str(bundle), "--store", str(tmp_path / "b")]) == 0
    assert "imported pos/de@local:1.0.0" in capsys.readouterr().out

    remote = f"file://{tmp_path / 'shared'}"
    assert main(["registry", "remote", "add", "shared", remote]) == 0
    assert main(["registry", "push", "pos/de:1.0.0", "--to", "shared", "--store", str(store)]) == 0
    assert main(["registry", "pull", "pos/de", "--store", str(tmp_path / "c")]) == 0  # any remote
    assert main(["registry", "remote", "list", "--json"]) == 0
    assert json.loads(_last_json(capsys))["shared"]["url"] == remote
    assert main(["registry", "remote", "add", "Bad Name", remote]) == 2
    assert main(["registry", "show", "nope/de"]) == 3
    assert main(["registry", "show", "not an id"]) == 2


def _last_json(capsys):
    out = capsys.readouterr().out
    return out[out.index("{") :]


def test_verify_checks_an_id_where_it_resolves(capsys, monkeypatch):
    monkeypatch.delenv("ADAPTERHUB_PROJECT_REGISTRY")  # the store shipped in the package
    # not in the (empty) local store: found in the project's own, as `show` finds it
    assert main(["registry", "verify", "sentiment/de@adapterhub:1.1.0"]) == 0
    assert "ok  sentiment/de@adapterhub:1.1.0: sha256 ok" in capsys.readouterr().out
    assert main(["registry", "verify", "sentiment/xx"]) != 0
