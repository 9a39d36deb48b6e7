"GPU code paths that can run on a CPU: precision and device selection, QLoRA's config and its clear refusal, bf16 training and scoring."
import importlib.util, json
from pathlib import Path
import pytest, torch
from fastcore.test import test_eq as _eq, test_fail as _fail
from cogniverse_ft.models import (resolve_precision, torch_dtype_for, check_quantization, qlora_config, load_causal_lm,
                                  load_tokenizer)
from cogniverse_ft.training import (TrainSettings, training_numerics, weights_dtype, apply_lora, make_lora_config,
                                    add_fast_fused_forward, run_fingerprint)
from cogniverse_ft.sft import SFTFinetuner
from cogniverse_ft.formatting import InstructionFormatter
from cogniverse_ft.evaluate import synthetic_routing_examples, ROUTING_LABELS, score_batch, prefix_cache, label_ids, prompt_ids, AdapterEvaluator

HAS_BNB = importlib.util.find_spec("bitsandbytes") is not None

def records(n, seed=0):
    return InstructionFormatter.format_prompt_completion(synthetic_routing_examples(n, seed=seed))

@pytest.fixture
def fake_cuda(monkeypatch):
    """Pretend a CUDA GPU is there, with or without native bf16. There is no GPU on the CI machines, so only the
    *selection logic* is tested this way: nothing is computed on the fake device."""
    def set_gpu(bf16=True, name="NVIDIA A10G"):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    return set_gpu

# --- precision and device selection ----------------------------------------------------------------------------------

@pytest.mark.parametrize("bf16,precision,want", [
    (True, "auto", "bf16"), (False, "auto", "fp16"), (True, "fp16", "fp16"), (True, "fp32", "fp32"), (True, "bf16", "bf16"),
    (False, "fp16", "fp16"), (False, "fp32", "fp32")])
def test_precision_on_a_cuda_gpu(fake_cuda, bf16, precision, want):
    fake_cuda(bf16=bf16)
    _eq(resolve_precision(precision, "cuda:0"), want)
    _eq(resolve_precision(precision), want)  # no device: cuda when available

def test_bf16_on_a_gpu_without_it_is_refused(fake_cuda):
    fake_cuda(bf16=False, name="Tesla T4")
    _fail(lambda: resolve_precision("bf16", "cuda:0"), contains="this GPU (Tesla T4) has no native bf16; use 'fp16' or 'auto'")
    _eq(resolve_precision("auto", "cpu"), "fp32")  # the CPU stays fp32 even where a GPU is

def test_precision_on_cpu():
    _eq([resolve_precision(p, "cpu") for p in ("auto", "fp32", "bf16")], ["fp32", "fp32", "bf16"])
    _fail(lambda: resolve_precision("fp16", "cpu"), contains="Invalid precision 'fp16': it needs a CUDA GPU")
    _fail(lambda: resolve_precision("half", "cpu"), contains="allowed: 'auto', 'fp32', 'bf16', 'fp16'")
    _eq([torch_dtype_for(p) for p in ("fp32", "bf16", "fp16")], [torch.float32, torch.bfloat16, torch.float16])
    if not torch.cuda.is_available(): _fail(lambda: resolve_precision("auto", "cuda"), contains="no CUDA GPU is available here")

def test_training_numerics_map_settings_to_weights_and_autocast(fake_cuda):
    fake_cuda(bf16=True)
    _eq(training_numerics(TrainSettings(), "cuda:0"), {"device": "cuda:0", "precision": "bf16", "weights": "bfloat16", "quantization": "none"})
    _eq(training_numerics(TrainSettings(use_lora=False), "cuda:0")["weights"], "float32")  # full fine-tuning: fp32 master weights
    args = SFTFinetuner(verbose=False).training_args("/tmp/x", False)  # train_device() is cuda:0 now
    _eq((args["bf16"], args["fp16"], args["use_cpu"]), (True, False, False))
    fake_cuda(bf16=False, name="Tesla T4")
    _eq(training_numerics(TrainSettings(), "cuda:0")["weights"], "float16")  # fp16 weights, PEFT keeps LoRA in fp32
    args = SFTFinetuner(verbose=False).training_args("/tmp/x", False)
    _eq((args["bf16"], args["fp16"]), (False, True))

