"""One id, one adapter: every command and the server resolve an id the same way, in a fresh home
that sees the built-in store; namespaces cannot collide; yanks are honoured; two stores holding
one id with different bytes is an error naming both. The built-in store here is a small project
store of tiny-backbone adapters (``ADAPTERHUB_PROJECT_REGISTRY``), so everything loads."""

from __future__ import annotations

import csv
import json
import shutil

import httpx
import pytest
from registry_helpers import METRICS, make_lora_dir

from adapterhub import registry
from adapterhub.cli import main
from adapterhub.cli.serve import preload
from adapterhub.errors import ConflictError, NotFoundError, UsageError, YankedError
from adapterhub.evaluation.inference import adapter_folder
from adapterhub.registry.resolver import Resolver
from adapterhub.runtime import Runtime
from adapterhub.server import ServerThread, create_app

BUILTINS = {
    "sentiment/de@adapterhub:1.0.0": 11,
    "sentiment/de@adapterhub:1.2.0": 12,
    "sentiment/en@adapterhub:1.0.0": 13,
}


@pytest.fixture(scope="module")
def project(backbone, tmp_path_factory):
    """The built-in store: the only store that may publish into ``adapterhub``."""
    root = tmp_path_factory.mktemp("project-store")
    sources = tmp_path_factory.mktemp("project-src")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ADAPTERHUB_PROJECT_REGISTRY", str(root))
        for adapter_id, seed in BUILTINS.items():
            folder = make_lora_dir(backbone, sources / str(seed), seed=seed)
            registry.publish(folder, adapter_id, backbone=backbone, metrics=METRICS, store=root)
    return root


@pytest.fixture
def home(isolated_home, project, monkeypatch):
    """A fresh $ADAPTERHUB_HOME that sees the built-in store, as a new user's does."""
    monkeypatch.setenv("ADAPTERHUB_PROJECT_REGISTRY", str(project))
    return isolated_home


@pytest.fixture
def sentiment_csv(tmp_path):
    path = tmp_path / "sentiment-de.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "lang"])
        for i in range(60):
            label = ("negative", "positive")[i % 2]
            word = ("schlecht", "gut")[i % 2]
            writer.writerow([f"das buch {i} ist {word}", label, "de"])
    return path


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


# --------------------------------------------------------------------------- a fresh home


