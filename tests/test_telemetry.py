"The embedded Phoenix server, the writer and the provider against real servers."
import asyncio, json, os, subprocess, sys, uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
import pytest
from fastcore.test import test_eq as _eq, test_fail as _fail
from cogniverse_ft.telemetry import (PhoenixProvider, PhoenixUnavailableError, make_span, log_spans, log_annotations,
                                     count_spans, phoenix_status, start_phoenix, free_port, read_server_record)

EXE = str(Path(sys.executable).parent / "cogniverse-ft")

def _project(): return f"cogniverse-t{uuid.uuid4().hex[:8]}"

def test_provider_pages_and_refuses_other_tenants(phoenix_server):
    project = _project(); tenant = project.split("-", 1)[1]
    now = datetime.now(timezone.utc)
    # 30 spans, 10 sharing one timestamp: pages of 4 must still return every span exactly once
    spans = [make_span("s", {"input.value": f"q{i}"}, start_time=now - timedelta(minutes=i if i >= 10 else 0)) for i in range(30)]
    ids = log_spans(phoenix_server.url, project, spans)
    prov = PhoenixProvider(tenant, base_url=phoenix_server.url)
    df = asyncio.run(prov.traces.get_spans(page_size=4))
    _eq(sorted(df.index), sorted(ids))
    _eq(df.index.is_unique, True)
    recent = asyncio.run(prov.traces.get_spans(start_time=now - timedelta(minutes=15), page_size=4))
    _eq(len(recent), 16)  # the 10 at `now` plus minutes 10..15
    _fail(lambda: asyncio.run(prov.traces.get_spans("cogniverse-someoneelse")), contains="belongs to tenant 'someoneelse'")
    _fail(lambda: PhoenixProvider("other", project, base_url=phoenix_server.url), contains=f"belongs to tenant {tenant!r}")

def test_annotations_upsert_and_coexist(phoenix_server):
    project = _project(); tenant = project.split("-", 1)[1]
    sid = log_spans(phoenix_server.url, project, [make_span("s", {"output.value": "a"})])[0]
    log_annotations(phoenix_server.url, project, [{"span_id": sid, "name": "approval", "label": "rejected"}])
    log_annotations(phoenix_server.url, project, [{"span_id": sid, "name": "approval", "label": "approved"},  # upsert
                                                  {"span_id": sid, "name": "approval", "label": "rejected", "identifier": "r2"}])
    prov = PhoenixProvider(tenant, base_url=phoenix_server.url)
    ann = asyncio.run(prov.annotations.get_annotations(asyncio.run(prov.traces.get_spans())))
    _eq(sorted(zip(ann["identifier"], ann["result.label"])), [("", "approved"), ("r2", "rejected")])

def test_experiment_spans_round_trip(phoenix_server):
    "Custom span kinds and dotted attributes, as experiment tracking writes them."
    project = _project(); tenant = project.split("-", 1)[1]
    span = make_span("fine_tuning", {"operation.name": "fine_tuning", "experiment.run_id": "run_1", "params.lora_r": 8,
                                     "metrics.base.accuracy": 0.45, "data.used_synthetic": False}, span_kind="EXPERIMENT")
    other = make_span("route", {"input.value": "x"}, span_kind="CHAIN")
    log_spans(phoenix_server.url, project, [span, other])
    prov = PhoenixProvider(tenant, base_url=phoenix_server.url)
    df = asyncio.run(prov.traces.get_spans(span_kind="EXPERIMENT"))
    _eq(len(df), 1)
    row = df.iloc[0]
    _eq((row["span_kind"], row["attributes.experiment.run_id"], row["attributes.params.lora_r"]), ("EXPERIMENT", "run_1", 8))
    _eq((row["attributes.metrics.base.accuracy"], row["attributes.data.used_synthetic"]), (0.45, False))
    _eq(len(asyncio.run(prov.traces.get_spans(span_kind="CHAIN"))), 1)

def test_unreachable_server_names_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    prov = PhoenixProvider("t", base_url=url)
    with pytest.raises(PhoenixUnavailableError, match=url.replace(".", r"\.")):
        asyncio.run(prov.traces.get_spans())
    _eq(phoenix_status(url)["reachable"], False)

def test_bad_span_input_is_refused_with_its_index(phoenix_server):
    _fail(lambda: log_spans(phoenix_server.url, "cogniverse-x", [make_span("a"), {"attributes": {}}]), contains="span 1: missing 'name'")
    sp = make_span("a")
    _fail(lambda: log_spans(phoenix_server.url, "cogniverse-x", [sp, sp]), contains="duplicate span ids")

AUTH = {"PHOENIX_ENABLE_AUTH": "true", "PHOENIX_SECRET": "jwt-signing-secret-0123456789-abcdefgh",
        "PHOENIX_ADMIN_SECRET": "admin-bearer-token-0123456789-abcdefgh"}

def test_cli_up_status_down_keeps_every_accepted_span(tmp_path, monkeypatch):
    "`phoenix up` detaches and records the server; `down` waits for queued spans before stopping; API keys work."
    monkeypatch.delenv("PHOENIX_API_KEY", raising=False)
    env = {**os.environ, "COGNIVERSE_FT_HOME": str(tmp_path/"home")}
    for k in ("PHOENIX_BASE_URL", "PHOENIX_COLLECTOR_ENDPOINT"): env.pop(k, None)
    run = lambda *a: subprocess.run([EXE, "phoenix", *a], capture_output=True, text=True, env=env, timeout=300)
    r = run("up", "--working-dir", str(tmp_path/"px"))
    assert r.returncode == 0, r.stderr
    rec = json.loads((tmp_path/"home"/"phoenix"/"server.json").read_text())
    try:
        assert "Phoenix is up at " + rec["url"] in r.stdout
        _eq(run("up").stdout.startswith("Phoenix is already running"), True)
        spans = [make_span("s", {"input.value": f"q{i}"}) for i in range(1500)]
        log_spans(rec["url"], "cogniverse-cli", spans, wait=False)  # queued, not yet written
        r = run("down")
        assert r.returncode == 0 and "stopped" in r.stdout, r.stdout + r.stderr
        _eq((tmp_path/"home"/"phoenix"/"server.json").exists(), False)
        _eq("No embedded Phoenix" in run("down").stdout, True)
        # same database, fresh process, now with auth on: reads need the key
        with start_phoenix(working_dir=tmp_path/"px", extra_env=AUTH) as srv:
            key = AUTH["PHOENIX_ADMIN_SECRET"]
            _eq(count_spans("cogniverse-cli", base_url=srv.url, api_key=key), 1500)
            _fail(lambda: asyncio.run(PhoenixProvider("cli", base_url=srv.url).traces.get_spans()), contains="PHOENIX_API_KEY")
            _eq(len(asyncio.run(PhoenixProvider("cli", base_url=srv.url, api_key=key).traces.get_spans())), 1500)
            r = subprocess.run([EXE, "phoenix", "status", "--url", srv.url, "--api-key", key], capture_output=True, text=True,
                               env=env, timeout=60)
            assert r.returncode == 0 and "cogniverse-cli" in r.stdout and "1500" in r.stdout, r.stdout
    finally:
        if (p := rec.get("pid")):
            try: os.kill(p, 9)
            except ProcessLookupError: pass
