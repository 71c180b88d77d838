import json
import time

import pytest

from studio import models
from studio.config import LoraConfig

QWEN3_4B = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 2560,
            "intermediate_size": 9728, "num_hidden_layers": 36, "num_attention_heads": 32,
            "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936, "tie_word_embeddings": True,
            "max_position_embeddings": 40960, "rms_norm_eps": 1e-6, "rope_theta": 1000000,
            "quantization_config": {"load_in_4bit": True, "quant_method": "bitsandbytes"}}


def test_chapter_model_counts_match_unsloths_printout(tmp_path):
    # config.json of the real shape, no weights: the chapter printed exactly these numbers.
    (tmp_path / "config.json").write_text(json.dumps(QWEN3_4B))
    summary = models.inspect_model(str(tmp_path), LoraConfig(r=8, lora_alpha=8))
    assert summary.trainable_text == "16,515,072 of 4,038,983,168 (0.41% trained)"
    assert summary.quantized_4bit and summary.context_length == 40960


def test_bundled_model_count_matches_a_real_peft_model():
    summary = models.inspect_model("assets/tiny-qwen3", LoraConfig(r=16, lora_alpha=32))
    import unsloth  # noqa: F401
    from peft import LoraConfig as PeftLoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from studio.config import LORA_TARGETS, resolve_path
    model = AutoModelForCausalLM.from_pretrained(str(resolve_path("assets/tiny-qwen3")))
    peft_model = get_peft_model(model, PeftLoraConfig(r=16, lora_alpha=32, target_modules=LORA_TARGETS))
    assert (summary.trainable_params, summary.total_params) == peft_model.get_nb_trainable_parameters()


def test_hub_id_offline_fails_fast_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.time()
    with pytest.raises(models.ModelError, match="cannot be reached"):
        models.load_model_config("unsloth/Qwen3-4B-unsloth-bnb-4bit")
    assert time.time() - t0 < 5


@pytest.mark.parametrize("name", ["../../etc", "not a model", "/nonexistent/folder"])
def test_nonsense_names_are_refused(name):
    with pytest.raises(models.ModelError):
        models.load_model_config(name)


def test_4bit_on_cpu_says_what_will_happen(tmp_path, monkeypatch):
    from studio.ui import model_tab
    (tmp_path / "config.json").write_text(json.dumps(QWEN3_4B))
    for kind, warned in (("cpu", True), ("cuda", False)):
        monkeypatch.setattr(models, "device_info", lambda: models.DeviceInfo(kind, kind, 80.0, 70.0, True))
        text = model_tab.summarize(str(tmp_path), LoraConfig(r=8, lora_alpha=8), True, None)
        assert "16,515,072" in text and ("No GPU here" in text) == warned
