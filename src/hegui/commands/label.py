"""``hegui label …``: GB 45438 explicit and implicit labels, and the verifier."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from hegui.errors import UserError

if TYPE_CHECKING:
    from hegui.config import HeguiConfig
    from hegui.labeling.metadata import AIGCLabel

label_app = typer.Typer(
    help=(
        "GB 45438 labels: add explicit (visible/audible) and implicit (AIGC metadata) labels to generated "
        "text, images, audio and video, verify them, and add propagator fields as a platform."
    ),
    no_args_is_help=True,
)

ConfigOpt = typer.Option(None, "--config", "-c", help="hegui.yaml (provider, labeling.* settings and keys).")
OutputOpt = typer.Option(..., "--output", "-o", help="Output file (written atomically; may equal the input).")


class LabelValue(StrEnum):
    IS = "1"
    POSSIBLY = "2"
    SUSPECTED = "3"


class PlatformLabel(StrEnum):
    POSSIBLY = "2"
    SUSPECTED = "3"


LabelOpt = typer.Option(
    LabelValue.IS,
    "--label",
    help="Label value: 1 AI-generated, 2 possibly (user-declared), 3 suspected (platform-detected).",
)
NoExplicitOpt = typer.Option(
    False,
    "--no-explicit",
    help="Implicit label only (Labeling Measures Art. 9: only on the user's request; keep the recipient log).",
)


@contextmanager
def _errors() -> Iterator[None]:
    """User errors: one line on stderr, exit 2 (also under typer's CliRunner)."""
    try:
        yield
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


def _config(path: Path | None, no_explicit: bool = False) -> HeguiConfig:
    from hegui.config import load_config

    cfg = load_config(path)
    if no_explicit:
        labeling = cfg.labeling.model_copy(update={"explicit": False})
        cfg = cfg.model_copy(update={"labeling": labeling})
    return cfg


def _check_kind(path: Path, kind: str) -> None:
    from hegui.labeling.formats import kind_of, suffixes

    if kind_of(path) != kind:
        article = "an" if kind in ("image", "audio") else "a"
        raise UserError(f"{path}: not {article} {kind} file hegui labels ({' '.join(suffixes(kind))})")  # type: ignore[arg-type]


def _report(dst: Path, label: AIGCLabel) -> None:
    how = "signed" if label.reserved_code1.startswith("s1.") else "content hash only: no labeling.signing_key"
    typer.echo(f"wrote {dst} ({how})")
    typer.echo(label.to_json())


def _run(
    kind: str,
    src: Path,
    dst: Path,
    config: Path | None,
    label: LabelValue,
    no_explicit: bool,
    job: Callable[[Path, Path, HeguiConfig, AIGCLabel], AIGCLabel],
) -> None:
    from hegui.labeling.metadata import new_label

    with _errors():
        _check_kind(src, kind)
        _check_kind(dst, kind)
        if not src.is_file():
            raise UserError(f"{src}: no such file")
        cfg = _config(config, no_explicit)
        final = job(src, dst, cfg, new_label(cfg, label=label.value))
        _report(dst, final)


@label_app.command("text")
def label_text(
    src: Path = typer.Argument(..., help="Text document: .txt, .md, .html or .docx.", show_default=False),
    output: Path = OutputOpt,
    config: Path | None = ConfigOpt,
    label: LabelValue = LabelOpt,
    no_explicit: bool = NoExplicitOpt,
) -> None:
    """Label a text document: explicit prefix/suffix (labeling.text.*) and the implicit label.

    Implicit label: DOCX custom property AIGC (docProps/custom.xml, the GB 45438 rule); Markdown YAML
    front matter key AIGC; HTML <meta name="AIGC">; plain text a last line "AIGC: {…}" or a FILE.aigc.json
    sidecar (labeling.text.plain_implicit). Markdown, HTML and plain text have no official rule yet;
    these follow vendor practice.
    """
    from hegui.labeling.documents import label_document

    _run("text", src, output, config, label, no_explicit, label_document)


@label_app.command("image")
def label_image(
    src: Path = typer.Argument(..., help="Image: .jpg/.jpeg, .png or .webp.", show_default=False),
    output: Path = OutputOpt,
    config: Path | None = ConfigOpt,
    label: LabelValue = LabelOpt,
    no_explicit: bool = NoExplicitOpt,
) -> None:
    """Label an image: visible text in a corner (≥ 5% glyph height) and XMP TC260:AIGC.

    The output format follows the output suffix. Existing XMP, EXIF and colour profile are kept.
    """
    from hegui.labeling.image import label_image as job

    _run("image", src, output, config, label, no_explicit, job)


@label_app.command("audio")
def label_audio(
    src: Path = typer.Argument(..., help="Audio: .wav, .mp3, .flac or .ogg.", show_default=False),
    output: Path = OutputOpt,
    config: Path | None = ConfigOpt,
    label: LabelValue = LabelOpt,
    no_explicit: bool = NoExplicitOpt,
) -> None:
    """Label audio: the 短长短短 cue (labeling.audio.*) and the AIGC tag (RIFF/ID3 TXXX/Vorbis comment)."""
    from hegui.labeling.audio import label_audio as job

    _run("audio", src, output, config, label, no_explicit, job)


@label_app.command("video")
def label_video(
    src: Path = typer.Argument(..., help="Video: .mp4 or .mov.", show_default=False),
    output: Path = OutputOpt,
    config: Path | None = ConfigOpt,
    label: LabelValue = LabelOpt,
    no_explicit: bool = NoExplicitOpt,
) -> None:
    """Label video: text burnt into the opening ≥ 2 s (labeling.video.*) and the AIGC key in moov/udta/meta."""
    from hegui.labeling.video import label_video as job

    _run("video", src, output, config, label, no_explicit, job)


@label_app.command("verify")
def verify(
    file: Path = typer.Argument(..., help="Labelled file (any supported type).", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    public_key: Path | None = typer.Option(
        None,
        "--public-key",
        help="Producer's Ed25519 public key (PEM); default labeling.public_key, else the signing key's.",
    ),
    propagator_key: Path | None = typer.Option(
        None, "--propagator-key", help="Propagator's Ed25519 public key (PEM) to check ReservedCode2."
    ),
    config: Path | None = ConfigOpt,
) -> None:
    """Check a file's implicit label, its signature and content, and its explicit label.

    Labels written by other tools are read too (bare object, numbers for the reserved codes); the
    signature line says valid, unverifiable, absent, not-hegui or invalid. Exit codes: 0 labelled and
    consistent (also when the signature is absent or not hegui's); 1 no implicit label; 3 tampered
    (hegui signature invalid, content changed since signing, label malformed or conflicting);
    2 usage or unreadable file.
    """
    from hegui.labeling.verify import format_report, verify_file

    with _errors():
        if not file.is_file():
            raise UserError(f"{file}: no such file")
        cfg = _config(config)
        report = verify_file(file, cfg, public_key_path=public_key, propagator_key_path=propagator_key)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        typer.echo(format_report(report))
    raise typer.Exit(report.exit_code)


@label_app.command("propagate")
def propagate(
    file: Path = typer.Argument(..., help="File to pass on (any supported type).", show_default=False),
    output: Path = OutputOpt,
    propagator: str | None = typer.Option(
        None,
        "--propagator",
        help="ContentPropagator value; default: the provider code with extension 2 (propagation), or provider.name.",
    ),
    key: Path | None = typer.Option(
        None, "--key", help="Ed25519 private key signing ReservedCode2; default labeling.signing_key."
    ),
    label: PlatformLabel | None = typer.Option(
        None,
        "--label",
        help="For a file with no label: 2 user-declared, 3 detected by the platform (Art. 6).",
    ),
    config: Path | None = ConfigOpt,
) -> None:
    """Platform mode (Labeling Measures Art. 6): add propagator fields and ReservedCode2.

    The producer's fields and ReservedCode1 are kept, and the content is not touched (metadata only).
    A file without a label needs --label 2 or 3; its ContentProducer is then written as "unknown".
    """
    from hegui.labeling.formats import handler_for
    from hegui.labeling.metadata import AIGCLabel, new_content_id
    from hegui.labeling.provider_code import content_producer
    from hegui.labeling.signing import load_private_key, load_signing_key, sign_propagation

    with _errors():
        if not file.is_file():
            raise UserError(f"{file}: no such file")
        handler = handler_for(file)
        if handler is not handler_for(output) or file.suffix.lower() != output.suffix.lower():
            raise UserError(f"{output}: must have the same suffix as {file} (propagate does not convert)")
        cfg = _config(config)
        name = propagator or content_producer(cfg.provider, "propagation")
        raw = handler.read_label(file)
        if raw is None:
            if label is None:
                raise UserError(
                    f"{file}: has no implicit label; pass --label 2 (user-declared) or 3 (detected)"
                )
            current = AIGCLabel(label=label.value, content_producer="unknown", produce_id=new_content_id())
        else:
            current = AIGCLabel.from_json(raw)
            if label is not None and label.value != current.label:
                raise UserError(
                    f"{file}: already labelled {current.label!r}; --label only applies to unlabelled files"
                )
        updated = current.with_propagator(name)
        updated.validate()
        signing_key = load_private_key(key, "--key") if key else load_signing_key(cfg)
        final = sign_propagation(updated, handler.content_digest(file), signing_key)
        handler.write_label(file, output, final.to_json())
        typer.echo(f"wrote {output}")
        typer.echo(final.to_json())


@label_app.command("keygen")
def keygen(
    output: Path = typer.Option(
        ..., "--output", "-o", help="Private key file to write (PEM); KEY.pub gets the public key."
    ),
    force: bool = typer.Option(False, "--force", help="Replace existing key files."),
) -> None:
    """Make an Ed25519 key pair for signing labels (set labeling.signing_key to the private key)."""
    from hegui.labeling.signing import write_keypair

    with _errors():
        private, public = write_keypair(output, overwrite=force)
    typer.echo(f"wrote {private} (private, mode 600) and {public} (public)")


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.add_typer(label_app, name="label")
