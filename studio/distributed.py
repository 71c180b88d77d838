"""Training on several GPUs (and several machines) through PyTorch's own launcher, torchrun.

The studio builds no launcher and no communication layer: the Train tab's Start runs

    python -m studio.train RUN_DIR                                   # one process (one GPU, or the CPU)
    torchrun --standalone --nnodes 1 --nproc-per-node N -m studio.train RUN_DIR           # N GPUs here
    torchrun --nnodes K --nproc-per-node N --node-rank R --rdzv-backend static \\
             --rdzv-endpoint HOST:PORT --rdzv-id RUN -m studio.train RUN_DIR              # node R of K

and Unsloth does the rest: under torchrun it trains with DDP (accelerate's MULTI_GPU, NCCL on GPUs, gloo on
the CPU), and with its own native FSDP2 when UNSLOTH_FSDP2=1 is in the environment (`launch_env`).

This module (no gradio, no torch at import time) holds the run config's `distributed` section, the launch
commands and their per-node preview, and the rank helpers the worker (studio/train.py) calls.

Why the static rendezvous for several nodes (not c10d): torchrun's c10d rendezvous ignores --node-rank and
numbers the nodes by sorting their host names (torch/distributed/elastic/rendezvous/dynamic_rendezvous.py,
_mark_rendezvous_complete), so global rank 0, the one process that writes status.json, metrics.jsonl and
the adapter, could land on any node. The static rendezvous makes node_rank 0 hold global ranks 0..N-1, so
the machine running the studio is the one whose run folder gets the files; its store listens on
--rdzv-endpoint of node 0.

FSDP2 with Unsloth 2026.10.9, read from its source (unsloth/fsdp2_launch.py, unsloth/models/fsdp2_native.py,
fsdp2_perf.py, fsdp2_load.py, fsdp2_qlora.py, fsdp2_bnb_optim.py, save.py):
  * Switch: UNSLOTH_FSDP2=1 in the environment of every rank, with WORLD_SIZE > 1 (torchrun sets it).
    `import unsloth` reads it first thing (apply_unsloth_fsdp2_launch_env); with no
    UNSLOTH_FSDP2_BACKEND it selects Unsloth's *native* FSDP2: Unsloth calls torch's fully_shard on the
    decoder blocks inside its Trainer.__init__ wrapper (native_fsdp2_trainer_setup), before the optimizer
    exists; accelerate sees a plain multi-GPU launch. With WORLD_SIZE 1 the flag does nothing.
  * SFTConfig: nothing FSDP-specific. Do NOT pass `fsdp` / `fsdp_config` (or parallelism_config): with the
    native backend Unsloth raises ("TrainingArguments(fsdp = ...) also asks accelerate to wrap it");
    without an explicit backend it hands the run to accelerate's FSDP instead. save_on_each_node must stay
    False (refused on several nodes: the full state is gathered on global rank 0 only). The bitsandbytes
    8-bit AdamW (optim="adamw_8bit") works: Unsloth steps it on the local shards (fsdp2_bnb_optim.py).
    DeepSpeed, FP8 mixed precision, Trainer(model_init=...), Q-GaLore are refused.
  * Layout: when the whole model fits in 40% of one GPU (UNSLOTH_FSDP2_FIT_FRACTION), Unsloth keeps the
    frozen base weights *replicated* (like DDP) and shards only the LoRA weights, their gradients and
    optimizer state (fsdp2_perf.plan_fsdp2_layout): memory per GPU about DDP's. Only a model above that
    (e.g. Qwen3-32B in 16-bit on 80 GB cards) gets its frozen weights sharded: frozen / N per GPU plus the
    gathered block(s). UNSLOTH_FSDP2_LAYOUT=fit|sharded forces either.
  * Loading: without UNSLOTH_FSDP2_SHARDED_LOAD=1 every rank first loads the WHOLE model onto its GPU and
    shards it afterwards, so a model bigger than one GPU cannot load. With it (16-bit checkpoints only),
    each rank reads only its rows from the safetensors files. `launch_env` sets it for 16-bit runs.
  * 4-bit + FSDP2 (QLoRA): supported (packed NF4 bytes stored as bf16 so fully_shard can shard them,
    fsdp2_qlora.py), but sharded loading is not: every rank loads the full quantized model first
    (fsdp2_load._QUANTIZED_HINT). DoRA cannot be sharded-loaded either.
  * Gradient checkpointing (true and Unsloth's offloaded "unsloth") works under FSDP2; the recompute
    re-gathers each block (fsdp2_perf: forward prefetch is switched off during backward to avoid a wasted
    gather). Under DDP Unsloth sets ddp_find_unused_parameters=False only with checkpointing
    (_ddp_defaults.py); the worker sets it False always (every LoRA weight of a dense model gets a
    gradient every step), which saves an autograd-graph walk per step.
  * Saving: under FSDP2 the adapter is saved with trainer.save_model(dir) on every rank: Unsloth patches
    Trainer.save_model to gather the sharded LoRA weights collectively, rank 0 writes
    (fsdp2_native._install_trainer_hooks). A plain model.save_pretrained on the PeftModel does NOT gather
    (it reached PEFT's own save with DTensor shards: "Attempted to access the data pointer on an invalid
    python storage", seen on the CPU gloo mesh). Under DDP only rank 0 writes
    (model.save_pretrained(dir, is_main_process=is_main()) on every rank). Trainer checkpoints (Stop,
    save_steps) are collective in both cases inside the Trainer.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

STRATEGIES = ("ddp", "fsdp2")
DEFAULT_ENDPOINT = "127.0.0.1:29500"
GIB = 1024 ** 3

# Message codes of `validate` -> (English, Korean); for studio/ui/i18n.py.
MESSAGES = {
    "err_dist_gpus": ("GPUs must be 0 (all visible) or a positive number.",
                      "GPU 수는 0(보이는 GPU 전부) 또는 양수여야 합니다."),
    "err_dist_gpus_visible": ("More GPUs asked for than this machine shows.",
                              "이 컴퓨터에 보이는 것보다 많은 GPU를 요청했습니다."),
    "err_dist_strategy": ("Strategy must be ddp or fsdp2.", "전략은 ddp 또는 fsdp2여야 합니다."),
    "err_dist_nodes": ("Nodes must be at least 1.", "노드 수는 1 이상이어야 합니다."),
    "err_dist_node_rank": ("Node rank must be between 0 and nodes - 1.",
                           "노드 순번은 0부터 (노드 수 - 1) 사이여야 합니다."),
    "err_dist_endpoint": ("Rendezvous endpoint must be host:port (port 1-65535).",
                          "랑데부 주소는 host:port 형식이어야 합니다(포트 1-65535)."),
    "err_dist_gpus_nodes": ("With several nodes, give the GPU count per node (auto cannot see the other nodes).",
                            "노드가 여러 대이면 노드당 GPU 수를 지정하세요(자동은 다른 노드를 볼 수 없습니다)."),
    # node_commands_text
    "dist_one_node": ("{world} process(es) on this machine ({strategy}); Start runs:",
                      "이 컴퓨터에서 프로세스 {world}개({strategy}); 시작 버튼이 실행하는 명령:"),
    "dist_many_nodes": ("{nodes} nodes x {per_node} GPUs = {world} processes ({strategy}). Every node must reach "
                        "`{endpoint}` (node 0, which hosts the rendezvous) and see the run folder `{run_dir}` at "
                        "the same path: a shared filesystem (checkpoints, Resume and the adapter need it), or at least a copy "
                        "of its config.yaml. Each node needs this repository at `{repo}` with the same Python "
                        "environment. Node 0 is the machine running the studio (Start launches it there); paste the "
                        "others' commands on their machines, in any order.",
                        "노드 {nodes}대 x GPU {per_node}개 = 프로세스 {world}개({strategy}). 모든 노드가 `{endpoint}`"
                        "(랑데부를 여는 노드 0)에 접속할 수 있어야 하고, 실행 폴더 `{run_dir}`를 같은 경로에서 볼 수 "
                        "있어야 합니다: 공유 파일 시스템(체크포인트, 재개, 어댑터 저장에 필요) 또는 최소한 "
                        "config.yaml의 사본. 각 노드에는 이 저장소가 `{repo}`에 있고 같은 Python 환경이 있어야 "
                        "합니다. 노드 0은 스튜디오를 실행 중인 이 컴퓨터이며(시작 버튼이 여기서 실행합니다), 나머지 "
                        "노드의 명령은 각 컴퓨터에 붙여 넣으세요. 순서는 상관없습니다."),
    "dist_loopback": ("Note: {host} is reachable only from this machine: use node 0's network address for real "
                      "separate machines.",
                      "참고: {host} 주소는 이 컴퓨터에서만 접속됩니다. 실제로 다른 컴퓨터를 쓰려면 노드 0의 네트워크 "
                      "주소를 쓰세요."),
    "dist_node": ("Node {rank}:", "노드 {rank}:"),
    "dist_node_here": ("Node {rank} (this machine, Start runs it):", "노드 {rank} (이 컴퓨터, 시작 버튼이 실행):"),
}


def _english(key: str, **fields) -> str:
    return MESSAGES[key][0].format(**fields)


@dataclass
class DistributedConfig:
    gpus: int = 0            # processes (GPUs) per node; 0 = every visible GPU (one process on a CPU-only machine)
    strategy: str = "ddp"    # ddp | fsdp2
    nodes: int = 1
    node_rank: int = 0       # which node this machine is (0 = the one running the studio)
    rdzv_endpoint: str = DEFAULT_ENDPOINT  # node 0's address:port, reachable from every node
    # Each optimizer step's rows dealt to the GPUs with equal work (studio/balance.py): with rows of different
    # lengths, every rank otherwise waits for the one that drew the longest micro-batch.
    balance: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> "DistributedConfig":
        known = {f.name: f for f in fields(cls)}
        out = {}
        for key, value in (data or {}).items():
            if key not in known:
                raise ValueError(f"config: unknown key 'distributed.{key}'")
            default = getattr(cls(), key)
            try:
                if isinstance(default, bool):
                    if str(value).strip().lower() not in ("true", "false", "1", "0"):
                        raise ValueError
                    out[key] = str(value).strip().lower() in ("true", "1")
                else:
                    out[key] = int(value) if isinstance(default, int) else str(value).strip()
            except (TypeError, ValueError):
                raise ValueError(f"config: 'distributed.{key}' must be a {type(default).__name__}, "
                                 f"got {value!r}") from None
        return cls(**out)


def parse_endpoint(endpoint: str) -> tuple[str, int] | None:
    """'host:port' or '[v6]:port' -> (host, port); None if malformed."""
    m = re.fullmatch(r"\s*(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.\-]+):(\d{1,5})\s*", endpoint or "")
    if not m or not 0 < int(m.group(2)) < 65536:
        return None
    return m.group(1), int(m.group(2))


def validate(cfg: DistributedConfig, visible: int | None = None) -> list[tuple[str, str]]:
    """(field, message-code) pairs; empty = fine. `visible`: GPUs on this machine (None = don't check)."""
    errors = []
    if cfg.gpus < 0:
        errors.append(("gpus", "err_dist_gpus"))
    elif visible is not None and cfg.gpus > max(visible, 0) and not (visible == 0 and cfg.gpus <= 1):
        errors.append(("gpus", "err_dist_gpus_visible"))
    if cfg.strategy not in STRATEGIES:
        errors.append(("strategy", "err_dist_strategy"))
    if cfg.nodes < 1:
        errors.append(("nodes", "err_dist_nodes"))
    elif not 0 <= cfg.node_rank < cfg.nodes:
        errors.append(("node_rank", "err_dist_node_rank"))
    if cfg.nodes > 1 and cfg.gpus == 0:
        errors.append(("gpus", "err_dist_gpus_nodes"))
    if cfg.nodes > 1 and parse_endpoint(cfg.rdzv_endpoint) is None:
        errors.append(("rdzv_endpoint", "err_dist_endpoint"))
    return errors


# ---------------------------------------------------------------- this machine

def visible_gpus() -> int:
    """GPUs this process could use, without creating a CUDA context: CUDA_VISIBLE_DEVICES, else nvidia-smi."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        ids = [x.strip() for x in env.split(",") if x.strip()]
        out = []
        for x in ids:
            if x.lstrip("-").isdigit() and int(x) < 0:
                break  # CUDA stops at the first invalid index
            out.append(x)
        if not out:
            return 0
        n = _nvidia_smi_count()
        return min(len(out), n) if n else len(out)
    return _nvidia_smi_count()


def _nvidia_smi_count() -> int:
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


@dataclass
class WorldPlan:
    nproc_per_node: int
    nodes: int
    world_size: int
    strategy: str

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def world_plan(cfg: DistributedConfig, visible: int | None = None) -> WorldPlan:
    """Processes per node and world size. gpus=0: every visible GPU here (1 process without a GPU)."""
    n = cfg.gpus
    if n == 0:
        n = max(1, visible_gpus() if visible is None else visible)
    return WorldPlan(n, max(1, cfg.nodes), n * max(1, cfg.nodes), cfg.strategy)


# ---------------------------------------------------------------- launching

def _torchrun(python: str) -> list[str]:
    """torchrun of this interpreter's environment (same torch as the worker)."""
    script = Path(python).parent / "torchrun"
    return [str(script)] if script.is_file() else [python, "-m", "torch.distributed.run"]


def launch_command(cfg: DistributedConfig, run_dir, resume: bool = False, node_rank: int | None = None,
                   python: str | None = None, visible: int | None = None) -> list[str]:
    """The worker's command line for this node (node_rank: another node's, for the preview).

    One process in all: plain `python -m studio.train RUN_DIR`. One node: torchrun --standalone (a free
    port, no endpoint to configure). Several nodes: the static rendezvous at cfg.rdzv_endpoint (see the
    module docstring). Run it from the repository root (our `studio` package must shadow unsloth's)."""
    python = python or sys.executable
    plan = world_plan(cfg, visible)
    worker = ["-m", "studio.train", str(run_dir)] + (["--resume"] if resume else [])
    if plan.world_size == 1:
        return [python] + worker
    cmd = _torchrun(python)
    if plan.nodes == 1:
        cmd += ["--standalone", "--nnodes", "1", "--nproc-per-node", str(plan.nproc_per_node)]
    else:
        rank = cfg.node_rank if node_rank is None else node_rank
        cmd += ["--nnodes", str(plan.nodes), "--nproc-per-node", str(plan.nproc_per_node), "--node-rank", str(rank),
                "--rdzv-backend", "static", "--rdzv-endpoint", cfg.rdzv_endpoint, "--rdzv-id", Path(run_dir).name]
    # a crashed rank ends the job (no elastic restarts); the others are stopped by torchrun
    return cmd + ["--max-restarts", "0"] + worker


def launch_env(cfg: DistributedConfig, load_in_4bit: bool = False, visible: int | None = None) -> dict[str, str]:
    """Environment for every rank, on top of os.environ (empty for DDP and single-process runs)."""
    plan = world_plan(cfg, visible)
    env = {}
    if plan.distributed and cfg.strategy == "fsdp2":
        env["UNSLOTH_FSDP2"] = "1"
        if not load_in_4bit:  # each rank reads only its shard of the weights (16-bit checkpoints only)
            env["UNSLOTH_FSDP2_SHARDED_LOAD"] = "1"
    return env


def node_commands_text(cfg: DistributedConfig, run_dir, load_in_4bit: bool = False, resume: bool = False,
                       repo_root=None, python: str | None = None, visible: int | None = None, say=None) -> str:
    """What to paste on every node (markdown), node 0 first; the studio runs node 0's itself.
    `say(key, **fields)` words it (the UI passes its translations; English by default)."""
    from studio.config import REPO_ROOT
    say = say or _english
    repo = str(repo_root or REPO_ROOT)
    plan = world_plan(cfg, visible)
    if plan.nodes == 1:
        return "\n".join([say("dist_one_node", world=plan.world_size, strategy=cfg.strategy), "", "```bash",
                          _shell(cfg, run_dir, load_in_4bit, resume, 0, repo, python, visible), "```"])
    lines = [say("dist_many_nodes", nodes=plan.nodes, per_node=plan.nproc_per_node, world=plan.world_size,
                 strategy=cfg.strategy, endpoint=cfg.rdzv_endpoint, run_dir=run_dir, repo=repo)]
    host = (parse_endpoint(cfg.rdzv_endpoint) or ("?", 0))[0]
    if host in ("127.0.0.1", "localhost", "[::1]"):
        lines += ["", say("dist_loopback", host=host)]  # its own paragraph
    for r in range(plan.nodes):
        lines += ["", say("dist_node_here" if r == 0 else "dist_node", rank=r), "```bash",
                  _shell(cfg, run_dir, load_in_4bit, resume, r, repo, python, visible), "```"]
    return "\n".join(lines)


def _shell(cfg, run_dir, load_in_4bit, resume, node_rank, repo, python, visible) -> str:
    node_cfg = DistributedConfig(**{**cfg.to_dict(), "node_rank": node_rank})
    env = launch_env(node_cfg, load_in_4bit, visible)
    cmd = launch_command(cfg, run_dir, resume, node_rank, python, visible)
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    return f"cd {shlex.quote(repo)} && " + (prefix + " " if prefix else "") + shlex.join(cmd)


# ---------------------------------------------------------------- stopping a whole job from outside

def descendants(pid: int) -> list[int]:
    """Every process below `pid` (torchrun's ranks and what they started)."""
    import psutil
    try:
        return [c.pid for c in psutil.Process(int(pid)).children(recursive=True)]
    except psutil.Error:
        return []


def kill_job(pid: int) -> list[int]:
    """SIGKILL a worker and everything it started. torchrun starts each rank in its own session, so
    killing the launcher's process group (what a single worker needs) would leave the ranks running."""
    victims = descendants(pid) + [int(pid)]
    for p in victims:
        for kill in (lambda: os.killpg(p, signal.SIGKILL), lambda: os.kill(p, signal.SIGKILL)):
            try:
                kill()
            except (ProcessLookupError, PermissionError):
                pass
    return victims


# ---------------------------------------------------------------- rank helpers (in the worker)

def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def rank() -> int:
    return _env_int("RANK", 0)


def local_rank() -> int:
    return _env_int("LOCAL_RANK", 0)


def world_size() -> int:
    return _env_int("WORLD_SIZE", 1)


def is_main() -> bool:
    """Global rank 0: the one process that writes status.json, metrics.jsonl and the adapter."""
    return rank() == 0


def fsdp2_active() -> bool:
    """Unsloth's native FSDP2 shards this job (UNSLOTH_FSDP2=1 under torchrun with WORLD_SIZE > 1)."""
    flag = os.environ.get("UNSLOTH_FSDP2", "").strip().lower()
    return world_size() > 1 and flag in ("1", "true", "yes", "on", "native")


def under_launcher() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or world_size() > 1


def setup_device() -> str:
    """Put this process on its own GPU (cuda:LOCAL_RANK) before anything touches CUDA; returns the device."""
    import torch
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank() % max(1, torch.cuda.device_count()))
        return f"cuda:{torch.cuda.current_device()}"
    return "cpu"


