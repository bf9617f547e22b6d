"""The AIGC record, provider code, signatures and keys (GB 45438 Annex E / F.4, TC260-PG-20252A)."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hegui.config import HeguiConfig, ProviderConfig, load_config
from hegui.errors import ConfigError, UserError
from hegui.labeling.metadata import FIELDS, AIGCLabel, LabelFormatError, new_content_id, new_label
from hegui.labeling.provider_code import content_producer, provider_code
from hegui.labeling.signing import (
    SignatureStatus,
    load_private_key,
    load_public_key,
    load_signing_key,
    load_trusted_public_key,
    sign,
    sign_propagation,
    verify_propagation,
    verify_signature,
    write_keypair,
)

USCC = "91110000600037341L"  # valid check digit (python-stdnum)


def make_label(**kw: str) -> AIGCLabel:
    base = dict(
        label="1", content_producer="acme", produce_id="id1", content_propagator="acme", propagate_id="id1"
    )
    base.update(kw)
    return AIGCLabel(**base)


def test_to_json_is_compact_with_keys_in_standard_order() -> None:
    text = make_label(reserved_code1="rc1").to_json()
    assert text.startswith('{"AIGC":{"Label":"1","ContentProducer":"acme"')
    assert " " not in text
    inner = json.loads(text)["AIGC"]
    assert list(inner) == list(FIELDS)
    assert inner["ReservedCode1"] == "rc1" and inner["ReservedCode2"] == ""


def test_from_json_accepts_outer_inner_and_string_nested() -> None:
    lab = make_label(reserved_code1="x")
    assert AIGCLabel.from_json(lab.to_json()) == lab
    assert AIGCLabel.from_json(lab.inner_json()) == lab
    assert AIGCLabel.from_json(json.dumps({"AIGC": lab.inner_json()})) == lab
    assert AIGCLabel.from_json(lab.to_json().encode()) == lab


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"Label":"1","ContentProducer":"a"}', "ProduceID"),
        ('{"Label":"1","ContentProducer":"a","ProduceID":"b","Extra":"c"}', "unknown field 'Extra'"),
        ('{"Label":"1","ContentProducer":5,"ProduceID":"b"}', "'ContentProducer' must be a string"),
    ],
)
def test_from_json_rejects_bad_input(raw: str, needle: str) -> None:
    with pytest.raises(LabelFormatError, match=needle):
        AIGCLabel.from_json(raw)


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("content_producer", "acme corp", "'ContentProducer'.*space"),
        ("produce_id", 'a"b', "'ProduceID'.*double quote"),
        ("reserved_code1", "a\\b", "'ReservedCode1'.*backslash"),
        ("content_propagator", "平台", "'ContentPropagator'.*U\\+5E73"),
        ("produce_id", "", "'ProduceID' must not be empty"),
    ],
)
def test_validate_names_field_and_character(field: str, value: str, needle: str) -> None:
    with pytest.raises(LabelFormatError, match=needle):
        make_label(**{field: value}).validate()


def test_validate_accepts_the_whole_allowed_set_and_checks_label_value() -> None:
    allowed = "".join(chr(c) for c in [0x21, *range(0x23, 0x5C), *range(0x5D, 0x7F)])
    make_label(produce_id=allowed).validate()
    for value in ("1", "2", "3"):
        make_label(label=value).validate()
    with pytest.raises(LabelFormatError, match="'Label' must be"):
        make_label(label="4").validate()


def test_provider_code_layout() -> None:
    code = provider_code(ProviderConfig(uscc=USCC, service_code="XGW3"))
    assert code == "0011" + USCC + "1XGW3"
    assert len(code) == 27
    assert provider_code(ProviderConfig(uscc=USCC), "propagation")[22] == "2"


def test_bad_uscc_is_a_config_error_naming_the_key() -> None:
    bad = USCC[:-1] + ("0" if USCC[-1] != "0" else "1")
    with pytest.raises(ConfigError, match=r"^provider\.uscc: .*not a valid"):
        provider_code(ProviderConfig(uscc=bad))
    with pytest.raises(ConfigError, match=r"provider\.service_code"):
        provider_code(ProviderConfig(uscc=USCC, service_code="ab!"))


def test_content_producer_falls_back_to_checked_name() -> None:
    assert content_producer(ProviderConfig(name="acme-ai")) == "acme-ai"
    with pytest.raises(ConfigError, match=r"provider\.name: .*space"):
        content_producer(ProviderConfig(name="acme ai"))


def test_new_label_first_write_propagator_equals_producer() -> None:
    cfg = HeguiConfig(provider=ProviderConfig(uscc=USCC, service_code="A1B2"))
    a, b = new_label(cfg), new_label(cfg.provider, label="2")
    assert a.content_producer == "0011" + USCC + "1A1B2"
    assert (a.content_propagator, a.propagate_id) == (a.content_producer, a.produce_id)
    assert a.produce_id != b.produce_id and b.label == "2"
    assert a.reserved_code1 == a.reserved_code2 == ""


def test_content_ids_are_unique_and_time_ordered() -> None:
    ids = [new_content_id() for _ in range(500)]
    assert len(set(ids)) == 500
    assert all(len(i) == 32 for i in ids)
    assert ids[0][:12] <= ids[-1][:12]


def test_explicit_label_config_must_have_ai_and_generated(tmp_path: Path) -> None:
    cfg_file = tmp_path / "hegui.yaml"
    cfg_file.write_text("labeling:\n  image:\n    text: 机器生成\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"hegui.yaml:3: labeling\.image\.text: .*\"AI\" or \"人工智能\""):
        load_config(cfg_file)
    cfg_file.write_text("labeling:\n  text:\n    suffix: 本文由AI提供\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"labeling\.text\.suffix: .*\"生成\" or \"合成\""):
        load_config(cfg_file)
    cfg_file.write_text(
        "labeling:\n  text:\n    prefix: 人工智能合成内容\n  image:\n    height_ratio: 0.04\n"
    )
    with pytest.raises(ConfigError, match=r"labeling\.image\.height_ratio"):
        load_config(cfg_file)


# --- signatures --------------------------------------------------------------------------------------

DIGEST = bytes(range(32))
OTHER = bytes(32)


def test_signature_round_trip_and_tamper_classes() -> None:
    key = Ed25519PrivateKey.generate()
    signed = sign(make_label(), DIGEST, key)
    signed.validate()  # the code stays in the Annex E character set
    assert signed.reserved_code1.startswith("s1.")
    pub = key.public_key()
    assert verify_signature(signed, DIGEST, pub) is SignatureStatus.VALID
    assert verify_signature(signed, OTHER, pub) is SignatureStatus.CONTENT_CHANGED
    assert (
        verify_signature(dataclasses.replace(signed, produce_id="id2"), DIGEST, pub)
        is SignatureStatus.INVALID
    )
    assert verify_signature(dataclasses.replace(signed, label="3"), DIGEST, pub) is SignatureStatus.INVALID
    other = Ed25519PrivateKey.generate().public_key()
    assert verify_signature(signed, DIGEST, other) is SignatureStatus.UNKNOWN_KEY
    assert verify_signature(signed, DIGEST, None) is SignatureStatus.UNVERIFIED
    assert verify_signature(signed, OTHER, None) is SignatureStatus.CONTENT_CHANGED


def test_forged_digest_swap_is_invalid_not_content_changed() -> None:
    key = Ed25519PrivateKey.generate()
    signed = sign(make_label(), DIGEST, key)
    tag, kid, _digest, sig = signed.reserved_code1.split(".")
    # A forger who swaps in the digest of other content cannot re-sign it.
    from hegui.labeling.signing import b64

    forged = dataclasses.replace(signed, reserved_code1=f"{tag}.{kid}.{b64(OTHER)}.{sig}")
    assert verify_signature(forged, OTHER, key.public_key()) is SignatureStatus.INVALID


def test_hash_only_unsigned_and_malformed() -> None:
    hashed = sign(make_label(), DIGEST, None)
    assert hashed.reserved_code1.startswith("h1.")
    assert verify_signature(hashed, DIGEST, None) is SignatureStatus.HASH_ONLY
    assert verify_signature(hashed, OTHER, None) is SignatureStatus.CONTENT_CHANGED
    assert verify_signature(make_label(), DIGEST, None) is SignatureStatus.UNSIGNED
    for junk in ("zz", "s1.a.b", "s1.k.@@@.x", "h1.!!"):
        assert verify_signature(make_label(reserved_code1=junk), DIGEST, None) is SignatureStatus.MALFORMED


def test_propagation_signature_keeps_producer_signature() -> None:
    producer, platform = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    signed = sign(make_label(), DIGEST, producer)
    passed_on = sign_propagation(signed.with_propagator("PlatformX"), DIGEST, platform)
    assert passed_on.content_producer == "acme" and passed_on.reserved_code1 == signed.reserved_code1
    assert passed_on.propagate_id != signed.propagate_id
    assert verify_signature(passed_on, DIGEST, producer.public_key()) is SignatureStatus.VALID
    assert verify_propagation(passed_on, DIGEST, platform.public_key()) is SignatureStatus.VALID
    renamed = dataclasses.replace(passed_on, content_propagator="Other")
    assert verify_propagation(renamed, DIGEST, platform.public_key()) is SignatureStatus.INVALID


def test_keygen_files_and_loading(tmp_path: Path) -> None:
    key_path = tmp_path / "keys" / "label.pem"
    priv, pub = write_keypair(key_path)
    assert stat.S_IMODE(os.stat(priv).st_mode) == 0o600
    assert pub.name == "label.pem.pub"
    with pytest.raises(UserError, match="already exists"):
        write_keypair(key_path)
    key = load_private_key(priv)
    assert load_public_key(pub) == key.public_key()
    assert load_public_key(priv) == key.public_key()  # a private key file is accepted as public key source
    cfg_file = tmp_path / "hegui.yaml"
    cfg_file.write_text("labeling:\n  signing_key: keys/label.pem\n", encoding="utf-8")
    cfg = load_config(cfg_file)
    assert load_signing_key(cfg) is not None
    assert load_trusted_public_key(cfg) == key.public_key()
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(ConfigError, match=r"labeling\.signing_key: .*junk\.pem"):
        load_private_key(tmp_path / "junk.pem")
