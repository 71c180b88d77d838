"""Export (issue 9): adapter zip, merged model, GGUF, the Hub upload, the run as one Python script.

The module trains its own short run (30 steps of the bundled default, 240 rows) through the real
worker, so no test depends on another test file. Logits are compared in a separate Python process
that imports plain transformers + PEFT (no Unsloth): what a person who takes the files away gets.
"""
import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from conftest import launch_app, EN, KO, REPO, start_run, wait_for
from studio import export, gguf_export, runs
from studio.config import RunConfig

STEPS, ROWS = 30, 0  # all 600 rows of the sample: the worker and the script each pick 30 x 8 by the row rule
TOKEN = "hf_TestToken0123456789"
MESSAGES = [{"role": "user", "content": "What is 7 + 5? And what is France's tallest tower called?"},
            {"role": "assistant", "content": "12. It is the Eiffel Tower."}]

# Measured on this machine (CPU, 2 threads) with the run above; the limits leave a margin of about 3x.
MERGE_REL_TOL = 0.005  # merged bf16 vs base + adapter in fp32: measured 0.0015 (max |diff| / max |logit|)
GGUF_F16_ABS_TOL = 1e-4  # f16 GGUF vs the merged bf16 model: measured 9.5e-06
GGUF_Q8_REL_TOL = 0.025  # q8_0 GGUF vs the merged model: measured 0.0089 (0.012 on random tiny Llama/Qwen2)
SCRIPT_LOSS_TOL = 1e-4  # the exported script's per-step loss vs the worker's: measured 0.0


@pytest.fixture(scope="module")
def trained_run(runs_dir):
    cfg = RunConfig(run_name="export-test")
    cfg.train.max_steps, cfg.data.max_rows = STEPS, ROWS
    run_dir = start_run(cfg)
    status = wait_for(run_dir, timeout=900)
    assert status["state"] == "completed", runs.log_tail(run_dir, 40)
    return run_dir


def clone_run(run_dir: Path, name: str) -> Path:
    """A copy of a trained run under another id (for tests that break something in it)."""
    copy = runs.runs_root() / f"{run_dir.name}-{name}"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("export"))
    return copy


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp")


# Plain transformers + PEFT in a fresh process: prints {name: logits as nested lists} for MESSAGES.
LOGITS = r"""
import json, sys, torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
adapter, base, merged, ggufs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
tok = AutoTokenizer.from_pretrained(adapter)
ids = tok.apply_chat_template(json.loads(sys.stdin.read()), return_tensors="pt", return_dict=True)["input_ids"]
out = {}
with torch.no_grad():
    out["base"] = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)(ids).logits
    from peft import PeftModel
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), adapter)
    out["peft"] = peft(ids).logits
    out["merged"] = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)(ids).logits
    for path in ggufs:
        # transformers' GGUF reader has no head_dim key for qwen3 (it assumes 128): pass the config.
        model = AutoModelForCausalLM.from_pretrained(str(__import__("pathlib").Path(path).parent),
                                                     gguf_file=path.split("/")[-1],
                                                     config=AutoConfig.from_pretrained(merged), dtype=torch.float32)
        out[path] = model(ids).logits
print("LOGITS=" + json.dumps({k: v[0].tolist() for k, v in out.items()}))
"""


def plain_logits(run_dir: Path, ggufs=()) -> dict:
    import torch
    env = {k: v for k, v in os.environ.items()}
    proc = subprocess.run([sys.executable, "-c", LOGITS, str(run_dir / "adapter"), str(REPO / "assets/tiny-qwen3"),
                           str(run_dir / "export" / "merged"), *map(str, ggufs)],
                          input=json.dumps(MESSAGES), capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("LOGITS="))
    return {k: torch.tensor(v) for k, v in json.loads(line[len("LOGITS="):]).items()}


def diff(a, b) -> tuple[float, float]:
    """(max |a - b|, that relative to max |b|)."""
    d = (a - b).abs().max().item()
    return d, d / b.abs().max().item()


# ---------------------------------------------------------------- adapter zip

