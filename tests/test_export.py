"""Adapter export: merged models load with plain transformers and match base + adapter, cards name the Hub id, the CLI.

A tiny random Llama (hidden size 32, 2 layers) with a word-level tokenizer built here is the base of most tests; its LoRA
adapter starts with non-zero lora_B so merging changes the weights. One test exports a LoRA adapter of the real bundled
SmolLM2-135M-Instruct, registered with the local folder `cogniverse_ft.models` resolves it to.
Tolerance of the merged-vs-unmerged comparison: max abs logit difference < 1e-4 in float32 on the tiny model (measured
4.3e-7) and < 1e-3 on SmolLM2 (30 layers, logits up to ~30; measured 3.6e-5, while merging moves the logits by up to 15).
"""
import json, logging, shutil, uuid
from pathlib import Path
import fsspec, pytest
from fastcore.test import test_eq as _eq, test_fail as _fail
from cogniverse_ft.core import DEFAULT_BASE_MODEL, atomic_write_json
from cogniverse_ft.registry import AdapterRegistry, AdapterNotFoundError, AdapterRetiredError
from cogniverse_ft.storage import download_adapter, hash_folder, AdapterIntegrityError
from cogniverse_ft.export import export_adapter, hub_model_id, read_training_summary
from cogniverse_ft.cli import main as cli_main

WORDS = ["<unk>", "<pad>", "<eos>", "show", "me", "cats", "find", "news", "video_search_agent", "text_search_agent"]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _tiny_base(folder):
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, LlamaConfig, LlamaForCausalLM
    t = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=t, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")
    tok.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }} {% endfor %}"
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64, pad_token_id=1, eos_token_id=2, bos_token_id=2)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    return folder


def _adapter(model, tok, folder, base_name, summary=True):
    "Wrap `model` in a LoRA adapter with non-zero lora_B, save it with the tokenizer and a training summary."
    import torch
    from peft import LoraConfig, get_peft_model
    from cogniverse_ft.training import TrainSettings, library_versions
    torch.manual_seed(1)
    pm = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, init_lora_weights=False, task_type="CAUSAL_LM"))
    pm.save_pretrained(folder); tok.save_pretrained(folder)
    if summary:
        s = TrainSettings(base_model=base_name, agent_type="routing", epochs=1, max_steps=2, lora_r=4, lora_alpha=8, verbose=False,
                          output_dir=str(folder.parent))
        atomic_write_json(folder / "training_summary.json", {
            "method": "sft", "target": "routing", "base_model": base_name, "settings": s.to_dict(),
            "lora_config": {"use_lora": True, "r": 4, "lora_alpha": 8, "target_modules": sorted(TARGETS)},
            "data": {"examples": 30, "train_examples": 27, "val_examples": 3},
            "metrics": {"train_loss": 1.5, "eval_loss": 1.2, "train_steps": 2}, "library_versions": library_versions(),
            "source_span_ids": ["sp1", "sp2", "sp3"]})
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    "(base folder, adapter folder) of the tiny Llama."
    from transformers import AutoModelForCausalLM, AutoTokenizer
    d = tmp_path_factory.mktemp("tiny")
    base = _tiny_base(d / "tiny-llama")
    ad = _adapter(AutoModelForCausalLM.from_pretrained(str(base)), AutoTokenizer.from_pretrained(str(base)),
                  d / "sft_routing_20260101_000000", str(base))
    return base, ad


