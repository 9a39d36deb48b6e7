"""GPU check: LoRA SFT and evaluation on a CUDA GPU, with tokens/s, MFU, peak memory, bf16 vs fp32 loss agreement and
QLoRA memory. CPU CI never needs it; `--smoke` runs the whole flow anywhere (CPU included) on a tiny random model.

For the bundled SmolLM2-135M-Instruct (`--model`) and a random-weight model built from a config (`--random-size`:
Qwen2.5-0.5B's or -1.5B's shape, hidden 896 x 24 layers or 1536 x 28, its 151,936-row vocabulary, SmolLM2's tokenizer):

- SFT with LoRA through `SFTFinetuner` (precision auto: bf16 on Ampere and newer, fp16 on older GPUs) for `--steps`
  steps on synthetic routing examples (a long system prompt, `--context-tokens` of filler context in the user turn);
  tokens/s = non-pad training tokens per second after `--warmup` steps; MFU = 6 * N * tokens/s / the GPU's dense peak
  in that precision (N counts every weight once, tied embeddings once: the LM head's matmul; a table by
  `torch.cuda.get_device_name()`, `--peak-tflops` overrides); peak memory = `torch.cuda.max_memory_allocated`;
- evaluation: `AdapterEvaluator` in score mode (base, then base + adapter) on held-out examples: examples/s;
- agreement: the same seed, data and `--agree-steps` steps in the low precision and in fp32: max |loss difference|;
- QLoRA (4-bit NF4 through bitsandbytes) vs the bf16 run's peak memory, or a line saying why it was skipped.

Ends with a summary table and one line holding a JSON object of the numbers.

Run: .venv/bin/python benchmarks/gpu_check.py [--model ID] [--random-size 0.5b|1.5b|none] [--steps 30] [--batch-size 16]
     .venv/bin/python benchmarks/gpu_check.py --smoke      # tiny random Llama, a few steps, CPU allowed (< 60 s)
"""
import argparse, json, math, os, random, resource, sys, tempfile, time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PEAK_TFLOPS = [  # (name fragment, dense bf16/fp16 tensor TFLOP/s without sparsity); first match wins
    ("H200", 989), ("H100 PCIe", 756), ("H100 NVL", 835), ("H100", 989), ("A100", 312), ("A10G", 125), ("L40S", 362),
    ("L4", 121), ("A10", 125), ("T4", 65), ("V100", 125)]
RANDOM_SHAPES = {  # Qwen2.5-0.5B / -1.5B: hidden, intermediate, layers, heads, kv heads
    "0.5b": (896, 4864, 24, 14, 2), "1.5b": (1536, 8960, 28, 12, 2)}
SYSTEM = ("You are the router of a multimodal search assistant. Route the user's query to exactly one agent and answer "
          "with the agent name only. video_search_agent finds videos, clips and livestreams; text_search_agent finds "
          "articles, papers and news; image_search_agent finds photos and drawings; audio_analysis_agent finds podcasts, "
          "songs and recordings; summarizer_agent writes short summaries; detailed_report_agent writes long reports.")
WORDS = ("the report covers sales video clips market audio podcast image search news article summary quarterly figures "
         "customer region growth latency model adapter training data pipeline music photo drawing livestream").split()

def say(*a): print(*a, flush=True)

def peak_tflops(name:str, override):
    if override: return float(override)
    return next((v for k, v in PEAK_TFLOPS if k.lower() in name.lower()), None)

def examples(n, seed, context_tokens):
    "Synthetic routing examples, each user turn led by ~`context_tokens` words of filler context."
    from cogniverse_ft.evaluate import synthetic_routing_examples
    rng = random.Random(seed)
    out = []
    for e in synthetic_routing_examples(n, seed=seed):
        ctx = " ".join(rng.choice(WORDS) for _ in range(context_tokens))
        out.append(dict(e, instruction=SYSTEM, input=(f"Context: {ctx}\n\nQuery: {e['input']}" if context_tokens else e["input"])))
    return out