# --- QLoRA -----------------------------------------------------------------------------------------------------------

def test_qlora_config_fields():
    q = qlora_config(torch.bfloat16)
    _eq((q.load_in_4bit, q.load_in_8bit, q.bnb_4bit_quant_type, q.bnb_4bit_use_double_quant, q.bnb_4bit_compute_dtype),
        (True, False, "nf4", True, torch.bfloat16))
    _eq(qlora_config(torch.float16).bnb_4bit_compute_dtype, torch.float16)

@pytest.mark.skipif(HAS_BNB, reason="bitsandbytes is installed here: its absence cannot be tested")
def test_4bit_without_bitsandbytes_says_how_to_install_it(fake_cuda, tiny):
    fake_cuda(bf16=True)  # even with a GPU: the package is missing (for real, it is not installed)
    _fail(lambda: check_quantization("4bit", "cuda:0"), contains="it needs the bitsandbytes package (not installed: pip install 'cogniverse_ft[gpu]')")

def test_4bit_on_cpu_is_refused_before_any_loading(tmp_path):
    msg = "a CUDA GPU (this run is on cpu)"
    _fail(lambda: check_quantization("4bit", "cpu"), contains=msg)
    if not HAS_BNB: _fail(lambda: check_quantization("4bit", "cpu"), contains="pip install 'cogniverse_ft[gpu]'); and " + msg)
    _fail(lambda: load_causal_lm("no-such/model-anywhere", quantization="4bit", device="cpu"), contains=msg)  # not "Could not resolve"
    ft = SFTFinetuner(base_model="no-such/model-anywhere", output_dir=str(tmp_path), quantization="4bit", verbose=False)
    _fail(lambda: ft.train(records(8)), contains=msg)
    assert not list(tmp_path.iterdir())  # nothing written
    _fail(lambda: TrainSettings(quantization="4bit", use_lora=False), contains="cannot be fine-tuned in full")
    _eq(check_quantization(None), None); _eq(check_quantization("none", "cpu"), None)

# --- loading ---------------------------------------------------------------------------------------------------------

def test_load_dtype_device_and_sdpa(tiny):
    m, _ = load_causal_lm(tiny, device="cpu")
    _eq((m.dtype, str(m.device), m.config._attn_implementation, m.name_or_path), (torch.float32, "cpu", "sdpa", tiny))
    m, _ = load_causal_lm(tiny, dtype="bf16", device="cpu")
    _eq((m.dtype, weights_dtype(m)), (torch.bfloat16, "bfloat16"))
    m, _ = load_causal_lm(tiny, dtype=torch.bfloat16, attn_implementation="eager")
    _eq((m.dtype, m.config._attn_implementation), (torch.bfloat16, "eager"))

