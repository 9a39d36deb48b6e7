"""KTO on thumbs-only feedback: the demo's rejected-without-pair routing decisions are extracted (with their span ids),
the selector offers KTO without changing its choice, bad records fail before a model loads, and (slow) a LoRA KTO
adapter trained on the demo's approved + unpaired rejected outputs beats the base on the demo's held-out test set."""
import json, time
from pathlib import Path
import pytest
from fastcore.test import test_eq as _eq, test_fail as _fail
from cogniverse_ft.core import OrchestrationConfig, LABEL_PROMPT
from cogniverse_ft.demo_data import demo_telemetry, demo_frames
from cogniverse_ft.extract import instruction_dataset, preference_dataset, kto_dataset, valid_labels, KTODataset
from cogniverse_ft.formatting import time_split, with_label_list, InstructionFormatter
from cogniverse_ft.select import TrainingMethodSelector
from cogniverse_ft.kto import KTOFinetuner, kto_records, validate_kto_dataset, kto_weights


@pytest.fixture(scope="module")
def demo():
    "The demo's routing data as `seed-demo` writes it (defaults: 240 approved, 15 pairs, 20 bare rejections), read offline."
    d = demo_telemetry("ktotest")
    s, ann, _ = demo_frames(d)
    return d, s, ann


def test_demo_has_unpaired_rejections(demo):
    d, s, ann = demo
    kto, sft, dpo = kto_dataset(s, ann, "routing"), instruction_dataset(s, ann, "routing"), preference_dataset(s, ann, "routing")
    m = kto.metadata
    _eq((m["unpaired_rejections"], m["undesirable"], m["desirable"]), (d.counts["routing"]["rejected"], 20, len(sft)))
    _eq(m["desirable"] + m["undesirable"] + sum(m["skipped"].values()) + m["unreviewed"], m["candidate_spans"])
    bad = [e for e in kto if not e.label]
    rejected_ids = {a["span_id"] for a in d.annotations if a["label"] == "rejected" and not a["metadata"]}
    assert {e.metadata["span_id"] for e in bad} <= rejected_ids  # lineage: each comes from a bare rejection's span
    paired_inputs = {p.prompt for p in dpo}
    assert not any(e.input in paired_inputs for e in bad)  # none of them is half of a DPO pair
    assert all(e.output != e2.output for e in bad for e2 in sft if e2.input == e.input)
    _eq({e.output for e in kto} <= set(valid_labels(sft)), True)
    ts = [e.metadata["timestamp"] for e in kto]
    _eq(ts, sorted(ts))
    recs = kto_records(with_label_list(kto, valid_labels(sft), LABEL_PROMPT))
    _eq(validate_kto_dataset(recs), {"desirable": len(sft), "undesirable": 20})
    _eq(recs[0]["prompt"][0]["content"].endswith(LABEL_PROMPT.format(labels=", ".join(valid_labels(sft)))), True)


def test_selector_offers_kto_without_choosing_it(demo):
    _, s, ann = demo
    a = TrainingMethodSelector().analyze_frames(s, ann, "routing")
    _eq((a.recommended_method, a.unpaired_rejections, a.kto_option), ("sft", 20, True))  # 15 pairs < 20: SFT, as the spec says
    assert any(r.startswith("KTO is an option: 20 rejected outputs") for r in a.reasons), a.reasons
    _eq(isinstance(a.kto_dataset, KTODataset) and len(a.kto_dataset) == len(a.sft_dataset) + 20, True)
    _eq(TrainingMethodSelector(min_kto_rejections=21).analyze_frames(s, ann, "routing").kto_option, False)


