"KTO through the orchestrator and the CLI on real Phoenix data: method='kto' trains on approved + unpaired rejected outputs."
import json, os, subprocess, sys
import pytest
from fastcore.test import test_eq as _eq, test_fail as _fail
from cogniverse_ft.core import OrchestrationConfig
from cogniverse_ft.demo_data import seed_demo_telemetry
from cogniverse_ft.telemetry import PhoenixProvider
from cogniverse_ft.registry import AdapterRegistry
from cogniverse_ft.orchestrator import FinetuningOrchestrator, StageError

SIZES = dict(n_routing=60, n_pairs=0, n_rejected=20, n_unreviewed=0, n_profile=0, n_entity=0, n_search=0, n_sessions=0, bad_spans=False)

def test_kto_method_end_to_end(phoenix_server, tiny, tmp_path):
    seed_demo_telemetry("thumbs", base_url=phoenix_server.url, progress=False, **SIZES)
    reg = AdapterRegistry(f"sqlite:///{tmp_path}/registry.db")
    cfg = OrchestrationConfig(tenant_id="thumbs", project="cogniverse-thumbs", model_type="llm", agent_type="routing", base_model=tiny,
                              output_dir=str(tmp_path), test_set_size=10, baseline_model=None, generate_synthetic=False,
                              training={"max_steps": 3, "max_length": 128, "num_threads": 1})
    orch = FinetuningOrchestrator(PhoenixProvider("thumbs", base_url=phoenix_server.url), registry=reg)
    res = orch.run_sync(cfg, "kto")
    _eq((res.status, res.training_method), ("succeeded", "kto"))
    assert res.analysis["kto_option"] and res.analysis["recommended_method"] == "sft", res.analysis  # offered, not chosen
    split = {s["stage"]: s["info"] for s in res.stages}["split"]
    _eq((split["kto_desirable"], split["kto_undesirable"]), (60 - 10, 20))  # the test set's approved examples held out
    summary = json.loads((tmp_path.glob("kto_routing_*").__next__()/"training_summary.json").read_text())
    _eq((summary["method"], summary["data"]["examples"]), ("kto", 70))
    lin = reg.lineage(res.adapter_id, "thumbs")
    _eq((len(lin["train"]), len(lin["test"])), (70, 10))
    assert {r["span_id"] for r in lin["train"]}.isdisjoint(r["span_id"] for r in lin["test"])
    assert res.evaluation_result.test_size == 10

def test_kto_needs_unpaired_rejections(phoenix_server, tiny, tmp_path):
    seed_demo_telemetry("nothumbs", base_url=phoenix_server.url, progress=False, **{**SIZES, "n_rejected": 0})
    cfg = OrchestrationConfig(tenant_id="nothumbs", project="cogniverse-nothumbs", model_type="llm", agent_type="routing", base_model=tiny,
                              output_dir=str(tmp_path), generate_synthetic=False)
    with pytest.raises(StageError) as e:
        FinetuningOrchestrator(PhoenixProvider("nothumbs", base_url=phoenix_server.url), registry=AdapterRegistry(f"sqlite:///{tmp_path}/r.db")).run_sync(cfg, "kto")
    _eq(e.value.stage, "selection")
    assert "method='kto' needs approved outputs and rejected outputs without a pair; this data has 60 approved and 0 unpaired rejected" in str(e.value)
