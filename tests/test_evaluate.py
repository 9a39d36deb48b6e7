"""Adapter evaluation: McNemar against hand-worked and brute-force numbers, a real LoRA adapter trained here that
beats the base on the routing task, generation mode, and bad input / failures that never break a training run."""
import json, math, random, time
from pathlib import Path
import pytest, torch
from fastcore.test import test_eq as _eq, test_close as _close, test_fail as _fail
from cogniverse_ft.evaluate import (mcnemar_exact, AdapterEvaluator, EvaluationResult, FailedEvaluation, evaluate_adapter,
                                    synthetic_routing_examples, ROUTING_LABELS, label_ids, prompt_ids, expected_calibration_error)


def test_mcnemar_hand_worked():
    "20 paired outcomes: 6 both right, 4 both wrong, 1 base-only, 9 adapter-only (worked out in 33_evaluate)."
    base = [1] * 6 + [0] * 4 + [1] + [0] * 9
    adapter = [1] * 6 + [0] * 4 + [0] + [1] * 9
    s = mcnemar_exact(base, adapter)
    _eq((s.n, s.base_only, s.adapter_only), (20, 1, 9))
    _eq(s.p_value, 2 * (math.comb(10, 0) + math.comb(10, 1)) / 2**10)  # 0.021484375
    _close(s.accuracy_difference, 0.4)
    _close(s.ci_low, 0.110226, eps=1e-5); _close(s.ci_high, 0.617047, eps=1e-5)
    assert s.significant
    # swapping the roles mirrors everything, and a drop is never "significant"
    r = mcnemar_exact(adapter, base)
    _eq(r.p_value, s.p_value); _close(r.ci_low, -s.ci_high); assert not r.significant


def test_mcnemar_matches_brute_force_binomial():
    rng = random.Random(3)
    for _ in range(50):
        n = rng.randint(1, 60)
        base = [rng.random() < 0.5 for _ in range(n)]
        adapter = [rng.random() < 0.7 for _ in range(n)]
        b = sum(x and not y for x, y in zip(base, adapter)); c = sum(y and not x for x, y in zip(base, adapter))
        m = b + c
        # two-sided exact: sum of the probabilities of all outcomes no more likely than the one observed
        probs = [math.comb(m, k) / 2**m for k in range(m + 1)]
        want = min(1.0, sum(p for p in probs if p <= probs[c] * (1 + 1e-7))) if m else 1.0
        s = mcnemar_exact(base, adapter)
        _close(s.p_value, want, eps=1e-9)
        assert s.ci_low <= (c - b) / (n + 2) <= s.ci_high
        _eq(s.significant, s.p_value < 0.05 and (c - b) / n > 0.05)


def _train_lora(model, tok, examples, steps=20, seed=0):
    "Plain PEFT + a short torch loop: loss on the label and end-of-turn tokens only."
    from peft import LoraConfig, get_peft_model
    torch.manual_seed(seed)
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
    return pm


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    "A LoRA adapter trained on the 60 oldest routing examples; the 30 most recent are held out (time split)."
    from cogniverse_ft.models import load_causal_lm
    data = synthetic_routing_examples(90, seed=11)
    model, tok = load_causal_lm(device="cpu")
    pm = _train_lora(model, tok, data[:60])
    path = tmp_path_factory.mktemp("adapters") / "sft_routing_test"
    pm.save_pretrained(path)
    return {"path": path, "base": pm.unload().eval(), "tok": tok, "test": data[60:]}