def build_random(kind, folder, device):
    "Save a random-weight model (tiny Llama, or Qwen2-shaped) with SmolLM2's tokenizer into `folder`; returns its parameter count."
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
    from cogniverse_ft.models import load_tokenizer
    tok = load_tokenizer()
    ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    if kind == "tiny":
        cfg, cls = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                               num_key_value_heads=2, max_position_embeddings=2048, **ids), LlamaForCausalLM
    else:
        h, i, l, nh, kv = RANDOM_SHAPES[kind]
        cfg, cls = Qwen2Config(vocab_size=151936, hidden_size=h, intermediate_size=i, num_hidden_layers=l, num_attention_heads=nh,
                               num_key_value_heads=kv, max_position_embeddings=32768, rope_theta=1e6, **ids), Qwen2ForCausalLM
    torch.manual_seed(0)
    with torch.device(device): model = cls(cfg)
    if kind != "tiny": model.to(torch.bfloat16)  # half the bytes to write and read; fp32 loads upcast exactly
    model.save_pretrained(folder); tok.save_pretrained(folder)
    n = sum(p.numel() for p in model.parameters())
    del model
    return n

def count_params(folder):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    with torch.device("meta"): m = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))
    return sum(p.numel() for p in m.parameters())

def timed_finetuner(warmup):
    "An `SFTFinetuner` that counts non-pad tokens and times every step (synchronized on CUDA)."
    import torch
    from transformers import TrainerCallback
    from cogniverse_ft.sft import SFTFinetuner
    class Timer(TrainerCallback):
        def __init__(self): self.marks = []
        def on_step_end(self, args, state, control, **kw):
            if torch.cuda.is_available(): torch.cuda.synchronize()
            self.marks.append((time.perf_counter(), state.num_input_tokens_seen))
        def tokens_per_s(self):
            if len(self.marks) <= warmup: return None
            (t0, n0), (t1, n1) = self.marks[warmup - 1] if warmup else (self.t_start, 0), self.marks[-1]
            return (n1 - n0) / (t1 - t0)
        def on_train_begin(self, args, state, control, **kw): self.t_start = time.perf_counter()
    class Timed(SFTFinetuner):
        def training_args(self, output_dir, has_eval):
            return super().training_args(output_dir, has_eval) | {"include_num_input_tokens_seen": "non_padding"}
    def make(**kw):
        ft = Timed(**kw); ft.timer = Timer(); ft.callbacks.append(ft.timer)
        return ft
    return make

def sft_run(make, folder, out, recs, steps, batch, precision, quantization="none", max_length=1024):
    import torch
    if torch.cuda.is_available(): torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    ft = make(base_model=folder, output_dir=str(out), agent_type="routing", precision=precision, quantization=quantization,
              max_steps=steps, batch_size=batch, learning_rate=2e-4, max_length=max_length, verbose=False, seed=42)
    t0 = time.perf_counter()
    res = ft.train(recs)
    wall = time.perf_counter() - t0
    losses = [e["loss"] for e in json.loads(Path(res.loss_history_path).read_text())["train"]]
    peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    numerics = json.loads(Path(res.summary_path).read_text())["numerics"]
    return {"adapter": res.adapter_path, "losses": losses, "tokens_per_s": ft.timer.tokens_per_s(), "peak_bytes": peak,
            "wall_s": wall, "numerics": numerics, "tokens": ft.timer.marks[-1][1] if ft.timer.marks else 0}

def evaluate_run(folder, adapter, test, batch):
    import torch
    from cogniverse_ft.models import load_causal_lm
    from cogniverse_ft.evaluate import AdapterEvaluator
    model, tok = load_causal_lm(folder)  # auto: bf16 straight onto the GPU, fp32 on CPU
    ev = AdapterEvaluator(adapter, "routing", base_model=folder, baseline_model=None, batch_size=batch)
    if torch.cuda.is_available(): torch.cuda.synchronize()
    t0 = time.perf_counter()
    r = ev.evaluate(test, model=model, tokenizer=tok)
    if torch.cuda.is_available(): torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    out = {"examples": 2 * r.test_size, "seconds": dt, "examples_per_s": 2 * r.test_size / dt, "dtype": str(model.dtype).replace("torch.", ""),
           "base_accuracy": r.base_metrics.accuracy, "adapter_accuracy": r.adapter_metrics.accuracy}
    del model
    return out