@pytest.mark.slow
def test_zip_holds_the_adapter_and_config(trained_run):
    path = export.zip_adapter(trained_run)
    assert path == trained_run / "export" / f"{trained_run.name}-adapter.zip"
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        assert {"config.yaml", "adapter/adapter_config.json", "adapter/adapter_model.safetensors",
                "adapter/tokenizer.json", "adapter/chat_template.jinja"} <= names
        assert zf.read("adapter/adapter_model.safetensors") == \
            (trained_run / "adapter" / "adapter_model.safetensors").read_bytes()
        assert yaml.safe_load(zf.read("config.yaml"))["train"]["max_steps"] == STEPS
    assert leftovers(trained_run / "export") == []


def test_a_run_without_an_adapter_is_refused_clearly(runs_dir):
    run_dir = runs.create_run(RunConfig(run_name="no-adapter"))
    for action in (export.zip_adapter, export.merge_16bit, lambda d: export.to_gguf(d, "f16")):
        with pytest.raises(export.ExportError, match="no saved adapter"):
            action(run_dir)
    assert not (run_dir / "export").exists() or list((run_dir / "export").iterdir()) == []


# ---------------------------------------------------------------- merged model + GGUF

@pytest.fixture(scope="module")
def exported(trained_run):
    """The merged model and both GGUF files, made once for the tests below."""
    merged = export.merge_16bit(trained_run)
    ggufs = {q: export.to_gguf(trained_run, q) for q in gguf_export.GGUF_QUANTS}
    logits = plain_logits(trained_run, [ggufs[q] for q in gguf_export.GGUF_QUANTS])
    return merged, ggufs, logits