def test_a_model_without_sdpa_falls_back_to_eager(tiny, tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM
    class NoSdpaConfig(LlamaConfig): model_type = "cogniverse_nosdpa_llama"
    class NoSdpaLlama(LlamaForCausalLM):
        config_class = NoSdpaConfig
        _supports_sdpa = False
    AutoConfig.register(NoSdpaConfig.model_type, NoSdpaConfig, exist_ok=True)
    AutoModelForCausalLM.register(NoSdpaConfig, NoSdpaLlama, exist_ok=True)
    cfg = NoSdpaConfig(**{k: v for k, v in LlamaConfig.from_pretrained(tiny).to_dict().items() if k != "model_type"})
    NoSdpaLlama(cfg).save_pretrained(tmp_path); load_tokenizer(tiny).save_pretrained(tmp_path)
    m, _ = load_causal_lm(str(tmp_path), device="cpu")
    _eq((type(m).__name__, m.config._attn_implementation), ("NoSdpaLlama", "eager"))
    _fail(lambda: load_causal_lm(str(tmp_path), attn_implementation="sdpa"), contains="scaled_dot_product_attention")  # asked for: no fallback

def test_lora_fallback_upcasts_half_weights(tiny):
    m, _ = load_causal_lm(tiny, dtype="bf16", device="cpu")
    m2, info = apply_lora(m, make_lora_config(m, target_modules=["c_attn"]))
    _eq((info["use_lora"], weights_dtype(m2), all(p.requires_grad for p in m2.parameters())), (False, "float32", True))

# --- bf16 on CPU -----------------------------------------------------------------------------------------------------

def _batch(tok, n=4):
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling
    rows = []
    for e in synthetic_routing_examples(n, seed=3):
        p = prompt_ids(tok, "Route the query to one agent: " + ", ".join(ROUTING_LABELS), e["input"])
        a = tok(e["output"] + "<|im_end|>", add_special_tokens=False).input_ids
        rows.append({"input_ids": p + a, "labels": [-100] * len(p) + a})
    return DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id)(rows)