@pytest.fixture
def home(tmp_path, monkeypatch):
    "A fresh cogniverse_ft home: the default registry lives there."
    monkeypatch.setenv("COGNIVERSE_FT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("COGNIVERSE_FT_REGISTRY_URL", raising=False)
    return tmp_path / "home"


def _register(folder, base_model, tenant="acme", version=None, **kw):
    reg = AdapterRegistry()  # the home's SQLite registry
    try: return reg.register_adapter(tenant, "routing_sft", version, str(base_model), "llm", "sft", folder, agent_type="routing", **kw)
    finally: reg.close()


def _logits(model, ids):
    import torch
    with torch.no_grad(): return model(ids).logits


def test_merged_export_loads_with_plain_transformers_and_matches_base_plus_adapter(tiny, home, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    base, ad = tiny
    aid = _register(ad, base)
    out = tmp_path / "exports" / "merged"
    r = export_adapter(aid, out, merged=True, tenant_id="acme")
    _eq((r.out, r.merged, r.base_model, r.base_is_hub_id), (str(out), True, str(base), False))
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= set(r.files), r.files
    assert not any(f.startswith("adapter_") for f in r.files), r.files  # a full model, not an adapter
    _eq(sorted(p.name for p in out.parent.iterdir()), ["merged"])  # no temp folder left beside it
    merged = AutoModelForCausalLM.from_pretrained(str(out))
    unmerged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base)), str(ad))
    plain = AutoModelForCausalLM.from_pretrained(str(base))
    tok = AutoTokenizer.from_pretrained(str(out))
    ids = tok("show me cats find news", return_tensors="pt").input_ids
    _eq(ids.tolist(), [[3, 4, 5, 6, 7]])
    lm, lp, lb = _logits(merged, ids), _logits(unmerged, ids), _logits(plain, ids)
    diff, moved = (lm - lp).abs().max().item(), (lm - lb).abs().max().item()
    assert merged.dtype == torch.float32 and diff < 1e-4, diff  # the tolerance: float32 rounding of the merge
    assert moved > 1e-3, moved  # lora_B is non-zero: the merge changed the model
    _eq(tok.chat_template, AutoTokenizer.from_pretrained(str(ad)).chat_template)  # the adapter's tokenizer, template included
    card = (out / "README.md").read_text()
    assert "library_name: transformers" in card and "no Hugging Face Hub id is recorded" in card and f"vllm serve {out}" in card


