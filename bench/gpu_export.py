"""Export time and peak memory (issue 21): the merged 16-bit model, GGUF f16, GGUF q8_0 and the adapter as a
LoRA GGUF, for a random-init Qwen3-4B-shaped model and a LoRA adapter made with PEFT on it. No network.

    python bench/gpu_export.py --shape qwen3-4b      # on the GPU machine (the merge runs on the GPU)
    python bench/gpu_export.py --shape tiny          # CPU smoke test of this script

Each step runs in its own process, so its peak resident memory (VmHWM, which counts what the process maps of
the safetensors as well as what it allocates) and its peak GPU memory are its own. The GGUF steps time the
writer alone, on the merged folder the first step made; printed: one table and one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # our `studio`, not the unsloth wheel's
sys.path.insert(0, str(REPO / "bench"))
GIB = 1024 ** 3
STEPS = ("merged", "gguf-f16", "gguf-q8_0", "lora-gguf")


def make_run(shape: str, work: Path, rank: int) -> Path:
    """A run folder whose base is a local random-init model of `shape` and whose adapter is a PEFT LoRA on it
    (B random, so the merge moves every targeted weight)."""
    import unsloth  # noqa: F401  (first, as in every studio process: the template below imports it)
    import torch
    from gpu_common import RECIPE, build_model
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from studio import runs, templates
    from studio.config import RunConfig
    base = build_model(shape, work / shape)
    cfg = RunConfig(run_name=f"export-bench-{shape}")
    cfg.model.name = str(base)
    cfg.lora.r, cfg.lora.lora_alpha = rank, rank
    run_dir = runs.create_run(cfg)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16).to(device)
    peft = get_peft_model(model, LoraConfig(r=rank, lora_alpha=rank, target_modules=RECIPE["targets"]))
    with torch.no_grad():
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 1e-3)
    peft.save_pretrained(run_dir / "adapter")
    templates.apply_template(AutoTokenizer.from_pretrained(base), "qwen-3").save_pretrained(run_dir / "adapter")
    return run_dir


def run_step(step: str, run_dir: Path) -> dict:
    """One step in this process; what it made and what it took."""
    if step == "merged":
        import unsloth  # noqa: F401  (the merge's own first import, before transformers)
    import gguf  # noqa: F401
    import torch
    import transformers  # noqa: F401
    from studio import export, gguf_export
    from studio.config import RunConfig
    cfg = RunConfig.load(run_dir / "config.yaml")
    on_gpu = torch.cuda.is_available()
    start_rss = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")  # after imports
    t0 = time.perf_counter()
    if step == "merged":
        out = export.merge_16bit(run_dir)
    elif step.startswith("gguf-"):
        quant = step.split("-", 1)[1]
        out = run_dir / "export" / f"bench-{quant}.gguf"
        gguf_export.write_model(export.merged_dir(run_dir), out, quant, name=cfg.run_name)
    else:
        out = run_dir / "export" / "bench-lora.gguf"
        gguf_export.write_lora(run_dir / "adapter", json.loads((Path(cfg.model.name) / "config.json").read_text()),
                               out)
    seconds = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in ([out] if out.is_file() else out.rglob("*")) if p.is_file())
    return dict(step=step, seconds=round(seconds, 2), out_gb=round(size / GIB, 3),
                peak_rss_gb=round(_peak_rss() / GIB, 2),
                rss_after_imports_gb=round(start_rss / GIB, 2),
                peak_gpu_gb=round(torch.cuda.max_memory_allocated() / GIB, 2) if on_gpu else None)


def _peak_rss() -> int:
    """This process's peak resident size (VmHWM): unlike ru_maxrss, it starts afresh at exec, so the parent's
    memory at fork (the model it built) is not counted."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="qwen3-4b", choices=["qwen3-4b", "qwen3-0.6b", "tiny"])
    parser.add_argument("--work", default=os.environ.get("BENCH_TMP", "/tmp/studio-bench"))
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)  # a child process: one step
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(args.work)
    os.environ.setdefault("STUDIO_RUNS_DIR", str(work / "export-runs"))
    if args.step:
        print("RESULT=" + json.dumps(run_step(args.step, Path(args.run))), flush=True)
        return
    import torch
    run_dir = make_run(args.shape, work, args.rank)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    model_gb = sum(p.stat().st_size for p in (work / args.shape).glob("*.safetensors")) / GIB
    results = []
    for step in STEPS:
        proc = subprocess.run([sys.executable, __file__, "--step", step, "--run", str(run_dir), "--work", str(work)],
                              capture_output=True, text=True, cwd=REPO)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT=")), None)
        if proc.returncode or line is None:
            sys.exit(f"step {step} failed:\n{proc.stderr[-4000:]}")
        results.append(json.loads(line[len("RESULT="):]))
    print(f"\nexport of {args.shape} (bf16 model {model_gb:.2f} GB, LoRA r={args.rank}) on {device}")
    print(f"{'step':<10} {'seconds':>8} {'output GB':>10} {'peak RSS GB':>12} {'(imports GB)':>13} "
          f"{'peak GPU GB':>12}")
    for r in results:
        gpu = "-" if r["peak_gpu_gb"] is None else f"{r['peak_gpu_gb']:.2f}"
        print(f"{r['step']:<10} {r['seconds']:>8.1f} {r['out_gb']:>10.3f} {r['peak_rss_gb']:>12.2f} "
              f"{r['rss_after_imports_gb']:>13.2f} {gpu:>12}")
    print("JSON=" + json.dumps(dict(shape=args.shape, device=device, model_gb=round(model_gb, 3), rank=args.rank,
                                    steps=results)))


if __name__ == "__main__":
    main()
