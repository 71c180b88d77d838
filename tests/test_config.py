import pytest

from studio.config import ConfigError, Problem, RunConfig, chapter_recipe, validate


def test_yaml_round_trip_keeps_every_field():
    cfg = chapter_recipe()
    cfg.lora.target_modules = ["q_proj", "v_proj"]
    cfg.train.learning_rate = 1.5e-4
    again = RunConfig.from_yaml(cfg.to_yaml())
    assert again == cfg
    assert again.to_yaml() == cfg.to_yaml()


def test_chapter_recipe_matches_the_notebook():
    cfg = chapter_recipe()
    assert cfg.model.name == "unsloth/Qwen3-4B-unsloth-bnb-4bit" and cfg.model.load_in_4bit
    assert (cfg.lora.r, cfg.lora.lora_alpha, cfg.lora.lora_dropout) == (8, 8, 0.0)
    assert cfg.lora.use_gradient_checkpointing == "unsloth" and len(cfg.lora.target_modules) == 7
    t = cfg.train
    assert (t.per_device_train_batch_size, t.gradient_accumulation_steps, t.max_steps) == (2, 4, 60)
    assert (t.learning_rate, t.optim, t.lr_scheduler_type, t.seed) == (2e-4, "adamw_8bit", "linear", 3407)
    assert cfg.data.path == "mlabonne/FineTome-100k" and cfg.data.template == "qwen-3"


def test_yaml_coerces_strings_and_rejects_unknown_keys():
    cfg = RunConfig.from_yaml("train:\n  learning_rate: '2e-4'\n  packing: 'true'\n")
    assert cfg.train.learning_rate == 2e-4 and cfg.train.packing is True
    with pytest.raises(ConfigError) as info:
        RunConfig.from_yaml("train:\n  lr: 1\n  seed: x\nlora:\n  r: 2.5\nmodle: {}\n")
    codes = {(p.field, p.code) for p in info.value.problems}
    assert codes == {("train.lr", "err_unknown_key"), ("train.seed", "err_type"), ("lora.r", "err_type"),
                     ("modle", "err_unknown_key")}  # every problem at once, each a code the UI translates
    with pytest.raises(ConfigError) as info:
        RunConfig.from_yaml("train: [1, 2")
    assert info.value.problems[0].code == "err_yaml"


def test_form_keys_round_trip():
    keys = ["run_name", "train.learning_rate", "lora.target_modules", "data.train_on_responses_only"]
    cfg = chapter_recipe()
    assert RunConfig.from_flat(keys, cfg.to_flat(keys)).to_flat(keys) == cfg.to_flat(keys)
    with pytest.raises(ConfigError) as info:
        RunConfig.from_flat(keys, ["x", None, ["q_proj"], True])
    assert info.value.problems == [Problem("train.learning_rate", "err_empty", {"field": "learning_rate"})]


def test_every_code_has_both_languages():
    from studio.ui.i18n import STRINGS
    cfg = RunConfig()
    cfg.train.learning_rate, cfg.lora.r, cfg.train.optim = -1, 0, "x"
    for problem in validate(cfg):
        assert problem.code in STRINGS and all(STRINGS[problem.code])


@pytest.mark.parametrize("section,field,value,key", [
    ("train", "learning_rate", 0.0, "err_lr"),
    ("train", "learning_rate", -1e-4, "err_lr"),
    ("train", "learning_rate", float("nan"), "err_lr"),
    ("lora", "r", 0, "err_r"),
    ("lora", "lora_alpha", 0, "err_alpha"),
    ("lora", "lora_dropout", 1.0, "err_dropout"),
    ("lora", "target_modules", [], "err_targets"),
    ("train", "per_device_train_batch_size", 0, "err_batch"),
    ("train", "gradient_accumulation_steps", 0, "err_accum"),
    ("train", "logging_steps", 0, "err_logging"),
    ("train", "warmup_steps", -1, "err_warmup"),
    ("train", "max_length", 100000, "err_max_length_model"),
    ("train", "optim", "adamw_9bit", "err_choice"),
])
def test_validation_refuses_bad_values(section, field, value, key):
    cfg = RunConfig()
    setattr(getattr(cfg, section), field, value)
    assert key in [p.code for p in validate(cfg)]


def test_validation_needs_steps_or_epochs_and_fits_context():
    cfg = RunConfig()
    cfg.train.max_steps, cfg.train.num_train_epochs = 0, 0
    assert Problem("max_steps", "err_steps") in validate(cfg)
    cfg = RunConfig()
    cfg.model.max_seq_length = 4096
    assert Problem("max_seq_length", "err_context") in validate(cfg, context_length=2048)
    assert validate(RunConfig()) == [] and validate(chapter_recipe()) == []


@pytest.mark.parametrize("yaml_text,field,code", [
    ("train:\n  packing: ture\n", "train.packing", "err_type"),       # a typo is not False
    ("train:\n  packing: 2\n", "train.packing", "err_type"),
    ("train:\n  max_steps: 2.5\n", "train.max_steps", "err_type"),
    ("train:\n  max_steps: true\n", "train.max_steps", "err_type"),   # a boolean is not 1
    ("train:\n  learning_rate: fast\n", "train.learning_rate", "err_type"),
    ("train:\n  optim: null\n", "train.optim", "err_null"),           # null is not the text "None"
    ("data:\n  split: ~\n", "data.split", "err_null"),
    ("run_name: null\n", "run_name", "err_null"),
    ("run_name: yes\n", "run_name", "err_type"),                      # YAML's yes is a boolean, not a name
    ("lora:\n  target_modules: [q_proj, null]\n", "lora.target_modules", "err_type"),
    ("distributed:\n  balance: maybe\n", "distributed.balance", "err_type"),
    ("distributed:\n  gpus: two\n", "distributed.gpus", "err_type"),
])
def test_a_config_typo_is_refused_not_guessed(yaml_text, field, code):
    with pytest.raises(ConfigError) as info:
        RunConfig.from_yaml(yaml_text)
    assert [(p.field, p.code) for p in info.value.problems] == [(field, code)]


def test_what_yaml_or_a_form_writes_for_a_right_value_is_taken():
    cfg = RunConfig.from_yaml("run_name: 2023\ntrain:\n  learning_rate: '2e-4'\n  packing: 'yes'\n  max_steps: '30'\n"
                              "  seed: 7.0\ndata:\n  split: 2023\nlora:\n  target_modules: \"q_proj\\nv_proj\"\n")
    assert (cfg.run_name, cfg.train.learning_rate, cfg.train.packing, cfg.train.max_steps, cfg.train.seed,
            cfg.data.split, cfg.lora.target_modules) == ("2023", 2e-4, True, 30, 7, "2023", ["q_proj", "v_proj"])


def test_type_problems_are_said_in_both_languages():
    from conftest import EN, KO
    from studio.jobs import Refused
    from studio.ui.i18n import say
    with pytest.raises(ConfigError) as info:
        RunConfig.from_yaml("train:\n  packing: ture\n  optim: null\n")
    refusal = Refused("err_config", problems=info.value.problems)
    assert "'train.packing' must be true or false, got 'ture'" in say(refusal, EN)
    assert "'train.packing'에는 true 또는 false이(가) 와야 합니다" in say(refusal, KO)
    assert "'train.optim'가 비어 있습니다(null)" in say(refusal, KO)
