"""Every string the UI shows, in English and Korean.

Static text (labels, info, tab names) goes to the browser through gr.I18n and follows the
browser's language (or the footer's Settings > Language). Messages made on the server
(errors, status lines) are looked up here with the request's Accept-Language.
"""
from __future__ import annotations

import gradio as gr

STRINGS: dict[str, tuple[str, str]] = {
    # header and tabs
    "title": ("LoRA Studio", "LoRA 스튜디오"),
    "subtitle": ("Fine-tune an LLM with LoRA by clicking: model → dataset → template → train → chat.",
                 "클릭만으로 LoRA 미세조정: 모델 → 데이터셋 → 템플릿 → 훈련 → 대화."),
    "tab_model": ("1 · Model", "1 · 모델"),
    "tab_dataset": ("2 · Dataset", "2 · 데이터셋"),
    "tab_template": ("3 · Template", "3 · 템플릿"),
    "tab_train": ("4 · Train", "4 · 훈련"),
    "tab_chat": ("5 · Chat", "5 · 대화"),
    "tab_runs": ("Runs", "실행 기록"),
    # recipes
    "recipe": ("Recipe", "레시피"),
    "recipe_info": ("Fills every tab at once. 'Bundled' runs anywhere in about a minute; 'Chapter' is the "
                    "textbook's Qwen3-4B recipe and needs a GPU and the Hub.",
                    "모든 탭을 한 번에 채웁니다. '내장'은 어디서나 1분 안팎, '교재'는 Qwen3-4B 레시피로 GPU와 Hub가 필요합니다."),
    "recipe_bundled": ("Bundled tiny model + sample data (CPU, offline)", "내장 소형 모델 + 예제 데이터 (CPU, 오프라인)"),
    "recipe_chapter": ("The chapter: Qwen3-4B 4-bit + FineTome-100k (GPU)", "교재: Qwen3-4B 4비트 + FineTome-100k (GPU)"),
    "apply_recipe": ("Apply recipe", "레시피 적용"),
    # model tab
    "model_preset": ("Model preset", "모델 프리셋"),
    "model_name": ("Model (Hub id or local folder)", "모델 (Hub id 또는 로컬 폴더)"),
    "model_name_info": ("Any Hugging Face id such as unsloth/Qwen3-4B-unsloth-bnb-4bit, or a folder on this machine.",
                        "unsloth/Qwen3-4B-unsloth-bnb-4bit 같은 Hugging Face id, 또는 이 컴퓨터의 폴더."),
    "hf_token": ("Hugging Face token (optional)", "Hugging Face 토큰 (선택)"),
    "hf_token_info": ("For gated or private models and datasets. Never saved to disk.",
                      "비공개·승인 필요 모델/데이터셋용. 디스크에 저장하지 않습니다."),
    "max_seq_length": ("max_seq_length", "max_seq_length (최대 시퀀스 길이)"),
    "max_seq_length_info": ("Longest sequence the model is prepared for; the chapter uses 2048.",
                            "모델이 다룰 최대 길이. 교재는 2048."),
    "dtype": ("dtype", "dtype (자료형)"),
    "dtype_info": ("auto: bfloat16 where the GPU supports it, else float16; float32 on CPU.",
                   "auto: GPU가 지원하면 bfloat16, 아니면 float16. CPU는 float32."),
    "load_in_4bit": ("load_in_4bit (QLoRA)", "load_in_4bit (QLoRA, 4비트 적재)"),
    "load_in_4bit_info": ("Quantize the frozen base to 4 bits: about 4x less memory. GPU only; on CPU the model "
                          "loads in 16/32-bit instead.", "동결된 베이스를 4비트로 양자화해 메모리를 약 1/4로. GPU 전용이며, "
                          "CPU에서는 16/32비트로 적재합니다."),
    "lora_header": ("LoRA adapters  ·  W = W₀ + (α/r)·BA", "LoRA 어댑터  ·  W = W₀ + (α/r)·BA"),
    "lora_r": ("r (rank)", "r (랭크)"),
    "lora_r_info": ("Rank of B and A. Larger learns more but uses more memory; 8–64 is common.",
                    "B·A의 랭크. 클수록 표현력↑ 메모리↑. 보통 8–64."),
    "lora_alpha": ("lora_alpha (α)", "lora_alpha (α)"),
    "lora_alpha_info": ("Scales the update by α/r. Set it equal to r or twice r.", "업데이트를 α/r로 조정. r과 같거나 2배 권장."),
    "lora_dropout": ("lora_dropout", "lora_dropout"),
    "lora_dropout_info": ("0 is usual, and lets Unsloth use its fastest path.", "보통 0. Unsloth가 가장 빠른 경로를 씁니다."),
    "target_modules": ("target_modules", "target_modules (적용 모듈)"),
    "target_modules_info": ("Attention (q,k,v,o) and MLP (gate,up,down) projections; all seven is the usual choice.",
                            "어텐션(q,k,v,o)과 MLP(gate,up,down). 일곱 개 모두가 일반적."),
    "bias": ("bias", "bias"),
    "bias_info": ("'none' is recommended.", "'none' 권장."),
    "grad_ckpt": ("use_gradient_checkpointing", "use_gradient_checkpointing (그래디언트 체크포인팅)"),
    "grad_ckpt_info": ("'unsloth' offloads activations for long contexts with little slowdown; 'false' is fastest "
                       "when memory allows.", "'unsloth'는 활성값을 오프로드해 긴 문맥도 적은 손실로; 메모리가 충분하면 "
                       "'false'가 가장 빠름."),
    "random_state": ("random_state", "random_state (난수 시드)"),
    "random_state_info": ("Seed for the adapters' initial values, for reproducible runs.", "어댑터 초기값 시드(재현성)."),
    "check_model": ("Check model", "모델 확인"),
    "model_summary_empty": ("Press 'Check model' to see what LoRA will train.", "'모델 확인'을 누르면 LoRA가 훈련할 파라미터를 보여 줍니다."),
    # dataset tab
    "data_source": ("Source", "출처"),
    "src_bundled": ("Bundled sample", "내장 예제"),
    "src_hub": ("Hugging Face Hub", "Hugging Face Hub"),
    "src_file": ("Upload a file", "파일 업로드"),
    "hub_id": ("Hub dataset id", "Hub 데이터셋 id"),
    "hub_id_info": ("e.g. mlabonne/FineTome-100k", "예: mlabonne/FineTome-100k"),
    "split": ("split", "split (분할)"),
    "upload": ("Dataset file (.jsonl, .json, .csv, .parquet)", "데이터셋 파일 (.jsonl, .json, .csv, .parquet)"),
    "max_rows": ("Use the first N rows (0 = all)", "앞 N개 행만 사용 (0 = 전체)"),
    "load_preview": ("Load & preview", "불러와 미리보기"),
    "page": ("Page", "페이지"),
    "prev": ("◀ Prev", "◀ 이전"),
    "next": ("Next ▶", "다음 ▶"),
    "raw_rows": ("Raw rows (as stored)", "원본 행 (저장된 그대로)"),
    "std_rows": ("Standardized (role / content)", "표준화 (role / content)"),
    "data_hint": ("Rows are mapped to system/user/assistant messages, as Unsloth's standardize_data_formats does. "
                  "ShareGPT (from/value), OpenAI (messages: role/content) and Alpaca (instruction/input/output) "
                  "are detected automatically.",
                  "각 행을 system/user/assistant 메시지로 바꿉니다(Unsloth standardize_data_formats와 같음). "
                  "ShareGPT(from/value), OpenAI(messages: role/content), Alpaca(instruction/input/output)를 자동 인식합니다."),
    # template tab
    "template": ("Chat template", "대화 템플릿"),
    "template_info": ("Unsloth's get_chat_template name; the default follows the model family.",
                      "Unsloth get_chat_template 이름. 기본값은 모델 계열을 따릅니다."),
    "row_index": ("Row", "행 번호"),
    "render": ("Render", "렌더링"),
    "instruction_part": ("instruction_part", "instruction_part (지시 구간 표지)"),
    "response_part": ("response_part", "response_part (응답 구간 표지)"),
    "template_hint": ("The row exactly as the trainer sees it. Green = tokens the loss is computed on "
                      "(train_on_responses_only); grey = masked prompt.",
                      "훈련기가 보는 그대로의 행. 초록 = 손실을 계산하는 토큰(train_on_responses_only), 회색 = 마스킹된 프롬프트."),
    # train tab
    "run_name": ("Run name", "실행 이름"),
    "max_length": ("max_length", "max_length (최대 길이)"),
    "max_length_info": ("Rows are cut to this many tokens.", "각 행을 이 토큰 수로 자릅니다."),
    "packing": ("packing", "packing (패킹)"),
    "packing_info": ("Pack short rows together: up to 5x faster on short data.", "짧은 행을 묶어 최대 5배 빠르게."),
    "batch": ("per_device_train_batch_size", "per_device_train_batch_size (배치)"),
    "accum": ("gradient_accumulation_steps", "gradient_accumulation_steps (누적)"),
    "accum_info": ("Effective batch = batch × accumulation (the chapter: 2 × 4 = 8).", "실질 배치 = 배치 × 누적 (교재: 2 × 4 = 8)."),
    "warmup": ("warmup_steps", "warmup_steps (워밍업)"),
    "max_steps": ("max_steps (0 = use epochs)", "max_steps (0 = 에포크 사용)"),
    "epochs": ("num_train_epochs", "num_train_epochs (에포크)"),
    "lr": ("learning_rate", "learning_rate (학습률)"),
    "lr_info": ("2e-4 for billion-parameter models; the tiny bundled model needs ~5e-3.",
                "수십억 파라미터 모델은 2e-4, 내장 소형 모델은 5e-3 안팎."),
    "logging_steps": ("logging_steps", "logging_steps (기록 간격)"),
    "optim": ("optim", "optim (옵티마이저)"),
    "optim_info": ("adamw_8bit saves memory on GPU; on CPU the studio uses adamw_torch.",
                   "adamw_8bit는 GPU 메모리 절약. CPU에서는 adamw_torch로 바꿉니다."),
    "weight_decay": ("weight_decay", "weight_decay (가중치 감쇠)"),
    "scheduler": ("lr_scheduler_type", "lr_scheduler_type (스케줄러)"),
    "seed": ("seed", "seed (시드)"),
    "save_steps": ("Checkpoint every N steps (0 = at the end)", "N 스텝마다 체크포인트 (0 = 끝에서만)"),
    "save_limit": ("Keep the last K checkpoints", "최근 K개 체크포인트 유지"),
    "responses_only": ("train_on_responses_only", "train_on_responses_only (응답만 학습)"),
    "responses_only_info": ("Compute the loss on the assistant's replies only.", "assistant 응답에만 손실을 계산합니다."),
    "config_preview": ("Run config (config.yaml)", "실행 설정 (config.yaml)"),
    "command_preview": ("Same run by hand", "같은 실행을 직접"),
    "start": ("Start training", "훈련 시작"),
    "stop": ("Stop", "중지"),
    "resume": ("Resume", "이어서 훈련"),
    "fit_gpu": ("Fit to this GPU", "이 GPU에 맞추기"),
    "fit_gpu_info": ("Estimates peak memory for 4-bit/16-bit × micro-batch × checkpointing and picks the fastest "
                     "setting that fits (same effective batch as the chapter).",
                     "4비트/16비트 × 마이크로배치 × 체크포인팅 조합의 최대 메모리를 추정해, 들어가는 가장 빠른 설정을 고릅니다"
                     "(실질 배치는 교재와 동일)."),
    "fit_no_gpu": ("No GPU here: the fit-to-GPU preset needs one (on CPU the bundled defaults are already right).",
                   "GPU가 없습니다: 이 기능은 GPU가 필요합니다(CPU에서는 내장 기본값이 이미 적절합니다)."),
    "progress_step": ("step", "스텝"),
    "progress_elapsed": ("elapsed {elapsed} · ETA {eta}", "경과 {elapsed} · 남은 시간 {eta}"),
    "progress_tokens": ("{rate} tokens/s", "초당 {rate} 토큰"),
    "progress_gpu": ("GPU peak reserved {peak:.2f} GB ({pct:.1f}% of {total:.0f} GB), training {train:.2f} GB",
                     "GPU 최대 예약 {peak:.2f} GB ({total:.0f} GB의 {pct:.1f}%), 훈련분 {train:.2f} GB"),
    "progress_cpu": ("process memory peak {peak:.2f} GB", "프로세스 메모리 최대 {peak:.2f} GB"),
    "data_info": ("**{name}** · {rows:,} rows · format **{fmt}** · extra columns: {extra} · page {page} / {pages}",
                  "**{name}** · {rows:,}행 · 형식 **{fmt}** · 기타 열: {extra} · {page} / {pages} 페이지"),
    "template_stats": ("row {row} of {rows:,} · **{trained} of {total} tokens trained**{cut}",
                       "{rows:,}행 중 {row}행 · **{total}개 토큰 중 {trained}개 학습**{cut}"),
    "template_cut": (" · cut to max_length {n}", " · max_length {n}에서 잘림"),
    "adapter_saved": ("Adapter saved: chat with it on the Chat tab.", "어댑터를 저장했습니다: 대화 탭에서 대화해 보세요."),
    "progress_idle": ("No training yet. Press Start.", "아직 훈련 전입니다. 시작을 누르세요."),
    "loss_plot": ("Loss, learning rate and grad norm", "손실, 학습률, 그래디언트 노름"),
    "advanced": ("More settings", "추가 설정"),
    # chat tab
    "chat_model": ("Model to chat with", "대화할 모델"),
    "refresh": ("Refresh", "새로 고침"),
    "max_new_tokens": ("max_new_tokens", "max_new_tokens (최대 생성 토큰)"),
    "temperature": ("temperature (0 = greedy)", "temperature (0 = 탐욕적)"),
    "message": ("Message", "메시지"),
    "send": ("Send", "보내기"),
    "clear": ("Clear", "지우기"),
    "chatbot": ("Chat", "대화"),
    # runs tab
    "runs_table": ("Past runs", "지난 실행"),
    "compare": ("Overlay loss curves of", "손실 곡선 겹쳐 보기"),
    "open_run": ("Open run", "실행 열기"),
    # server-side messages
    "err_model": ("Choose a model first.", "먼저 모델을 고르세요."),
    "err_lr": ("learning_rate must be a positive number.", "learning_rate는 양수여야 합니다."),
    "err_lr_big": ("learning_rate above 1 would diverge; the chapter uses 2e-4.", "learning_rate가 1보다 크면 발산합니다. 교재는 2e-4."),
    "err_r": ("LoRA r must be at least 1.", "LoRA r은 1 이상이어야 합니다."),
    "err_alpha": ("lora_alpha must be positive.", "lora_alpha는 양수여야 합니다."),
    "err_dropout": ("lora_dropout must be between 0 and 1.", "lora_dropout은 0 이상 1 미만이어야 합니다."),
    "err_targets": ("Pick at least one target module.", "적용 모듈을 하나 이상 고르세요."),
    "err_batch": ("Batch size must be at least 1.", "배치 크기는 1 이상이어야 합니다."),
    "err_accum": ("gradient_accumulation_steps must be at least 1.", "gradient_accumulation_steps는 1 이상이어야 합니다."),
    "err_steps": ("Set max_steps or num_train_epochs above 0.", "max_steps 또는 num_train_epochs를 0보다 크게 설정하세요."),
    "err_warmup": ("warmup_steps cannot be negative.", "warmup_steps는 음수일 수 없습니다."),
    "err_logging": ("logging_steps must be at least 1.", "logging_steps는 1 이상이어야 합니다."),
    "err_wd": ("weight_decay cannot be negative.", "weight_decay는 음수일 수 없습니다."),
    "err_save": ("Checkpoint interval cannot be negative, and keep at least 1.", "체크포인트 간격은 음수 불가, 최소 1개 유지."),
    "err_max_length": ("max_length and max_seq_length must be positive.", "max_length와 max_seq_length는 양수여야 합니다."),
    "err_max_length_model": ("max_length is larger than the model's max_seq_length (Model tab).",
                             "max_length가 모델 탭의 max_seq_length보다 큽니다."),
    "err_context": ("max_seq_length is larger than the model's context length.", "max_seq_length가 모델의 문맥 길이보다 큽니다."),
    "err_choice": ("Pick one of the listed options.", "목록의 값 중 하나를 고르세요."),
    "err_rows": ("The row limit cannot be negative.", "행 수 제한은 음수일 수 없습니다."),
    "err_busy": ("Another training run is in progress ({run}). Wait for it, or stop it on the Train tab.",
                 "다른 훈련({run})이 진행 중입니다. 끝나기를 기다리거나 훈련 탭에서 중지하세요."),
    "err_no_run": ("Choose a trained run or a base model first.", "먼저 훈련된 실행이나 베이스 모델을 고르세요."),
    "err_empty_message": ("Type a message first.", "먼저 메시지를 입력하세요."),
    "hint_oom": ("Out of memory: lower the batch size or max_length, turn on load_in_4bit, or use gradient "
                 "checkpointing 'unsloth'.", "메모리 부족: 배치 크기나 max_length를 줄이거나, load_in_4bit 또는 "
                 "그래디언트 체크포인팅 'unsloth'를 켜세요."),
    "hint_data": ("The dataset has a problem: fix the row named above and start again.", "데이터셋에 문제가 있습니다. 위에 적힌 행을 고쳐 다시 시작하세요."),
    "hint_crash": ("The training process failed; the last lines of its log are below.", "훈련 프로세스가 실패했습니다. 로그의 마지막 줄을 아래에 보입니다."),
    "started": ("Training started: {run}", "훈련 시작: {run}"),
    "stop_requested": ("Stopping after the current step; a checkpoint and the adapter will be saved.",
                       "현재 스텝을 마치고 멈춥니다. 체크포인트와 어댑터를 저장합니다."),
    "cpu_4bit_note": ("No GPU here: this 4-bit model would load unquantized on CPU and a 4B model needs ~16 GB RAM "
                      "and hours per step. Use the bundled model on CPU.",
                      "GPU가 없습니다: 4비트 모델은 CPU에서 양자화 없이 적재되며 4B 모델은 약 16GB RAM과 스텝당 수 시간이 "
                      "필요합니다. CPU에서는 내장 모델을 쓰세요."),
    # export tab (issue 9)
    "tab_export": ("Export", "내보내기"),
    "export_intro": ("Take a trained run away: the adapter, a merged model, GGUF for llama.cpp and Ollama, the "
                     "Hugging Face Hub, or one Python script that trains it again. Files go to `runs/<run>/export/`.",
                     "훈련한 실행을 가져가세요: 어댑터, 병합 모델, llama.cpp·Ollama용 GGUF, Hugging Face Hub, 또는 같은 "
                     "훈련을 다시 하는 파이썬 스크립트 하나. 파일은 `runs/<run>/export/` 에 저장됩니다."),
    "export_run": ("Run (with a saved adapter)", "실행 (어댑터가 저장된 것)"),
    "export_download": ("Download", "내려받기"),
    "export_adapter": ("Adapter (.zip)", "어댑터 (.zip)"),
    "export_adapter_info": ("**LoRA adapter**: a few MB; load it on top of the base model (PEFT or Unsloth).",
                            "**LoRA 어댑터**: 몇 MB. 기본 모델 위에 얹어 씁니다 (PEFT 또는 Unsloth)."),
    "export_merged": ("Merged 16-bit model", "병합 16비트 모델"),
    "export_merged_info": ("**Merged model**: base + adapter in one 16-bit model that plain transformers loads; "
                           "as large as the base model.",
                           "**병합 모델**: 기본 모델과 어댑터를 합친 16비트 모델. transformers만으로 불러옵니다. "
                           "기본 모델만큼 큽니다."),
    "export_gguf": ("GGUF + Modelfile", "GGUF + Modelfile"),
    "export_gguf_info": ("**GGUF** for llama.cpp and Ollama (`ollama create my-model -f Modelfile`). "
                         "q8_0 is half the size of f16 and nearly as exact.",
                         "llama.cpp와 Ollama용 **GGUF** (`ollama create my-model -f Modelfile`). "
                         "q8_0은 f16의 절반 크기이며 정확도는 거의 같습니다."),
    "export_gguf_quant": ("GGUF type", "GGUF 형식"),
    "export_hub": ("Upload to the Hugging Face Hub", "Hugging Face Hub에 올리기"),
    "export_repo_id": ("Repo id (owner/name)", "저장소 id (소유자/이름)"),
    "export_token": ("Hugging Face token (write access)", "Hugging Face 토큰 (쓰기 권한)"),
    "export_token_info": ("Used for this upload only; never saved to disk.",
                          "이번 업로드에만 쓰며 디스크에 저장하지 않습니다."),
    "export_what": ("Upload", "올릴 것"),
    "export_what_adapter": ("Adapter", "어댑터"),
    "export_what_merged": ("Merged model", "병합 모델"),
    "export_private": ("Private repo", "비공개 저장소"),
    "export_push": ("Upload", "올리기"),
    "export_pushed": ("Uploaded: {url}", "올렸습니다: {url}"),
    "export_script": ("Python script", "파이썬 스크립트"),
    "export_script_info": ("The run as one readable Python file (Unsloth + TRL, settings inline, no LoRA Studio "
                           "needed). Run it from the LoRA Studio folder to train the same run again.",
                           "이 실행을 읽기 쉬운 파이썬 파일 하나로 (Unsloth + TRL, 설정 포함, LoRA 스튜디오 불필요). "
                           "LoRA 스튜디오 폴더에서 실행하면 같은 훈련을 다시 합니다."),
    "export_script_make": ("Make the script", "스크립트 만들기"),
    "err_export_no_run": ("Choose a run with a saved adapter first.", "먼저 어댑터가 저장된 실행을 고르세요."),
    "err_export_failed": ("Export failed: {error}", "내보내기 실패: {error}"),
}


def i18n() -> gr.I18n:
    return gr.I18n(en={k: v[0] for k, v in STRINGS.items()}, ko={k: v[1] for k, v in STRINGS.items()})


def lang(request: gr.Request | None) -> str:
    """'ko' when the browser prefers Korean, else 'en'."""
    try:
        accept = (request.headers.get("accept-language") or "") if request else ""
    except Exception:
        accept = ""
    first = accept.split(",")[0].strip().lower()
    return "ko" if first.startswith("ko") else "en"


def t(key: str, request: gr.Request | None = None, **fmt) -> str:
    en, ko = STRINGS.get(key, (key, key))
    text = ko if lang(request) == "ko" else en
    return text.format(**fmt) if fmt else text