@pytest.mark.slow
def test_adapter_beats_base_on_routing(trained):
    t0 = time.time()
    ev = AdapterEvaluator(trained["path"], "routing", valid_labels=list(ROUTING_LABELS))
    r = ev.evaluate(trained["test"], model=trained["base"], tokenizer=trained["tok"], run_id="run_test")
    print(r.summary(), f"\n(evaluated in {time.time() - t0:.1f}s)")
    _eq(r.test_size, 30)
    assert r.adapter_metrics.accuracy >= r.base_metrics.accuracy + 0.2, r.summary()
    assert r.significance.adapter_only > r.significance.base_only and r.p_value < 0.05 and r.improvement_significant
    assert r.adapter_metrics.top_k_accuracy >= r.adapter_metrics.accuracy
    _eq(r.base_metrics.hallucination_rate, 0.0)  # scoring can only choose among the valid labels
    for m in (r.base_metrics, r.adapter_metrics):
        assert 1 / len(ROUTING_LABELS) <= m.avg_confidence <= 1 and 0 <= m.confidence_calibration <= 1 and m.avg_latency_ms > 0
        _close(m.error_rate, 1 - m.accuracy)
    assert r.adapter_metrics.avg_confidence > r.base_metrics.avg_confidence
    # per-example records agree with the aggregate metrics
    _eq(len(r.predictions), 30)
    _close(sum(p["adapter_correct"] for p in r.predictions) / 30, r.adapter_metrics.accuracy)
    assert all(p["base_prediction"] in ROUTING_LABELS and p["adapter_prediction"] in ROUTING_LABELS for p in r.predictions)
    # the EVALUATION span schema
    a = r.to_span_attributes()
    for k in ["evaluation.adapter_path", "evaluation.agent_type", "evaluation.test_size", "metrics.base.accuracy",
              "metrics.base.confidence", "metrics.base.error_rate", "metrics.base.hallucination_rate", "metrics.base.latency_ms",
              "metrics.adapter.accuracy", "metrics.adapter.confidence", "metrics.adapter.error_rate",
              "metrics.adapter.hallucination_rate", "metrics.adapter.latency_ms", "improvement.accuracy",
              "improvement.confidence", "improvement.error_reduction", "improvement.latency_overhead",
              "improvement.significant", "improvement.p_value"]:
        assert k in a, k
    _eq(a["experiment.run_id"], "run_test")
    json.dumps(r.to_dict())  # serialisable


@pytest.mark.slow
def test_generation_mode_and_entity_extraction(trained):
    from cogniverse_ft.models import load_causal_lm
    r = AdapterEvaluator(trained["path"], "routing", valid_labels=list(ROUTING_LABELS), mode="generate",
                         max_new_tokens=12).evaluate(trained["test"][:3])
    assert r.base_metrics.hallucination_rate >= r.adapter_metrics.hallucination_rate
    _eq(r.mode, "generate")
    ents = [{"instruction": "Extract the entities from the following query as JSON", "input": "videos of Paris in 2019",
             "output": '{"location": "Paris", "year": "2019"}'}]
    e = AdapterEvaluator(trained["path"], "entity_extraction", max_new_tokens=16).evaluate(ents)
    _eq((e.mode, e.test_size, e.valid_labels), ("generate", 1, []))
    assert e.base_metrics.token_f1 is not None and 0 <= e.base_metrics.token_f1 <= 1
    _eq(e.base_metrics.exact_match, e.base_metrics.accuracy)


def test_bad_input_and_failures_never_raise(tmp_path, trained):
    path = trained["path"]
    _fail(AdapterEvaluator, args=(tmp_path, "routing"), contains="no adapter_config.json")
    _fail(AdapterEvaluator, args=(path, "bad name"), contains="Invalid agent_type 'bad name'")
    _fail(AdapterEvaluator, args=(path, "entity_extraction"), kwargs=dict(mode="score"), contains="no label set")
    ev = AdapterEvaluator(path, "routing", valid_labels=list(ROUTING_LABELS))
    _fail(ev.evaluate, args=([{"instruction": "i", "input": "q"}],), contains="test example 0: missing or non-string field(s) ['output']")
    bad = trained["test"][:2] + [{"instruction": "i", "input": "q", "output": "weather_agent"}]
    _fail(ev.evaluate, args=(bad,), contains="Test example 2 has output 'weather_agent', not one of the valid labels")
    _fail(ev.evaluate, args=([],), contains="held-out split is empty")
    # evaluate_adapter: the orchestrator's entry point logs and returns failures, never raises
    for args, stage in [((path, "routing", None), "test data"), ((tmp_path, "routing", trained["test"]), "setup"),
                        ((path, "routing", bad), "inference")]:
        r = evaluate_adapter(*args, valid_labels=list(ROUTING_LABELS), run_id="run_x")
        _eq((type(r), r.stage), (FailedEvaluation, stage))
        _eq(r.to_span_attributes()["evaluation.status"], "failed")


def test_calibration_error_bins():
    # all predictions at 0.95 confidence, half right: ECE = |0.5 - 0.95|
    _close(expected_calibration_error([0.95] * 10, [1, 0] * 5), 0.45)
    # perfectly calibrated bins
    _close(expected_calibration_error([0.25] * 4 + [0.75] * 4, [1, 0, 0, 0, 1, 1, 1, 0]), 0.0)