def gib(b): return "n/a" if b is None else f"{b / 2**30:.2f} GiB"

def check_model(label, folder, n_params, a, make, work, peak, precision):
    import torch
    from cogniverse_ft.formatting import InstructionFormatter
    cuda = torch.cuda.is_available()
    recs = InstructionFormatter.format_prompt_completion(examples(a.batch_size * max(a.steps, a.agree_steps), 0, a.context_tokens))
    test = examples(a.eval_examples, 1, a.context_tokens)
    r = {"model": label, "params": n_params, "precision": precision}
    say(f"\n== {label}: {n_params / 1e6:,.1f}M parameters ==")
    s = sft_run(make, folder, work/"sft", recs, a.steps, a.batch_size, precision)
    tps = s["tokens_per_s"]
    mfu = 6 * n_params * tps / (peak * 1e12) if tps and peak else None
    r |= {"tokens_per_s": tps, "mfu": mfu, "peak_memory_bytes": s["peak_bytes"], "sft_numerics": s["numerics"], "sft_wall_s": s["wall_s"],
          "final_loss": s["losses"][-1] if s["losses"] else None}
    mem = gib(s["peak_bytes"]) if cuda else f"n/a on CPU (peak RSS of the process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB)"
    say(f"SFT LoRA {precision}: {a.steps} steps x batch {a.batch_size}, {s['tokens']:,} non-pad tokens in {s['wall_s']:.1f}s (load included); "
        f"{tps:,.0f} tokens/s after {a.warmup} warm-up steps" if tps else "SFT: too few steps to time")
    say(f"  MFU {mfu:.2%} (6 x N x tokens/s / {peak:g} TFLOP/s)" if mfu is not None else "  MFU n/a (no peak known for this device; pass --peak-tflops)")
    say(f"  peak memory {mem}; weights {s['numerics']['weights']}, attention {s['numerics']['attention']}, loss {s['losses'][0]:.3f} -> {s['losses'][-1]:.3f}")
    e = evaluate_run(folder, s["adapter"], test, a.eval_batch_size)
    r["eval"] = e
    say(f"evaluation (score mode, base + adapter, {e['dtype']}): {e['examples']} examples in {e['seconds']:.2f}s = {e['examples_per_s']:,.1f} examples/s")
    low = precision if precision != "fp32" else "bf16"
    lo = sft_run(make, folder, work/"agree_lo", recs, a.agree_steps, a.batch_size, low)["losses"]
    hi = sft_run(make, folder, work/"agree_fp32", recs, a.agree_steps, a.batch_size, "fp32")["losses"]
    diff = max(abs(x - y) for x, y in zip(lo, hi))
    rel = diff / (sum(hi) / len(hi))
    r["agreement"] = {"low": low, "steps": len(hi), "max_abs_loss_diff": diff, "relative": rel, "losses_low": lo, "losses_fp32": hi}
    say(f"{low} vs fp32, {len(hi)} steps, same seed and data: max |loss diff| {diff:.3g}, {rel:.2g} of the mean fp32 loss {sum(hi) / len(hi):.3f}")
    import importlib.util
    why = ("bitsandbytes is not installed: pip install 'cogniverse_ft[gpu]'" if importlib.util.find_spec("bitsandbytes") is None
           else None if cuda else "no CUDA GPU (bitsandbytes' 4-bit kernels need one)")
    if why:
        r["qlora"] = {"skipped": why}
        say(f"QLoRA 4-bit vs {precision} peak memory: skipped ({why})")
    else:
        q = sft_run(make, folder, work/"qlora", recs, a.agree_steps, a.batch_size, precision, quantization="4bit")
        r["qlora"] = {"peak_memory_bytes": q["peak_bytes"], "tokens_per_s": q["tokens_per_s"], "ratio": q["peak_bytes"] / s["peak_bytes"]}
        say(f"QLoRA 4-bit vs {precision} peak memory: {gib(q['peak_bytes'])} vs {gib(s['peak_bytes'])} ({r['qlora']['ratio']:.2f}x), "
            f"{q['tokens_per_s'] or 0:,.0f} tokens/s")
    return r

