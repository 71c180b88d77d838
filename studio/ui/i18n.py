"""Every string the UI shows, in English and Korean.

Static text (labels, info, tab names) goes to the browser through gr.I18n and follows the
browser's language (or the footer's Settings > Language). Messages made on the server
(errors, status lines) are looked up here with the request's Accept-Language.
"""
from __future__ import annotations

import gradio as gr

from studio import data

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
    "compare": ("Overlay loss curves of", "손실 곡선 겹쳐 보기"),
    "open_run": ("Open run", "실행 열기"),
    # time estimate, sweeps, the report (issue 19)
    "phase_base_eval": ("evaluating the base model (step 0)", "베이스 모델 평가 중 (0 스텝)"),
    "est_idle": ("**Time:** the estimate appears here.", "**시간:** 예상 시간이 여기에 나옵니다."),
    "sweep_choice": ("{id} · {n} runs", "{id} · 실행 {n}개"),
    "sweep_title": ("Sweep: one run per combination of a small grid", "스윕: 작은 격자의 조합마다 실행 하나"),
    "sweep_hint": ("Pick one or two fields and their values, separated by commas. Start sweep queues one run per "
                   "combination with the rest of this form, named after its values; the Runs tab ranks them.",
                   "항목 한두 개와 값(쉼표로 구분)을 고르세요. '스윕 시작'은 나머지는 이 양식 그대로, 조합마다 실행 "
                   "하나를 값이 들어간 이름으로 대기열에 넣습니다. 실행 기록 탭이 순위를 매깁니다."),
    "sweep_field_a": ("Field", "항목"),
    "sweep_field_b": ("Second field (optional)", "두 번째 항목 (선택)"),
    "sweep_values": ("Values", "값"),
    "sweep_start": ("Start sweep", "스윕 시작"),
    "sweep_plan": ("**{n} runs**: {names}", "**실행 {n}개**: {names}"),
    "sweep_shared": ("They share one data preparation (the first run prepares the rows, the others reuse them).",
                     "데이터 준비를 한 번만 합니다 (첫 실행이 행을 준비하고 나머지는 재사용)."),
    "sweep_not_shared": ("`{field}` changes the prepared rows: each of its values prepares its own.",
                         "`{field}`는 준비된 행을 바꿉니다: 값마다 따로 준비합니다."),
    "sweep_queued": ("Sweep queued: {n} runs. The Runs tab ranks them as they finish.",
                     "스윕을 대기열에 넣었습니다: 실행 {n}개. 끝나는 대로 실행 기록 탭에서 순위를 봅니다."),
    "sweeps_title": ("Sweeps", "스윕"),
    "sweep_pick": ("Sweep", "스윕"),
    "sweep_none": ("No sweep yet: start one from the Train tab's Sweep section.",
                   "아직 스윕이 없습니다: 훈련 탭의 스윕에서 시작하세요."),
    "sweep_rank_eval": ("Ranked by best eval loss (each run's adapter is its best checkpoint).",
                        "최고 평가 손실 순 (각 실행의 어댑터는 가장 좋은 체크포인트)."),
    "sweep_rank_train": ("Ranked by final train loss: these runs hold out no eval rows (hold some out on the Dataset "
                         "tab to rank by eval loss).",
                         "최종 훈련 손실 순: 이 실행들에는 평가용 행이 없습니다 (데이터셋 탭에서 떼어 두면 평가 손실로 "
                         "순위를 매깁니다)."),
    "sweep_waiting": ("{n} of {total} runs ranked; the others have not finished.",
                      "실행 {total}개 중 {n}개 순위 매김, 나머지는 아직 끝나지 않았습니다."),
    "sweep_col_rank": ("#", "순위"),
    "sweep_col_best_eval": ("best eval loss", "최고 평가 손실"),
    "sweep_col_train": ("final train loss", "최종 훈련 손실"),
    "sweep_best_mark": ("best", "최고"),
    "sweep_chat_best": ("Chat with the best", "가장 좋은 실행과 대화"),
    "sweep_export_best": ("Export the best", "가장 좋은 실행 내보내기"),
    "sweep_no_best": ("No run of this sweep has finished with an adapter yet.",
                      "이 스윕에서 어댑터를 저장하고 끝난 실행이 아직 없습니다."),
    "report_title": ("Report", "보고서"),
    "report_run": ("Report of run", "보고서를 볼 실행"),
    "report_download": ("The report as Markdown", "보고서 (Markdown)"),
    "report_pick": ("Pick a finished run to see its report.", "끝난 실행을 고르면 보고서를 보여 줍니다."),
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
    # run states and phases (issue 7, 8)
    "state_created": ("created", "생성됨"),
    "state_queued": ("queued", "대기 중"),
    "state_starting": ("starting", "시작 중"),
    "state_running": ("running", "훈련 중"),
    "state_stopping": ("stopping", "중지 중"),
    "state_completed": ("completed", "완료"),
    "state_stopped": ("stopped", "중지됨"),
    "state_failed": ("failed", "실패"),
    "state_interrupted": ("interrupted", "중단됨"),
    "state_cancelled": ("cancelled (never started)", "취소됨 (시작 전)"),
    "phase_worker": ("starting the worker (loading Unsloth)", "워커 시작 (Unsloth 불러오는 중)"),
    "phase_model_download": ("downloading the model", "모델 내려받는 중"),
    "phase_model_load": ("loading the model", "모델 불러오는 중"),
    "phase_data": ("loading the dataset", "데이터셋 불러오는 중"),
    "phase_prepare": ("preparing rows (chat template + tokens)", "행 준비 중 (대화 템플릿 + 토큰화)"),
    "phase_trainer": ("setting up the trainer", "트레이너 준비 중"),
    "phase_first_step": ("first training step", "첫 훈련 스텝"),
    "phase_save": ("saving the adapter", "어댑터 저장 중"),
    "phase_progress": ("{done} of {total} {unit}", "{total} {unit} 중 {done}"),
    "phase_rate": ("{rate} rows/s", "초당 {rate}행"),
    "phase_compiles": ("compiling the model's kernels for this GPU: the one slow step",
                       "이 GPU에 맞게 모델의 커널을 컴파일하는 중: 이 스텝만 느립니다"),
    "phase_reused": ("reused from an earlier run", "이전 실행에서 재사용"),
    "unit_rows": ("rows", "행"),
    "unit_bytes": ("MB", "MB"),
    "phases_title": ("Time to step 1", "1 스텝까지 걸린 시간"),
    "progress_mfu": ("MFU {pct}%", "MFU {pct}%"),
    "queued_line": ("waiting for the GPU: {ahead} ahead of you{wait}", "GPU 대기 중: 앞에 {ahead}개{wait}"),
    "queued_wait": (", about {wait}", ", 약 {wait}"),
    "stop_or_cancel": ("Stop / cancel", "중지 / 취소"),
    "cancelled": ("Taken out of the queue.", "대기열에서 뺐습니다."),
    "queued_toast": ("Queued: {run} ({ahead} ahead of you)", "대기열에 넣었습니다: {run} (앞에 {ahead}개)"),
    "stopped_by_cap": ("Stopped at the deployment's limit: {why}. A checkpoint and the adapter were saved.",
                       "배포 설정의 한도에 도달해 멈췄습니다: {why}. 체크포인트와 어댑터를 저장했습니다."),
    "cap_minutes": ("{n} minutes per run", "실행당 {n}분"),
    "cap_steps": ("{n} steps per run", "실행당 {n} 스텝"),
    "resumable_hint": (" A checkpoint exists: press Resume.", " 체크포인트가 있습니다: '이어서 훈련'을 누르세요."),
    # plot
    "plot_step": ("step", "스텝"),
    "plot_loss": ("loss", "손실"),
    "plot_grad_norm": ("grad norm", "그래디언트 노름"),
    "plot_lr": ("learning rate", "학습률"),
    "plot_loss_axis": ("loss / grad norm", "손실 / 그래디언트 노름"),
    # dataset view
    "role_system": ("system", "시스템"),
    "role_user": ("user", "사용자"),
    "role_assistant": ("assistant", "어시스턴트"),
    "row_label": ("row {n}", "{n}행"),
    "fmt_sharegpt": ("ShareGPT (conversations)", "ShareGPT (conversations)"),
    "fmt_openai": ("OpenAI (messages)", "OpenAI (messages)"),
    "fmt_alpaca": ("Alpaca (instruction/output)", "Alpaca (instruction/output)"),
    # summary lines (the chapter's printout, then ours)
    "sum_trainable": ("Trainable parameters = {trainable:,} of {total:,} ({pct:.2f}% trained)",
                      "훈련 파라미터 = {total:,}개 중 {trainable:,}개 ({pct:.2f}% 훈련)"),
    "sum_dropped": ("Removed {count} out of {total} samples with no response left after truncation.",
                    "잘림 뒤 응답이 남지 않은 샘플 {total}개 중 {count}개를 뺐습니다."),
    "sum_gpu": ("GPU = {gpu}. Max memory = {total} GB. {reserved} GB of memory reserved.",
                "GPU = {gpu}. 최대 메모리 = {total} GB. {reserved} GB 예약됨."),
    "sum_seconds": ("{s} seconds used for training.", "훈련에 {s}초 사용."),
    "sum_minutes": ("{m:.2f} minutes used for training.", "훈련에 {m:.2f}분 사용."),
    "sum_loss": ("train_loss = {loss:.4f}", "train_loss = {loss:.4f}"),
    "sum_peak": ("Peak reserved memory = {v} GB.", "최대 예약 메모리 = {v} GB."),
    "sum_peak_train": ("Peak reserved memory for training = {v} GB.", "훈련용 최대 예약 메모리 = {v} GB."),
    "sum_peak_pct": ("Peak reserved memory % of max memory = {v} %.", "최대 메모리 대비 최대 예약 메모리 = {v} %."),
    "sum_peak_train_pct": ("Peak reserved memory for training % of max memory = {v} %.",
                           "최대 메모리 대비 훈련용 최대 예약 메모리 = {v} %."),
    "sum_cpu_peak": ("Process memory peak = {v} GB (CPU).", "프로세스 메모리 최대 = {v} GB (CPU)."),
    "sum_rows": ("Rows: {used:,} of {rows:,} used ({how}).", "행: {rows:,}개 중 {used:,}개 사용 ({how})."),
    "sum_rows_sampled": ("a seeded sample for max_steps", "max_steps에 맞춘 시드 고정 표본"),
    "sum_rows_all": ("all", "전체"),
    # API and access (issue 8, 11)
    "err_no_such_run": ("No such run: {run}.", "그런 실행이 없습니다: {run}."),
    "err_sign_in": ("Sign in first.", "먼저 로그인하세요."),
    "err_config": ("The run config is not valid: {problems}", "실행 설정이 올바르지 않습니다: {problems}"),
    "err_config_shape": ("the config must be a YAML mapping of sections", "설정은 섹션으로 된 YAML 매핑이어야 합니다"),
    "err_yaml": ("not valid YAML ({detail})", "올바른 YAML이 아닙니다 ({detail})"),
    "err_unknown_key": ("unknown key '{key}'", "알 수 없는 키 '{key}'"),
    "err_type": ("'{key}' must be {expected}, got {got}", "'{key}'에는 {expected}이(가) 와야 합니다 (받은 값: {got})"),
    "err_null": ("'{key}' is empty (null): give it a value or leave the line out",
                 "'{key}'가 비어 있습니다(null): 값을 넣거나 그 줄을 빼세요"),
    "type_bool": ("true or false", "true 또는 false"),
    "type_int": ("a whole number", "정수"),
    "type_float": ("a number", "숫자"),
    "type_str": ("text", "텍스트"),
    "type_list": ("a list", "목록"),
    "err_empty": ("'{field}' is empty", "'{field}'가 비어 있습니다"),
    "err_model_load": ("{detail}", "{detail}"),
    "err_data": ("{detail}", "{detail}"),
    "err_no_checkpoint": ("This run has no checkpoint to resume from.", "이 실행에는 이어서 훈련할 체크포인트가 없습니다."),
    "err_already_running": ("This run is already running or queued.", "이 실행은 이미 진행 중이거나 대기 중입니다."),
    "err_cap_rows": ("This run would use {rows:,} rows; this server allows at most {cap:,} per run.",
                     "이 실행은 {rows:,}행을 쓰지만 이 서버는 실행당 최대 {cap:,}행까지 허용합니다."),
    "err_vanished": ("the training process ended while the app was not watching (the app or the machine restarted)",
                     "앱이 지켜보지 않는 사이 훈련 프로세스가 끝났습니다 (앱 또는 컴퓨터가 다시 시작됨)"),
    "err_killed_oom": ("the training process was killed ({signal}): out of memory, or killed by hand",
                       "훈련 프로세스가 강제 종료되었습니다 ({signal}): 메모리 부족이거나 누군가 종료했습니다"),
    "err_killed": ("the training process was ended by {signal}", "훈련 프로세스가 {signal} 신호로 끝났습니다"),
    "err_exit_code": ("the training process exited with code {code} before it wrote its status",
                      "훈련 프로세스가 상태를 쓰기 전에 종료 코드 {code}로 끝났습니다"),
    "err_launch": ("the run could not be launched: {detail}", "실행을 시작할 수 없었습니다: {detail}"),
    "hint_launch": ("Nothing was trained. Fix what is named above (the run's config.yaml, or the machine) and "
                    "start again.", "아무것도 훈련하지 않았습니다. 위에 적힌 문제(실행의 config.yaml 또는 컴퓨터)를 "
                    "고친 뒤 다시 시작하세요."),
    "stopped_early": ("Stopped before training began, while {phase}; nothing was trained.",
                      "훈련이 시작되기 전에 멈췄습니다 (단계: {phase}). 훈련된 것은 없습니다."),
    "queued_needs_token": ("waiting for your Hugging Face token again (the app restarted and tokens are never "
                           "saved): enter it on the Model tab and press Resume",
                           "Hugging Face 토큰을 다시 기다립니다 (앱이 다시 시작되었고 토큰은 저장하지 않습니다): "
                           "모델 탭에 입력하고 '이어서 훈련'을 누르세요"),
    "queued_gpu_memory": ("the machine is free, but chat or an export holds GPU memory this run needs ({gb} GiB): "
                          "it starts when they let go (unload the chat model to start it now)",
                          "컴퓨터는 비었지만 대화나 내보내기가 이 실행에 필요한 GPU 메모리({gb} GiB)를 쓰고 있습니다: "
                          "그것이 끝나면 시작합니다 (지금 시작하려면 대화 모델을 내리세요)"),
    "err_disk_quota": ("Your runs and uploads take {used} GiB of your {cap} GiB: delete runs you no longer need "
                       "(Runs tab) to free at least {free_up} GiB.",
                       "내 실행과 업로드가 {cap} GiB 중 {used} GiB를 씁니다: 필요 없는 실행을 지워(실행 기록 탭) 적어도 "
                       "{free_up} GiB를 비우세요."),
    "err_disk_full": ("This server's disk for runs is full ({used} of {cap} GiB): ask its admin, or delete runs you "
                      "no longer need.", "이 서버의 실행용 디스크가 가득 찼습니다 ({cap} GiB 중 {used} GiB): 관리자에게 "
                      "알리거나 필요 없는 실행을 지우세요."),
    "delete_runs": ("Delete", "삭제"),
    "delete_confirm": ("Yes, delete", "네, 삭제합니다"),
    "delete_cancel": ("Keep them", "그대로 두기"),
    "delete_none": ("Select the runs to delete first (the list above the plot).", "먼저 삭제할 실행을 고르세요 (그래프 위 목록)."),
    "delete_ask": ("Delete {runs} with their checkpoints, adapters and exports? This cannot be undone.",
                   "{runs}을(를) 체크포인트, 어댑터, 내보낸 파일과 함께 삭제할까요? 되돌릴 수 없습니다."),
    "err_delete_live": ("This run is live: stop it before deleting it.", "실행 중입니다: 삭제하려면 먼저 중지하세요."),
    "signed_in_as": ("Signed in as **{user}**{admin}", "**{user}**(으)로 로그인{admin}"),
    "admin_badge": (" (admin: sees every run)", " (관리자: 모든 실행을 봅니다)"),
    "runs_live": ("Refreshes by itself while a run is live.", "실행 중에는 저절로 새로 고칩니다."),
    "compare_diff": ("What differs", "달라진 설정"),
    "compare_same": ("The configs are the same.", "설정이 같습니다."),
    "col_run": ("run", "실행"),
    "col_owner": ("owner", "소유자"),
    "col_model": ("model", "모델"),
    "col_data": ("dataset", "데이터셋"),
    "col_state": ("state", "상태"),
    "col_step": ("step", "스텝"),
    "col_loss": ("train loss", "훈련 손실"),
    "col_time": ("time s", "시간(초)"),
    "tokens_per_s": ("{n} tokens · {rate} tokens/s · first token {ttft} s", "{n}개 토큰 · 초당 {rate} 토큰 · 첫 토큰 {ttft}초"),
    "err_chat_target": ("Name one of run_id (one of your runs) or base_model.", "run_id(내 실행)와 base_model 중 "
                        "하나만 주세요."),
    "chat_fast16": ("16-bit chat for this 4-bit model", "이 4비트 모델을 16비트로 대화"),
    "chat_fast16_info": ("Merges the adapter into the 16-bit base: several times faster, more GPU memory.",
                         "어댑터를 16비트 베이스에 합칩니다: 몇 배 빠르지만 GPU 메모리를 더 씁니다."),
    "chat_fast16_cost": ("4-bit as trained: about {four} GiB; 16-bit merge: about {sixteen} GiB, several times faster.",
                         "훈련한 대로 4비트: 약 {four} GiB, 16비트 병합: 약 {sixteen} GiB이며 몇 배 빠릅니다."),
    "chat_on_cpu": ("On the CPU now", "지금 CPU에서"),
    "chat_on_cpu_info": ("While the GPU trains: slower, but no wait and nothing taken from the run.",
                         "GPU가 훈련 중일 때: 느리지만 기다리지 않고 실행에서 아무것도 뺏지 않습니다."),
    "chat_load": ("Load", "불러오기"),
    "chat_unload": ("Unload", "내리기"),
    "chat_loaded": ("Loaded: **{name}** · {bits}-bit · {where}", "불러옴: **{name}** · {bits}비트 · {where}"),
    "chat_on_gpu": ("on the GPU, about {gb} GiB", "GPU에서 약 {gb} GiB"),
    "chat_on_cpu_here": ("on the CPU", "CPU에서"),
    "chat_nothing_loaded": ("Nothing loaded: Send loads the chosen model, or press Load.",
                            "불러온 모델이 없습니다: 보내기를 누르면 고른 모델을 불러옵니다 (또는 '불러오기')."),
    "chat_gpu_busy": ("The GPU is training ({run}): this model needs about {need} GiB and {free} GiB are free. Chat "
                      "starts when the run ends, or tick 'On the CPU now'.",
                      "GPU가 훈련 중입니다({run}): 이 모델은 약 {need} GiB가 필요한데 {free} GiB만 비어 있습니다. "
                      "훈련이 끝나면 대화할 수 있고, 지금 하려면 '지금 CPU에서'를 고르세요."),
    "err_load_model": ("could not load '{name}': {detail}", "'{name}'을(를) 불러올 수 없습니다: {detail}"),
    "err_template": ("template '{template}' on {model}: {detail}", "{model}의 템플릿 '{template}': {detail}"),
    "model_arch": ("architecture: `{arch}`, context length {context}", "구조: `{arch}`, 문맥 길이 {context}"),
    "model_device": ("device: {device}, {free} of {total} GB free", "장치: {device}, {total} GB 중 {free} GB 여유"),
    "err_eval_size": ("The eval set must be a fraction up to 0.5 or a row count.",
                      "평가 세트는 0.5 이하의 비율이나 행 수여야 합니다."),
    "err_eval_steps": ("eval_steps and the patience cannot be negative.", "eval_steps와 인내 횟수는 음수일 수 없습니다."),
    "err_patience_no_eval": ("Early stopping needs an eval set (Dataset tab).",
                             "조기 종료에는 평가 세트가 필요합니다(데이터셋 탭)."),
    "plot_eval_loss": ("eval loss", "평가 손실"),
    "eval_size": ("Hold out for evaluation (0 = none; below 1 a fraction, else rows)",
                  "평가용으로 떼어 둘 몫 (0 = 없음, 1 미만은 비율, 그 이상은 행 수)"),
    "eval_size_info": ("Seeded: the same rows every time. Eval loss joins the live plot.",
                       "시드로 고정되어 매번 같은 행. 평가 손실이 실시간 그래프에 함께 나옵니다."),
    "eval_path": ("…or evaluate on another file / Hub split", "…또는 다른 파일 / Hub 분할로 평가"),
    "eval_steps": ("Evaluate every N steps (0 = ten times a run)", "N 스텝마다 평가 (0 = 실행당 10번)"),
    "patience": ("Early stopping patience (0 = off)", "조기 종료 인내 횟수 (0 = 끔)"),
    "patience_info": ("Stop after this many evaluations without a better eval loss; the best checkpoint is kept.",
                      "평가 손실이 이만큼 연속으로 나아지지 않으면 멈춥니다. 가장 좋은 체크포인트를 남깁니다."),
    "sample_prompts": ("Prompts answered at each evaluation", "평가 때마다 답하게 할 프롬프트"),
    "sample_prompts_info": ("Type a prompt and press Enter to add it; two held-out rows join them.",
                            "프롬프트를 입력하고 Enter로 추가하세요. 떼어 둔 행 두 개가 함께 쓰입니다."),
    "report_to": ("Also log to", "함께 기록할 곳"),
    "report_to_info": ("Your own dashboard as well (where its package is installed); the studio's plot stays.",
                       "내 대시보드에도 기록(패키지가 설치된 경우). 스튜디오 그래프는 그대로."),
    "samples_title": ("Answers at each evaluation (greedy)", "평가 때마다의 답 (탐욕적 생성)"),
    "sum_best": ("The adapter is the best checkpoint: step {step} (eval loss {loss:.4f}).",
                 "어댑터는 가장 좋은 체크포인트입니다: {step} 스텝 (평가 손실 {loss:.4f})."),
    "sum_early": ("Stopped early: the eval loss stopped improving.", "평가 손실이 더 나아지지 않아 일찍 멈췄습니다."),
    "sum_eval_rows": ("Evaluation on {n:,} rows.", "평가 {n:,}행."),
    "chat_compare": ("Compare with (answers the same message beside it)", "비교할 모델 (같은 메시지에 나란히 답함)"),
    "chat_compare_info": ("e.g. the base model against your adapter, or two runs", "예: 베이스 모델과 내 어댑터, 또는 두 실행"),
    "chat_seed": ("Sampling seed", "샘플링 시드"),
    "chat_examples": ("Examples", "예시"),
    "runs_table": ("Your runs", "내 실행 목록"),
    "dist_title": ("Several GPUs (torchrun)", "여러 GPU (torchrun)"),
    "dist_gpus": ("GPUs per node (0 = every visible GPU)", "노드당 GPU 수 (0 = 보이는 GPU 전부)"),
    "dist_strategy": ("Strategy", "전략"),
    "dist_strategy_info": ("ddp: each GPU holds the model, fastest when it fits; fsdp2: frozen weights are sharded "
                           "across GPUs, for models one card cannot hold.",
                           "ddp: GPU마다 모델 전체, 들어가면 가장 빠름. fsdp2: 동결 가중치를 GPU들에 나눠 담아 한 장에 "
                           "안 들어가는 모델용."),
    "dist_nodes": ("Nodes (machines)", "노드 (컴퓨터 수)"),
    "dist_node_rank": ("This machine's node rank", "이 컴퓨터의 노드 순번"),
    "dist_endpoint": ("Rendezvous (node 0's host:port)", "랑데부 (노드 0의 host:port)"),
    "dist_balance": ("Balance lengths across GPUs", "GPU 사이 길이 균형 맞추기"),
    "dist_balance_info": ("Each step's rows are dealt so every GPU gets about the same number of tokens: no GPU "
                          "waits for the one that drew the longest rows. Same rows per step as one GPU.",
                          "스텝마다 행을 나눌 때 GPU마다 토큰 수가 비슷하도록 배분합니다: 가장 긴 행을 받은 GPU를 "
                          "다른 GPU가 기다리지 않습니다. 스텝마다 쓰는 행은 GPU 하나일 때와 같습니다."),
    "dist_preview": ("What runs on each node", "노드마다 실행되는 명령"),
    "progress_gpus": ("peak reserved per GPU ({n}): {each} GB", "GPU별 최대 예약 ({n}장): {each} GB"),
    "chat_base": ("base model: {name}", "베이스 모델: {name}"),
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
    "export_gguf_info": ("**GGUF** for llama.cpp and Ollama (`ollama create my-model -f Modelfile`), every preset's "
                         "family. The Modelfile carries the run's chat template and the Chat tab's temperature, "
                         "max new tokens and seed. q8_0 is half the size of f16 and nearly as exact; for q4_K_M, "
                         "export f16 and run llama.cpp's `llama-quantize`.",
                         "모든 프리셋 계열의 llama.cpp·Ollama용 **GGUF** (`ollama create my-model -f Modelfile`). "
                         "Modelfile에는 실행의 대화 템플릿과 대화 탭의 temperature, 최대 새 토큰 수, 시드가 들어갑니다. "
                         "q8_0은 f16의 절반 크기이며 정확도는 거의 같습니다. q4_K_M은 f16으로 내보낸 뒤 llama.cpp의 "
                         "`llama-quantize`를 쓰세요."),
    "export_gguf_what": ("What", "무엇을"),
    "export_gguf_merged": ("Merged model (one file)", "병합 모델 (파일 하나)"),
    "export_gguf_adapter": ("Adapter alone (LoRA GGUF + base GGUF)", "어댑터만 (LoRA GGUF + 기본 모델 GGUF)"),
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


