"""The README's registry examples run as written, in a fresh home, as a new user would.

The code block under "## Registry" is read from README.md and each line is run in order in a
fresh ``$ADAPTERHUB_HOME``, in an empty working folder, with these substitutions (nothing else is
changed, so a command the README gets wrong fails here):

- ``--backbone TINY`` is added to ``train`` and ``publish`` and replaces ``multilingual-e5-small``
  in ``import``: the tiny random test backbone instead of the real one (minutes on 2 cores);
- ``train`` gets ``--data`` with a small labelled file: the built-in corpora are downloaded from a
  package registry on first use, which needs the network;
- the OCI remote ``oci://registry.example:5000/team/adapters`` becomes a local folder (the
  registry tests push to a real OCI server);
- ``./my-peft-folder`` is written first by PEFT's ``save_pretrained`` on the tiny backbone.
"""

from __future__ import annotations

import csv
import json
import random
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from adapterhub.cli import main
from adapterhub.registry.manifest import SIGNATURE, read_card_front_matter

README = Path(__file__).resolve().parents[1] / "README.md"
OCI_EXAMPLE = "oci://registry.example:5000/team/adapters"

pytest.importorskip("model_signing", reason="the sign extra (model-signing) is not installed")


def registry_block() -> list[str]:
    """The command lines of the README's registry code block."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Registry: identity, integrity, sharing") :]
    start = section.index("```bash\n") + len("```bash\n")
    block = section[start : section.index("```", start)]
    return [line for line in block.splitlines() if line.strip()]


def _write_data(path: Path) -> Path:
    rng = random.Random(0)
    good, bad = ["good", "great", "lovely", "fine"], ["bad", "awful", "poor", "dull"]
    nouns = ["film", "book", "meal", "hotel", "phone", "song", "story", "game"]
    rows, seen = [], set()
    while len(rows) < 480:
        label = rng.choice(["negative", "positive"])
        lang = "de" if len(rows) < 40 else rng.choice(["en", "fr"])
        words = [rng.choice(nouns), "is", rng.choice(good if label == "positive" else bad)]
        text = " ".join(words + [str(rng.randrange(10_000))])
        if text not in seen:
            seen.add(text)
            rows.append((text, label, lang))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "lang"])
        writer.writerows(rows)
    return path


def _peft_folder(backbone_path: Path, folder: Path) -> None:
    import peft
    from transformers import AutoModel

    model = peft.get_peft_model(
        AutoModel.from_pretrained(backbone_path),
        peft.LoraConfig(r=4, target_modules=["query", "value"], init_lora_weights=False),
    )
    model.save_pretrained(folder)


def _argv(line: str, tiny: Path, data: Path, remote: Path) -> list[str] | None:
    """The line's arguments after the substitutions the module docstring states; None for a
    line that is not an adapterhub command."""
    words = shlex.split(line, comments=True)
    if words[0] != "adapterhub":
        return None
    words = [str(remote) if w == OCI_EXAMPLE else w for w in words[1:]]
    if words[0] == "train":
        words += ["--backbone", str(tiny), "--data", str(data), "--no-progress"]
    if words[:2] == ["registry", "publish"]:
        words += ["--backbone", str(tiny)]
    if words[:2] == ["registry", "import"]:
        words = [str(tiny) if w == "multilingual-e5-small" else w for w in words]
    return words


def test_the_readme_registry_block_runs_as_written(
    tiny_backbone_path, tmp_path, monkeypatch, capsys
):
    if shutil.which("openssl") is None:
        pytest.skip("the block makes its signing key with openssl")
    home = tmp_path / "home"
    monkeypatch.setenv("ADAPTERHUB_HOME", str(home))
    for name in ("ADAPTERHUB_NAMESPACE", "ADAPTERHUB_PROJECT_REGISTRY", "ADAPTERHUB_SIGNING_KEY"):
        monkeypatch.delenv(name, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    data = _write_data(tmp_path / "sentiment.csv")
    _peft_folder(tiny_backbone_path, work / "my-peft-folder")

    lines = registry_block()
    assert len(lines) >= 12 and all("[" not in line.split("#")[0] for line in lines)
    outputs = {}
    for line in lines:
        argv = _argv(line, tiny_backbone_path, data, tmp_path / "team-remote")
        if argv is None:
            subprocess.run(shlex.split(line, comments=True), check=True, capture_output=True)
            continue
        code = main(argv)
        captured = capsys.readouterr()
        assert code == 0, f"`{line}` exited {code}: {captured.err.strip()}"
        outputs[" ".join(argv[:2])] = captured.out + captured.err

    # what the comments promise
    assert "sentiment/de@adapterhub:1.2.0" in outputs["registry list"]
    # 1.2.0 regressed on the yardstick: the short id means 1.1.0, and show says why
    assert "sentiment/de@adapterhub:1.1.0 from project" in outputs["registry show"]
    assert "sentiment/de@adapterhub:1.2.0 is newer but not promoted" in outputs["registry show"]
    assert "published sentiment/de@nlp-team:1.0.0" in outputs["registry publish"]
    assert "already present: sentiment/de@nlp-team:1.0.0" in outputs["registry pull"]
    assert (
        "signature valid" in outputs["registry verify"]
        and "trusted" in (outputs["registry verify"])
    )
    assert (work / "sentiment-de.tar").is_file()
    assert "imported sentiment/es@nlp-team:0.1.0" in outputs["registry import"]

    # publish kept the run's metrics and recipe, signed, and its card tells the truth
    entry = home / "registry" / "nlp-team" / "sentiment" / "de" / "1.0.0"
    manifest = json.loads((entry / "manifest.json").read_text())
    trained = json.loads((work / "adapters" / "sentiment-de" / "metrics.json").read_text())
    assert manifest["metrics"]["accuracy"] == pytest.approx(trained["test"]["de"]["accuracy"])
    assert manifest["metrics"]["split"].startswith("test")
    assert manifest["recipe"]["max_steps"] == 10
    assert (entry / SIGNATURE).is_file()
    front = read_card_front_matter((entry / "README.md").read_text())
    assert sorted(front["adapterhub"]["files"]) == sorted(manifest["files"])
    assert front["adapterhub"]["evaluation"]["languages"] == ["de"]
    assert "base_model" not in front  # the tiny backbone is a local folder, not a hub model
    assert manifest["license"] == "other"  # user data and a local backbone: no recorded terms


def test_the_block_is_what_this_test_runs():
    """A line added to the block is an adapterhub command, openssl, or a comment."""
    for line in registry_block():
        first = shlex.split(line, comments=True)[0]
        assert first in ("adapterhub", "openssl"), line