def test_a_fresh_home_lists_the_builtins_and_publishes_under_the_users_namespace(
    home, lora_dir, tiny_backbone_path, capsys, monkeypatch
):
    code, out, _ = _run(capsys, "registry", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert {r["id"]: r["store"] for r in rows} == {aid: "project" for aid in BUILTINS}

    publish = ["registry", "publish", lora_dir, "--backbone", tiny_backbone_path]
    code, out, _ = _run(capsys, *publish, "--id", "sentiment/de:1.0.0")
    assert code == 0 and out.startswith("published sentiment/de@local:1.0.0 to local (")
    assert (home / "registry/local/sentiment/de/1.0.0/manifest.json").is_file()

    code, out, _ = _run(capsys, "registry", "list", "--lang", "de")
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["ID", "STORE"]
    stores = {line.split()[0]: line.split()[1] for line in lines[1:]}
    assert stores == {
        "sentiment/de@adapterhub:1.0.0": "project",
        "sentiment/de@adapterhub:1.2.0": "project",
        "sentiment/de@local:1.0.0": "local",
    }
    code, out, _ = _run(capsys, "registry", "list", "--from", "project", "--json")
    assert sorted(r["id"] for r in json.loads(out)) == sorted(BUILTINS)

    # a configured namespace, and the environment over the file
    assert _run(capsys, "config", "set", "namespace", "nlp-team")[0] == 0
    code, out, _ = _run(capsys, *publish, "--id", "sentiment/fr:1.0.0")
    assert out.startswith("published sentiment/fr@nlp-team:1.0.0")
    monkeypatch.setenv("ADAPTERHUB_NAMESPACE", "alice")
    code, out, _ = _run(capsys, *publish, "--id", "sentiment/fr:1.0.0")
    assert out.startswith("published sentiment/fr@alice:1.0.0")


def test_the_builtin_namespace_is_only_the_project_stores(
    home, lora_dir, tiny_backbone_path, backbone, tmp_path, capsys
):
    publish = ["registry", "publish", lora_dir, "--backbone", tiny_backbone_path]
    code, _, err = _run(capsys, *publish, "--id", "sentiment/de@adapterhub:9.0.0")
    assert code == 2 and "built-in" in err and "sentiment/de@local:9.0.0" in err
    assert _run(capsys, "config", "set", "namespace", "adapterhub")[0] == 2
    with pytest.raises(UsageError, match="built-in"):
        registry.publish(
            lora_dir, "pos/de@adapterhub:1.0.0", backbone=backbone, store=tmp_path / "team"
        )
    # a bundle claiming to be a built-in adapter it is not does not get in either
    other = tmp_path / "other"
    other.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ADAPTERHUB_PROJECT_REGISTRY", str(other))
        registry.publish(lora_dir, "sentiment/de@adapterhub:1.0.0", backbone=backbone, store=other)
        bundle = registry.export_bundle("sentiment/de@adapterhub:1.0.0", tmp_path / "fake.tar")
    with pytest.raises(ConflictError, match="project store"):
        registry.import_adapter(bundle)
    # the genuine built-in entry copies fine
    genuine = registry.export_bundle("sentiment/en@adapterhub:1.0.0", tmp_path / "en.tar")
    assert registry.import_adapter(genuine).id == "sentiment/en@adapterhub:1.0.0"


def test_a_short_training_run_is_published_under_the_users_namespace(
    home, tiny_backbone_path, sentiment_csv, tmp_path, capsys
):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("task: sentiment\nmin_train_examples: 10\nmax_length: 32\nbatch_size: 8\n")
    code, out, _ = _run(
        capsys, "train", "--task", "sentiment", "--lang", "de", "--recipe", recipe,
        "--data", sentiment_csv, "--backbone", tiny_backbone_path, "--max-steps", "2",
        "--no-progress", "--output", tmp_path / "run",
    )  # fmt: skip
    assert code == 0 and "published sentiment/de@local:1.0.0" in out
    assert (home / "registry/local/sentiment/de/1.0.0/manifest.json").is_file()
    # the built-in entry of the same task and language is untouched and still resolvable
    assert registry.show("sentiment/de@adapterhub:1.0.0").id == "sentiment/de@adapterhub:1.0.0"


# --------------------------------------------------------------------------- the same answer


@pytest.mark.parametrize("published_locally", [False, True], ids=["builtins-only", "own-too"])
def test_every_command_resolves_a_short_id_to_the_same_full_id(
    home, lora_dir, backbone, tiny_backbone_path, sentiment_csv, tmp_path, capsys,
    published_locally,
):  # fmt: skip
    if published_locally:
        registry.publish(lora_dir, "sentiment/de:1.0.0", backbone=backbone)
        want, where = "sentiment/de@local:1.0.0", "local"
    else:
        want, where = "sentiment/de@adapterhub:1.2.0", "project"

    code, out, err = _run(capsys, "registry", "show", "sentiment/de")
    shown = json.loads(out)
    assert (shown["id"], shown["store"]) == (want, where)
    assert err.startswith(f"{want} from {where} (")

    code, out, _ = _run(
        capsys, "eval", "sentiment/de", "--backbone", tiny_backbone_path, "--data",
        sentiment_csv, "--langs", "de", "--output", tmp_path / "ev",
    )  # fmt: skip
    evaluated = _json_lines(out)[0]
    assert code == 0 and evaluated["adapter"] == want
    assert evaluated["source"].startswith(f"{where} (")
    folder, info = adapter_folder("sentiment/de", backbone)
    assert info["id"] == want

    runtime = Runtime(backbone)
    assert runtime.resolve("sentiment/de") == want
    loaded = preload(runtime, ["sentiment/*"])
    assert f"{want} from {where} (" in " ".join(loaded)
    assert not any(line.startswith("sentiment/de@") and want not in line for line in loaded)
    assert runtime.load("sentiment/de").id == want
    assert str(registry.find("sentiment/de")) == want
    assert registry.resolve("sentiment/de") == folder

    code, out, _ = _run(capsys, "registry", "pull", "sentiment/de")
    if published_locally:
        assert out.startswith(f"already present: {want} in local (")
    else:
        assert out.startswith(f"pulled {want} from project (")
        assert (home / "registry/adapterhub/sentiment/de/1.2.0/manifest.json").is_file()
        # pulled again: the same bytes are already here
        assert _run(capsys, "registry", "pull", "sentiment/de")[1].startswith("already present")


def test_push_and_export_stream_an_entry_that_lives_only_upstream(home, tmp_path, capsys):
    team = f"file://{tmp_path / 'team'}"
    assert _run(capsys, "registry", "remote", "add", "team", team)[0] == 0
    code, out, _ = _run(capsys, "registry", "push", "sentiment/de@adapterhub:1.2.0", "--to", "team")
    assert code == 0 and out.startswith("pushed sentiment/de@adapterhub:1.2.0 from project (")
    assert [str(a) for a in registry.open_store(team).ids()] == ["sentiment/de@adapterhub:1.2.0"]
    code, out, _ = _run(capsys, "registry", "export", "sentiment/en", "-o", tmp_path / "en.tar")
    assert code == 0 and "sentiment/en@adapterhub:1.0.0 from project (" in out
    assert (tmp_path / "en.tar").stat().st_size > 0
    assert not (home / "registry/adapterhub").exists()  # nothing was pulled on the way
    # the copy on the remote is the built-in bytes, so resolving sees no conflict
    found = Resolver.default().resolve("sentiment/de@adapterhub:1.2.0")
    assert (found.store_name, [h.name for h in found.holders]) == ("team", ["team", "project"])


# --------------------------------------------------------------------------- yanks


def test_a_yanked_version_is_never_what_a_short_id_or_a_pattern_means(
    home, lora_dir, backbone, tmp_path
):
    newer = make_lora_dir(backbone, tmp_path / "newer", seed=5)
    registry.publish(lora_dir, "topic/de:1.0.0", backbone=backbone)
    registry.publish(newer, "topic/de:1.1.0", backbone=backbone)
    registry.yank("topic/de@local:1.1.0", "trained on leaked test data")

    assert str(registry.find("topic/de")) == "topic/de@local:1.0.0"
    assert [str(r.id) for r in Resolver.default().match("topic/*")] == ["topic/de@local:1.0.0"]
    assert Resolver.default().match("topic/*:1.1.0") == []
    runtime = Runtime(backbone)
    assert preload(runtime, ["topic/*"]) == [
        f"topic/de@local:1.0.0 from local ({home / 'registry'})"
    ]
    assert runtime.resolve("topic/de") == "topic/de@local:1.0.0"
    for asked in ("topic/de@local:1.1.0", "topic/de:1.1.0"):
        with pytest.raises(YankedError, match="leaked test data"):
            runtime.load(asked)
    with pytest.raises(YankedError):
        preload(runtime, ["topic/de@local:1.1.0"])
    with pytest.raises(YankedError):
        registry.open_adapter("topic/de@local:1.1.0", backbone)
    # still readable by its version: shown, and marked
    assert registry.show("topic/de:1.1.0").yanked

    # a yank in any store counts, even when the local copy carries no mark
    team = tmp_path / "team"
    registry.add_remote("team", f"file://{team}")
    registry.push("topic/de@local:1.0.0", "team")
    registry.yank("topic/de@local:1.0.0", "withdrawn by the team", store=f"file://{team}")
    with pytest.raises(NotFoundError, match="yanked"):
        registry.find("topic/de")
    assert Resolver.default().match("topic/*") == []

    # the server: 410 naming the reason for the exact id, and /v1/adapters marks it
    with ServerThread(create_app(Runtime(backbone))) as server:
        answer = httpx.post(
            f"{server.url}/v1/predict", json={"adapter": "topic/de@local:1.1.0", "inputs": ["a"]}
        )
        assert answer.status_code == 410, answer.text
        assert answer.json()["error_type"] == "yanked"
        assert "leaked test data" in answer.json()["error"]
        listing = httpx.get(f"{server.url}/v1/adapters").json()
    assert "topic/de@local:1.1.0" not in listing["available"]
    assert listing["yanked"]["topic/de@local:1.1.0"] == "trained on leaked test data"


# --------------------------------------------------------------------------- conflicts


def test_one_id_with_other_bytes_in_two_stores_is_an_error_naming_both(
    home, lora_dir, backbone, tmp_path, capsys
):
    other = make_lora_dir(backbone, tmp_path / "other", seed=9)
    team = f"file://{tmp_path / 'team'}"
    registry.add_remote("team", team)
    registry.publish(lora_dir, "sentiment/nl@team:1.0.0", backbone=backbone)
    registry.publish(other, "sentiment/nl@team:1.0.0", backbone=backbone, store=team)

    for ask in (
        lambda: registry.find("sentiment/nl@team"),
        lambda: Runtime(backbone).load("sentiment/nl@team:1.0.0"),
    ):
        with pytest.raises(ConflictError) as caught:
            ask()
        assert "local (" in str(caught.value) and f"team ({team})" in str(caught.value)
    code, _, err = _run(capsys, "registry", "show", "sentiment/nl@team:1.0.0")
    assert code == 4 and "differs between local" in err and "team" in err
    code, out, _ = _run(capsys, "registry", "list", "--lang", "nl")
    assert "local,team" in out and "CONFLICT" in out
    # naming one store answers from that store alone
    assert _run(capsys, "registry", "show", "sentiment/nl@team:1.0.0", "--from", "team")[0] == 0


def test_pull_refuses_other_bytes_and_says_already_present_for_the_same(
    home, project, lora_dir, backbone, tmp_path, capsys
):
    # the case: an old adapterhub published a user's 10-step run under the built-in's
    # exact id; it is put here as that code did, bypassing today's namespace check
    fake = tmp_path / "fake-store"
    fake.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ADAPTERHUB_PROJECT_REGISTRY", str(fake))
        registry.publish(lora_dir, "sentiment/de@adapterhub:1.0.0", backbone=backbone, store=fake)
    local_entry = home / "registry/adapterhub/sentiment/de/1.0.0"
    shutil.copytree(fake / "adapterhub/sentiment/de/1.0.0", local_entry)
    before = {p.name: p.read_bytes() for p in local_entry.iterdir()}

    code, out, err = _run(capsys, "registry", "pull", "sentiment/de@adapterhub:1.0.0", "--from",
                          "project")  # fmt: skip
    assert code == 4 and out == ""
    assert "differs between local" in err and f"project ({project})" in err
    assert {p.name: p.read_bytes() for p in local_entry.iterdir()} == before
    # every other command refuses to pick one of the two silently
    code, _, err = _run(capsys, "registry", "show", "sentiment/de@adapterhub:1.0.0")
    assert code == 4 and "local (" in err and "project (" in err

    # the same bytes: nothing to do, and it says so
    code, out, _ = _run(capsys, "registry", "pull", "sentiment/en@adapterhub:1.0.0")
    assert out.startswith("pulled sentiment/en@adapterhub:1.0.0 from project")
    code, out, _ = _run(capsys, "registry", "pull", "sentiment/en@adapterhub:1.0.0", "--from",
                        "project")  # fmt: skip
    assert code == 0 and out.startswith("already present: sentiment/en@adapterhub:1.0.0 in local")
