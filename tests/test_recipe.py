"The training recipe: every knob has --help text and reaches the trainer; checkpoints; a killed run resumes to the same adapter."
import json, os, signal, subprocess, sys, textwrap, dataclasses
from pathlib import Path
import pytest
from fastcore.test import test_eq as _eq, test_fail as _fail
from fastcore.docments import docments
from transformers import TrainerCallback
from cogniverse_ft.core import OrchestrationConfig
from cogniverse_ft.training import TrainSettings, SETTING_CHOICES, CHECKPOINTS, complete_checkpoints, interrupted_runs
from cogniverse_ft.sft import SFTFinetuner
from cogniverse_ft.formatting import InstructionFormatter
from cogniverse_ft.evaluate import synthetic_routing_examples

def records(n, seed=0):
    return InstructionFormatter.format_prompt_completion(synthetic_routing_examples(n, seed=seed))

# --- every knob: help text, default, choices -------------------------------------------------------------------------

KNOBS = [f for f in dataclasses.fields(TrainSettings) if f.name not in ("agent_type", "modality")]

def finetune_help() -> str:
    from cogniverse_ft.cli import build_parser
    import io, contextlib
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit): build_parser("finetune").parse_args(["finetune", "--help"])
    return " ".join(buf.getvalue().split())  # argparse wraps lines: compare on single spaces

@pytest.mark.parametrize("f", KNOBS, ids=lambda f: f.name)
def test_every_knob_has_help_choices_and_default(f):
    text, doc = finetune_help(), docments(TrainSettings)[f.name]
    flag = "--" + f.name.replace("_", "-")
    assert flag in text, flag
    after = text.split(flag, 2)[-1]  # the option's entry in the list (after its usage line)
    own = docments(OrchestrationConfig).get(f.name, doc)  # config fields carry the config's help text
    assert " ".join(own.split())[:40] in after[:400], (flag, after[:400])
    assert "(default:" in after[:600], (flag, after[:600])
    for c in SETTING_CHOICES.get(f.name, ()): assert c in after[:300], (flag, c)

# --- every knob reaches the trainer ----------------------------------------------------------------------------------

class Capture(TrainerCallback):
    "Keeps what the trainer was actually built with when training starts."
    def on_train_begin(self, args, state, control, model=None, **kw):
        import torch
        self.args, self.model, self.threads = args, model, torch.get_num_threads()

# knob -> (non-default value, how to read it back from the trainer); resume and output_dir are checked by the tests below
SET = {
    "epochs": (2, lambda t, c, r: t.args.num_train_epochs), "max_steps": (7, lambda t, c, r: t.args.max_steps),
    "batch_size": (3, lambda t, c, r: t.args.per_device_train_batch_size),
    "gradient_accumulation_steps": (2, lambda t, c, r: t.args.gradient_accumulation_steps),
    "learning_rate": (3e-4, lambda t, c, r: t.args.learning_rate), "lr_scheduler_type": ("cosine", lambda t, c, r: t.args.lr_scheduler_type.value),
    "warmup_ratio": (0.25, lambda t, c, r: t.args.warmup_steps), "weight_decay": (0.01, lambda t, c, r: t.args.weight_decay),
    "max_grad_norm": (0.5, lambda t, c, r: t.args.max_grad_norm), "optim": ("sgd", lambda t, c, r: t.args.optim.value),
    "max_length": (40, lambda t, c, r: 30 < max(len(x) for x in t.train_dataset["input_ids"]) <= 40),
    "use_lora": (True, lambda t, c, r: r.lora_config["use_lora"]),
    "lora_r": (4, lambda t, c, r: c.model.peft_config["default"].r), "lora_alpha": (8, lambda t, c, r: c.model.peft_config["default"].lora_alpha),
    "lora_dropout": (0.1, lambda t, c, r: c.model.peft_config["default"].lora_dropout),
    "target_modules": (["q_proj", "v_proj"], lambda t, c, r: sorted(c.model.peft_config["default"].target_modules)),
    "gradient_checkpointing": (True, lambda t, c, r: t.args.activation_checkpointing),
    "precision": ("bf16", lambda t, c, r: "bf16" if t.args.bf16 else "fp32"), "num_threads": (1, lambda t, c, r: c.threads),
    "share_prefix": (False, lambda t, c, r: r.settings["share_prefix"]),
    "sampling": ("sequential", lambda t, c, r: t.args.train_sampling_strategy),
    "validation_threshold": (20, lambda t, c, r: r.metrics["val_examples"] > 0),
    "val_fraction": (0.2, lambda t, c, r: r.metrics["val_examples"]), "eval_steps": (2, lambda t, c, r: t.args.eval_steps),
    "early_stopping_patience": (5, lambda t, c, r: next(cb.early_stopping_patience for cb in t.callback_handler.callbacks if hasattr(cb, "early_stopping_patience"))),
    "early_stopping_threshold": (0.5, lambda t, c, r: next(cb.early_stopping_threshold for cb in t.callback_handler.callbacks if hasattr(cb, "early_stopping_threshold"))),
    "save_steps": (4, lambda t, c, r: t.args.save_steps), "save_total_limit": (3, lambda t, c, r: t.args.save_total_limit),
    "report_to": ("tensorboard", lambda t, c, r: "tensorboard" if list(Path(r.adapter_path, "logs").rglob("events.out.tfevents*")) else "no event files"),
    "seed": (7, lambda t, c, r: t.args.seed), "verbose": (False, lambda t, c, r: r.settings["verbose"]),
}
EXPECTED = {"max_length": True, "warmup_ratio": 0.25, "validation_threshold": True, "val_fraction": 5, "target_modules": ["q_proj", "v_proj"]}

