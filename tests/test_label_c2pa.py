"""Optional C2PA manifest beside the GB 45438 label (skipped without c2pa-python)."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hegui.config import HeguiConfig, load_config
from hegui.errors import ConfigError
from hegui.labeling.image import content_digest, label_image, read_label, write_label
from hegui.labeling.metadata import new_label
from hegui.labeling.verify import verify_file

pytest.importorskip("c2pa", reason="c2pa-python (optional extra `hegui[c2pa]`) not installed")


def _certs(folder: Path) -> None:
    """A test root CA and an ES256 end-entity certificate with the extensions C2PA requires."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hegui test"),
            ]
        )

    def usage(ca: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False,
        )  # fmt: skip

    now = datetime.datetime.now(datetime.UTC)
    ca_key, ee_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(name("hegui test CA")).issuer_name(name("hegui test CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage(True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    ee = (
        x509.CertificateBuilder().subject_name(name("hegui signer")).issuer_name(ca.subject)
        .public_key(ee_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ee_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    (folder / "chain.pem").write_bytes(ee.public_bytes(pem) + ca.public_bytes(pem))
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "c2pa-key.pem").write_bytes(
        ee_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@pytest.fixture(scope="module")
def c2pa_cfg(tmp_path_factory: pytest.TempPathFactory) -> HeguiConfig:
    folder = tmp_path_factory.mktemp("c2pa")
    _certs(folder)
    (folder / "hegui.yaml").write_text(
        "labeling:\n  c2pa:\n    enabled: true\n    cert_chain: chain.pem\n    private_key: c2pa-key.pem\n"
        "    trust_anchors: ca.pem\n"
    )
    return load_config(folder / "hegui.yaml")


@pytest.mark.parametrize("ext", ["jpg", "png", "webp"])
def test_manifest_is_embedded_and_trusted(tmp_path: Path, c2pa_cfg: HeguiConfig, ext: str) -> None:
    from hegui.labeling import c2pa_manifest

    arr = np.random.default_rng(0).integers(0, 256, (160, 240, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "in.png")
    dst = tmp_path / f"out.{ext}"
    final = label_image(tmp_path / "in.png", dst, c2pa_cfg, new_label(c2pa_cfg))
    assert read_label(dst) is not None  # the GB 45438 label survives the C2PA embedding
    kind = {"jpg": "jpeg", "png": "png", "webp": "webp"}[ext]
    reading = c2pa_manifest.read_bytes(dst.read_bytes(), kind)
    assert reading is not None and reading.state == "Valid"
    assert reading.aigc == final.as_dict()
    report = verify_file(dst, c2pa_cfg)
    assert report.exit_code == 0 and report.c2pa == "Trusted"


def test_propagation_breaks_c2pa_but_not_the_label(tmp_path: Path, c2pa_cfg: HeguiConfig) -> None:
    Image.fromarray(np.zeros((120, 160, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    final = label_image(tmp_path / "in.png", tmp_path / "out.png", c2pa_cfg, new_label(c2pa_cfg))
    write_label(tmp_path / "out.png", tmp_path / "shared.png", final.with_propagator("PlatformX").to_json())
    assert content_digest(tmp_path / "shared.png") == content_digest(tmp_path / "out.png")
    report = verify_file(tmp_path / "shared.png", c2pa_cfg)
    assert report.exit_code == 0 and report.c2pa == "Invalid"
    assert any("C2PA manifest invalid" in n for n in report.notes)


def test_enabled_without_certificates_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "hegui.yaml").write_text("labeling:\n  c2pa:\n    enabled: true\n")
    with pytest.raises(
        ConfigError, match=r"hegui\.yaml:2: labeling\.c2pa: .*enabled needs cert_chain and private_key"
    ):
        load_config(tmp_path / "hegui.yaml")


def test_unsigned_image_has_no_manifest(tmp_path: Path) -> None:
    Image.new("RGB", (64, 64)).save(tmp_path / "a.png")
    cfg = HeguiConfig()
    label_image(tmp_path / "a.png", tmp_path / "b.png", cfg, new_label(cfg))
    assert verify_file(tmp_path / "b.png", cfg).c2pa == "absent"
