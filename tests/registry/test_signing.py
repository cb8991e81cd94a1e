"""Signed entries (OpenSSF model-signing, key-based, offline).

A signed entry travels with its signature through a directory store, OCI (docker-registry) and
S3 (moto) into another home with identical files and a valid signature; a tampered signed entry
is refused on pull, import and the serving runtime's load; an unsigned entry and one signed by a
key nobody trusts are refused where a signature is required; `registry verify` reports each
entry's sha256, fingerprint and signature.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from registry_helpers import METRICS, make_lora_dir
from test_registry_s3 import bucket, s3_client, s3_server, s3_url  # noqa: F401 (fixtures)

from adapterhub import registry
from adapterhub.cli import build_parser, main
from adapterhub.cli.serve import config_from_args
from adapterhub.config import RuntimeConfig
from adapterhub.errors import IntegrityError, UntrustedError
from adapterhub.registry.audit import audit
from adapterhub.registry.ids import AdapterId
from adapterhub.registry.manifest import MANIFEST, SIGNATURE, SIGNER_KEY, Manifest
from adapterhub.registry.signing import SignaturePolicy, key_id
from adapterhub.registry.stores import LocalStore
from adapterhub.registry.verify import sha256_file
from adapterhub.runtime import Runtime

pytest.importorskip("model_signing", reason="the sign extra (model-signing) is not installed")

ADAPTER = "sentiment/de@team:1.0.0"


def _key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / f"{name}.key.pem", folder / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@pytest.fixture
def alice(tmp_path) -> tuple[Path, Path]:
    (tmp_path / "keys").mkdir(exist_ok=True)
    return _key_pair(tmp_path / "keys", "alice")


@pytest.fixture
def mallory(tmp_path) -> tuple[Path, Path]:
    (tmp_path / "keys").mkdir(exist_ok=True)
    return _key_pair(tmp_path / "keys", "mallory")


def _digests(entry: Path) -> dict[str, str]:
    return {p.name: sha256_file(p)[0] for p in sorted(entry.iterdir()) if p.is_file()}


def _entry(store: Path, adapter: str = ADAPTER) -> Path:
    return LocalStore(store).entry_path(AdapterId.parse(adapter))


def _trusting(public: Path) -> SignaturePolicy:
    return SignaturePolicy(require=True, trusted_keys=(str(public),))


def _publish_signed(backbone, lora_dir, store: Path, key: Path, adapter: str = ADAPTER) -> Path:
    registry.publish(lora_dir, adapter, backbone=backbone, metrics=METRICS, store=store, sign=key)
    return _entry(store, adapter)


def _rewrite_manifest(entry: Path, **changes) -> None:
    """Change the manifest as an attacker with write access to the store would: valid,
    canonical, every file's sha256 still right, only the signature can tell."""
    manifest = Manifest.from_json((entry / MANIFEST).read_bytes())
    (entry / MANIFEST).write_text(manifest.model_copy(update=changes).to_json())


# --------------------------------------------------------------------------- round trips


def test_a_signed_entry_pulls_into_another_home_with_identical_files(
    backbone, lora_dir, tmp_path, alice
):
    private, public = alice
    source = _publish_signed(backbone, lora_dir, tmp_path / "team", private)
    assert (source / SIGNATURE).is_file() and (source / SIGNER_KEY).read_bytes() == (
        public.read_bytes()
    )
    bundle = json.loads((source / SIGNATURE).read_text())  # a sigstore bundle, key-signed
    assert bundle["verificationMaterial"]["publicKey"]["hint"] == key_id(public.read_bytes())

    copied = registry.pull_entry(
        ADAPTER, str(tmp_path / "team"), store=tmp_path / "other", signatures=_trusting(public)
    )
    assert copied.copied
    target = _entry(tmp_path / "other")
    assert _digests(target) == _digests(source)
    (report,) = audit(
        ADAPTER, store=tmp_path / "other", backbone=backbone, signatures=_trusting(public)
    )
    assert (report.sha256, report.fingerprint, report.signature) == ("ok", "match", "valid")
    assert report.trusted and report.key_id == key_id(public.read_bytes()) and report.ok


