"Training runs end to end with the real bundled models: bad input, atomic run folders, the LoRA fallback, split + early stopping."
import json, os, signal, subprocess, sys, time, textwrap, multiprocessing as mp
from pathlib import Path
import pytest
from fastcore.test import test_eq as _eq, test_fail as _fail
from cogniverse_ft.training import claim_run_dir, LORA_FALLBACK_WARNING
from cogniverse_ft.sft import SFTFinetuner
from cogniverse_ft.dpo import DPOFinetuner
from cogniverse_ft.embedding import EmbeddingFinetuner
from cogniverse_ft.formatting import InstructionFormatter
from cogniverse_ft.evaluate import synthetic_routing_examples, ROUTING_LABELS

def routing_records(n, seed=0):
    return InstructionFormatter.format_prompt_completion(synthetic_routing_examples(n, seed=seed))

def visible(d):
    "Entries of a folder that do not start with a dot."
    return sorted(p.name for p in Path(d).iterdir() if not p.name.startswith("."))

# --- bad input: clear errors naming the problem and the record, before any model is loaded -------------------------

@pytest.mark.parametrize("cls,data,msg", [
    (SFTFinetuner, [], "Cannot train with empty dataset. No training examples available after formatting."),
    (SFTFinetuner, [{"prompt": [{"role": "user", "content": "q"}], "completion": [{"role": "assistant", "content": "a"}]},
                    {"prompt": [{"role": "user", "content": "q"}]}], "Invalid SFT dataset at index 1: missing required fields ['completion']"),
    (SFTFinetuner, [{"messages": [{"role": "user", "content": "hi"}]}], "index 0: 'messages' has no assistant turn"),
    (SFTFinetuner, [{"text": "### Instruction:\nroute\n### Response:\nweather_agent"}, {"text": 3}], "index 1: field 'text' must be a non-empty string"),
    (DPOFinetuner, [{"prompt": "p", "chosen": "a", "rejected": "b"}] * 5 + [{"prompt": "p", "text": "t"}],
     "Invalid DPO dataset at index 5: missing required fields ['chosen', 'rejected']"),
    (DPOFinetuner, [{"prompt": "p", "chosen": "a", "rejected": "a"}], "Cannot train with empty dataset"),
    (EmbeddingFinetuner, [{"anchor": "a", "positive": "p", "negative": ""}], "Invalid embedding dataset at index 0: field 'negative' must be a non-empty string"),
    (EmbeddingFinetuner, "not records", "expected a list of dicts, got str"),
])
def test_bad_records_fail_before_loading(cls, data, msg, tmp_path):
    t0 = time.time()
    _fail(lambda: cls(output_dir=str(tmp_path)).train(data), contains=msg)
    assert time.time() - t0 < 30 and not list(tmp_path.iterdir())

def test_bad_settings():
    _fail(lambda: SFTFinetuner(batch_size=0), contains="Invalid batch_size 0")
    _fail(lambda: SFTFinetuner(sampling="shuffled"), contains="Invalid sampling 'shuffled'")
    _fail(lambda: DPOFinetuner(beta=0), contains="Invalid beta 0")
    _fail(lambda: SFTFinetuner(epochs=1).train(routing_records(4), eval_data=[{"text": "### Response:\nx"}]),
          contains="Invalid SFT validation data: alpaca records, but the training records are prompt_completion")

def test_cli_bad_files_exit_2(tmp_path, capsys):
    from cogniverse_ft.backend import main
    cfg = tmp_path/"cfg.json"; cfg.write_text(json.dumps({"tenant_id": "acme", "project": "cogniverse-acme", "model_type": "llm", "agent_type": "routing"}))
    bad = tmp_path/"data.jsonl"; bad.write_text('{"text": "a"}\n{"text": \n')
    _eq(main(["--method", "sft", "--config", str(cfg), "--data", str(bad)]), 2)
    assert f"Invalid JSON in {bad} line 2" in capsys.readouterr().err
    _eq(main(["--method", "sft", "--config", str(cfg), "--data", str(tmp_path/"missing.jsonl")]), 2)
    assert "missing.jsonl does not exist" in capsys.readouterr().err
    cfg.write_text(json.dumps({"tenant_id": "acme", "project": "cogniverse-acme", "model_type": "llm", "agent_type": "routing", "epoch": 2}))
    (tmp_path/"ok.json").write_text(json.dumps([{"text": "### Response:\nx"}]))
    _eq(main(["--method", "sft", "--config", str(cfg), "--data", str(tmp_path/"ok.json")]), 2)
    assert "Unknown OrchestrationConfig field(s) ['epoch']" in capsys.readouterr().err

# --- run folders: atomic, collision-free -----------------------------------------------------------------------------

def _claim(args):
    d, name = args
    return claim_run_dir(d, name)[0].name