def _group_ready() -> bool:
    import torch.distributed as dist
    return world_size() > 1 and dist.is_available() and dist.is_initialized()


def _collective_device():
    import torch
    import torch.distributed as dist
    if torch.cuda.is_available() and "nccl" in str(dist.get_backend()):
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def sum_across_ranks(x):
    """Sum of a number (or 0-d tensor) over every rank; a plain number back. Collective: every rank calls it."""
    import torch
    if not _group_ready():
        return x.item() if isinstance(x, torch.Tensor) else x
    import torch.distributed as dist
    is_float = isinstance(x, float) or (isinstance(x, torch.Tensor) and x.is_floating_point())
    t = torch.as_tensor(x, dtype=torch.float64 if is_float else torch.int64).to(_collective_device()).reshape(1)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.item()


def _gather_floats(value: float) -> list[float]:
    import torch
    if not _group_ready():
        return [value]
    import torch.distributed as dist
    t = torch.tensor([value], dtype=torch.float64, device=_collective_device())
    out = [torch.zeros_like(t) for _ in range(world_size())]
    dist.all_gather(out, t)
    return [float(o.item()) for o in out]


def max_memory_per_rank() -> list[float]:
    """Peak memory of every rank in GiB, rank order (GPU: peak reserved on its device; CPU: peak RSS).
    Collective: every rank calls it."""
    import torch
    if torch.cuda.is_available():
        mine = torch.cuda.max_memory_reserved(torch.cuda.current_device()) / GIB
    else:
        import resource
        mine = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB on Linux
    return [round(v, 3) for v in _gather_floats(mine)]


def agree_to_stop(flag: bool) -> bool:
    """Rank 0's answer (it reads the STOP file), the same on every rank at the same step. Collective."""
    import torch
    if not _group_ready():
        return bool(flag)
    import torch.distributed as dist
    t = torch.tensor([1 if (flag and is_main()) else 0], dtype=torch.int32, device=_collective_device())
    dist.broadcast(t, src=0)
    return bool(t.item())


def wait_for_exit(pids: list[int], timeout: float) -> bool:
    """True when none of `pids` is alive within `timeout` seconds (tests, the benchmark)."""
    end = time.time() + timeout
    while time.time() < end:
        alive = [p for p in pids if _alive(p)]
        if not alive:
            return True
        time.sleep(0.2)
    return False


def _alive(pid: int) -> bool:
    import psutil
    try:
        return psutil.Process(int(pid)).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
