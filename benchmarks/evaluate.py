"""Label-scoring evaluation vs greedy `generate()` per example: same model, same prompts, one run.

An evaluation runs the base model and the adapter over the held-out set, so both are measured: SmolLM2-135M-Instruct
with a small LoRA adapter trained here first (a few seconds; it makes generation answer with labels, so agreement
can be measured), and the same model with the adapter disabled (the base). 60 routing examples x 6 labels.

- ours: `score_batch` as the evaluator runs it: 8 examples at a time, their prompts in one pass continuing the
  shared-prefix cache, then all 8 x 6 labels in a second pass; for reference, one example at a time (`score_labels`:
  one prompt pass, one pass over its 6 labels, no shared prefix);
- baseline: `model.generate(do_sample=False)` per example, with the budget our generation mode uses (longest label
  + 8 tokens), and with the tightest budget that can still produce every label.

Methods run interleaved, batch by batch in rotating order, so a busy machine slows them alike and the ratios
stay fair. Agreement: where generation produced a valid label, the share of examples where scoring picked the same
label.
Last line: one JSON object. Run: .venv/bin/python benchmarks/evaluate.py (TORCH_THREADS=1 on a busy machine).
"""
import contextlib, json, os, time
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
from peft import LoraConfig, get_peft_model
from cogniverse_ft.models import load_causal_lm
from cogniverse_ft.evaluate import (synthetic_routing_examples, ROUTING_LABELS, label_ids, prompt_ids, score_labels,
                                    score_batch, prefix_cache, match_label)


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
    if os.environ.get("TORCH_THREADS"): torch.set_num_threads(int(os.environ["TORCH_THREADS"]))
    torch.manual_seed(0)
    model, tok = load_causal_lm(device="cpu")
    data = synthetic_routing_examples(144, seed=0)
    t0 = time.perf_counter()
    model = train_adapter(model, tok, data[:84])
    train_s = time.perf_counter() - t0
    test, labels = data[84:], list(ROUTING_LABELS)
    lab_ids = label_ids(tok, labels)
    prompts = [prompt_ids(tok, e["instruction"], e["input"]) for e in test]
    budget, tight = max(len(x) for x in lab_ids) + 8, max(len(x) for x in lab_ids)

    def gen(p, max_new):
        ids = torch.tensor([p])
        with torch.inference_mode():
            g = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new,
                               do_sample=False, pad_token_id=tok.pad_token_id)
        return tok.decode(g[0, len(p):], skip_special_tokens=True).strip()

    def measure(batch=8):
        "Every method on every batch of examples, interleaved in rotating order, so machine load hits all methods alike."
        t = time.perf_counter(); pre = prefix_cache(model, prompts); shared_s = time.perf_counter() - t
        runs = {"score": lambda ps: [labels[int(r.argmax())] for r in score_batch(model, ps, lab_ids, tok.pad_token_id, prefix=pre)],
                "score_plain": lambda ps: [labels[int(score_labels(model, p, lab_ids, tok.pad_token_id).argmax())] for p in ps],
                "generate": lambda ps: [gen(p, budget) for p in ps], "generate_tight": lambda ps: [gen(p, tight) for p in ps]}
        secs, outs = {k: 0.0 for k in runs}, {k: [] for k in runs}
        secs["score"] += shared_s  # the shared prefix is part of our cost
        names = list(runs)
        for j, i in enumerate(range(0, len(prompts), batch)):
            for name in names[j % len(names):] + names[:j % len(names)]:
                t = time.perf_counter(); outs[name] += runs[name](prompts[i:i + batch]); secs[name] += time.perf_counter() - t
        return secs, outs

    acc = lambda preds: sum(p == e["output"] for p, e in zip(preds, test)) / len(test)
    with torch.inference_mode(): score_labels(model, prompts[0], lab_ids)  # warm-up, not timed
    res = {}
    for who, ctx in (("adapter", contextlib.nullcontext), ("base", model.disable_adapter)):
        with ctx(): secs, outs = measure()
        sp, gl = outs["score"], [match_label(o, labels) for o in outs["generate"]]
        valid = [(x, y) for x, y in zip(gl, sp) if x is not None]
        res[who] = dict(score_s=secs["score"], score_plain_s=secs["score_plain"], generate_s=secs["generate"],
                        generate_tight_s=secs["generate_tight"], valid=len(valid), agree=sum(x == y for x, y in valid),
                        acc_score=acc(sp), acc_generate=acc(gl), scoring_identical=outs["score"] == outs["score_plain"])
    n, k = len(test), len(labels)
    tot = {key: sum(r[key] for r in res.values()) for key in ("score_s", "score_plain_s", "generate_s", "generate_tight_s",
                                                              "valid", "agree")}
    assert all(r["scoring_identical"] for r in res.values()), "batched shared-prefix scoring must pick the same labels"
    print(f"SmolLM2-135M-Instruct, {n} examples x {k} labels per model, base and adapter (LoRA r=8 trained {train_s:.0f}s), "
          f"CPU, torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'model':9}{'method':44}{'total s':>9}{'ms/example':>12}{'vs ours':>9}")
    for who, r in list(res.items()) + [("both", tot)]:
        for name, key in (("label scoring (ours: batches of 8, shared prefix)", "score_s"),
                          ("label scoring (one example at a time, KV reuse)", "score_plain_s"),
                          (f"generate(), up to {budget} new tokens", "generate_s"),
                          (f"generate(), up to {tight} new tokens (tightest)", "generate_tight_s")):
            print(f"{who:9}{name:44}{r[key]:9.2f}{r[key] / n * 1000:12.1f}{r[key] / r['score_s']:9.2f}x")
    for who, r in res.items():
        print(f"{who}: accuracy scoring {r['acc_score']:.1%}, generation {r['acc_generate']:.1%}; generation gave a valid label "
              f"for {r['valid']}/{n}" + (f", scoring agrees on {r['agree'] / r['valid']:.1%} of those" if r["valid"] else ""))
    agreement = tot["agree"] / tot["valid"] if tot["valid"] else None
    print(json.dumps({"score_s": round(tot["score_s"], 3), "generate_s": round(tot["generate_s"], 3),
                      "ratio": round(tot["generate_s"] / tot["score_s"], 2),
                      "agreement": None if agreement is None else round(agreement, 4), "valid_generated": tot["valid"],
                      "generate_tight_s": round(tot["generate_tight_s"], 3),
                      "ratio_tight": round(tot["generate_tight_s"] / tot["score_s"], 2),
                      "score_prompt_cache_only_s": round(tot["score_plain_s"], 3), "interleaved": True,
                      "per_model": {w: {k2: round(v, 4) if isinstance(v, float) else v for k2, v in r.items()} for w, r in res.items()},
                      "n_examples_per_model": n, "n_labels": k, "max_new_tokens": budget, "torch_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
