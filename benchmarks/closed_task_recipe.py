"""Closed-task training recipe: which settings make a LoRA adapter at least match the embedding baseline, within budget.

For one routing dataset (the demo's, or the public one of `routing_data.py`) this trains one SFT LoRA adapter per
recipe (SmolLM2-135M-Instruct, TRL through `SFTFinetuner`, the records `finetune()` would build) and scores every
adapter on the same time-split test set with the evaluator's label scoring, beside:

- base: the base model on the same prompt as the recipe (with or without the label list);
- baseline: `EmbeddingBaseline` (all-MiniLM-L6-v2 embeddings + balanced logistic regression) fitted on the same
  training split, the cheap classifier the adapter has to match.

Recipes run one after another on one machine in one process (model work never overlaps), so wall times compare.
Each row: recipe, training wall time, base / baseline / adapter accuracy, and the exact McNemar tests of the adapter
vs the base and vs the baseline. Last line: one JSON object.

Run: .venv/bin/python benchmarks/closed_task_recipe.py --dataset demo|public [--recipes a,b,...]
"""
import argparse, json, os, sys, tempfile, time
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(__file__))
from cogniverse_ft.core import LABEL_PROMPT
from cogniverse_ft.formatting import InstructionFormatter, with_label_list, label_instruction, time_split
from cogniverse_ft.evaluate import AdapterEvaluator, mcnemar_exact, compute_metrics
from cogniverse_ft.baseline import EmbeddingBaseline

RECIPES = {  # name -> SFT settings (+ label_prompt: the sentence naming the labels, None for none)
    "r0_default": dict(epochs=3, learning_rate=2e-4, label_prompt=None),  # round 1's defaults
    "r1_labels": dict(epochs=3, learning_rate=2e-4, label_prompt=LABEL_PROMPT),
    "r2_labels_2ep_4e-4": dict(epochs=2, learning_rate=4e-4, label_prompt=LABEL_PROMPT),
    "r3_labels_2ep_2e-4": dict(epochs=2, learning_rate=2e-4, label_prompt=LABEL_PROMPT),
    "r4_labels_1ep_6e-4": dict(epochs=1, learning_rate=6e-4, label_prompt=LABEL_PROMPT),
    "r5_labels_2ep_4e-4_r16": dict(epochs=2, learning_rate=4e-4, lora_r=16, lora_alpha=32, label_prompt=LABEL_PROMPT),
    "r6_labels_2ep_8e-4": dict(epochs=2, learning_rate=8e-4, label_prompt=LABEL_PROMPT),
    "r7_labels_3ep_4e-4": dict(epochs=3, learning_rate=4e-4, label_prompt=LABEL_PROMPT),
}


def demo_dataset():
    "The demo's approved routing examples, split as `finetune()` splits them (50 most recent held out)."
    from cogniverse_ft.demo_data import demo_telemetry, demo_frames
    from cogniverse_ft.extract import instruction_dataset, valid_labels
    spans, ann, _ = demo_frames(demo_telemetry("bench"))
    ds = instruction_dataset(spans, ann, "routing")
    train, test, _ = time_split(ds, 50, days=7)
    return list(train), list(test), valid_labels(ds)


def public_dataset():
    from routing_data import load_public_routing
    return load_public_routing()


def field(x, k): return x[k] if isinstance(x, dict) else getattr(x, k)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=["demo", "public"], default="demo")
    ap.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated recipe names")
    ap.add_argument("--max-steps", type=int, default=-1, help="cap the optimizer steps (smoke runs)")
    args = ap.parse_args()
    import torch
    from peft import PeftModel
    from cogniverse_ft.models import load_causal_lm
    from cogniverse_ft.sft import SFTFinetuner
    train, test, labels = demo_dataset() if args.dataset == "demo" else public_dataset()
    print(f"{args.dataset}: {len(train)} train, {len(test)} test, {len(labels)} labels, torch threads {torch.get_num_threads()}", flush=True)
    t0 = time.perf_counter()
    bl = EmbeddingBaseline().fit(train, labels)
    bl_rows = bl.run(test)
    bl_s = time.perf_counter() - t0
    bl_acc = compute_metrics([r["correct"] for r in bl_rows], [r["confidence"] for r in bl_rows], [0] * len(bl_rows)).accuracy
    print(f"baseline: {bl_acc:.1%} (fit + predict {bl_s:.1f}s)", flush=True)
    base, tok = load_causal_lm(device="cpu")
    base_rows, out = {}, []
    print(f"{'recipe':26}{'train s':>9}{'base':>8}{'baseline':>10}{'adapter':>9}{'p vs base':>11}{'p vs bl':>9}{'verdict':>9}", flush=True)
    for name in args.recipes.split(","):
        r = dict(RECIPES[name]); prompt = r.pop("label_prompt")
        recs = InstructionFormatter.format_prompt_completion(with_label_list(train, labels, prompt) if prompt else train)
        t0 = time.perf_counter()
        res = SFTFinetuner(output_dir=tempfile.mkdtemp(), agent_type="routing", batch_size=4, verbose=False,
                           max_steps=args.max_steps, **r).train(recs)
        train_s = time.perf_counter() - t0
        ex = [(label_instruction(field(e, "instruction"), labels, prompt), field(e, "input"), field(e, "output")) for e in test]
        ev = AdapterEvaluator(res.adapter_path, "routing", valid_labels=labels, baseline_model=None)
        if prompt not in base_rows: base_rows[prompt] = ev.run_model(base, tok, ex, labels)
        pm = PeftModel.from_pretrained(base, res.adapter_path); pm.eval()
        ad_rows = ev.run_model(pm, tok, ex, labels)
        base = pm.unload()
        ok = lambda rows: [x["correct"] for x in rows]
        b_acc, a_acc = sum(ok(base_rows[prompt])) / len(ex), sum(ok(ad_rows)) / len(ex)
        s_b, s_bl = mcnemar_exact(ok(base_rows[prompt]), ok(ad_rows)), mcnemar_exact(ok(bl_rows), ok(ad_rows))
        verdict = "beats" if a_acc > bl_acc else "ties" if a_acc == bl_acc else "loses"
        row = dict(dataset=args.dataset, recipe=name, settings=RECIPES[name], train_s=round(train_s, 1), steps=res.metrics.get("train_samples"),
                   base=b_acc, baseline=bl_acc, adapter=a_acc, p_vs_base=s_b.p_value, p_vs_baseline=s_bl.p_value, verdict=verdict,
                   train_loss=res.metrics.get("train_loss"), eval_loss=res.metrics.get("eval_loss"))
        out.append(row)
        print(f"{name:26}{train_s:>9.0f}{b_acc:>8.1%}{bl_acc:>10.1%}{a_acc:>9.1%}{s_b.p_value:>11.2g}{s_bl.p_value:>9.2g}{verdict:>9}", flush=True)
    print(json.dumps({"dataset": args.dataset, "n_train": len(train), "n_test": len(test), "labels": labels,
                      "baseline": {"accuracy": bl_acc, "seconds": round(bl_s, 1)}, "runs": out}))


if __name__ == "__main__":
    main()