def test_every_knob_reaches_the_trainer(tiny, tmp_path, capsys):
    "One tiny run with every knob away from its default, set the way a recipe sets them (config fields + `training`)."
    own = {f.name for f in dataclasses.fields(OrchestrationConfig)}
    untested = {f.name for f in KNOBS} - set(SET) - {"base_model", "output_dir", "resume", "quantization"}  # 4bit: CUDA only, see below
    _eq(untested, set())  # a new knob needs a line in SET
    values = {k: v for k, (v, _) in SET.items()}
    cfg = OrchestrationConfig(tenant_id="acme", project="cogniverse-acme", model_type="llm", agent_type="routing", base_model=tiny,
                              output_dir=str(tmp_path), **{k: v for k, v in values.items() if k in own},
                              training={k: v for k, v in values.items() if k not in own})
    ft, cap = SFTFinetuner.from_config(cfg), Capture()
    ft.callbacks.append(cap)
    res = ft.train(records(25))
    res.settings = json.loads(Path(res.summary_path).read_text())["settings"]
    for k, (v, read) in SET.items():
        _eq((k, read(ft.trainer, cap, res)), (k, EXPECTED.get(k, v)))
    assert cap.model.base_model.model.config._name_or_path == tiny or Path(res.adapter_path).is_relative_to(tmp_path)
    cap = capsys.readouterr(); _eq((cap.out + cap.err).count("[sft] training"), 0)  # verbose=False: no progress

def test_recipe_values_are_checked_before_any_work():
    _fail(lambda: OrchestrationConfig(tenant_id="a", project="cogniverse-a", model_type="llm", agent_type="r", training={"lr_scheduler": "cosine"}),
          contains="Unknown training setting 'lr_scheduler'")
    _fail(lambda: OrchestrationConfig(tenant_id="a", project="cogniverse-a", model_type="llm", agent_type="r", training={"epochs": 2}),
          contains="'epochs': it is a config field")
    _fail(lambda: OrchestrationConfig(tenant_id="a", project="cogniverse-a", model_type="llm", agent_type="r", training={"precision": "fp8"}),
          contains="Invalid precision 'fp8'")
    _fail(lambda: TrainSettings(report_to="tensorboardx"), contains="allowed: 'none', 'tensorboard'")