def summary(rows):
    say("\n| model | params | precision | tokens/s | MFU | peak memory | eval examples/s | max |loss diff| vs fp32 | QLoRA peak memory |")
    say("|---|---:|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        q = r["qlora"]
        qs = f"skipped ({q['skipped'].split(':')[0]})" if "skipped" in q else f"{gib(q['peak_memory_bytes'])} ({q['ratio']:.2f}x)"
        mfu = "n/a" if r["mfu"] is None else f"{r['mfu']:.2%}"
        say(f"| {r['model']} | {r['params'] / 1e6:,.1f}M | {r['precision']} | {r['tokens_per_s'] or 0:,.0f} | {mfu} | {gib(r['peak_memory_bytes'])} | "
            f"{r['eval']['examples_per_s']:,.1f} | {r['agreement']['max_abs_loss_diff']:.3g} ({r['agreement']['low']}) | {qs} |")

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct", help="real model to check (HF id or folder; 'none' to skip)")
    p.add_argument("--random-size", default="0.5b", choices=[*RANDOM_SHAPES, "none"], help="random-weight Qwen2-shaped model built from a config")
    p.add_argument("--steps", type=int, default=30, help="SFT steps timed (the first --warmup left out)")
    p.add_argument("--warmup", type=int, default=3, help="steps not timed")
    p.add_argument("--agree-steps", type=int, default=10, help="steps of the bf16 vs fp32 (and QLoRA) runs")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--context-tokens", type=int, default=384, help="filler words of context in each user turn (longer sequences)")
    p.add_argument("--eval-examples", type=int, default=200)
    p.add_argument("--eval-batch-size", type=int, default=32)
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's dense peak in the training precision (default: a table)")
    p.add_argument("--smoke", action="store_true", help="a tiny random Llama, a few steps, on whatever device there is (CPU allowed)")
    a = p.parse_args(argv)
    import torch
    if not torch.cuda.is_available() and not a.smoke:
        print("gpu_check.py needs a CUDA GPU and torch sees none (torch.cuda.is_available() is False). "
              "Run it on a GPU machine, or add --smoke for the CPU smoke test of the same flow.", file=sys.stderr)
        return 2
    if a.smoke: a.steps, a.warmup, a.agree_steps, a.batch_size, a.context_tokens, a.eval_examples, a.eval_batch_size = 4, 1, 3, 4, 16, 12, 8
    import warnings, transformers, datasets
    transformers.logging.set_verbosity_error(); transformers.logging.disable_progress_bar(); datasets.disable_progress_bars()
    warnings.filterwarnings("ignore", category=FutureWarning)
    from cogniverse_ft.models import resolve_precision, resolve_causal_lm
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    precision = resolve_precision("auto", device)
    peak = peak_tflops(name, a.peak_tflops) if device == "cuda" else a.peak_tflops
    say(f"device: {name}; precision auto -> {precision}; dense peak {peak if peak else 'unknown'} TFLOP/s; torch {torch.__version__}, "
        f"transformers {transformers.__version__}{'; SMOKE (tiny model, few steps)' if a.smoke else ''}")
    make, rows, t0 = timed_finetuner(a.warmup), [], time.time()
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        work = Path(tmp)
        models = []
        if a.smoke: models.append(("tiny random Llama", "tiny"))
        else:
            if a.model != "none": models.append((a.model.rstrip("/").split("/")[-1], a.model))
            if a.random_size != "none": models.append((f"random Qwen2-{a.random_size}", a.random_size))
        for i, (label, src) in enumerate(models):
            folder = work/f"model{i}"
            if src in RANDOM_SHAPES or src == "tiny":
                t1 = time.time(); n = build_random(src, folder, device); say(f"\nbuilt {label} ({n / 1e6:,.1f}M parameters) in {time.time() - t1:.1f}s")
                folder = str(folder)
            else:
                folder = str(resolve_causal_lm(src).path); n = count_params(folder)
            rows.append(check_model(label, folder, n, a, make, work/f"runs{i}", peak, precision))
    summary(rows)
    say(f"total {time.time() - t0:.0f}s")
    say(json.dumps({"device": name, "precision": precision, "peak_tflops": peak, "smoke": a.smoke, "models": rows}, default=str))
    return 0

if __name__ == "__main__":
    sys.exit(main())
