"""The package works outside a checkout: a wheel built from the working tree, installed
non-editable into a fresh environment and run from a folder outside the checkout, finds the
packaged recipes and the built-in store (the top-level recipes/ and registry/ folders).

The fresh environment gets adapterhub from the wheel only. Its third-party dependencies come from
this environment's site-packages through a plain path in a ``.pth`` file: Python does not run the
``.pth`` files inside a folder added that way, so setuptools' editable finder for adapterhub
(``__editable__.adapterhub-*.pth``), which would map adapterhub back onto the checkout, stays off.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

from adapterhub.errors import RecipeError
from adapterhub.recipes import load_recipe, recipe_from_dict, recipe_names, recipes_dir
from adapterhub.registry.remotes import project_registry_dir

ROOT = Path(__file__).resolve().parents[1]
CHECKS = """
import json, sys
import adapterhub
from adapterhub.recipes import load_recipe, recipe_names
from adapterhub.registry.remotes import project_registry_dir

print(json.dumps({
    "file": adapterhub.__file__,
    "editable": [repr(f) for f in sys.meta_path if "editable" in repr(f).lower()],
    "sentiment": load_recipe("sentiment").to_dict(),
    "names": recipe_names(),
    "store": str(project_registry_dir()),
}))
"""


def _recipe_in_checkout(name: str) -> dict:
    path = ROOT / "recipes" / f"{name}.yaml"
    return recipe_from_dict(yaml.safe_load(path.read_text()), where=str(path)).to_dict()


def _store_ids_in_checkout() -> list[str]:
    manifests = (ROOT / "registry").glob("*/*/*/*/manifest.json")
    return sorted(json.loads(path.read_text())["id"] for path in manifests)


def _copy_working_tree(target: Path) -> None:
    """Tracked and untracked-but-not-ignored files: the tree as it is, without build leftovers."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


class Installed:
    """A fresh environment holding the wheel, and a way to run things in it from outside."""

    def __init__(self, root: Path, wheel: Path):
        self.root = root
        self.wheel = wheel
        self.bin = root / "venv" / "bin"
        self.cwd = root / "elsewhere"
        self.cwd.mkdir()
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.env.pop("ADAPTERHUB_PROJECT_REGISTRY", None)
        self.env.update(ADAPTERHUB_HOME=str(root / "home"), HF_HUB_OFFLINE="1")

    def run(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            argv, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=120
        )

    def site_packages(self) -> Path:
        code = "import sysconfig; print(sysconfig.get_path('purelib'))"
        return Path(self.run(str(self.bin / "python"), "-c", code).stdout.strip())


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    _copy_working_tree(source)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w"]
    subprocess.run([*build, str(root / "wheels"), str(source)], check=True, timeout=300)
    (wheel,) = (root / "wheels").glob("adapterhub-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    env = Installed(root, wheel)
    # Installed before the dependencies are linked in, so pip sees no other adapterhub.
    install = [*pip, "--python", str(env.bin / "python"), "install", "--no-deps", "--no-index"]
    subprocess.run([*install, str(wheel)], check=True, timeout=300)
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (env.site_packages() / "_dev_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    return env


def test_the_wheel_holds_every_module_of_the_tree(installed):
    with zipfile.ZipFile(installed.wheel) as wheel:
        shipped = {name for name in wheel.namelist() if name.endswith(".py")}
    tree = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "adapterhub").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert tree <= shipped, f"missing from the wheel: {sorted(tree - shipped)}"


def test_an_installed_wheel_finds_the_packaged_recipes_and_store(installed):
    result = installed.run(str(installed.bin / "python"), "-c", CHECKS)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    site = installed.site_packages()
    assert Path(found["file"]).is_relative_to(site), found["file"]
    assert not found["editable"]
    assert found["sentiment"] == _recipe_in_checkout("sentiment")
    assert found["names"] == sorted(p.stem for p in (ROOT / "recipes").glob("*.yaml"))
    assert Path(found["store"]) == site / "adapterhub" / "_registry"


def test_the_installed_command_shows_a_packaged_recipe(installed):
    result = installed.run(str(installed.bin / "adapterhub"), "recipe", "show", "sentiment")
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout) == _recipe_in_checkout("sentiment")
    listed = installed.run(str(installed.bin / "adapterhub"), "recipe", "list", "--json")
    assert [row["name"] for row in json.loads(listed.stdout)] == recipe_names()


def test_the_installed_store_lists_the_projects_adapters_or_says_it_is_absent(installed):
    adapterhub = str(installed.bin / "adapterhub")
    result = installed.run(adapterhub, "registry", "list", "--from", "project", "--json")
    assert result.returncode == 0, result.stderr
    assert sorted(row["id"] for row in json.loads(result.stdout)) == _store_ids_in_checkout()
    assert "built-in store" not in result.stderr

    store = installed.site_packages() / "adapterhub" / "_registry"
    store.rename(store.with_name("_registry.removed"))
    try:
        absent = installed.run(adapterhub, "registry", "list")
    finally:
        store.with_name("_registry.removed").rename(store)
    assert absent.returncode == 0, absent.stderr
    lines = [line for line in absent.stderr.splitlines() if "built-in store" in line]
    assert len(lines) == 1 and "not installed" in lines[0], absent.stderr


def test_a_checkout_finds_the_same_files():
    assert recipes_dir() == ROOT / "recipes"
    assert load_recipe("sentiment").to_dict() == _recipe_in_checkout("sentiment")


def test_a_checkout_finds_its_store(monkeypatch):
    monkeypatch.delenv("ADAPTERHUB_PROJECT_REGISTRY", raising=False)
    assert project_registry_dir() == ROOT / "registry"


def test_a_missing_recipe_is_an_error_naming_the_packaged_ones():
    with pytest.raises(RecipeError) as caught:
        load_recipe("nonexistent")
    message = str(caught.value)
    assert "'nonexistent'" in message
    assert all(name in message for name in ("sentiment", "pos", "langid", "mlm"))


def test_an_absent_store_is_logged_once(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("ADAPTERHUB_PROJECT_REGISTRY", str(tmp_path / "absent"))
    assert project_registry_dir() is None
    assert project_registry_dir() is None
    assert len(caplog.records) == 1
    assert str(tmp_path / "absent") in caplog.records[0].getMessage()
