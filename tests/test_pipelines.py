"papermill runs of the per-tenant pipeline: two tenants with their own parameters, two reports, a failing tenant recorded."
import json
from pathlib import Path
import pytest
from fastcore.test import test_eq as _eq
from cogniverse_ft.demo_data import seed_demo_telemetry
from cogniverse_ft.pipelines import run_tenants, format_runs, pipeline_notebook

NONE = dict(n_routing=0, n_pairs=0, n_rejected=0, n_unreviewed=0, n_profile=0, n_entity=0, n_search=0, n_sessions=0, bad_spans=False)

def injected(nb_path):
    "The parameters papermill injected into an executed notebook."
    nb = json.loads(Path(nb_path).read_text())
    cell = next(c for c in nb["cells"] if "injected-parameters" in c.get("metadata", {}).get("tags", []))
    ns = {}
    exec("".join(cell["source"]), {}, ns)
    return ns

def test_two_tenants_two_reports_and_a_failure(phoenix_server, tmp_path, monkeypatch):
    monkeypatch.setenv("COGNIVERSE_FT_REGISTRY_URL", f"sqlite:///{tmp_path}/registry.db")
    for t in ("acme", "globex"):
        seed_demo_telemetry(t, base_url=phoenix_server.url, progress=False, **{**NONE, "n_routing": 40})
    params = {"phoenix_url": phoenix_server.url, "epochs": 1, "test_set_size": 8, "generate_synthetic": False,
              "train_overrides": {"max_steps": 2, "max_length": 128}, "config_overrides": {"output_dir": str(tmp_path / "adapters"), "min_sft_examples": 20}}
    runs = run_tenants(["acme", "globex", "nodata"], params, per_tenant={"globex": {"learning_rate": 1e-4}},
                       out_root=tmp_path / "runs")
    by = {r.tenant_id: r for r in runs}
    _eq((by["acme"].status, by["globex"].status), ("succeeded", "succeeded"))
    for t in ("acme", "globex"):
        assert Path(by[t].report_path).exists() and Path(by[t].html).exists(), by[t]
        assert Path(by[t].executed_notebook).exists()
        _eq(by[t].result["training_method"], "sft")
    pa, pg = injected(by["acme"].executed_notebook), injected(by["globex"].executed_notebook)
    _eq((pa["tenant_id"], pg["tenant_id"]), ("acme", "globex"))
    _eq((pa.get("learning_rate"), pg["learning_rate"]), (None, 1e-4))
    assert pa["result_path"] != pg["result_path"]
    # a tenant without telemetry does not stop the others: it ends as insufficient data
    _eq(by["nodata"].status, "insufficient_data")
    table = format_runs(runs)
    for t in ("acme", "globex", "nodata"): assert t in table

def test_a_failing_cell_is_reported(phoenix_server, tmp_path):
    runs = run_tenants(["acme"], {"phoenix_url": phoenix_server.url, "model_type": "nonsense"}, out_root=tmp_path / "runs")
    r = runs[0]
    _eq(r.status, "failed")
    assert r.failing_cell is not None and "model_type" in r.error, r