@pytest.mark.slow
def test_merged_model_loads_in_plain_transformers_and_equals_base_plus_adapter(trained_run, exported):
    merged, _, logits = exported
    assert merged == trained_run / "export" / "merged"
    files = {p.name for p in merged.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= files
    assert (merged / "chat_template.jinja").read_text() == (trained_run / "adapter" / "chat_template.jinja").read_text()
    abs_diff, rel = diff(logits["merged"], logits["peft"])
    print(f"merge: max |merged - (base+adapter)| = {abs_diff:.3g} (relative {rel:.3g})")
    assert rel < MERGE_REL_TOL
    # The adapter is really in there: the base model alone is far off.
    assert diff(logits["base"], logits["peft"])[1] > 20 * MERGE_REL_TOL
    assert leftovers(trained_run / "export") == []


@pytest.mark.slow
def test_peft_fallback_merge_gives_the_same_weights_as_unsloths(trained_run, exported, tmp_path):
    from safetensors.torch import load_file
    export._merge_with_peft(trained_run, RunConfig.load(trained_run / "config.yaml"), tmp_path)
    unsloth_merged = load_file(exported[0] / "model.safetensors")
    peft_merged = load_file(tmp_path / "model.safetensors")
    assert unsloth_merged.keys() == peft_merged.keys()
    worst = max((unsloth_merged[k].float() - peft_merged[k].float()).abs().max().item() for k in peft_merged)
    print(f"merge: Unsloth vs PEFT merged weights differ by at most {worst:.3g}")
    assert worst <= 2 ** -10  # both merge in fp32 and round once to bf16: equal, or one rounding step apart
    base = load_file(REPO / "assets" / "tiny-qwen3" / "model.safetensors")
    moved = max((base[k].float() - peft_merged[k].float()).abs().max().item() for k in base)
    assert moved > 2 ** -6, moved  # and the adapter is in the weights (measured 0.059)
    assert (tmp_path / "chat_template.jinja").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("quant", gguf_export.GGUF_QUANTS)
def test_gguf_reads_back_with_its_tokenizer_template_and_logits(trained_run, exported, quant):
    import gguf
    merged, ggufs, logits = exported
    path = ggufs[quant]
    assert path == trained_run / "export" / f"gguf-{quant}" / f"{trained_run.name}-{quant}.gguf"
    reader = gguf.GGUFReader(str(path))
    field = lambda key: reader.fields[key].contents()  # noqa: E731
    config = json.loads((merged / "config.json").read_text())
    assert field("general.architecture") == "qwen3"
    assert field("qwen3.block_count") == config["num_hidden_layers"]
    assert field("qwen3.attention.key_length") == config["head_dim"]
    assert field("tokenizer.ggml.model") == "gpt2" and field("tokenizer.ggml.pre") == "qwen2"
    assert len(field("tokenizer.ggml.tokens")) == config["vocab_size"]
    assert len(field("tokenizer.ggml.merges")) > 1000
    assert field("tokenizer.chat_template") == (trained_run / "adapter" / "chat_template.jinja").read_text()
    tokens = field("tokenizer.ggml.tokens")
    assert tokens[field("tokenizer.ggml.eos_token_id")] == "<|endoftext|>"
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_norm.weight"] == "F32"  # norms stay f32, as llama.cpp writes them
    assert types["blk.0.attn_q.weight"] == ("F16" if quant == "f16" else "Q8_0")
    assert "output.weight" not in types  # tied to token_embd, as in the model
    abs_diff, rel = diff(logits[str(path)], logits["merged"])
    print(f"GGUF {quant}: max |gguf - merged| = {abs_diff:.3g} (relative {rel:.3g})")
    if quant == "f16":
        assert abs_diff < GGUF_F16_ABS_TOL
    else:
        assert rel < GGUF_Q8_REL_TOL and abs_diff > 0  # quantized: close, not identical
        agree = (logits[str(path)].argmax(-1) == logits["merged"].argmax(-1)).float().mean().item()
        assert agree > 0.9, agree

    modelfile = (path.parent / "Modelfile").read_text()
    assert f"FROM ./{path.name}" in modelfile
    assert 'TEMPLATE """' in modelfile and "<|im_start|>user\n{{ .Content }}<|im_end|>\n" in modelfile
    assert "<|im_start|>assistant\n" in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile and 'PARAMETER stop "<|endoftext|>"' in modelfile
    assert "\nPARAMETER temperature 0\nPARAMETER top_p 1\n" in modelfile  # the Chat tab's default: greedy
    assert leftovers(path.parent) == []


@pytest.mark.slow
def test_adapter_gguf_of_a_run_comes_with_its_base_gguf_and_a_modelfile_naming_both(trained_run, exported):
    """The adapter alone (llama.cpp's LoRA format) and the base model's GGUF, linked from one shared copy; the
    Modelfile names both and carries the run's chat template and the Chat tab's sampling."""
    import importlib.util
    from transformers import AutoTokenizer
    from test_gguf import LORA_REL_TOL, apply_lora_from_gguf, llama_cpp_logits, rel
    sampling = export.Sampling(max_new_tokens=200, temperature=0.7, seed=5)
    adapter, base, modelfile = export.to_gguf_lora(trained_run, "f16", sampling)
    assert adapter == trained_run / "export" / "gguf-lora-f16" / f"{trained_run.name}-lora-f16.gguf"
    assert base.name == "tiny-qwen3-f16.gguf" and os.path.samefile(base, runs.runs_root() / ".gguf-bases" / base.name)
    assert adapter.stat().st_size < base.stat().st_size / 2  # the adapter, not a model
    text = modelfile.read_text()
    assert f"FROM ./{base.name}\nADAPTER ./{adapter.name}\n" in text
    assert "<|im_start|>user\n{{ .Content }}<|im_end|>\n" in text and 'PARAMETER stop "<|im_end|>"' in text
    for line in ("temperature 0.7", "top_p 0.95", "top_k 0", "repeat_penalty 1", "num_predict 200", "seed 5"):
        assert f"\nPARAMETER {line}\n" in text, line
    tok = AutoTokenizer.from_pretrained(trained_run / "adapter")
    ids = tok.apply_chat_template(MESSAGES, return_tensors="pt", return_dict=True)["input_ids"]
    import torch
    with torch.no_grad():
        got = apply_lora_from_gguf(REPO / "assets" / "tiny-qwen3", base, adapter)(ids).logits[0]
    error = rel(got, exported[2]["peft"])
    print(f"adapter GGUF of the run: gguf reader + transformers' map vs PEFT, relative max |diff| {error:.2g}")
    assert error < LORA_REL_TOL
    if importlib.util.find_spec("llama_cpp"):
        error = rel(llama_cpp_logits(base, ids, lora=adapter), exported[2]["peft"])
        print(f"adapter GGUF of the run: llama.cpp vs PEFT, relative max |diff| {error:.2g}")
        assert error < 5e-3
    assert leftovers(adapter.parent) == [] and leftovers(runs.runs_root() / ".gguf-bases") == []


@pytest.mark.slow
def test_adapter_gguf_whose_base_weights_cannot_be_had_is_refused_in_both_languages(trained_run):
    """A Hub base (the presets' 4-bit repos) that is not on this machine, offline: said before any file is made."""
    from studio.ui.i18n import STRINGS
    run_dir = clone_run(trained_run, "hub-base")
    cfg = RunConfig.load(run_dir / "config.yaml")
    cfg.model.name = "unsloth/Qwen3-4B-unsloth-bnb-4bit"
    (run_dir / "config.yaml").write_text(cfg.to_yaml())
    conf = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    conf["base_model_name_or_path"] = cfg.model.name
    (run_dir / "adapter" / "adapter_config.json").write_text(json.dumps(conf))
    with pytest.raises(export.ExportError, match=r"can't be had for unsloth/Qwen3-4B-unsloth-bnb-4bit: .*Export the "
                                                 r"merged GGUF instead") as info:
        export.to_gguf_lora(run_dir, "q8_0")
    assert "병합 GGUF" in STRINGS[info.value.key][1].format(**info.value.params)
    assert not list((run_dir / "export").rglob("*.gguf")) and leftovers(run_dir) == []


def tiny_gpt2_run(name: str) -> Path:
    """A run whose base model is a (tiny, random) GPT-2: an architecture the GGUF writer does not convert."""
    from transformers import GPT2Config, GPT2LMHeadModel
    base = runs.runs_root() / f".base-{name}"
    GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=64, n_positions=64)).save_pretrained(base)
    cfg = RunConfig(run_name=name)
    cfg.model.name = str(base)
    run_dir = runs.create_run(cfg)
    (run_dir / "adapter").mkdir()
    (run_dir / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    (run_dir / "adapter" / "adapter_model.safetensors").write_bytes(b"")
    return run_dir


@pytest.mark.parametrize("quant", gguf_export.GGUF_QUANTS)
def test_gguf_of_an_unsupported_architecture_says_so_and_writes_nothing(runs_dir, quant):
    run_dir = tiny_gpt2_run(f"gpt2-{quant}")
    for action in (export.to_gguf, export.to_gguf_lora):
        with pytest.raises(export.ExportError, match=r"does not support this architecture: GPT2LMHeadModel .*"
                                                     r"supported: gemma3, llama, mistral, phi3, qwen2, qwen3"):
            action(run_dir, quant)
    assert not list(run_dir.rglob("*.gguf")) and not list(run_dir.rglob("Modelfile")) and leftovers(run_dir) == []


def test_a_gguf_type_the_writer_cannot_make_is_refused_before_any_work(runs_dir):
    run_dir = tiny_gpt2_run("q4")
    with pytest.raises(export.ExportError, match="unknown GGUF type 'q5_0'; choose one of f16, q8_0"):
        export.to_gguf(run_dir, "q5_0")
    with pytest.raises(export.ExportError, match=r"can't write k-quants. Export f16 and run llama.cpp's"):
        export.to_gguf_lora(run_dir, "Q4_K_M")
    assert not (run_dir / "export").exists() or not list((run_dir / "export").rglob("*"))


@pytest.mark.slow
def test_a_gguf_that_fails_midway_leaves_no_file(trained_run, exported):
    """The writer fails after it has started the file (no tokenizer to write): nothing is left behind."""
    run_dir = clone_run(trained_run, "broken-tokenizer")
    shutil.copytree(exported[0], run_dir / "export" / "merged")
    (run_dir / "export" / "merged" / "tokenizer.json").unlink()
    (run_dir / "export" / "merged" / "config.json").touch()  # newer than the adapter: reused, not re-merged
    with pytest.raises(export.ExportError, match="the tokenizer can't be written for llama.cpp"):
        export.to_gguf(run_dir, "q8_0")
    folder = run_dir / "export" / "gguf-q8_0"
    assert list(folder.iterdir()) == [], list(folder.iterdir())


# ---------------------------------------------------------------- the Hub, through a fake Hub server

PUSH = ("import sys; sys.path.insert(0, '.'); from studio import export; "
        "print('URL=' + export.push_to_hub(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == '1'))")


def push_through(hub_url: str, hf_home: Path, run_dir: Path, repo: str, what: str, private: bool):
    env = {**os.environ, "HF_ENDPOINT": hub_url, "HF_HOME": str(hf_home)}
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN"):  # transformers sets the second from the first
        env.pop(name, None)
    return subprocess.run([sys.executable, "-c", PUSH, str(run_dir), repo, TOKEN, what, "1" if private else "0"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("what,private", [("adapter", True), ("merged", False)])
def test_push_to_hub_creates_the_repo_and_uploads_in_one_commit(trained_run, tmp_path, what, private):
    from fake_hub import FakeHub
    with FakeHub() as hub:
        proc = push_through(hub.url, tmp_path / "hf_home", trained_run, "alice/tiny-lora", what, private)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"URL={hub.url}/alice/tiny-lora" in proc.stdout
    create = next(r for r in hub.requests if r["path"] == "/api/repos/create")
    assert create["json"]["name"] == "tiny-lora" and create["json"]["organization"] == "alice"
    assert create["json"].get("visibility", "private" if create["json"].get("private") else "public") == \
        ("private" if private else "public")
    assert all(r["authorization"] == f"Bearer {TOKEN}" for r in hub.requests if r["method"] == "POST")
    assert len(hub.commits) == 1 and hub.commits[0]["repo"] == "alice/tiny-lora"
    files = hub.commits[0]["files"]
    folder = trained_run / ("adapter" if what == "adapter" else "export/merged")
    weights = "adapter_model.safetensors" if what == "adapter" else "model.safetensors"
    assert files[weights] == (folder / weights).read_bytes()
    assert {"README.md", "lora_studio_config.yaml", "tokenizer.json", "chat_template.jinja"} <= set(files)
    card = files["README.md"].decode()
    assert "/work/" not in card.split("---")[1] and str(REPO) not in card  # no local path as Hub metadata
    assert f"library_name: {'peft' if what == 'adapter' else 'transformers'}" in card
    # The token went over the wire and nowhere else: not into the run, not into HF_HOME.
    for folder in (trained_run, tmp_path):
        for path in folder.rglob("*"):
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("repo,token,what,message", [
    ("no-slash", TOKEN, "adapter", "is not a Hub repo id"),
    ("a/b/c", TOKEN, "adapter", "is not a Hub repo id"),
    ("alice/x", "  ", "adapter", "token with write access is needed"),
    ("alice/x", TOKEN, "gguf", "unknown upload 'gguf'"),
])
def test_push_to_hub_refuses_bad_input_before_any_request(runs_dir, repo, token, what, message):
    with pytest.raises(export.ExportError, match=message):
        export.push_to_hub(runs_dir / "whatever", repo, token, what)


def test_push_to_hub_offline_is_a_clear_error_without_the_token(trained_run_light):
    with pytest.raises(export.ExportError, match="could not upload to alice/x") as info:
        export.push_to_hub(trained_run_light, "alice/x", TOKEN, "adapter")  # tests run with HF_HUB_OFFLINE=1
    assert TOKEN not in str(info.value)


@pytest.fixture
def trained_run_light(runs_dir):
    """A run folder with an adapter's files present (for checks that stop before loading anything)."""
    run_dir = runs.create_run(RunConfig(run_name="light"))
    (run_dir / "adapter").mkdir()
    (run_dir / "adapter" / "adapter_config.json").write_text("{}")
    (run_dir / "adapter" / "adapter_model.safetensors").write_bytes(b"")
    return run_dir


# ---------------------------------------------------------------- the Python script

def test_script_is_one_file_without_studio_with_the_runs_settings(runs_dir):
    cfg = RunConfig(run_name="script-settings")
    cfg.lora.r, cfg.lora.lora_alpha, cfg.train.learning_rate, cfg.train.optim = 8, 32, 2e-4, "adamw_8bit"
    cfg.data.template = "llama-3.1"
    run_dir = runs.create_run(cfg)
    text = export.python_script(run_dir)
    assert (run_dir / "export" / export.script_name(run_dir)).read_text() == text
    tree = ast.parse(text)  # valid Python
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "studio" not in imported
    first_import = next(n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)))
    assert isinstance(first_import, ast.Import) and first_import.names[0].name == "unsloth"
    for needle in ("LORA_R = 8\n", "LORA_ALPHA = 32\n", "LEARNING_RATE = 0.0002\n", "OPTIM = 'adamw_8bit'\n",
                   "CHAT_TEMPLATE = 'llama-3.1'\n", "processing_class=tokenizer", "max_length=MAX_LENGTH",
                   "INSTRUCTION_PART = '<|start_header_id|>user<|end_header_id|>\\n\\n'",
                   "FastLanguageModel.get_peft_model(", "train_on_responses_only(trainer",
                   "model.save_pretrained(ADAPTER_DIR)", "ROLES = {"):
        assert needle in text, needle


def data_files(folder: Path) -> dict[str, Path]:
    """One small file per format and file type the studio reads (see studio/data.py)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    openai = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
                            {"role": "assistant", "content": "Hello."}]},
              {"messages": [{"role": "Human", "content": "2+2?"}, {"role": "bot", "content": "4"}]}]
    sharegpt = [{"conversations": [{"from": "human", "value": "Capital of France?"},
                                   {"from": "gpt", "value": "Paris"}]}]
    files = {"openai.json": folder / "openai.json", "alpaca.csv": folder / "alpaca.csv",
             "sharegpt.csv": folder / "sharegpt.csv", "openai.parquet": folder / "openai.parquet",
             "bom.jsonl": REPO / "tests" / "bad_data" / "bom.jsonl", "bom.csv": REPO / "tests" / "bad_data" / "bom.csv"}
    files["openai.json"].write_text(json.dumps({"train": openai}))
    files["alpaca.csv"].write_text('instruction,input,output,system\nAdd,"1, 2",3,\nSay hi,,hi,You are kind.\n\n')
    cell = json.dumps(sharegpt[0]["conversations"]).replace('"', '""')  # CSV quoting
    files["sharegpt.csv"].write_text(f'conversations\n"{cell}"\n')
    pq.write_table(pa.Table.from_pylist(openai), files["openai.parquet"])
    return files


@pytest.mark.parametrize("name", ["openai.json", "alpaca.csv", "sharegpt.csv", "openai.parquet", "bom.jsonl",
                                  "bom.csv", "bundled"])
def test_script_reads_and_standardizes_rows_exactly_as_the_studio(runs_dir, tmp_path, name):
    """The script's own load_rows() + standardize(), run alone, give studio.data's conversations."""
    from studio import data
    cfg = RunConfig(run_name=f"script-data-{name}")
    if name != "bundled":
        cfg.data.source, cfg.data.path = "file", str(data_files(tmp_path)[name])
    tree = ast.parse(export.python_script(runs.create_run(cfg)))
    wanted = [n for n in tree.body if (isinstance(n, ast.FunctionDef) and n.name in ("load_rows", "standardize"))
              or (isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") in ("DATA", "SPLIT", "ROLES"))]
    namespace = {"json": json}
    cwd = os.getcwd()
    os.chdir(REPO)  # the script runs from the repo root
    try:
        exec(compile(ast.Module(body=wanted, type_ignores=[]), "train.py", "exec"), namespace)
        conversations = [namespace["standardize"](row) for row in namespace["load_rows"]()]
    finally:
        os.chdir(cwd)
    expected = list(data.load_dataset_source(cfg.data.source, cfg.data.path).iter_conversations())
    assert conversations == expected and len(expected) >= 1


@pytest.mark.slow
def test_script_picks_rows_by_the_studio_rule(runs_dir, tmp_path):
    """600 rows, 30 steps x batch 8: the script trains on 240 of them (seeded sample)."""
    cfg = RunConfig(run_name="script-rows")
    cfg.train.max_steps = STEPS
    run_dir = runs.create_run(cfg)
    script = tmp_path / "train.py"
    script.write_text(export.python_script(run_dir))
    env = {**os.environ, "PREPARE_ONLY": "1"}
    proc = subprocess.run([sys.executable, str(script)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{STEPS * 8} training rows (of 600)" in proc.stdout


def run_script(run_dir: Path, tmp_path: Path):
    """The run's exported script, run from the studio folder: (the process, the per-step losses it logged)."""
    script = tmp_path / "train.py"
    script.write_text(export.python_script(run_dir))
    history = tmp_path / "history.json"
    env = {**os.environ, "LOG_HISTORY_JSON": str(history), "OUTPUT_DIR": str(tmp_path / "out"),
           "ADAPTER_DIR": str(tmp_path / "adapter")}
    proc = subprocess.run([sys.executable, str(script)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, [e["loss"] for e in json.loads(history.read_text()) if "loss" in e]


@pytest.mark.slow
def test_script_reproduces_the_workers_loss_curve(trained_run, tmp_path):
    proc, script_losses = run_script(trained_run, tmp_path)
    assert f"{STEPS * 8} training rows (of 600)" in proc.stdout, proc.stdout[-2000:]
    tail = runs.MetricsTail(trained_run / "metrics.jsonl")
    tail.read_new()
    worker_losses = [e["loss"] for e in tail.logs]
    assert len(script_losses) == len(worker_losses) == STEPS
    worst = max(abs(a - b) for a, b in zip(script_losses, worker_losses))
    print(f"script vs worker: max |loss difference| over {STEPS} steps = {worst:.3g}")
    assert worst <= SCRIPT_LOSS_TOL
    assert worker_losses[-1] < 0.6 * worker_losses[0]  # a curve that learned, not two flat lines
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()


# ---------------------------------------------------------------- the Export tab's named endpoints

@pytest.fixture(scope="module")
def export_client():
    """The app as `make run` starts it, driven by gradio_client (each export has a named endpoint)."""
    from gradio_client import Client
    app = launch_app()
    try:
        yield Client(app.local_url, verbose=False)
    finally:
        app.close()


@pytest.mark.slow
def test_tab_refuses_a_run_outside_runs(export_client):
    for api in ("/export_adapter", "/export_merged", "/export_script"):
        with pytest.raises(Exception, match=r"No such run: ../etc"):
            export_client.predict("../etc", api_name=api)
    with pytest.raises(Exception, match="Choose a run with a saved adapter first"):
        export_client.predict("", "q8_0", api_name="/export_gguf")


def test_tab_says_a_gguf_refusal_in_the_persons_language(runs_dir):
    """Refused before any work, in English and Korean, with what to do instead."""
    import gradio as gr
    from studio.ui import export_tab
    run_dir = tiny_gpt2_run("gpt2-tab")
    said = {}
    for lang, request in (("en", EN), ("ko", KO)):
        with pytest.raises(gr.Error) as info:
            export_tab.export_gguf(run_dir.name, "q8_0", "adapter", request=request)
        said[lang] = info.value.message
    assert "does not support this architecture: GPT2LMHeadModel" in said["en"] and "merged" in said["en"]
    assert "이 구조를 지원하지 않습니다: GPT2LMHeadModel" in said["ko"] and "convert_hf_to_gguf.py" in said["ko"]
    assert not list(run_dir.rglob("*.gguf"))


@pytest.mark.slow
def test_tab_lists_runs_with_an_adapter_newest_first(trained_run, trained_run_light):
    from studio.ui import export_tab
    from studio.auth import LOCAL
    ids = [value for _, value in export_tab.run_choices(LOCAL)]
    assert trained_run_light.name in ids and trained_run.name in ids
    assert ids.index(trained_run_light.name) < ids.index(trained_run.name)  # the newer one first
    assert all((runs.runs_root() / i / "adapter" / "adapter_config.json").is_file() for i in ids)


def fetched(client, answer: dict) -> dict[str, bytes]:
    """Each file of an export's answer, downloaded through its link (served from the run folder)."""
    import urllib.request
    return {f["name"]: urllib.request.urlopen(client.src + f["url"]).read() for f in answer["files"]}


@pytest.mark.slow
def test_tab_endpoints_export_and_say_what_went_wrong(export_client, trained_run):
    zipped = fetched(export_client, export_client.predict(trained_run.name, api_name="/export_adapter"))
    assert list(zipped) == [f"{trained_run.name}-adapter.zip"]
    assert zipped[f"{trained_run.name}-adapter.zip"] == (trained_run / "export" / f"{trained_run.name}-adapter.zip"
                                                         ).read_bytes()
    files = export_client.predict(trained_run.name, "f16", api_name="/export_gguf")["files"]
    assert sorted(f["name"] for f in files) == sorted([f"{trained_run.name}-f16.gguf", "Modelfile"])
    files = export_client.predict(trained_run.name, "f16", "adapter", api_name="/export_gguf")["files"]
    assert sorted(f["name"] for f in files) == \
        sorted([f"{trained_run.name}-lora-f16.gguf", "tiny-qwen3-f16.gguf", "Modelfile"])
    script = export_client.predict(trained_run.name, api_name="/export_script")
    assert script["code"].startswith('"""LoRA fine-tuning')
    assert list(fetched(export_client, script).values())[0].decode().rstrip() == script["code"].rstrip()
    with pytest.raises(Exception, match="is not a Hub repo id"):
        export_client.predict(trained_run.name, "bad id", TOKEN, True, "adapter", api_name="/push_to_hub")
    with pytest.raises(Exception, match="could not upload to alice/x") as info:  # offline in tests
        export_client.predict(trained_run.name, "alice/x", TOKEN, True, "adapter", api_name="/push_to_hub")
    assert TOKEN not in str(info.value)
