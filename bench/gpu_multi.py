"""Multi-GPU benchmarks (issue 10): the studio worker through torchrun, as the Train tab launches it.

    # one run: N GPUs on this machine (DDP unless --strategy fsdp2), or two torchrun "nodes" of one GPU
    python bench/gpu_multi.py run --model DIR --data chat.jsonl --gpus 2 --out r.json
    python bench/gpu_multi.py run ... --gpus 1 --nodes 2 --out two_nodes.json     # rendezvous on 127.0.0.1
    # a random-init model of a big shape written straight to safetensors shards (one decoder layer per file)
    python bench/gpu_multi.py build --shape qwen3-32b --out /dev/shm/qwen3-32b
    # the tables: tokens/s, scaling, loss agreement, memory per GPU
    python bench/gpu_multi.py report RESULTS_DIR

`run` writes config.yaml with studio.runs.create_run, launches studio.distributed.launch_command with
launch_env (the commands the Train tab runs and previews), waits for a final state, and reads
metrics.jsonl: steady tokens/s = bench.gpu_common.steady over the log events' tokens_seen, which the
worker sums over every rank; memory per GPU = the log events' memory_per_gpu_gb (peak reserved per rank).
No unsloth import here: the worker processes import it.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import gpu_common as C  # noqa: E402

BIG_SHAPES = {
    # Qwen/Qwen3-32B config.json (untied embeddings)
    "qwen3-32b": dict(hidden_size=5120, intermediate_size=25600, num_hidden_layers=64, num_attention_heads=64,
                      num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=False,
                      max_position_embeddings=40960, rope_theta=1_000_000.0, rms_norm_eps=1e-6),
    # the same layout, tiny: CPU smoke test of `build`
    "tiny-untied": dict(C.SHAPES["tiny"], tie_word_embeddings=False),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- run

def run(a) -> int:
    os.environ["STUDIO_RUNS_DIR"] = a.runs_dir  # before studio.runs reads it
    from studio import distributed as dist, runs
    from studio.config import RunConfig
    from studio.distributed import DistributedConfig

    cfg = RunConfig()
    cfg.run_name = a.name.replace(" ", "-")
    cfg.model.name = str(Path(a.model).resolve())
    cfg.model.max_seq_length = cfg.train.max_length = a.max_length
    cfg.model.load_in_4bit = bool(a.load_in_4bit)
    cfg.data.source, cfg.data.path = "file", str(Path(a.data).resolve())
    cfg.lora.r, cfg.lora.lora_alpha, cfg.lora.use_gradient_checkpointing = 8, 8, a.gc
    t = cfg.train
    t.per_device_train_batch_size, t.gradient_accumulation_steps = a.micro_batch, a.accum
    t.max_steps, t.learning_rate, t.optim, t.warmup_steps, t.seed = a.steps, a.lr, "adamw_8bit", 2, 3407
    cfg.distributed.balance = bool(a.balance)  # the worker reads it from config.yaml
    run_dir = runs.create_run(cfg)

    port = free_port()
    dcfg = DistributedConfig(gpus=a.gpus, strategy=a.strategy, nodes=a.nodes,
                             rdzv_endpoint=f"127.0.0.1:{port}", balance=bool(a.balance))
    procs = []
    t0 = time.time()
    # several "nodes" on this machine: one torchrun each, each seeing its own GPUs
    for node in range(a.nodes):
        ndcfg = DistributedConfig(**{**dcfg.to_dict(), "node_rank": node})
        env = {**os.environ, **dist.launch_env(ndcfg, cfg.model.load_in_4bit)}
        if a.nodes > 1 or a.devices:
            first = node * a.gpus
            devs = (a.devices.split(",") if a.devices else [str(i) for i in range(64)])
            env["CUDA_VISIBLE_DEVICES"] = ",".join(devs[first:first + a.gpus])
        cmd = dist.launch_command(ndcfg, run_dir, node_rank=node)
        print(f"node {node}: CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES', '(all)')} "
              + " ".join(f"{k}={v}" for k, v in dist.launch_env(ndcfg, cfg.model.load_in_4bit).items()) + " "
              + " ".join(cmd), flush=True)
        log = open(run_dir / ("worker.log" if node == 0 else f"worker-node{node}.log"), "ab")
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True))
        log.close()

    def stop_all(*_):
        for p in procs:
            dist.kill_job(p.pid)
    signal.signal(signal.SIGTERM, lambda s, f: (stop_all(), sys.exit(128 + s)))

    status = {}
    while time.time() - t0 < a.timeout:
        status = runs.view(run_dir)
        if all(p.poll() is not None for p in procs):
            break
        time.sleep(0.5)
    else:
        status["bench_timeout"] = True
    stop_all()
    rcs = [p.wait() for p in procs]
    status = runs.view(run_dir)
    wall = time.time() - t0

    tail = runs.MetricsTail(run_dir / "metrics.jsonl")
    tail.read_new()
    logs = tail.logs
    res = {"name": a.name, "model": a.model, "gpus_per_node": a.gpus, "nodes": a.nodes, "strategy": a.strategy,
           "world_size": a.gpus * a.nodes, "balance": bool(a.balance), "micro_batch": a.micro_batch, "accum": a.accum, "gc": a.gc,
           "load_in_4bit": bool(a.load_in_4bit), "lr": a.lr, "steps": a.steps, "warmup": a.warmup,
           "run_dir": str(run_dir), "rcs": rcs, "wall_s": wall, "state": status.get("state"),
           "error": status.get("error"), "failed_rank": status.get("failed_rank"),
           "status": {k: v for k, v in status.items() if k != "traceback"},
           "logs": [{"step": e["step"], "time": e["time"], "tokens": e.get("tokens_seen"), "loss": e.get("loss"),
                     "memory_per_gpu_gb": e.get("memory_per_gpu_gb"), "peak_reserved_gb": e.get("peak_reserved_gb")}
                    for e in logs]}
    log_text = (run_dir / "worker.log").read_text(errors="replace") if (run_dir / "worker.log").is_file() else ""
    res["recompiles"] = log_text.count("Recompiling")  # seen with TORCH_LOGS=recompiles
    res["padding"] = next((x.strip()[:160] for x in log_text.splitlines() if "adding" in x and "Unsloth" in x), None)
    mems = [e.get("memory_per_gpu_gb") or [e.get("peak_reserved_gb")] for e in logs]
    if mems and all(m and m[0] is not None for m in mems):
        res["memory_per_gpu_gb"] = [max(m[i] for m in mems) for i in range(len(mems[-1]))]
        res["peak_reserved_gb"] = max(res["memory_per_gpu_gb"])
    if logs:
        try:
            res.update(C.steady(res["logs"], a.warmup))
            res["tokens_per_s_per_gpu"] = res["tokens_per_s"] / res["world_size"]
        except ValueError as exc:
            res["steady_error"] = str(exc)
    C.save_result(res, a.out)
    print(C.table([res], C.RESULT_COLUMNS))
    print(f"state={res['state']} rcs={rcs} memory_per_gpu_gb={res.get('memory_per_gpu_gb')} "
          f"losses={[round(e['loss'], 4) for e in res['logs'] if e['loss'] is not None]}")
    if res["state"] != "completed":
        print(runs.log_tail(run_dir, 60))
        for node in range(1, a.nodes):
            p = run_dir / f"worker-node{node}.log"
            if p.is_file():
                print(f"--- node {node}:\n" + "\n".join(p.read_text(errors="replace").splitlines()[-30:]))
        return 1
    return 0


# ---------------------------------------------------------------- build

def build(a) -> int:
    """A random-init Qwen3 checkpoint of `shape` written tensor by tensor: never the whole model in memory.

    Each distinct weight shape is drawn once (std 0.02, seed 0) and written into every layer's own file
    (model-000NN-of-000MM.safetensors, one decoder layer each, + index): speed and memory depend on the
    shape, not on the values, and every layer being the same keeps the build to the disk's write speed."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, Qwen3Config

    out = Path(a.out)
    if (out / "model.safetensors.index.json").is_file():
        print(f"have {out}")
        return 0
    dims = BIG_SHAPES[a.shape]
    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(C.TOKENIZER_SRC)
    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    cfg = Qwen3Config(**dims, hidden_act="silu", attention_bias=False, attention_dropout=0.0, use_cache=True,
                      bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, use_sliding_window=False,
                      max_window_layers=dims["num_hidden_layers"], initializer_range=0.02)
    cfg.architectures = ["Qwen3ForCausalLM"]
    cfg.dtype = torch.bfloat16
    tmp = out.with_name(out.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    h, inter, L = dims["hidden_size"], dims["intermediate_size"], dims["num_hidden_layers"]
    q, kv, hd, V = dims["num_attention_heads"] * dims["head_dim"], dims["num_key_value_heads"] * dims["head_dim"], \
        dims["head_dim"], dims["vocab_size"]
    gen = torch.Generator().manual_seed(0)

    def rand(*shape):
        return (torch.randn(*shape, generator=gen, dtype=torch.float32) * 0.02).to(torch.bfloat16)

    ones = lambda n: torch.ones(n, dtype=torch.bfloat16)  # noqa: E731
    layer = {"self_attn.q_proj.weight": rand(q, h), "self_attn.k_proj.weight": rand(kv, h),
             "self_attn.v_proj.weight": rand(kv, h), "self_attn.o_proj.weight": rand(h, q),
             "self_attn.q_norm.weight": ones(hd), "self_attn.k_norm.weight": ones(hd),
             "mlp.gate_proj.weight": rand(inter, h), "mlp.up_proj.weight": rand(inter, h),
             "mlp.down_proj.weight": rand(h, inter), "input_layernorm.weight": ones(h),
             "post_attention_layernorm.weight": ones(h)}
    n_files = L + 1
    weight_map, total = {}, 0
    for i in range(L):
        fname = f"model-{i + 1:05d}-of-{n_files:05d}.safetensors"
        tensors = {f"model.layers.{i}.{k}": v for k, v in layer.items()}
        save_file(tensors, str(tmp / fname), metadata={"format": "pt"})
        weight_map.update({k: fname for k in tensors})
        total += sum(v.numel() for v in tensors.values())
    rest = {"model.embed_tokens.weight": rand(V, h), "model.norm.weight": ones(h)}
    if not dims["tie_word_embeddings"]:
        rest["lm_head.weight"] = rand(V, h)
    fname = f"model-{n_files:05d}-of-{n_files:05d}.safetensors"
    save_file(rest, str(tmp / fname), metadata={"format": "pt"})
    weight_map.update({k: fname for k in rest})
    total += sum(v.numel() for v in rest.values())
    (tmp / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total * 2}, "weight_map": weight_map}, indent=1))
    cfg.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if out.exists():
        import shutil
        shutil.rmtree(out)
    tmp.rename(out)
    print(f"built {a.shape}: {total / 1e9:.3f} B params, bf16, {n_files} files, in {time.time() - t0:.1f}s -> {out}",
          flush=True)
    return 0