def test_a_signed_entry_travels_through_oci_with_its_signature(
    backbone, lora_dir, tmp_path, alice, oci_registry
):
    private, public = alice
    url = oci_registry.url(f"signed/{tmp_path.name[-20:].lower().replace('_', '-')}")
    source = _publish_signed(backbone, lora_dir, tmp_path / "team", private)
    registry.push(ADAPTER, url, store=tmp_path / "team")
    registry.pull_entry(ADAPTER, url, store=tmp_path / "other", signatures=_trusting(public))
    assert _digests(_entry(tmp_path / "other")) == _digests(source)
    (report,) = audit(ADAPTER, store=tmp_path / "other", signatures=_trusting(public))
    assert report.signature == "valid" and report.trusted


def test_a_signed_entry_travels_through_s3_with_its_signature(
    backbone,
    lora_dir,
    tmp_path,
    alice,
    s3_url,  # noqa: F811
):
    private, public = alice
    source = _publish_signed(backbone, lora_dir, tmp_path / "team", private)
    registry.push(ADAPTER, s3_url, store=tmp_path / "team")
    registry.pull_entry(ADAPTER, s3_url, store=tmp_path / "other", signatures=_trusting(public))
    assert _digests(_entry(tmp_path / "other")) == _digests(source)
    (report,) = audit(ADAPTER, store=tmp_path / "other", signatures=_trusting(public))
    assert report.signature == "valid" and report.trusted


def test_a_signed_entry_survives_export_and_import(backbone, lora_dir, tmp_path, alice):
    private, public = alice
    source = _publish_signed(backbone, lora_dir, tmp_path / "team", private)
    bundle = registry.export_bundle(ADAPTER, tmp_path / "entry.tar", store=tmp_path / "team")
    registry.import_adapter(bundle, store=tmp_path / "other", signatures=_trusting(public))
    assert _digests(_entry(tmp_path / "other")) == _digests(source)


# --------------------------------------------------------------------------- tampering


def test_a_changed_manifest_is_refused_on_pull_import_and_load(backbone, lora_dir, tmp_path, alice):
    """The sha256 of every file still matches: only the signature, which covers the manifest,
    sees that the metrics (or the id's claims) were rewritten."""
    private, _ = alice
    entry = _publish_signed(backbone, lora_dir, tmp_path / "team", private)
    bundle = registry.export_bundle(ADAPTER, tmp_path / "entry.tar", store=tmp_path / "team")
    _rewrite_manifest(entry, description="the best adapter there is")
    registry.verify_adapter_dir(entry, backbone)  # sha256, weights and shapes all still pass

    with pytest.raises(
        IntegrityError, match=r"signature \(model\.sig\) does not verify: manifest\.json changed"
    ):
        registry.pull_entry(ADAPTER, str(tmp_path / "team"), store=tmp_path / "other")
    assert not (tmp_path / "other" / "team").exists()

    tampered = registry.export_bundle(ADAPTER, tmp_path / "bad.tar", store=tmp_path / "team")
    with pytest.raises(IntegrityError, match=r"manifest\.json changed"):
        registry.import_adapter(tampered, store=tmp_path / "imported")
    registry.import_adapter(bundle, store=tmp_path / "imported")  # the genuine one imports

    runtime = Runtime(backbone, registry=tmp_path / "team")
    with pytest.raises(IntegrityError, match=r"signature \(model\.sig\) does not verify"):
        runtime.load(ADAPTER)
    assert ADAPTER not in runtime.residents


def test_swapped_weights_with_a_matching_manifest_are_refused(backbone, lora_dir, tmp_path, alice):
    private, _ = alice
    entry = _publish_signed(backbone, lora_dir, tmp_path / "team", private)
    other = make_lora_dir(backbone, tmp_path / "other-weights", seed=7)
    shutil.copyfile(other / "adapter_model.safetensors", entry / "adapter_model.safetensors")
    manifest = Manifest.from_json((entry / MANIFEST).read_bytes())
    digest, size = sha256_file(entry / "adapter_model.safetensors")
    files = {**manifest.files}
    files["adapter_model.safetensors"] = files["adapter_model.safetensors"].model_copy(
        update={"sha256": digest, "bytes": size}
    )
    _rewrite_manifest(entry, files=files)
    registry.verify_adapter_dir(entry, backbone)
    with pytest.raises(IntegrityError, match=r"adapter_model\.safetensors changed"):
        registry.pull_entry(ADAPTER, str(tmp_path / "team"), store=tmp_path / "mine")
    with pytest.raises(IntegrityError, match=r"adapter_model\.safetensors changed"):
        registry.open_adapter(ADAPTER, backbone, store=tmp_path / "team")