def _with_module_messages() -> None:
    """Messages that core modules define next to the code that says them (studio/distributed.py, studio/fit.py,
    studio/data.py, studio/export.py, studio/gguf_export.py, studio/checks.py, studio/preference.py, studio/timing.py,
    studio/sweep.py, studio/report.py)."""
    from studio import checks, distributed, export, fit, gguf_export, preference, report, sweep, timing
    for module in (distributed, fit, data, export, gguf_export, checks, preference, timing, sweep, report):
        STRINGS.update(module.MESSAGES)


_with_module_messages()


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


def t(key: str, request: gr.Request | None = None, /, **fmt) -> str:
    """The string for `key` in the request's language; a key that is not one (a plain message) as it is."""
    en, ko = STRINGS.get(key, (key, key))
    text = ko if lang(request) == "ko" else en
    try:
        return text.format(**fmt) if fmt else text
    except (KeyError, ValueError, IndexError):
        return text


def say(exc, request: gr.Request | None = None) -> str:
    """A refusal (studio.jobs.Refused: a code and its parameters) or a DataError in the request's language.
    A refusal's `cause` (the DataError behind err_data) is said in that language as its `detail`."""
    if isinstance(exc, data.DataError):
        return say_data(exc, request)
    params = dict(getattr(exc, "params", {}) or {})
    if "problems" in params:
        params["problems"] = " ".join(dict.fromkeys(t(p.code, request, **_worded(p.params, request))
                                                    for p in params["problems"]))
    if isinstance(params.get("cause"), data.DataError):
        params["detail"] = say_data(params.pop("cause"), request)
    return t(exc.code, request, **params)


def _worded(params: dict, request) -> dict:
    """A problem's parameters as the reader reads them (the expected type, in their language)."""
    if "expected" in params:
        return {**params, "expected": t(f"type_{params['expected']}", request)}
    return params


def say_data(exc: data.DataError, request: gr.Request | None = None) -> str:
    """A problem in the user's data, with where it is ("f.jsonl, 3행, 'messages' 필드: ..."), in the request's
    language."""
    return exc.text(lang(request))


def refusal(exc, request: gr.Request | None = None) -> gr.Error:
    return gr.Error(say(exc, request))
