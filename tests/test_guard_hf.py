"""The ``hf_local`` guard backend with a tiny, randomly initialised Qwen2 model built in the test
(nothing is downloaded). Skipped when transformers/torch (the ``guard-local`` extra) are absent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="torch not installed (pip install 'hegui[guard-local]')")
pytest.importorskip("transformers", reason="transformers not installed (pip install 'hegui[guard-local]')")

from hegui.detectors.base import DetectorError
from hegui.detectors.guard import GuardConfig, HFLocalBackend, detector_for, make_backend
from hegui.errors import ConfigError
from hegui.text import normalize

VOCAB = {"[PAD]": 0, "[UNK]": 1, "[EOS]": 2, "Safety:Unsafe": 3, "Categories:Violent": 4, "hello": 5,
         "<guard>": 6, "你": 7, "好": 8}


def _only(token: int) -> list[int]:
    """Suppress every token but ``token``: greedy generation then repeats it, whatever the weights."""
    return [i for i in VOCAB.values() if i != token]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    path = tmp_path_factory.mktemp("tiny-guard")
    tok = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]")
    fast.save_pretrained(path)
    cfg = Qwen2Config(vocab_size=len(VOCAB), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                      pad_token_id=0, eos_token_id=2, bos_token_id=2)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg)
    model.generation_config = GenerationConfig(pad_token_id=0, eos_token_id=2, suppress_tokens=_only(3))
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def backend(tiny_model: Path) -> HFLocalBackend:
    return HFLocalBackend(tiny_model, max_new_tokens=3, timeout=30)


def test_prompt_without_chat_template_uses_hegui_instruction(backend: HFLocalBackend) -> None:
    prompt = backend.build_prompt("你 好")
    assert prompt.startswith("# Task") and "- Politically Sensitive Topics" in prompt and prompt.endswith("你 好\n")


def test_prompt_uses_the_models_chat_template(backend: HFLocalBackend) -> None:
    backend.tokenizer.chat_template = "{% for m in messages %}<guard> {{ m['content'] }}{% endfor %}"
    try:
        assert backend.build_prompt("你 好") == "<guard> 你 好"
        backend.prompt_mode = "hegui"
        assert backend.build_prompt("你 好").startswith("# Task")
    finally:
        backend.tokenizer.chat_template = None
        backend.prompt_mode = "model"


def test_generate_and_parse_end_to_end(backend: HFLocalBackend) -> None:
    backend.model.generation_config.suppress_tokens = _only(3)
    assert backend.generate("你 好") == "Safety:Unsafe Safety:Unsafe Safety:Unsafe"
    det = detector_for(backend, GuardConfig(unknown_risk="A1h"))
    assert det.cost == "heavy"
    [f] = det.detect(normalize("你 好"))
    assert (f.risk, f.kind, f.detector, f.start, f.end) == ("A1h", "unsafe", "guard", 0, 3)


def test_unparseable_generation_fails_closed(backend: HFLocalBackend) -> None:
    backend.model.generation_config.suppress_tokens = _only(5)
    try:
        with pytest.raises(DetectorError, match=r"hf_local.*no 'Safety:' line"):
            detector_for(backend).detect(normalize("你 好"))
    finally:
        backend.model.generation_config.suppress_tokens = _only(3)


def test_make_backend_from_config(tiny_model: Path) -> None:
    cfg = GuardConfig(enabled=True, backend="hf_local", model=tiny_model.name, max_new_tokens=2)
    b = make_backend(cfg, base_dir=tiny_model.parent)
    assert isinstance(b, HFLocalBackend) and b.max_new_tokens == 2


def test_missing_or_broken_model_folder_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model folder not found"):
        HFLocalBackend(tmp_path / "nope")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2"}), encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot load the model"):
        HFLocalBackend(tmp_path)
