"""Tab 1 · Model: which model, how it is loaded, and the LoRA adapters put on it."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from studio import models
from studio.config import (
    BIASES,
    DTYPES,
    GRADIENT_CHECKPOINTING,
    LORA_TARGETS,
    RunConfig,
)
from studio.ui.i18n import t
from studio.ui.people import signed_in


@dataclass
class ModelTab:
    recipe: gr.Radio
    apply_recipe: gr.Button
    preset: gr.Dropdown
    name: gr.Textbox
    token: gr.Textbox
    max_seq_length: gr.Number
    dtype: gr.Dropdown
    load_in_4bit: gr.Checkbox
    r: gr.Number
    lora_alpha: gr.Number
    lora_dropout: gr.Number
    target_modules: gr.CheckboxGroup
    bias: gr.Dropdown
    gradient_checkpointing: gr.Radio
    random_state: gr.Number
    check: gr.Button
    summary: gr.Markdown

    def config_fields(self) -> dict:
        return {"model.name": self.name, "model.max_seq_length": self.max_seq_length, "model.dtype": self.dtype,
                "model.load_in_4bit": self.load_in_4bit, "lora.r": self.r, "lora.lora_alpha": self.lora_alpha,
                "lora.lora_dropout": self.lora_dropout, "lora.target_modules": self.target_modules,
                "lora.bias": self.bias, "lora.use_gradient_checkpointing": self.gradient_checkpointing,
                "lora.random_state": self.random_state}


def build(I, cfg: RunConfig) -> ModelTab:
    with gr.Row():
        recipe = gr.Radio([(I("recipe_bundled"), "bundled"), (I("recipe_chapter"), "chapter"),
                           (I("recipe_dpo"), "bundled_dpo")], value="bundled",
                          label=I("recipe"), info=I("recipe_info"), scale=4)
        apply_recipe = gr.Button(I("apply_recipe"), scale=1)
    with gr.Row():
        with gr.Column(scale=3):
            preset = gr.Dropdown([(label, mid) for label, mid in models.PRESETS], value=cfg.model.name,
                                 label=I("model_preset"), allow_custom_value=True)
            name = gr.Textbox(cfg.model.name, label=I("model_name"), info=I("model_name_info"))
            token = gr.Textbox("", label=I("hf_token"), info=I("hf_token_info"), type="password")
            with gr.Row():
                max_seq_length = gr.Number(cfg.model.max_seq_length, label=I("max_seq_length"),
                                           info=I("max_seq_length_info"), precision=0, minimum=1)
                dtype = gr.Dropdown(DTYPES, value=cfg.model.dtype, label=I("dtype"), info=I("dtype_info"))
            load_in_4bit = gr.Checkbox(cfg.model.load_in_4bit, label=I("load_in_4bit"), info=I("load_in_4bit_info"))
        with gr.Column(scale=3):
            gr.Markdown(I("lora_header"))
            with gr.Row():
                r = gr.Number(cfg.lora.r, label=I("lora_r"), info=I("lora_r_info"), precision=0)
                lora_alpha = gr.Number(cfg.lora.lora_alpha, label=I("lora_alpha"), info=I("lora_alpha_info"),
                                       precision=0)
                lora_dropout = gr.Number(cfg.lora.lora_dropout, label=I("lora_dropout"), info=I("lora_dropout_info"),
                                         step=0.05)
            target_modules = gr.CheckboxGroup(LORA_TARGETS, value=cfg.lora.target_modules, label=I("target_modules"),
                                              info=I("target_modules_info"))
            with gr.Row():
                bias = gr.Dropdown(BIASES, value=cfg.lora.bias, label=I("bias"), info=I("bias_info"))
                random_state = gr.Number(cfg.lora.random_state, label=I("random_state"), info=I("random_state_info"),
                                         precision=0)
            gradient_checkpointing = gr.Radio(GRADIENT_CHECKPOINTING, value=cfg.lora.use_gradient_checkpointing,
                                              label=I("grad_ckpt"), info=I("grad_ckpt_info"))
    check = gr.Button(I("check_model"), variant="secondary")
    summary = gr.Markdown(elem_id="model-summary")
    return ModelTab(recipe, apply_recipe, preset, name, token, max_seq_length, dtype, load_in_4bit, r, lora_alpha,
                    lora_dropout, target_modules, bias, gradient_checkpointing, random_state, check, summary)



def summarize(name: str, lora, load_in_4bit: bool, token: str | None, request: gr.Request | None = None) -> str:
    """The Model tab's answer: trainable parameters like Unsloth prints them, plus what the machine will do."""
    try:
        s = models.inspect_model(name, lora, token=token)
    except models.ModelError as exc:
        raise gr.Error(t(str(exc), request)) from None  # a message key or a plain message
    dev = models.device_info()
    trained = t("sum_trainable", request, trainable=s.trainable_params, total=s.total_params,
                pct=100 * s.trainable_params / max(1, s.total_params))
    lines = [f"**{trained}**",
             "- " + t("model_arch", request, arch=s.model_type, context=s.context_length or "?"),
             "- " + t("model_device", request, device=dev.name, free=f"{dev.free_gb:.1f}", total=f"{dev.total_gb:.1f}")]
    if dev.kind == "cpu" and (load_in_4bit or s.quantized_4bit):
        lines.append(f"- ⚠️ {t('cpu_4bit_note', request)}")
    return "\n".join(lines)


def check(name, r, alpha, dropout, targets, bias, load_in_4bit, token, request: gr.Request = None) -> str:
    from studio.config import LoraConfig
    signed_in(request)
    try:
        lora = LoraConfig(r=int(r), lora_alpha=int(alpha), lora_dropout=float(dropout), target_modules=list(targets),
                          bias=bias)
    except (TypeError, ValueError):
        raise gr.Error(t("err_r", request)) from None
    if lora.r <= 0:
        raise gr.Error(t("err_r", request))
    if not lora.target_modules:
        raise gr.Error(t("err_targets", request))
    return summarize(name, lora, load_in_4bit, token or None, request)


def wire(tab: ModelTab, keys: list[str], form: list) -> None:
    from studio.config import RECIPES
    tab.apply_recipe.click(lambda name: RECIPES.get(name, RunConfig)().to_flat(keys), tab.recipe, form,
                           api_name="apply_recipe")
    tab.preset.input(lambda mid: (mid, "4bit" in mid.lower()), tab.preset, [tab.name, tab.load_in_4bit],
                     api_visibility="private")
    tab.check.click(check, [tab.name, tab.r, tab.lora_alpha, tab.lora_dropout, tab.target_modules, tab.bias,
                            tab.load_in_4bit, tab.token], tab.summary, api_name="check_model")