def test_concurrent_claims_get_distinct_names(tmp_path):
    with mp.get_context("fork").Pool(6) as pool:
        names = pool.map(_claim, [(str(tmp_path), "sft_routing_20260101_000000")] * 12)
    _eq(len(set(names)), 12)
    assert "sft_routing_20260101_000000" in names and "sft_routing_20260101_000000_12" in names

KILLABLE = textwrap.dedent("""
    import sys, signal
    signal.signal(signal.SIGINT, signal.default_int_handler)  # shells start background jobs with SIGINT ignored: act as in a terminal
    from cogniverse_ft.sft import SFTFinetuner
    from cogniverse_ft.formatting import InstructionFormatter
    from cogniverse_ft.evaluate import synthetic_routing_examples
    recs = InstructionFormatter.format_prompt_completion(synthetic_routing_examples(64, seed=0))
    SFTFinetuner(output_dir=sys.argv[1], agent_type="routing", epochs=5, batch_size=2).train(recs)
""")

@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_run_leaves_no_adapter(tmp_path, sig):
    out = tmp_path/"adapters"
    p = subprocess.Popen([sys.executable, "-c", KILLABLE, str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in p.stdout:
        seen.append(line)
        if "[sft] training:" in line: break  # the first progress line (10% of the steps)
    else: pytest.fail("training never showed progress:\n" + "".join(seen[-20:]))
    p.send_signal(sig); p.wait(timeout=120)
    _eq(visible(out), [])
    assert not [f for f in out.rglob("adapter_config.json") if not any(part.startswith(".") for part in f.relative_to(out).parts)]
    if sig == signal.SIGINT: _eq(list(out.iterdir()), [])  # cleaned up on the way out, claim file included

# --- the LoRA fallback and the split with early stopping (real training) -----------------------------------------------

def test_lora_fallback_trains_the_full_model(tmp_path, caplog):
    import torch
    from transformers import AutoModelForCausalLM
    from cogniverse_ft.models import load_causal_lm
    caplog.set_level("WARNING", logger="cogniverse_ft")
    res = SFTFinetuner(output_dir=str(tmp_path), agent_type="routing", target_modules=["no_such_module"], max_steps=1,
                       batch_size=2, learning_rate=1e-4, verbose=False).train(routing_records(4))
    msgs = [r.getMessage() for r in caplog.records if "Failed to apply LoRA" in r.getMessage()]
    assert msgs and msgs[0].endswith("Training will proceed with full model fine-tuning."), caplog.text
    _eq((res.lora_config["use_lora"], res.lora_config["fallback_reason"].split(":")[0]), (False, "NoMatchingPeftModuleError"))
    files = set(visible(res.adapter_path))
    assert {"model.safetensors", "config.json", "tokenizer.json", "training_summary.json"} <= files and "adapter_config.json" not in files, files
    base, tok = load_causal_lm()
    tuned = AutoModelForCausalLM.from_pretrained(res.adapter_path)
    x = tok("Route: find photos of glaciers", return_tensors="pt")
    with torch.no_grad(): assert (tuned(**x).logits - base(**x).logits).abs().max() > 1e-4

def test_split_early_stopping_and_best_weights(tmp_path):
    "110 examples: 99 train, 11 validate. The validation queries repeat training queries with other agents, so the validation loss"
    "falls while the answer format is learned, then rises: early stopping fires and the best evaluation's weights are the ones saved."
    import torch
    from safetensors.torch import load_file
    ex = synthetic_routing_examples(99, seed=5)
    val = [dict(e, output=ROUTING_LABELS[(ROUTING_LABELS.index(e["output"]) + 1) % len(ROUTING_LABELS)]) for e in ex[:11]]
    recs = InstructionFormatter.format_prompt_completion(ex + val)
    ft = SFTFinetuner(output_dir=str(tmp_path), agent_type="routing", epochs=6, batch_size=8, learning_rate=2e-3, eval_steps=2)
    res = ft.train(recs)
    m = res.metrics
    _eq((m["used_validation_split"], m["train_examples"], m["val_examples"], m["stopped_early"]), (True, 99, 11, True))
    assert m["epochs_completed"] < 6 and m["best_step"] < m["train_steps"], m
    hist = json.loads(Path(res.loss_history_path).read_text())["eval"]
    losses = [e["eval_loss"] for e in hist]
    _eq(min(losses), m["eval_loss"])
    assert losses[-1] > m["eval_loss"] and len(losses) - 1 - losses.index(m["eval_loss"]) == 3, losses  # patience 3
    # the weights in memory and on disk are the best evaluation's
    assert abs(ft.trainer.evaluate()["eval_loss"] - m["eval_loss"]) < 1e-4
    saved = load_file(str(Path(res.adapter_path)/"adapter_model.safetensors"))
    live = {n.replace(".default", ""): p for n, p in ft.trainer.model.named_parameters() if p.requires_grad}
    _eq(len(saved), len(live))
    assert all(torch.equal(saved[k], live[k].detach().cpu()) for k in saved)
