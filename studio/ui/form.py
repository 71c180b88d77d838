"""The form: every config.yaml field has one component, spread over the Model, Dataset, Template and Train tabs.
Here: the form's values <-> a RunConfig, and the live preview of the run's YAML and command."""
from __future__ import annotations

import gradio as gr

from studio import auth, distributed, jobs, runs
from studio.config import ConfigError, RunConfig
from studio.ui.i18n import refusal, say, t


def keeping_choice(options: list, current) -> gr.Dropdown:
    """A list redrawn (a run finished, a sweep began): the entry shown stays chosen, else the first (the newest)."""
    ids = [o[1] if isinstance(o, tuple) else o for o in options]
    return gr.Dropdown(choices=options, value=current if current in ids else (ids[0] if ids else None))


def form_config(keys: list[str], values: list, request=None) -> RunConfig:
    try:
        return RunConfig.from_flat(keys, values)
    except ConfigError as exc:
        raise refusal(jobs.Refused("err_config", problems=exc.problems), request) from None


def preview(keys: list[str], values: list, request=None) -> tuple[str, str, str]:
    """The run's config.yaml, the command Start runs, and (several GPUs) what each node runs."""
    try:
        cfg = RunConfig.from_flat(keys, values)
    except ConfigError as exc:
        return f"# {say(jobs.Refused('err_config', problems=exc.problems), request)}", "", ""
    run_dir = f"runs/<time>-{runs.sanitize_name(cfg.run_name)}"
    command = " ".join(distributed.launch_command(cfg.distributed, run_dir, python="python"))
    nodes = distributed.node_commands_text(cfg.distributed, run_dir, cfg.model.load_in_4bit, python="python",
                                           say=lambda key, **kw: t(key, request, **kw)) \
        if distributed.world_plan(cfg.distributed).world_size > 1 else ""
    return cfg.to_yaml(), command, nodes


def preview_handler(keys: list[str]):
    def _preview(request: gr.Request, *values):
        return preview(keys, list(values), request)
    return _preview


def wire_preview(keys: list[str], form: list, outputs: list) -> None:
    """Any change of the form redraws the YAML, the command and the per-node preview (page load: ui/__init__)."""
    for comp in form:
        comp.change(preview_handler(keys), form, outputs, api_visibility="private", queue=False)


def values_of_run(run_id: str | None, keys: list[str]) -> list:
    """The form's values from a run's config.yaml (a reload shows what that run trained); unchanged if none."""
    if run_id:
        try:
            return RunConfig.load(runs.runs_root() / run_id / "config.yaml").to_flat(keys)
        except (OSError, ConfigError):
            pass
    return [gr.skip()] * len(keys)


def fit_to_gpu(keys: list[str], values: list, token: str = "", request=None):
    """The fastest LoRA setting whose estimated peak fits this GPU, planned on the dataset's own lengths."""
    from studio import fit
    cfg = form_config(keys, values, request)
    try:
        lengths = fit.dataset_lengths(cfg, token or None, auth.user_from_request(request))
        preset = fit.pick_for_run(cfg, lengths=lengths)
    except ValueError as exc:  # no GPU, or no config.json to estimate from
        raise gr.Error(t("fit_no_gpu", request) if "GPU" in str(exc) else str(exc)) from None
    text = fit.describe(cfg, lengths=lengths, say=lambda key, **kw: t(key, request, **kw))
    fit.apply(cfg, preset)
    return [*cfg.to_flat(keys), text]