def test_quantization_knob_reaches_the_run_and_is_refused_clearly_on_cpu(tiny, tmp_path):
    "quantization='4bit' (QLoRA) needs bitsandbytes and a CUDA GPU: from a recipe it reaches the run, which refuses it before loading."
    cfg = OrchestrationConfig(tenant_id="acme", project="cogniverse-acme", model_type="llm", agent_type="routing", base_model=tiny,
                              output_dir=str(tmp_path), training={"quantization": "4bit"})
    ft = SFTFinetuner.from_config(cfg)
    _eq(ft.settings.quantization, "4bit")
    _fail(lambda: ft.train(records(8)), contains="quantization='4bit' (QLoRA) cannot run here: it needs")
    _eq([p.name for p in tmp_path.iterdir()], [])  # refused before any run folder or checkpoint
    _fail(lambda: OrchestrationConfig(tenant_id="a", project="cogniverse-a", model_type="llm", agent_type="r", training={"quantization": "8bit"}),
          contains="Invalid quantization '8bit'; allowed: 'none', '4bit'")

# --- checkpoints and resume ------------------------------------------------------------------------------------------

KILL_AT = textwrap.dedent("""
    import os, sys, signal, json
    import cogniverse_ft.training as T
    from cogniverse_ft.sft import SFTFinetuner
    from cogniverse_ft.formatting import InstructionFormatter
    from cogniverse_ft.evaluate import synthetic_routing_examples
    base, out, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    class Kill(T.TrainerCallback):  # SIGKILL this process when step `kill_at` begins: a crash, nothing gets to clean up
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == kill_at: os.kill(os.getpid(), signal.SIGKILL)
    recs = InstructionFormatter.format_prompt_completion(synthetic_routing_examples(40, seed=0))
    ft = SFTFinetuner(**json.loads(sys.argv[4]), base_model=base, output_dir=out)
    ft.callbacks.append(Kill())
    ft.train(recs)
""")
RUN = dict(agent_type="routing", epochs=2, batch_size=4, save_steps=5, max_length=96, num_threads=1, verbose=False)

def adapter(path):
    from safetensors.torch import load_file
    return load_file(str(Path(path)/"adapter_model.safetensors"))

def test_killed_run_resumes_to_the_uninterrupted_adapter(tiny, tmp_path):
    "SIGKILL at step 12 of 20 (checkpoints at 5 and 10): nothing looks finished; resume=True continues from step 10."
    out = tmp_path/"adapters"
    p = subprocess.run([sys.executable, "-c", KILL_AT, tiny, str(out), "12", json.dumps(RUN)], capture_output=True, text=True, timeout=300)
    _eq(p.returncode, -signal.SIGKILL)
    _eq([x.name for x in out.iterdir() if not x.name.startswith(".")], [])  # no run folder
    runs = interrupted_runs(out)
    _eq(len(runs), 1)
    _eq([c.name for c in complete_checkpoints(runs[0]["folder"])], ["checkpoint-5", "checkpoint-10"])
    resumed = SFTFinetuner(**RUN, base_model=tiny, output_dir=str(out), resume=True).train(records(40))
    _eq(Path(resumed.adapter_path).name, runs[0]["name"])  # the interrupted run's name, now finished
    _eq(resumed.metrics["train_steps"], 20)
    assert not (out/CHECKPOINTS).exists()  # its checkpoints are gone with the run complete
    straight = SFTFinetuner(**RUN, base_model=tiny, output_dir=str(tmp_path/"straight")).train(records(40))
    a, b = adapter(resumed.adapter_path), adapter(straight.adapter_path)
    _eq(sorted(a), sorted(b))
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert diff <= 1e-6, diff  # stated tolerance: 1e-6 max abs difference (CPU, same seed); measured 0.0
    hist = json.loads(Path(resumed.loss_history_path).read_text())["train"]
    _eq([e["step"] for e in hist], list(range(1, 21)))  # the history before the kill comes back from the checkpoint

