"""The preference stage in the UI: the stage panel on the Train tab (SFT, DPO, ORPO; beta; where a run starts from),
pairs side by side on the Dataset tab, and prompt + chosen / prompt + rejected with their trained tokens on the
Template tab. The work is in studio/pairs.py and studio/preference.py; the handlers here only show it."""
from __future__ import annotations

import html
from dataclasses import dataclass

import gradio as gr

from studio import auth, jobs, templates
from studio.config import BUNDLED_DATA, BUNDLED_PAIRS, RunConfig
from studio.ui.i18n import refusal, t

# Filled from the run a preference run starts from: the adapter is trained on that model, with that template.
FOLLOWS_START = ["model.name", "model.max_seq_length", "model.dtype", "model.load_in_4bit", "lora.r", "lora.lora_alpha",
                 "lora.lora_dropout", "lora.target_modules", "lora.bias", "data.template"]


@dataclass
class StagePanel:
    stage: gr.Radio
    beta: gr.Number
    adapter_from: gr.Dropdown
    note: gr.Markdown

    def config_fields(self) -> dict:
        return {"train.stage": self.stage, "train.beta": self.beta, "model.adapter_from": self.adapter_from}


def build(I, cfg: RunConfig) -> StagePanel:
    preference = cfg.train.stage != "sft"
    with gr.Row(elem_id="stage-panel"):
        stage = gr.Radio([(I("stage_sft"), "sft"), (I("stage_dpo"), "dpo"), (I("stage_orpo"), "orpo")],
                         value=cfg.train.stage, label=I("stage"), info=I("stage_info"), scale=3, elem_id="stage")
        beta = gr.Number(cfg.train.beta, label=I("beta"), info=I("beta_info"), minimum=0, step=0.05,
                         visible=preference, scale=1, elem_id="beta")
        adapter_from = gr.Dropdown([(I("adapter_from_base"), "")], value=cfg.model.adapter_from,
                                   label=I("adapter_from"), info=I("adapter_from_info"), allow_custom_value=True,
                                   visible=preference, scale=2, elem_id="adapter-from")
    note = gr.Markdown(I("stage_note"), visible=preference, elem_id="stage-note")
    return StagePanel(stage, beta, adapter_from, note)


def start_choices(request: gr.Request = None):
    """The runs this person may start from: their own, with a saved adapter (newest first), after the base model."""
    user = auth.user_from_request(request)
    options = [(t("adapter_from_base", request), "")]
    for r in jobs.visible_runs(user) if user else []:
        if r["has_adapter"] and r["owner"] == user.name:
            options.append((f"{r['id']} · {r.get('stage', 'sft').upper()} · {t('state_' + r['state'], request)}",
                            r["id"]))
    return gr.Dropdown(choices=options)


def show_stage(stage: str):
    """The preference fields appear with a preference stage."""
    shown = stage != "sft"
    return gr.Number(visible=shown), gr.Dropdown(visible=shown), gr.Markdown(visible=shown)


def bundled_data_for(stage: str, source: str, path: str):
    """The bundled samples follow the stage: the pairs for DPO/ORPO, the conversations for SFT. Other data stays."""
    if stage != "sft" and source == "bundled":
        return "file", BUNDLED_PAIRS
    if stage == "sft" and source == "file" and path == BUNDLED_PAIRS:
        return "bundled", BUNDLED_DATA
    return gr.skip(), gr.skip()


def follow_start(run_id: str, request: gr.Request = None) -> list:
    """The model, LoRA and template of the run to start from: its adapter was trained so (Start checks the model)."""
    if not run_id:
        return [gr.skip()] * len(FOLLOWS_START)
    try:
        run_dir = jobs.open_run(run_id, auth.user_from_request(request))
    except jobs.Refused as exc:
        raise refusal(exc, request) from None
    return RunConfig.load(run_dir / "config.yaml").to_flat(FOLLOWS_START)


def wire(panel: StagePanel, keys: list[str], form: list, source: gr.Radio, path: gr.Textbox,
         finished: gr.State) -> None:
    panel.stage.change(show_stage, panel.stage, [panel.beta, panel.adapter_from, panel.note],
                       api_visibility="private", queue=False)
    panel.stage.input(bundled_data_for, [panel.stage, source, path], [source, path], api_visibility="private")
    for trigger in (panel.stage.change, panel.adapter_from.focus, finished.change):
        trigger(start_choices, None, panel.adapter_from, api_visibility="private")
    panel.adapter_from.input(follow_start, panel.adapter_from, [form[keys.index(k)] for k in FOLLOWS_START],
                             api_visibility="private")


# ---------------------------------------------------------------- the Dataset tab

def pairs_html(pairs: list, first_row: int, request=None) -> str:
    """A page of pairs: each row's prompt, then its chosen and rejected answers side by side."""
    from studio.ui.dataset_tab import conversation_html, std_view
    blocks = []
    for n, pair in enumerate(pairs):
        sides = "".join(f'<div class="side {side}"><div class="side-label">{t("pair_" + side, request)}</div>'
                        f'{conversation_html(getattr(pair, side), first_row + n, request)}</div>'
                        for side in ("chosen", "rejected"))
        blocks.append(f'<div class="pair">{conversation_html(pair.prompt, first_row + n, request)}'
                      f'<div class="pair-sides">{sides}</div></div>')
    return std_view(blocks)


# ---------------------------------------------------------------- the Template tab

def template_pair(tokenizer, pair, stage: str, row: int, rows: int, max_length: int | None, request=None):
    """(stats, HTML): prompt + chosen and prompt + rejected side by side, as the stage's trainer tokenizes them,
    the tokens it trains on marked."""
    from studio import preference
    sides = preference.pair_tokens(tokenizer, pair, stage, max_length)
    columns, counts = [], {}
    for side, (ids, trained) in sides.items():
        counts[side], counts[f"{side}_total"] = sum(trained), len(ids)
        body = "".join(f'<span class="{"trained" if seg.trained else "masked"}">{html.escape(seg.text)}</span>'
                       for seg in templates.segments(tokenizer, ids, trained))
        columns.append(f'<div class="side {side}"><div class="side-label">{t("pair_" + side, request)}</div>'
                       f'<pre class="rendered">{body}</pre></div>')
    longest = max(counts["chosen_total"], counts["rejected_total"])
    cut = t("template_cut", request, n=max_length) if max_length and longest >= max_length else ""
    stats = t("template_pair_stats", request, row=row, rows=rows, stage=preference.STAGE_NAMES[stage], cut=cut,
              **counts) + (t("template_orpo_note", request) if stage == "orpo" else "")
    return stats, '<div class="pair-sides template-pair">' + "".join(columns) + "</div>"