def test_merged_bfloat16(tiny, home, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM
    aid = _register(tiny[1], tiny[0])
    out = tmp_path / "bf16"
    export_adapter(aid, out, merged=True, tenant_id="acme", dtype="bfloat16")
    _eq(json.loads((out / "config.json").read_text())["dtype"], "bfloat16")
    _eq(AutoModelForCausalLM.from_pretrained(str(out), dtype="auto").dtype, torch.bfloat16)


def test_real_smollm2_adapter_names_the_hub_id(home, tmp_path):
    "A LoRA adapter of the bundled SmolLM2, registered with its local folder: the export names the Hub id everywhere."
    import torch
    from huggingface_hub import ModelCard
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from cogniverse_ft.models import resolve_causal_lm
    bundled = resolve_causal_lm(DEFAULT_BASE_MODEL).path
    _eq(hub_model_id(bundled), DEFAULT_BASE_MODEL)
    tok = AutoTokenizer.from_pretrained(str(bundled))
    ad = _adapter(AutoModelForCausalLM.from_pretrained(str(bundled), dtype=torch.float32), tok, tmp_path / "sft_routing_smollm2", str(bundled))
    _eq(json.loads((ad / "adapter_config.json").read_text())["base_model_name_or_path"], str(bundled))  # what PEFT wrote
    aid = _register(ad, bundled)
    out = tmp_path / "smollm2-adapter"
    r = export_adapter(f"routing_sft@1.0.0", out, tenant_id="acme")
    _eq((r.base_model, r.base_is_hub_id), (DEFAULT_BASE_MODEL, True))
    _eq(json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"], DEFAULT_BASE_MODEL)
    card = ModelCard.load(out / "README.md")
    _eq((card.data.base_model, card.data.library_name), (DEFAULT_BASE_MODEL, "peft"))
    for p in out.iterdir():  # no file of the export names this machine's cache folder
        if p.suffix in (".json", ".md", ".jinja"): assert str(bundled) not in p.read_text(), p.name
    summary = read_training_summary(out)
    _eq((summary["base_model"], summary["source_span_count"], "source_span_ids" in summary, "output_dir" in summary["settings"]),
        (DEFAULT_BASE_MODEL, 3, False, False))
    text = (out / "README.md").read_text()
    for want in ("tenant **acme**", "**routing** task", "training examples: 27", "validation examples: 3", "| lora_r | 4 |",
                 "Evaluation against the base model: not recorded", "| peft |", f"vllm serve {DEFAULT_BASE_MODEL} --enable-lora"):
        assert want in text, want
    # the exported adapter loads on the base, like the original
    base = AutoModelForCausalLM.from_pretrained(str(bundled), dtype=torch.float32)
    ids = tok("route this query", return_tensors="pt").input_ids
    l_orig = _logits(PeftModel.from_pretrained(base, str(ad)), ids)
    base = AutoModelForCausalLM.from_pretrained(str(bundled), dtype=torch.float32)
    _eq((_logits(PeftModel.from_pretrained(base, str(out)), ids) - l_orig).abs().max().item(), 0.0)
    # merged: plain transformers, tied embeddings kept, logits as base + adapter
    mout = tmp_path / "smollm2-merged"
    export_adapter(aid, mout, merged=True, tenant_id="acme")
    cfg = json.loads((mout / "config.json").read_text())
    _eq((cfg["model_type"], cfg["tie_word_embeddings"], "_name_or_path" in cfg), ("llama", True, False))
    diff = (_logits(AutoModelForCausalLM.from_pretrained(str(mout)), ids) - l_orig).abs().max().item()
    assert diff < 1e-3, diff
    mcard = ModelCard.load(mout / "README.md")
    _eq((mcard.data.base_model, mcard.data.library_name), (DEFAULT_BASE_MODEL, "transformers"))


def test_evaluation_from_the_registry_or_a_file(tiny, home, tmp_path, capsys):
    ev = {"base_accuracy": 0.5, "adapter_accuracy": 0.95, "p_value": 6.1e-8, "test_size": 40, "significant": True,
          "baseline_accuracy": 0.8, "p_value_vs_baseline": 0.03, "vs_baseline": "beats"}
    aid = _register(tiny[1], tiny[0], metrics={"train_loss": 1.5, "evaluation": ev})
    export_adapter(aid, tmp_path / "a", tenant_id="acme")
    card = (tmp_path / "a" / "README.md").read_text()
    for want in ("| base model | 50.0% |", "| this adapter | 95.0% |", "| embedding + logistic-regression baseline | 80.0% |",
                 "held-out test examples: 40", "adapter vs base: p = 6.1e-08", "adapter vs baseline: beats, p = 0.03"):
        assert want in card, want
    aid2 = _register(tiny[1], tiny[0])  # no evaluation in the registry: from --evaluation FILE (e.g. the demo's summary.json)
    f = tmp_path / "summary.json"; f.write_text(json.dumps({"base_accuracy": 0.25, "adapter_accuracy": 0.9, "p_value": 2.4e-4}))
    _eq(cli_main(["adapters", "export", aid2, "--tenant", "acme", "--out", str(tmp_path / "b"), "--evaluation", str(f)]), 0)
    assert "adapter vs base: p = 0.00024" in (tmp_path / "b" / "README.md").read_text()
    f.write_text("{}")
    _eq(cli_main(["adapters", "export", aid2, "--tenant", "acme", "--out", str(tmp_path / "c"), "--evaluation", str(f)]), 1)
    assert "has no base and adapter accuracy" in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_missing_records_read_not_recorded(tiny, home, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    ad = _adapter(AutoModelForCausalLM.from_pretrained(str(tiny[0])), AutoTokenizer.from_pretrained(str(tiny[0])),
                  tmp_path / "no_summary", str(tiny[0]), summary=False)
    aid = _register(ad, tiny[0])
    r = export_adapter(aid, tmp_path / "out", tenant_id="acme")
    assert "training_summary.json" not in r.files, r.files
    card = (tmp_path / "out" / "README.md").read_text()
    for want in ("training examples: not recorded", "(no `training_summary.json` in the adapter folder)",
                 "Trained with:\n\nnot recorded", "| train_loss | not recorded |"):
        assert want in card, want


def test_cli_export_and_bad_input(tiny, home, tmp_path, capsys):
    aid = _register(tiny[1], tiny[0])
    out = tmp_path / "cli"
    _eq(cli_main(["adapters", "export", "routing_sft@1.0.0", "--tenant", "acme", "--out", str(out), "--json"]), 0)
    res = json.loads(capsys.readouterr().out)
    _eq((res["adapter_id"], res["merged"], res["out"]), (aid, False, str(out)))
    before = hash_folder(out)
    # an existing non-empty --out is refused and left as it was; --force replaces it
    _eq(cli_main(["adapters", "export", aid, "--tenant", "acme", "--out", str(out), "--merged"]), 1)
    assert "exists and is not empty" in capsys.readouterr().err
    _eq(hash_folder(out), before)
    _eq(cli_main(["adapters", "export", aid, "--tenant", "acme", "--out", str(out), "--merged", "--force"]), 0)
    assert f"vllm serve {out}" in capsys.readouterr().out and (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    _eq(sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")), [])  # no temp or moved-aside folder left
    # unknown ids, another tenant's adapter, a missing --out
    _eq(cli_main(["adapters", "export", "no-such-id", "--tenant", "acme", "--out", str(tmp_path / "x")]), 1)
    assert "No adapter 'no-such-id' for tenant 'acme'" in capsys.readouterr().err
    _eq(cli_main(["adapters", "export", aid, "--tenant", "globex", "--out", str(tmp_path / "x")]), 1)
    assert "No adapter" in capsys.readouterr().err
    _eq(cli_main(["adapters", "export", aid, "--tenant", "acme"]), 2)
    assert "give --out DIR" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    _fail(export_adapter, args=("routing_sft@9.9.9", tmp_path / "x"), kwargs=dict(tenant_id="acme"), contains="No adapter 'routing_sft@9.9.9'")
    with pytest.raises(AdapterNotFoundError): export_adapter("nope", tmp_path / "x", tenant_id="acme")
    (tmp_path / "file").write_text("x")
    _fail(export_adapter, args=(aid, tmp_path / "file"), kwargs=dict(tenant_id="acme", force=True), contains="is a file, not a folder")


def test_refusals(tiny, home, tmp_path):
    aid = _register(tiny[1], tiny[0])
    reg = AdapterRegistry(tenant_id="acme")
    # a tampered file: the registry's sha256 manifest catches it, nothing is written
    bad = tmp_path / "tampered"; shutil.copytree(tiny[1], bad)
    bid = _register(bad, tiny[0])
    (bad / "adapter_model.safetensors").write_bytes(b"evil")
    with pytest.raises(AdapterIntegrityError, match="changed: adapter_model.safetensors"): export_adapter(bid, tmp_path / "t", registry=reg)
    # a full model (LoRA fell back) cannot be merged; its folder exports as it is
    full = tmp_path / "full"; shutil.copytree(tiny[0], full)
    fid = _register(full, tiny[0])
    _fail(export_adapter, args=(fid, tmp_path / "f"), kwargs=dict(registry=reg, merged=True), contains="is a full model already")
    _eq("model.safetensors" in export_adapter(fid, tmp_path / "f", registry=reg).files, True)
    assert "library_name: transformers" in (tmp_path / "f" / "README.md").read_text()
    # a retired version is never exported
    reg.retire_adapter(aid, "trained on a poisoned span")
    _fail(export_adapter, args=(aid, tmp_path / "r"), kwargs=dict(registry=reg), contains="a retired version is never exported")
    with pytest.raises(AdapterRetiredError): export_adapter(aid, tmp_path / "r", registry=reg, merged=True)
    # its run folder gone and never published: nothing to export
    gone = tmp_path / "gone"; shutil.copytree(tiny[1], gone)
    gid = _register(gone, tiny[0]); shutil.rmtree(gone)
    _fail(export_adapter, args=(gid, tmp_path / "g"), kwargs=dict(registry=reg), contains="is gone and it was never published")
    assert not any((tmp_path / n).exists() for n in ("t", "r", "g"))
    reg.close()


def test_published_copy_and_remote_destinations(tiny, home, tmp_path, caplog, monkeypatch):
    "The source can be the published copy; the destination an fsspec URI (card included) or hf:// (offline here)."
    pub = f"memory://cf-export-{uuid.uuid4().hex}/routing/1.0.0"
    from cogniverse_ft.storage import upload_adapter
    src = tmp_path / "run"; shutil.copytree(tiny[1], src)
    aid = _register(src, tiny[0], adapter_uri=upload_adapter(src, pub))
    shutil.rmtree(src)  # the run folder is gone: the export downloads the published copy (verified)
    for dest in (f"file://{tmp_path}/file-dest/a", f"memory://cf-export-{uuid.uuid4().hex}/out"):
        r = export_adapter(aid, dest, tenant_id="acme")
        got = download_adapter(dest, local_dir=tmp_path / "dl")  # verified against the manifest the upload wrote
        _eq(sorted(hash_folder(got)), r.files)
        card = (got / "README.md").read_text()
        assert "library_name: peft" in card and f'AutoPeftModelForCausalLM.from_pretrained("{dest}")' in card, card[-800:]
        shutil.rmtree(got)
    token = "hf_" + "S3cr3tT0ken" * 3
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(Exception) as e: export_adapter(aid, "hf://acme/routing-adapter", tenant_id="acme", hf_token=token)
    assert "offline" in str(e.value).lower() and token not in str(e.value) and token not in caplog.text, str(e.value)
    fs, _ = fsspec.core.url_to_fs(pub); fs.rm(pub.split("://", 1)[1].split("/")[0], recursive=True)