def test_resume_refuses_other_data_and_finds_nothing_gracefully(tiny, tmp_path, capsys):
    out = tmp_path/"adapters"
    p = subprocess.run([sys.executable, "-c", KILL_AT, tiny, str(out), "7", json.dumps(RUN)], capture_output=True, text=True, timeout=300)
    _eq(p.returncode, -signal.SIGKILL)
    name = interrupted_runs(out)[0]["name"]
    _fail(lambda: SFTFinetuner(**RUN, base_model=tiny, output_dir=str(out), resume=name).train(records(40, seed=1)),
          contains=f"Cannot resume {name}: this run differs from it in the data: same counts (40+0), different records or order")
    _fail(lambda: SFTFinetuner(**{**RUN, "batch_size": 2}, base_model=tiny, output_dir=str(out), resume=name).train(records(40)),
          contains="batch_size: 4 then, 2 now")
    _fail(lambda: SFTFinetuner(**RUN, base_model=tiny, output_dir=str(out), resume="sft_routing_nope").train(records(40)),
          contains=f"No interrupted run 'sft_routing_nope' to resume")
    # resume=True with other data: nothing matches, so a new run starts (and the interrupted one stays resumable)
    res = SFTFinetuner(**{**RUN, "verbose": True, "max_steps": 2}, base_model=tiny, output_dir=str(out), resume=True).train(records(40, seed=1))
    assert "No interrupted run of this data and these settings to resume" in capsys.readouterr().out
    assert Path(res.adapter_path).name != name and [r["name"] for r in interrupted_runs(out)] == [name]

def test_a_checkpoint_without_its_marker_is_ignored(tiny, tmp_path):
    "A kill while Trainer writes a checkpoint leaves it without COMPLETE: resuming takes the one before."
    out = tmp_path/"adapters"
    p = subprocess.run([sys.executable, "-c", KILL_AT, tiny, str(out), "12", json.dumps(RUN)], capture_output=True, text=True, timeout=300)
    _eq(p.returncode, -signal.SIGKILL)
    run = interrupted_runs(out)[0]
    (run["folder"]/"checkpoint-10"/"COMPLETE").unlink()
    (run["folder"]/"checkpoint-10"/"trainer_state.json").write_text('{"half": ')  # as a kill mid-write leaves it
    _eq(interrupted_runs(out)[0]["checkpoint"].name, "checkpoint-5")
    res = SFTFinetuner(**RUN, base_model=tiny, output_dir=str(out), resume=True).train(records(40))
    _eq(res.metrics["train_steps"], 20)

# --- the recipe file through the CLI, killed and resumed, against a real Phoenix --------------------------------------

CLI_KILL_AT = textwrap.dedent("""
    import os, sys, signal
    import cogniverse_ft.training as T
    class Kill(T.TrainerCallback):  # SIGKILL the CLI process when step `kill_at` begins
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == int(os.environ["KILL_AT_STEP"]): os.kill(os.getpid(), signal.SIGKILL)
    init = T.Finetuner.__init__
    def with_kill(self, **kw): init(self, **kw); self.callbacks.append(Kill())
    if os.environ.get("KILL_AT_STEP"): T.Finetuner.__init__ = with_kill
    from cogniverse_ft.cli import main
    sys.exit(main(sys.argv[1:]))
""")

