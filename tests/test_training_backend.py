"Backends: data-parallel training in two CPU processes under torchrun, the command line entry point (Modal: test_modal.py)."
import json, os, subprocess, sys
from pathlib import Path
import pytest
from fastcore.test import test_eq as _eq, test_fail as _fail
from cogniverse_ft.core import OrchestrationConfig, run_sync
from cogniverse_ft.backend import LocalTrainingBackend, launch_training
from cogniverse_ft.formatting import InstructionFormatter
from cogniverse_ft.evaluate import synthetic_routing_examples

def routing_records(n, seed=0):
    return InstructionFormatter.format_prompt_completion(synthetic_routing_examples(n, seed=seed))

def llm_config(out, **kw):
    return OrchestrationConfig(tenant_id="acme", project="cogniverse-acme", model_type="llm", agent_type="routing", output_dir=str(out), **kw)

def test_two_cpu_processes_match_one(tmp_path):
    "torchrun, 2 processes x batch 2 (gloo) against 1 process x batch 4: same examples per step, so the same losses and adapter."
    "Plain SGD keeps the comparison strict: the losses and the weights must agree to float precision."
    import torch
    from safetensors.torch import load_file
    recs = routing_records(12, seed=1)
    same = dict(max_steps=3, learning_rate=0.5, optim="sgd", lora_dropout=0.0, sampling="sequential", verbose=False)
    ddp = launch_training("sft", llm_config(tmp_path/"ddp", batch_size=2), recs, nproc=2, **same)
    one = LocalTrainingBackend().train_sft(llm_config(tmp_path/"one", batch_size=4), recs, **same)
    one = run_sync(one).result
    _eq((ddp.world_size, one.world_size), (2, 1))
    _eq(len([p for p in (tmp_path/"ddp").iterdir() if not p.name.startswith(".")]), 1)
    h2 = json.loads(Path(ddp.loss_history_path).read_text())["train"]
    h1 = json.loads(Path(one.loss_history_path).read_text())["train"]
    _eq(len(h2), 3)
    print([round(a["loss"], 5) for a in h1], [round(b["loss"], 5) for b in h2])
    assert h1[0]["loss"] - h1[-1]["loss"] > 0.1, h1  # it trains
    for a, b in zip(h1, h2): assert abs(a["loss"] - b["loss"]) < 1e-3, (h1, h2)
    w2, w1 = (load_file(str(Path(r.adapter_path)/"adapter_model.safetensors")) for r in (ddp, one))
    print(max((w2[k] - w1[k]).abs().max().item() for k in w1))
    assert max((w2[k] - w1[k]).abs().max().item() for k in w1) < 1e-4
    _eq(json.loads(Path(ddp.summary_path).read_text())["world_size"], 2)

def test_cli_trains_from_files(tmp_path):
    cfg = tmp_path/"cfg.json"; cfg.write_text(json.dumps(llm_config(tmp_path/"out", batch_size=2).to_dict()))
    data = tmp_path/"train.jsonl"; data.write_text("\n".join(json.dumps(r) for r in routing_records(4)))
    r = subprocess.run([sys.executable, "-m", "cogniverse_ft.backend", "--method", "sft", "--config", str(cfg), "--data", str(data),
                        "--set", "max_steps=1", "--set", "verbose=false", "--result", str(tmp_path/"res.json")],
                       capture_output=True, text=True, timeout=600)
    _eq(r.returncode, 0)
    res = json.loads((tmp_path/"res.json").read_text())
    _eq(json.loads(r.stdout.strip().splitlines()[-1]), res)
    _eq((res["method"], res["metrics"]["train_steps"], Path(res["adapter_path"]).parent), ("sft", 1, tmp_path/"out"))
