"""The public routing dataset end to end: Phoenix spans + human approvals -> finetune() with the defaults -> report.

`routing_data.load_public_routing` gives 600 training and 300 test questions (TREC, 10 agent labels). They are
written to Phoenix as routing decision spans (`cogniverse.routing`, input = the question, output = the right agent)
with an `approved` human annotation each: the 600 training ones 8 to 30 days old, the 300 test ones within the
last 7 days, so `finetune()`'s time split holds out exactly the test set. Then `finetune()` runs with the
library's defaults (only `test_set_size=300` set, the size of the test set) and the report is rendered: base,
embedding baseline and adapter with both McNemar tests, and the activation rule.

Run: .venv/bin/python benchmarks/honest_report.py [--tenant trec] [--url http://127.0.0.1:6006] [--activation-rule baseline]
Prints the run's summary and the report path; the last line is one JSON object.
"""
import argparse, hashlib, json, os, sys, time
from datetime import datetime, timedelta, timezone
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(__file__))
from routing_data import load_public_routing


def seed(tenant, url, train, test):
    "Write every example as an approved routing decision span; returns the project."
    from cogniverse_ft.core import project_for_tenant
    from cogniverse_ft.telemetry import make_span, log_spans, log_annotations, ensure_annotation_config, count_spans
    from cogniverse_ft.extract import APPROVAL_ANNOTATION, APPROVAL_VALUES
    project, now = project_for_tenant(tenant), datetime.now(timezone.utc)
    if count_spans(project, base_url=url): return project
    spans, anns = [], []
    for k, (ex, age) in enumerate([(e, timedelta(days=30) - i * timedelta(days=22) / len(train)) for i, e in enumerate(train)] +
                                  [(e, timedelta(days=6) - i * timedelta(days=6) / len(test)) for i, e in enumerate(test)]):
        sid = hashlib.sha1(f"{tenant}|{k}".encode()).hexdigest()[:16]
        spans.append(make_span("cogniverse.routing", {"agent.type": "routing", "input.value": ex["input"], "output.value": ex["output"]},
                               "CHAIN", now - age, span_id=sid, trace_id=hashlib.sha1(f"{tenant}|t{k}".encode()).hexdigest()[:32]))
        anns.append({"span_id": sid, "name": APPROVAL_ANNOTATION, "label": "approved", "score": APPROVAL_VALUES["approved"],
                     "annotator_kind": "HUMAN", "identifier": "", "metadata": {}})
    log_spans(url, project, spans, batch_size=250, progress=True)
    ensure_annotation_config(url, project, APPROVAL_ANNOTATION, APPROVAL_VALUES, "Human review of an agent decision")
    log_annotations(url, project, anns)
    return project


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tenant", default="trec")
    ap.add_argument("--url", default=None, help="Phoenix URL (default: the embedded server)")
    ap.add_argument("--activation-rule", default="base", choices=["base", "baseline", "active"])
    args = ap.parse_args()
    from cogniverse_ft.demo import ensure_phoenix
    from cogniverse_ft.telemetry import PhoenixProvider
    from cogniverse_ft.orchestrator import finetune_sync
    from cogniverse_ft.report import render_report
    from cogniverse_ft.core import home_subdir
    url = ensure_phoenix(args.url)
    train, test, labels = load_public_routing()
    t0 = time.time()
    project = seed(args.tenant, url, train, test)
    print(f"seeded {project} at {url} in {time.time() - t0:.0f}s", flush=True)
    t0 = time.time()
    res = finetune_sync(telemetry_provider=PhoenixProvider(args.tenant, project, base_url=url), tenant_id=args.tenant, project=project,
                        model_type="llm", agent_type="routing", test_set_size=len(test), activation_rule=args.activation_rule)
    wall = time.time() - t0
    print(res.summary(), flush=True)
    ev = res.evaluation_result
    if hasattr(ev, "summary"): print(ev.summary(), flush=True)
    report = render_report(args.tenant, project, agent_type="routing", base_url=url, out=home_subdir("demo")/f"report_{args.tenant}.html")
    print(f"report: {report}", flush=True)
    st = {s["stage"]: s["seconds"] for s in res.stages}
    print(json.dumps({"tenant": args.tenant, "status": res.status, "method": res.training_method, "wall_s": round(wall, 1),
                      "training_s": st.get("training"), "evaluation_s": st.get("evaluation"),
                      "base": ev.base_metrics.accuracy, "base_plain": ev.plain_base_metrics.accuracy if ev.plain_base_metrics else None,
                      "baseline": ev.baseline_metrics.accuracy if ev.baseline_metrics else None, "adapter": ev.adapter_metrics.accuracy,
                      "p_vs_base": ev.p_value, "p_vs_baseline": ev.baseline_significance.p_value if ev.baseline_significance else None,
                      "verdict": ev.baseline_verdict, "activation": res.activation, "report": str(report)}))


if __name__ == "__main__":
    main()