# ---------------------------------------------------------------- report

def report(a) -> int:
    res = {}
    for p in sorted(Path(a.results).glob("multi-*.json")):
        res[p.stem[len("multi-"):]] = json.loads(p.read_text())
    if not res:
        print("no results")
        return 1
    rows = []
    for name, r in res.items():
        mem = r.get("memory_per_gpu_gb")
        rows.append({**r, "name": name, "mem": " / ".join(f"{m:.1f}" for m in mem) if mem else None,
                     "setting": f"{r['strategy']} {r['nodes']}x{r['gpus_per_node']}, mb {r['micro_batch']} x "
                                f"{r['accum']}, gc {r['gc']}"
                                + ("" if r["world_size"] == 1 else ", balanced" if r.get("balance", False)
                                   else ", not balanced")})
    print(C.table(rows, [("name", "run", ""), ("setting", "setting", ""), ("state", "state", ""),
                         ("tokens_per_s", "steady tokens/s (all GPUs)", ",.0f"),
                         ("tokens_per_s_per_gpu", "per GPU", ",.0f"), ("s_per_step", "s/step", ".3f"),
                         ("tokens_per_step", "tokens/step", ",.0f"), ("mem", "peak reserved GiB per GPU", ""),
                         ("wall_s", "process wall s", ".0f")]))
    print()
    base = res.get("ddp1")
    for name, need in (("ddp2", 1.85), ("ddp4", 3.6), ("ddp2_plain", 1.85), ("ddp4_plain", 3.6)):
        r = res.get(name)
        if base and r and base.get("tokens_per_s") and r.get("tokens_per_s"):
            x = r["tokens_per_s"] / base["tokens_per_s"]
            print(f"scaling {name} / ddp1: {x:.3f}x (target >= {need}x): {'MET' if x >= need else 'NOT MET'}")
        else:
            print(f"scaling {name} / ddp1: not measured")
    for name, r in res.items():
        if r.get("padding"):
            print(f"{name}: {r['padding']}; torch.compile recompiles logged: {r.get('recompiles')}")

    def curve(r):
        return {e["step"]: e["loss"] for e in r.get("logs", []) if e.get("loss") is not None}

    for ref, other in (("ddp1", "ddp2"), ("ddp1", "nodes2"), ("ddp2", "nodes2"), ("ddp1", "ddp1_rep"),
                       ("ddp1", "ddp2_plain"), ("ddp4_plain", "ddp4")):
        if ref in res and other in res:
            x, y = curve(res[ref]), curve(res[other])
            steps = sorted(set(x) & set(y))
            if not steps:
                continue
            diffs = [abs(x[s] - y[s]) for s in steps]
            rel = max(d / abs(x[s]) for d, s in zip(diffs, steps))
            print(f"loss curves {ref} vs {other} over {len(steps)} steps: max |diff| {max(diffs):.4f}, "
                  f"mean |diff| {sum(diffs) / len(diffs):.4f}, max relative {rel:.4%} "
                  f"(first {x[steps[0]]:.4f} vs {y[steps[0]]:.4f}, last {x[steps[-1]]:.4f} vs {y[steps[-1]]:.4f})")
    if "fsdp2_32b" in res:
        r = res["fsdp2_32b"]
        print(f"FSDP2 {Path(r['model']).name} on {r['world_size']} GPUs: state {r['state']}, "
              f"{r.get('tokens_per_s', 0):,.0f} tokens/s, peak reserved per GPU {r.get('memory_per_gpu_gb')}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--model", required=True)
    r.add_argument("--data", required=True)
    r.add_argument("--gpus", type=int, default=1, help="processes (GPUs) per node")
    r.add_argument("--nodes", type=int, default=1, help=">1: that many torchrun 'nodes' on this machine")
    r.add_argument("--devices", default="", help="GPU indices to use, comma-separated (default 0, 1, ...)")
    r.add_argument("--strategy", default="ddp", choices=["ddp", "fsdp2"])
    r.add_argument("--micro-batch", type=int, default=8)
    r.add_argument("--accum", type=int, default=1)
    r.add_argument("--gc", default="false", choices=["false", "true", "unsloth"])
    r.add_argument("--balance", type=int, default=1, help="0: ranks take their micro-batches unbalanced")
    r.add_argument("--load-in-4bit", type=int, default=0)
    r.add_argument("--max-length", type=int, default=2048)
    r.add_argument("--lr", type=float, default=1e-3)
    r.add_argument("--steps", type=int, default=12)
    r.add_argument("--warmup", type=int, default=4)
    r.add_argument("--timeout", type=float, default=300)
    r.add_argument("--runs-dir", default=os.environ.get("BENCH_TMP", "/tmp/studio-bench") + "/runs")
    r.add_argument("--name", default="multi")
    r.add_argument("--out", default="")
    b = sub.add_parser("build")
    b.add_argument("--shape", default="qwen3-32b", choices=sorted(BIG_SHAPES))
    b.add_argument("--out", required=True)
    p = sub.add_parser("report")
    p.add_argument("results")
    a = ap.parse_args(argv)
    return {"run": run, "build": build, "report": report}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
