"""Label-scoring evaluation vs greedy `generate()` per example, same model, same prompts, one run.

60 routing examples x 6 labels on SmolLM2-135M-Instruct with a small LoRA adapter (trained here first, a few
seconds, so that generation produces valid labels and agreement can be measured). Ours: `score_labels` (one
prompt pass, shared-prefix cache, one batched pass over the labels). Baseline: `model.generate(do_sample=False)`
per example, with the budget our generation mode uses (longest label + 8 tokens) and with the tightest budget
that can still produce every label. Last line: one JSON object.

Run: .venv/bin/python benchmarks/evaluate.py
"""
import json, os, time
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
from peft import LoraConfig, get_peft_model
from cogniverse_ft.models import load_causal_lm
from cogniverse_ft.evaluate import (synthetic_routing_examples, ROUTING_LABELS, label_ids, prompt_ids, score_labels,
                                    prefix_cache, match_label)


def train_adapter(model, tok, examples, steps=24):
    "A quick LoRA (plain PEFT, loss on label + end-of-turn tokens) so that generation answers with labels."
    lab = dict(zip(ROUTING_LABELS, label_ids(tok, list(ROUTING_LABELS))))
    pm = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=2e-3)
    seqs = [(prompt_ids(tok, e["instruction"], e["input"]), lab[e["output"]]) for e in examples]
    pm.train()
    for step in range(steps):
        batch = [seqs[(step * 8 + j) % len(seqs)] for j in range(8)]
        L = max(len(p) + len(c) for p, c in batch)
        ids = torch.full((8, L), tok.pad_token_id); y = torch.full((8, L), -100); m = torch.zeros((8, L), dtype=torch.long)
        for j, (p, c) in enumerate(batch):
            ids[j, :len(p) + len(c)] = torch.tensor(p + c); y[j, len(p):len(p) + len(c)] = torch.tensor(c); m[j, :len(p) + len(c)] = 1
        pm(input_ids=ids, attention_mask=m, labels=y).loss.backward(); opt.step(); opt.zero_grad()
    return pm.eval()


def main():
    torch.manual_seed(0)
    model, tok = load_causal_lm(device="cpu")
    data = synthetic_routing_examples(144, seed=0)
    t0 = time.perf_counter()
    model = train_adapter(model, tok, data[:84])
    train_s = time.perf_counter() - t0
    test = data[84:]
    labels = list(ROUTING_LABELS)
    lab_ids = label_ids(tok, labels)
    prompts = [prompt_ids(tok, e["instruction"], e["input"]) for e in test]
    budget = max(len(x) for x in lab_ids) + 8
    tight = max(len(x) for x in lab_ids)

    def score_all(shared):
        t = time.perf_counter()
        pre = prefix_cache(model, prompts) if shared else None
        preds = [labels[int(score_labels(model, p, lab_ids, tok.pad_token_id, prefix=pre).argmax())] for p in prompts]
        return preds, time.perf_counter() - t

    def generate_all(max_new):
        t, outs = time.perf_counter(), []
        with torch.inference_mode():
            for p in prompts:
                ids = torch.tensor([p])
                g = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new,
                                   do_sample=False, pad_token_id=tok.pad_token_id)
                outs.append(tok.decode(g[0, len(p):], skip_special_tokens=True).strip())
        return outs, time.perf_counter() - t

    score_all(True)  # warm-up (allocator, kernels), not timed
    score_preds, score_s = score_all(True)
    _, score_plain_s = score_all(False)
    gen_out, generate_s = generate_all(budget)
    gen_tight_out, generate_tight_s = generate_all(tight)
    gen_labels = [match_label(o, labels) for o in gen_out]
    valid = [(g, s) for g, s in zip(gen_labels, score_preds) if g is not None]
    agreement = sum(g == s for g, s in valid) / len(valid) if valid else None
    acc = lambda preds: sum(p == e["output"] for p, e in zip(preds, test)) / len(test)
    n, k = len(test), len(labels)
    rows = [("label scoring (ours, shared prefix)", score_s), ("label scoring (prompt cache only)", score_plain_s),
            (f"generate(), {budget} new tokens", generate_s), (f"generate(), {tight} new tokens (tightest)", generate_tight_s)]
    print(f"SmolLM2-135M-Instruct + LoRA (trained {train_s:.0f}s), {n} examples x {k} labels, CPU, torch threads "
          f"{torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'method':45}{'total s':>9}{'ms/example':>12}{'vs ours':>9}")
    for name, s in rows:
        print(f"{name:45}{s:9.2f}{s / n * 1000:12.1f}{s / score_s:9.2f}x")
    print(f"accuracy: scoring {acc(score_preds):.1%}, generation {acc(gen_labels):.1%}; generation gave a valid label for "
          f"{len(valid)}/{n} examples; scoring agrees with it on {agreement:.1%} of those" if valid else
          "generation never produced a valid label: agreement undefined")
    print(json.dumps({"score_s": round(score_s, 3), "score_prompt_cache_only_s": round(score_plain_s, 3),
                      "generate_s": round(generate_s, 3), "generate_tight_s": round(generate_tight_s, 3),
                      "ratio": round(generate_s / score_s, 2), "ratio_tight": round(generate_tight_s / score_s, 2),
                      "agreement": None if agreement is None else round(agreement, 4), "valid_generated": len(valid),
                      "n_examples": n, "n_labels": k, "max_new_tokens": budget, "accuracy_score": round(acc(score_preds), 4),
                      "accuracy_generate": round(acc(gen_labels), 4), "torch_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