def test_a_signature_moved_onto_another_entry_does_not_verify(backbone, lora_dir, tmp_path, alice):
    private, public = alice
    signed = _publish_signed(backbone, lora_dir, tmp_path / "team", private)
    registry.publish(
        lora_dir, "sentiment/fr@team:1.0.0", backbone=backbone, store=tmp_path / "team"
    )
    unsigned = _entry(tmp_path / "team", "sentiment/fr@team:1.0.0")
    for name in (SIGNATURE, SIGNER_KEY):
        shutil.copyfile(signed / name, unsigned / name)
    with pytest.raises(IntegrityError, match=r"manifest\.json changed"):
        registry.pull_entry(
            "sentiment/fr@team:1.0.0",
            str(tmp_path / "team"),
            store=tmp_path / "other",
            signatures=_trusting(public),
        )


def test_a_signature_without_its_key_file_is_refused(backbone, lora_dir, tmp_path, alice):
    entry = _publish_signed(backbone, lora_dir, tmp_path / "team", alice[0])
    (entry / SIGNER_KEY).unlink()
    with pytest.raises(IntegrityError, match="model.sig without a regular signer.pem"):
        registry.open_adapter(ADAPTER, backbone, store=tmp_path / "team")


# --------------------------------------------------------------------------- policy


def test_an_unsigned_entry_is_refused_where_a_signature_is_required(
    backbone, lora_dir, tmp_path, alice, capsys
):
    _, public = alice
    registry.publish(lora_dir, ADAPTER, backbone=backbone, store=tmp_path / "team")
    with pytest.raises(UntrustedError, match="is unsigned"):
        registry.pull_entry(
            ADAPTER, str(tmp_path / "team"), store=tmp_path / "other", signatures=_trusting(public)
        )
    assert not (tmp_path / "other" / "team").exists()
    argv = ["registry", "pull", ADAPTER, "--from", str(tmp_path / "team")]
    argv += [
        "--store",
        str(tmp_path / "other"),
        "--require-signature",
        "--trusted-key",
        str(public),
    ]
    assert main(argv) == 5
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "unsigned" in err and "\n" not in err
    bundle = registry.export_bundle(ADAPTER, tmp_path / "entry.tar", store=tmp_path / "team")
    with pytest.raises(UntrustedError, match="is unsigned"):
        registry.import_adapter(bundle, store=tmp_path / "other", signatures=_trusting(public))
    runtime = Runtime(
        backbone, registry=tmp_path / "team", require_signature=True, trusted_keys=(str(public),)
    )
    with pytest.raises(UntrustedError, match="is unsigned"):
        runtime.load(ADAPTER)
    assert Runtime(backbone, registry=tmp_path / "team").load(ADAPTER).id == ADAPTER  # no policy


def test_a_signature_by_an_untrusted_key_is_refused(backbone, lora_dir, tmp_path, alice, mallory):
    _publish_signed(backbone, lora_dir, tmp_path / "team", mallory[0])
    with pytest.raises(UntrustedError, match="not a trusted key"):
        registry.pull_entry(
            ADAPTER,
            str(tmp_path / "team"),
            store=tmp_path / "other",
            signatures=_trusting(alice[1]),
        )
    runtime = Runtime(
        backbone, registry=tmp_path / "team", require_signature=True, trusted_keys=(str(alice[1]),)
    )
    with pytest.raises(UntrustedError, match="not a trusted key"):
        runtime.load(ADAPTER)
    # without a policy it verifies (the files are what that key signed) and is reported so
    registry.pull_entry(ADAPTER, str(tmp_path / "team"), store=tmp_path / "other")
    (report,) = audit(
        ADAPTER, store=tmp_path / "other", signatures=SignaturePolicy(trusted_keys=(str(alice[1]),))
    )
    assert (report.signature, report.trusted, report.ok) == ("valid", False, True)
    assert report.key_id == key_id(mallory[1].read_bytes())