def test_bad_kto_input_fails_before_loading(tmp_path):
    ft = KTOFinetuner(output_dir=str(tmp_path))
    _fail(lambda: ft.train([{"prompt": "q", "completion": "a", "label": True}, {"prompt": "q", "completion": "b", "label": "no"}]),
          contains="Invalid KTO dataset at index 1: field 'label' must be True or False, got 'no'")
    _fail(lambda: ft.train([]), contains="Cannot train with empty dataset")
    _fail(lambda: KTOFinetuner(desirable_weight=-1), contains="Invalid desirable_weight -1")
    _eq(list(tmp_path.iterdir()), [])  # nothing written
    cfg = OrchestrationConfig(tenant_id="t", project="cogniverse-t", model_type="llm", agent_type="routing", batch_size=4, epochs=2)
    ft = KTOFinetuner.from_config(cfg, beta=0.2)
    _eq((ft.method, ft.beta, ft.settings.batch_size, ft.settings.epochs, ft.target), ("kto", 0.2, 4, 2, "routing"))
    d, u = kto_weights(255, 20)
    assert 1 <= d * 255 / (u * 20) <= 4 / 3


# measured on this machine (see the test's printed line and the report): 3 epochs at lr 2e-3 beat the base clearly;
# lr 1e-3 and 5e-4 learn much less in the same steps.
KTO_SETTINGS = dict(batch_size=8, epochs=3, learning_rate=2e-3, beta=0.1)
N_APPROVED = 100  # every other approved output of the training split (all of them would double the time)

@pytest.mark.slow
def test_kto_beats_base_on_demo_test_set(demo, tmp_path):
    "Train on approved + unpaired rejected demo outputs (test inputs held out), evaluate with the package's label scoring."
    import torch
    from cogniverse_ft.evaluate import evaluate_adapter
    from cogniverse_ft.training import cpu_threads
    torch.set_num_threads(cpu_threads())
    _, s, ann = demo
    sft, kto = instruction_dataset(s, ann, "routing"), kto_dataset(s, ann, "routing")
    labels = valid_labels(sft)
    _, test, _ = time_split(sft, 50, days=7)  # the orchestrator's split: the most recent approved examples
    held = {e.input.strip().lower() for e in test}
    kex = [e for e in kto if e.input.strip().lower() not in held]
    keep = {id(e) for e in [e for e in kex if e.label][::2][:N_APPROVED]}  # every other approved output: spread over time like the rejections
    train = [e for e in kex if not e.label or id(e) in keep]  # still oldest first: the validation split is the most recent tenth
    _eq(sum(not e.label for e in train), 20)  # every bare rejection is trained on (none is a test input)
    cfg = OrchestrationConfig(tenant_id="ktotest", project="cogniverse-ktotest", model_type="llm", agent_type="routing",
                              output_dir=str(tmp_path), batch_size=KTO_SETTINGS["batch_size"], epochs=KTO_SETTINGS["epochs"],
                              learning_rate=KTO_SETTINGS["learning_rate"])
    ft = KTOFinetuner.from_config(cfg, beta=KTO_SETTINGS["beta"], verbose=False)
    t0 = time.time()
    res = ft.train(kto_records(with_label_list(train, labels, LABEL_PROMPT)), source_span_ids=[e.metadata["span_id"] for e in train])
    t_train = time.time() - t0
    summary = json.loads(Path(res.summary_path).read_text())
    _eq((res.method, summary["method"], len(summary["source_span_ids"]), Path(res.adapter_path).parent), ("kto", "kto", len(train), tmp_path))
    ks = json.loads((Path(res.adapter_path)/"kto_settings.json").read_text())
    assert ks["train_undesirable"] >= 15, ks  # most bare rejections are in the training split (the rest validate)
    ev = evaluate_adapter(res.adapter_path, "routing", list(test), valid_labels=labels, label_prompt=LABEL_PROMPT, baseline_model=None)
    print(f"KTO on {len(train)} demo examples ({ks['train_desirable']} approved + {ks['train_undesirable']} rejected in the training split), "
          f"{res.metrics['train_steps']} steps in {t_train:.0f}s: base {ev.base_metrics.accuracy:.2f} -> adapter {ev.adapter_metrics.accuracy:.2f} "
          f"on {ev.test_size} held-out examples (p={ev.p_value:.3g})")
    assert ev.adapter_metrics.accuracy > ev.base_metrics.accuracy, ev.summary()
