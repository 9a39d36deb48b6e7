"""Extraction throughput and Phoenix read time.

1. A spans DataFrame of about 100,000 rows (the provider's shape, built offline from the demo generator) is turned
   into each dataset; we print spans/s per dataset. The same SFT extraction written as a plain per-span loop
   (`DataFrame.iterrows`, the obvious pandas default) runs on the same frame for comparison.
2. A real embedded Phoenix server gets 10,000 spans; we time `PhoenixProvider.traces.get_spans` reading them all,
   next to Phoenix's own `get_spans_dataframe` with its defaults (which stops at 1,000 rows).

The last printed line is one JSON object (`spans_per_s`, `read_10k_s`, ...).
Usage: python benchmarks/extract.py [--rows 100000] [--read-spans 10000] [--no-phoenix]
"""
import argparse, asyncio, json, os, sys, tempfile, time
import pandas as pd

os.environ.setdefault("PHOENIX_TELEMETRY_ENABLED", "false")
from cogniverse_ft.core import AGENT_INSTRUCTIONS
from cogniverse_ft.demo_data import demo_telemetry, demo_frames
from cogniverse_ft.extract import (instruction_dataset, preference_dataset, triplet_dataset, trajectory_dataset,
                                   APPROVED_LABELS, MAX_FIELD_CHARS)

def sizes(rows:int) -> dict:
    "Demo sizes giving about `rows` spans, in the proportions of the default demo."
    f = rows / 100_000
    return dict(n_routing=int(30000*f), n_pairs=int(3000*f), n_rejected=int(2000*f), n_unreviewed=int(5000*f),
                n_profile=int(8000*f), n_entity=int(8000*f), n_search=int(25000*f), n_sessions=int(7200*f), seed=1)

def best(fn, reps:int=3):
    "Best wall time of `reps` runs, and the last result."
    ts, out = [], None
    for _ in range(reps):
        t = time.perf_counter(); out = fn(); ts.append(time.perf_counter() - t)
    return min(ts), out

def naive_sft(spans:pd.DataFrame, ann:pd.DataFrame, agent_type:str="routing") -> list:
    "SFT extraction as a plain per-span loop: the baseline."
    approvals = {}
    for _, a in ann.iterrows():
        if a["annotation_name"] != "approval": continue
        md = a["metadata"] if isinstance(a["metadata"], dict) else {}
        label = str(a["result.label"]).lower()
        approvals.setdefault(a["span_id"], []).append((label, md))
    out = []
    for sid, r in spans.iterrows():
        if r.get("attributes.agent.type") != agent_type or sid not in approvals: continue
        inp, o = r.get("attributes.input.value"), r.get("attributes.output.value")
        md = r.get("attributes.metadata")
        if isinstance(md, str):
            try: json.loads(md)
            except ValueError: continue
        approved = None
        for label, amd in approvals[sid]:
            if label in APPROVED_LABELS: approved = amd.get("output", o)
            elif amd.get("corrected_output"): approved = amd["corrected_output"]
        if not (isinstance(inp, str) and inp.strip() and isinstance(approved, str) and approved.strip()): continue
        if len(inp) > MAX_FIELD_CHARS or len(approved) > MAX_FIELD_CHARS: continue
        out.append((AGENT_INSTRUCTIONS[agent_type], inp, approved.strip(), sid))
    return out

def bench_frames(rows:int) -> dict:
    t = time.perf_counter()
    demo = demo_telemetry("bench", **sizes(rows))
    spans, ann, sann = demo_frames(demo)
    print(f"built a {len(spans):,}-row spans frame and {len(ann):,} annotations offline in {time.perf_counter()-t:.1f}s", flush=True)
    n = len(spans)
    jobs = {"sft_routing": lambda: instruction_dataset(spans, ann, "routing"),
            "dpo_routing": lambda: preference_dataset(spans, ann, "routing"),
            "sft_profile_selection": lambda: instruction_dataset(spans, ann, "profile_selection"),
            "sft_entity_extraction_chat": lambda: instruction_dataset(spans, ann, "entity_extraction"),
            "triplets": lambda: triplet_dataset(spans, ann),
            "trajectories": lambda: trajectory_dataset(spans, sann, min_turns_per_session=2)}
    rates, items = {}, {}
    for name, fn in jobs.items():
        s, ds = best(fn)
        rates[name], items[name] = round(n / s), len(ds)
        print(f"  {name:28} {len(ds):>7,} items in {s:6.3f}s  -> {n/s:>12,.0f} spans/s", flush=True)
    k = n
    s_naive, naive = best(lambda: naive_sft(spans, ann), reps=1)
    s_ours, ours = best(lambda: instruction_dataset(spans, ann, "routing"))
    assert sorted(x[3] for x in naive) == sorted(e.metadata["span_id"] for e in ours), (len(naive), len(ours))
    print(f"  routing SFT as a plain per-span loop (iterrows): {k/s_naive:,.0f} spans/s; ours {k/s_ours:,.0f} spans/s "
          f"({s_naive/s_ours:.1f}x), the same {len(ours):,} examples")
    return {"rows": n, "spans_per_s": min(rates.values()), "spans_per_s_by_dataset": rates, "items_by_dataset": items,
            "naive_loop_spans_per_s": round(k / s_naive), "vectorized_vs_naive_loop": round(s_naive / s_ours, 1)}

def bench_read(n_spans:int) -> dict:
    from cogniverse_ft.telemetry import start_phoenix, log_spans, PhoenixProvider
    f = n_spans / 10_000
    demo = demo_telemetry("benchread", n_routing=int(3000*f), n_pairs=int(300*f), n_rejected=int(200*f), n_unreviewed=int(500*f),
                          n_profile=int(800*f), n_entity=int(800*f), n_search=int(2500*f), n_sessions=int(720*f), seed=2)
    with tempfile.TemporaryDirectory() as d, start_phoenix(working_dir=d) as srv:
        t = time.perf_counter()
        log_spans(srv.url, demo.project, demo.spans, batch_size=500, progress=True)
        write_s = time.perf_counter() - t
        print(f"wrote and confirmed {len(demo.spans):,} spans in {write_s:.1f}s ({len(demo.spans)/write_s:.0f} spans/s)", flush=True)
        prov = PhoenixProvider("benchread", base_url=srv.url)
        read_s, df = best(lambda: asyncio.run(prov.traces.get_spans()), reps=2)
        print(f"PhoenixProvider.get_spans: {len(df):,} spans in {read_s:.2f}s", flush=True)
        from phoenix.client import Client  # imported late: the import alone takes seconds
        cl = Client(base_url=srv.url)
        plain_s, plain = best(lambda: cl.spans.get_spans_dataframe(project_identifier=demo.project, timeout=120), reps=2)
        print(f"phoenix.client get_spans_dataframe (defaults): {len(plain):,} spans in {plain_s:.2f}s "
              f"({len(plain)/len(df):.0%} of the project)", flush=True)
    return {"read_10k_s": round(read_s, 3), "read_rows": len(df), "write_spans_per_s": round(len(demo.spans) / write_s),
            "plain_client_default_rows": len(plain), "plain_client_default_s": round(plain_s, 3)}

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000, help="rows of the offline spans frame")
    ap.add_argument("--read-spans", type=int, default=10_000, help="spans written to Phoenix and read back")
    ap.add_argument("--no-phoenix", action="store_true", help="skip the Phoenix read benchmark")
    a = ap.parse_args()
    res = bench_frames(a.rows)
    if not a.no_phoenix: res.update(bench_read(a.read_spans))
    res["goal_spans_per_s"] = 100_000
    print(json.dumps(res))