def test_a_remote_can_require_signatures_by_its_trusted_keys(
    backbone, lora_dir, tmp_path, alice, mallory, capsys
):
    private, public = alice
    team = tmp_path / "team"
    _publish_signed(backbone, lora_dir, team, private)
    _publish_signed(backbone, lora_dir, team, mallory[0], "sentiment/fr@team:1.0.0")
    registry.publish(lora_dir, "sentiment/it@team:1.0.0", backbone=backbone, store=team)
    argv = ["registry", "remote", "add", "team", str(team), "--require-signature"]
    assert main([*argv, "--trusted-key", str(public)]) == 0
    assert "requires a signature" in capsys.readouterr().out
    assert main(["registry", "pull", ADAPTER, "--from", "team"]) == 0
    assert main(["registry", "pull", "sentiment/fr@team:1.0.0", "--from", "team"]) == 5
    assert "not a trusted key" in capsys.readouterr().err
    assert main(["registry", "pull", "sentiment/it@team:1.0.0", "--from", "team"]) == 5
    assert "unsigned" in capsys.readouterr().err


def test_publish_signs_with_the_configured_key_unless_told_not_to(
    tiny_backbone_path, lora_dir, tmp_path, alice, capsys
):
    private, public = alice
    assert main(["config", "set", "signing_key", str(private)]) == 0
    store = tmp_path / "store"
    common = ["--backbone", str(tiny_backbone_path), "--store", str(store)]
    assert main(["registry", "publish", str(lora_dir), "--id", ADAPTER, *common]) == 0
    assert (_entry(store) / SIGNATURE).is_file()
    argv = ["registry", "publish", str(lora_dir), "--id", "sentiment/fr@team:1.0.0", "--no-sign"]
    assert main([*argv, *common]) == 0
    assert not (_entry(store, "sentiment/fr@team:1.0.0") / SIGNATURE).exists()

    capsys.readouterr()
    argv = ["registry", "verify", "--all", "--json", "--trusted-key", str(public), *common]
    assert main(argv) == 0
    reports = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert reports[ADAPTER]["signature"] == "valid" and reports[ADAPTER]["trusted"]
    assert reports[ADAPTER]["fingerprint"] == "match" and reports[ADAPTER]["sha256"] == "ok"
    assert reports["sentiment/fr@team:1.0.0"]["signature"] == "unsigned"

    _rewrite_manifest(_entry(store), description="rewritten")
    assert main(["registry", "verify", ADAPTER, "--store", str(store)]) == 5
    out = capsys.readouterr().out
    assert f"BAD {ADAPTER}: sha256 ok, fingerprint not checked, signature invalid" in out
    assert main(["registry", "verify", "--all", "--require-signature", "--trusted-key",
                 str(public), "--store", str(store)]) == 5  # fmt: skip
    assert "sentiment/fr@team:1.0.0 is unsigned" in capsys.readouterr().out


def test_serve_takes_the_signature_policy_as_flags(alice):
    _, public = alice
    args = build_parser().parse_args(
        ["serve", "--require-signature", "--trusted-key", str(public), "--trusted-key", "b.pem"]
    )
    config = config_from_args(RuntimeConfig, args)
    assert config.require_signature and config.trusted_keys == (str(public), "b.pem")
    assert config_from_args(RuntimeConfig, build_parser().parse_args(["serve"])) == RuntimeConfig()


def test_the_signature_covers_every_file_but_itself(backbone, lora_dir, tmp_path, alice):
    import base64

    entry = _publish_signed(backbone, lora_dir, tmp_path / "team", alice[0])
    bundle = json.loads((entry / SIGNATURE).read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    signed = {}
    for subject in statement["predicate"]["resources"]:
        signed[subject["name"]] = subject["digest"]
    expected = {
        name: hashlib.sha256((entry / name).read_bytes()).hexdigest()
        for name in _digests(entry)
        if name not in (SIGNATURE, SIGNER_KEY)
    }
    assert signed == expected and MANIFEST in signed


def test_the_configured_policy_applies_without_flags(backbone, lora_dir, tmp_path, alice):
    private, public = alice
    team = tmp_path / "team"
    _publish_signed(backbone, lora_dir, team, private)
    registry.publish(lora_dir, "sentiment/fr@team:1.0.0", backbone=backbone, store=team)
    assert main(["config", "set", "trusted_keys", str(public)]) == 0
    assert main(["config", "set", "require_signature", "yes"]) == 0
    assert SignaturePolicy.configured() == SignaturePolicy(True, (str(public.resolve()),))
    registry.pull_entry(ADAPTER, str(team), store=tmp_path / "other")
    with pytest.raises(UntrustedError, match="is unsigned"):
        registry.pull_entry("sentiment/fr@team:1.0.0", str(team), store=tmp_path / "other")
    with pytest.raises(UntrustedError, match="is unsigned"):
        Runtime(backbone, registry=team).load("sentiment/fr@team:1.0.0")
