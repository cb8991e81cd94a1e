"""Entry bundles: one ``.tar`` (or ``.tar.gz``) holding an entry's files, flat.

Extraction never uses ``tarfile.extractall``: each member is checked first and refused if its name
is absolute, climbs with ``..``, is nested, is a link (symbolic or hard), a device, a FIFO, larger
than the size cap, a pickle, or a file an entry does not have. Accepted members are copied with a
byte limit into a fresh folder.
"""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath

from adapterhub.errors import IntegrityError
from adapterhub.registry.manifest import ENTRY_FILES, YANKED
from adapterhub.registry.verify import PICKLE_SUFFIXES

MAX_MEMBER_BYTES = 256 << 20
MAX_MEMBERS = 16
BUNDLE_FILES = (*ENTRY_FILES, YANKED)


def write_bundle(folder: Path, names: list[str], output: str | Path) -> Path:
    """Write ``names`` from ``folder`` into a tar (gzip when the name ends in ``.gz``/``.tgz``)."""
    output = Path(output)
    mode = "w:gz" if output.name.endswith((".gz", ".tgz")) else "w"
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with tarfile.open(partial, mode, format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            info = tar.gettarinfo(str(folder / name), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(folder / name, "rb") as handle:
                tar.addfile(info, handle)
    partial.replace(output)
    return output


def _member_name(member: tarfile.TarInfo, bundle: Path) -> str:
    name = member.name
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise IntegrityError(f"{bundle}: member {name!r} has an absolute path; refusing the bundle")
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".")]
    if ".." in parts:
        raise IntegrityError(f"{bundle}: member {name!r} climbs out with '..'; refusing the bundle")
    return "/".join(parts)


def extract_bundle(
    bundle: str | Path,
    dest: str | Path,
    *,
    max_member_bytes: int = MAX_MEMBER_BYTES,
    max_members: int = MAX_MEMBERS,
) -> list[str]:
    """Extract a bundle's files into the existing, empty folder ``dest``; returns their names."""
    bundle, dest = Path(bundle), Path(dest)
    names: list[str] = []
    try:
        tar = tarfile.open(bundle, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise IntegrityError(f"{bundle} is not a readable tar bundle ({exc})") from exc
    with tar:
        try:
            for count, member in enumerate(tar, start=1):
                if count > max_members:
                    raise IntegrityError(f"{bundle}: more than {max_members} members")
                name = _member_name(member, bundle)
                if member.isdir() and not name:
                    continue
                if member.issym() or member.islnk():
                    raise IntegrityError(
                        f"{bundle}: member {member.name!r} is a link to {member.linkname!r}; "
                        "bundles may not contain links"
                    )
                if member.ischr() or member.isblk() or member.isfifo():
                    raise IntegrityError(
                        f"{bundle}: member {member.name!r} is a device or FIFO; refusing the bundle"
                    )
                if not member.isreg():
                    raise IntegrityError(
                        f"{bundle}: member {member.name!r} is not a regular file; bundles are flat"
                    )
                if "/" in name:
                    raise IntegrityError(
                        f"{bundle}: member {member.name!r} is nested; bundles are flat"
                    )
                if name.lower().endswith(PICKLE_SUFFIXES):
                    raise IntegrityError(
                        f"{bundle}: member {name!r} is a pickle-format file; only safetensors "
                        "is accepted"
                    )
                if name not in BUNDLE_FILES:
                    raise IntegrityError(f"{bundle}: unexpected member {name!r}")
                if name in names:
                    raise IntegrityError(f"{bundle}: member {name!r} appears twice")
                if member.size > max_member_bytes:
                    raise IntegrityError(
                        f"{bundle}: member {name!r} is {member.size} bytes, over the "
                        f"{max_member_bytes} byte cap"
                    )
                source = tar.extractfile(member)
                if source is None:
                    raise IntegrityError(f"{bundle}: member {name!r} has no data")
                with source, open(dest / name, "xb") as target:
                    copied = _copy_limited(source, target, max_member_bytes)
                if copied != member.size:
                    raise IntegrityError(f"{bundle}: member {name!r} is truncated")
                names.append(name)
        except (tarfile.TarError, EOFError, OSError) as exc:
            if isinstance(exc, FileExistsError):
                raise IntegrityError(f"{bundle}: duplicate member") from exc
            raise IntegrityError(f"{bundle} is corrupt ({exc})") from exc
    return names


def _copy_limited(source, target, limit: int) -> int:
    copied = 0
    while chunk := source.read(1 << 20):
        copied += len(chunk)
        if copied > limit:
            raise IntegrityError(f"a bundle member exceeds the {limit} byte cap")
        target.write(chunk)
    return copied


__all__ = ["extract_bundle", "write_bundle"]