@pytest.mark.parametrize("checkpointing", [False, True])
def test_fused_forward_in_bf16_equals_unfused(tiny, checkpointing):
    "The faster fused forward on bf16 weights (LoRA in fp32) gives the plain forward's loss, with and without prefix sharing and checkpointing (measured: equal to the last bit on the tiny Llama)."
    from trl.trainer.utils import add_fused_lm_head
    m, tok = load_causal_lm(tiny, dtype="bf16", device="cpu")
    pm, _ = apply_lora(m, make_lora_config(m, dropout=0.0))  # no dropout: train mode (checkpointing) is deterministic too
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n: p.normal_(0, 0.05)
    _eq({p.dtype for n, p in pm.named_parameters() if "lora_" in n}, {torch.float32})  # PEFT's autocast_adapter_dtype
    batch, base = _batch(tok), pm.get_base_model()
    if checkpointing: base.gradient_checkpointing_enable(); base.enable_input_require_grads(); pm.train()
    else: pm.eval()
    plain = pm(**batch).loss
    add_fused_lm_head(base, outputs=("log_probs", "entropy", "is_top1"))
    for share in (False, True):
        _eq(add_fast_fused_forward(base, share_prefix=share), True)
        out = pm(**batch, fused_lm_head=True)
        out.loss.backward()
        grads = [p.grad for n, p in pm.named_parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        pm.zero_grad()
        assert abs(out.loss.item() - plain.item()) < 2e-2 * plain.item(), (share, out.loss.item(), plain.item())

def test_bf16_training_on_cpu_agrees_with_fp32(tiny, tmp_path):
    "Same seed, data and steps: bf16 weights + bf16 autocast vs fp32. Measured max |loss diff| 2.7e-4 (2.5e-5 relative) on 4 steps."
    losses, summaries = {}, {}
    for p in ("fp32", "bf16"):
        ft = SFTFinetuner(base_model=tiny, output_dir=str(tmp_path/p), precision=p, max_steps=4, batch_size=4, learning_rate=1e-3,
                          num_threads=2, verbose=False)
        r = ft.train(records(24))
        losses[p] = [e["loss"] for e in json.loads(Path(r.loss_history_path).read_text())["train"]]
        summaries[p] = json.loads(Path(r.summary_path).read_text())
        if p == "bf16": _eq({q.dtype for n, q in ft.trainer.model.named_parameters() if "lora_" in n}, {torch.float32})
    diff = max(abs(a - b) for a, b in zip(losses["fp32"], losses["bf16"]))
    assert diff < 0.01 * max(losses["fp32"]), (diff, losses)
    _eq(summaries["bf16"]["numerics"], {"device": "cpu", "precision": "bf16", "weights": "bfloat16", "quantization": "none", "attention": "sdpa"})
    _eq(summaries["fp32"]["numerics"]["weights"], "float32")
    _eq((summaries["bf16"]["settings"]["precision"], summaries["bf16"]["settings"]["quantization"]), ("bf16", "none"))

def test_fingerprint_holds_the_resolved_precision():
    "A resumed run must compute like the interrupted one: 'auto' is stored as what it resolved to."
    fp = lambda s: run_fingerprint([], [], s.to_dict() | {"precision": training_numerics(s, "cpu")["precision"]})
    _eq(fp(TrainSettings()), fp(TrainSettings(precision="fp32")))
    assert fp(TrainSettings()) != fp(TrainSettings(precision="bf16"))
    _eq(fp(TrainSettings())["settings"]["quantization"], "none")

def test_scoring_in_bf16_matches_fp32(tiny, tmp_path):
    from peft import get_peft_model, LoraConfig
    m32, tok = load_causal_lm(tiny, device="cpu")
    m16, _ = load_causal_lm(tiny, dtype="bf16", device="cpu")
    labs = label_ids(tok, list(ROUTING_LABELS))
    ps = [prompt_ids(tok, "Route the query.", e["input"]) for e in synthetic_routing_examples(4, seed=5)]
    want = score_batch(m32, ps, labs, tok.pad_token_id, prefix=prefix_cache(m32, ps))
    got = score_batch(m16, ps, labs, tok.pad_token_id, prefix=prefix_cache(m16, ps))
    _eq(got.dtype, torch.float32)
    assert (got - want).abs().max() < 0.05 * want.abs().max(), (got, want)
    # the evaluator loads the base in bf16 when asked and scores base and adapter
    torch.manual_seed(0)
    get_peft_model(load_causal_lm(tiny, device="cpu")[0], LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(tmp_path)
    ex = synthetic_routing_examples(6, seed=2)
    ev = AdapterEvaluator(tmp_path, "routing", base_model=tiny, precision="bf16", baseline_model=None, device="cpu")
    res = ev.evaluate(ex)
    _eq((res.test_size, len(res.predictions)), (6, 6))
    assert all(0 <= p["adapter_confidence"] <= 1 for p in res.predictions)
    _fail(lambda: AdapterEvaluator(tmp_path, "routing", base_model=tiny, precision="fp8"), contains="Unknown precision 'fp8'")
    _fail(lambda: AdapterEvaluator(tmp_path, "routing", base_model=tiny, precision="fp16", baseline_model=None, device="cpu").evaluate(ex),
          contains="it needs a CUDA GPU")

# --- benchmarks/gpu_check.py -----------------------------------------------------------------------------------------

def test_gpu_check_smoke_runs_end_to_end_and_refuses_without_cuda():
    import subprocess, sys
    root = Path(__file__).resolve().parents[1]
    p = subprocess.run([sys.executable, str(root/"benchmarks"/"gpu_check.py"), "--smoke"], capture_output=True, text=True, timeout=300, cwd=root)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "| tiny random Llama | 3.2M |" in p.stdout and "tokens/s" in p.stdout, p.stdout
    r = json.loads(p.stdout.strip().splitlines()[-1])["models"][0]
    assert r["tokens_per_s"] > 0 and r["eval"]["examples_per_s"] > 0 and r["agreement"]["max_abs_loss_diff"] < 0.05, r
    if not HAS_BNB: assert "QLoRA 4-bit vs" in p.stdout and "skipped (bitsandbytes is not installed" in p.stdout
    if not torch.cuda.is_available():
        q = subprocess.run([sys.executable, str(root/"benchmarks"/"gpu_check.py")], capture_output=True, text=True, timeout=120, cwd=root)
        _eq(q.returncode, 2)
        assert "needs a CUDA GPU" in q.stderr and "--smoke" in q.stderr, q.stderr