def test_recipe_file_runs_and_a_killed_cli_run_resumes(phoenix_server, tiny, tmp_path):
    "finetune --config recipe.yaml: the training section reaches the run (a flag wins over it); SIGKILL registers nothing; --resume finishes it."
    from cogniverse_ft.demo_data import seed_demo_telemetry
    from cogniverse_ft.registry import AdapterRegistry
    seed_demo_telemetry("recipe", base_url=phoenix_server.url, progress=False, n_routing=60, n_pairs=0, n_rejected=0, n_unreviewed=0,
                        n_profile=0, n_entity=0, n_search=0, n_sessions=0, bad_spans=False)
    recipe = tmp_path/"recipe.yaml"
    recipe.write_text(textwrap.dedent(f"""
        tenant: recipe
        tasks:
          routing: {{}}
        training:
          base_model: {tiny}
          epochs: 1
          batch_size: 4
          max_length: 96
          save_steps: 4
          lr_scheduler_type: cosine
          lora_r: 4
          num_threads: 1
    """))
    home, out = tmp_path/"home", tmp_path/"adapters"
    env = {**os.environ, "COGNIVERSE_FT_HOME": str(home)}
    cmd = [sys.executable, "-c", CLI_KILL_AT, "finetune", "--config", str(recipe), "--url", phoenix_server.url, "--output-dir", str(out),
           "--no-evaluate-after-training", "--no-generate-synthetic", "--batch-size", "5", "--json"]
    killed = subprocess.run(cmd, env=env | {"KILL_AT_STEP": "6"}, capture_output=True, text=True, timeout=600)
    _eq(killed.returncode, -signal.SIGKILL)
    registry_db = home/"registry"/"registry.db"
    registered = lambda: AdapterRegistry(f"sqlite:///{registry_db}").list_adapters("recipe") if registry_db.exists() else []
    _eq((registered(), [x.name for x in out.iterdir() if not x.name.startswith(".")]), ([], []))  # nothing registered, no run folder
    run = interrupted_runs(out)[0]
    _eq([c.name for c in complete_checkpoints(run["folder"])], ["checkpoint-4"])
    _eq(run["meta"]["fingerprint"]["settings"]["batch_size"], 5)  # the flag won over the file's 4
    done = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=600)
    _eq(done.returncode, 0)
    res = json.loads(done.stdout)
    _eq(Path(res["adapter_path"]).name, run["name"])  # the interrupted run, finished
    s = json.loads((Path(res["adapter_path"])/"training_summary.json").read_text())["settings"]
    _eq((s["base_model"], s["epochs"], s["batch_size"], s["max_length"], s["save_steps"], s["lr_scheduler_type"], s["lora_r"]),
        (tiny, 1, 5, 96, 4, "cosine", 4))
    i = cmd.index("--output-dir")
    straight = subprocess.run(cmd[:i + 1] + [str(tmp_path/"straight")] + cmd[i + 2:], env=env, capture_output=True, text=True, timeout=600)
    _eq(straight.returncode, 0)
    a, b = adapter(res["adapter_path"]), adapter(json.loads(straight.stdout)["adapter_path"])
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6  # resumed == uninterrupted
    _eq(sorted(Path(x.adapter_path).parent.name for x in registered()), ["adapters", "straight"])  # only finished runs registered

def test_the_demo_recipe_file_is_what_the_demo_trains_with():
    "recipes/demo.yaml writes out every knob at the value the demo uses (the config's defaults and the closed-task SFT recipe)."
    from cogniverse_ft.contract import load_contract
    from cogniverse_ft.core import default_learning_rate
    root = Path(__file__).resolve().parents[1]
    recipe = load_contract(root/"recipes"/"demo.yaml").tasks["routing"].training
    demo = OrchestrationConfig(tenant_id="demo", project="cogniverse-demo", model_type="llm", agent_type="routing",
                               learning_rate=default_learning_rate("sft", True))
    expected = TrainSettings.from_config(demo).to_dict()
    _eq({k: v for k, v in recipe.items()}, {k: expected[k] for k in recipe})
    _eq(set(expected) - set(recipe), {"output_dir", "agent_type", "modality", "resume", "num_threads", "share_prefix", "max_steps", "verbose"})

def test_training_leaves_the_host_random_generators_as_they_were(tiny, tmp_path):
    "Training seeds Python's, numpy's and torch's global generators; a host app (e.g. an OTel SDK drawing span ids) must not see that."
    import random, numpy as np, torch
    random.seed(1); np.random.seed(1); torch.manual_seed(1)
    random.random(); np.random.rand(); torch.rand(1)
    state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    want = random.random(), np.random.rand(), torch.rand(1).item()
    random.setstate(state[0]); np.random.set_state(state[1]); torch.set_rng_state(state[2])
    SFTFinetuner(**{**RUN, "max_steps": 2}, base_model=tiny, output_dir=str(tmp_path)).train(records(8))
    _eq((random.random(), np.random.rand(), torch.rand(1).item()), want)
