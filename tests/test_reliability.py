"""Issue 17, hostile input and operator mishaps through the public API: project names, path traversal on download,
credentials at rest, stuck registry writers, concurrent first downloads, killed runs, malformed files, config checks."""
import hashlib, json, os, signal, sqlite3, subprocess, sys, threading, time, uuid
from pathlib import Path
import fsspec, pytest
import sqlalchemy as sa
from fastcore.test import test_eq as _eq, test_fail as _fail
from cogniverse_ft.core import (tenant_of_project, project_for_tenant, validate_tenant_id, OrchestrationConfig, preflight,
                                redact_secrets, atomic_dir)
from cogniverse_ft.storage import upload_adapter, download_adapter, hash_folder, AdapterIntegrityError, MANIFEST_NAME

ROOT = Path(__file__).resolve().parents[1]
BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture
def adapter(tmp_path):
    d = tmp_path / "sft_routing_20260101_000000"
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"r": 8, "base_model_name_or_path": BASE}))
    (d / "adapter_model.safetensors").write_bytes(os.urandom(2048))
    return d


def _manifest(files): return json.dumps({"format": "cogniverse_ft.manifest/1", "algorithm": "sha256", "files": files}).encode()


# --- item 1 (core half): a project name from another tenant never maps to the caller's tenant -----------------------
def test_project_suffix_cannot_reach_another_tenant():
    _eq(tenant_of_project("cogniverse-acme./../cogniverse-globex"), None)
    _eq(tenant_of_project("cogniverse-acme.%2e%2e%2fcogniverse-globex"), None)
    _eq(tenant_of_project("cogniverse-acme.review\n"), None)
    _eq(tenant_of_project("cogniverse-acme.review"), "acme")
    for bad in ("../x", "a/b", "x\n", "a.b"): _fail(project_for_tenant, args=("acme", bad), contains="Invalid project suffix")


def test_trailing_newline_tenant_refused():  # item 13
    _fail(validate_tenant_id, args=("acme\n",), contains="Invalid tenant_id")


# --- item 2: path traversal on download ------------------------------------------------------------------------------
def test_download_refuses_keys_that_escape_the_target(adapter, tmp_path):
    "An object key `x/../../../../outside/ESCAPED` (valid in S3/GCS) listed in the shipped manifest must not be written."
    evil = "x/../../../../outside/ESCAPED"
    for listed in (False, True):  # the extra key alone (the manifest still matches), or also listed in a rewritten manifest
        dest = f"memory://cf-rel-{uuid.uuid4().hex}/routing/1.0.0"
        upload_adapter(adapter, dest)
        fs, root = fsspec.core.url_to_fs(dest)
        fs.pipe_file(f"{root}/{evil}", b"pwned")
        if listed: fs.pipe_file(f"{root}/{MANIFEST_NAME}", _manifest({**hash_folder(adapter), evil: hashlib.sha256(b"pwned").hexdigest()}))
        target = tmp_path / f"deep{listed}" / "a" / "b" / "dl"
        with pytest.raises(ValueError) as e:
            download_adapter(dest, local_dir=target)
        assert "resolves outside" in str(e.value) and evil in str(e.value), str(e.value)
        _eq(list(tmp_path.rglob("ESCAPED")), [])
        _eq(list(target.iterdir()) if target.exists() else [], [])  # nothing accepted, nothing left behind


# --- registry: items 3, 4, 14, 16, 17, 18 ----------------------------------------------------------------------------
from cogniverse_ft.registry import AdapterRegistry, adapters_table


def _reg(reg, version, folder, **kw):
    return reg.register_adapter(tenant_id="acme", name="routing_sft", version=version, base_model=BASE, model_type="llm",
                                training_method="sft", adapter_path=folder, agent_type=kw.pop("agent_type", "routing"), **kw)


def test_credentials_never_stored(adapter, tmp_path):
    "The issue's run: a storage URI with a password, and the config carrying it, reached the registry twice."
    uri = f"memory://svc:PASSW0RD@cf-rel-{uuid.uuid4().hex}/routing/1.0.0"
    cfg = OrchestrationConfig(tenant_id="acme", project="cogniverse-acme", model_type="llm", agent_type="routing",
                              adapter_storage_uri=uri)
    url = f"sqlite:///{tmp_path}/registry.db"
    reg = AdapterRegistry(url)
    extra = {"secret_key": "SK1", "aws_secret_key": "SK2", "private_key": "SK3", "passphrase": "SK4", "pwd": "SK5",
             "password": "SK6", "db": "postgresql://u:SK7@db/x", "dsn": "host=db password=SK8", "max_new_tokens": 9, "token_f1": 0.5}
    aid = _reg(reg, "1.0.0", adapter, adapter_uri=uri, training_config={**cfg.to_dict(), **extra})
    m = reg.get_adapter(aid)
    assert "PASSW0RD" not in m.adapter_uri and m.adapter_uri.startswith("memory://svc:***@"), m.adapter_uri
    _eq((m.training_config["max_new_tokens"], m.training_config["token_f1"]), (9, 0.5))
    reg.close()
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("registry.db*"))
    for secret in ["PASSW0RD", *[f"SK{i}" for i in range(1, 9)]]: assert secret.encode() not in blob, secret


def test_readers_do_not_wait_for_a_stuck_writer(adapter, tmp_path, caplog):
    "A held write lock: `adapters list` still answers; a write gives up after lock_timeout saying what it waited on."
    db = tmp_path / "registry.db"
    reg = AdapterRegistry(f"sqlite:///{db}", lock_timeout=1)
    _reg(reg, "1.0.0", adapter)
    reg.close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a writer that never finishes
    try:
        t0 = time.monotonic()
        reader = AdapterRegistry(f"sqlite:///{db}", tenant_id="acme", lock_timeout=1)
        _eq([m.version for m in reader.list_adapters()], ["1.0.0"])
        with pytest.raises(TimeoutError) as e:
            _reg(reader, "1.0.1", adapter)
        assert "locked by another writer" in str(e.value) and str(db) in str(e.value), str(e.value)
        assert any("Waiting up to 1 s for another writer's lock" in r.getMessage() and str(db) in r.getMessage() for r in caplog.records)
        assert time.monotonic() - t0 < 60, "must give up in seconds, not minutes"
        reader.close()
    finally:
        holder.rollback(); holder.close()


def test_versions_never_handed_out_twice(adapter, tmp_path):
    reg = AdapterRegistry(f"sqlite:///{tmp_path}/registry.db")
    a, b = _reg(reg, None, adapter), _reg(reg, None, adapter)
    _eq([reg.get_adapter(x).version for x in (a, b)], ["1.0.0", "1.0.1"])
    reg.delete_adapter(b)
    _eq(reg.get_adapter(_reg(reg, None, adapter)).version, "1.0.2")  # 1.0.1 was handed out once already
    reg.delete_adapter(a)
    _fail(_reg, args=(reg, "1.0.0", adapter), contains="never reused")
    reg.close()


def test_corrupt_registry_file_is_named(tmp_path):
    db = tmp_path / "registry.db"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(Exception) as e:
        AdapterRegistry(f"sqlite:///{db}").list_adapters("acme")
    assert str(db) in str(e.value) and "not a database" in str(e.value), str(e.value)


def test_register_refuses_non_adapters(adapter, tmp_path):
    reg = AdapterRegistry(f"sqlite:///{tmp_path}/registry.db")
    plain = tmp_path / "plain"; plain.mkdir(); (plain / "notes.txt").write_text("hi")
    _fail(_reg, args=(reg, "1", plain), contains="not an adapter folder")
    broken = tmp_path / "broken"; broken.mkdir(); (broken / "adapter_config.json").write_text("{not json")
    _fail(_reg, args=(reg, "2", broken), contains=str(broken / "adapter_config.json"))
    _fail(_reg, args=(reg, "3", adapter), kwargs=dict(file_hashes={}), contains="file_hashes")
    _fail(_reg, args=(reg, "4", tmp_path / "gone"), kwargs=dict(file_hashes={"a": "x"}), contains="file_hashes")
    _eq(reg.list_adapters("acme"), [])
    reg.close()


def test_registry_file_is_private(tmp_path):
    db = tmp_path / "reg" / "registry.db"
    AdapterRegistry(f"sqlite:///{db}").close()
    _eq(db.stat().st_mode & 0o777, 0o600)


def test_registry_accepts_task_name_slugs(adapter, tmp_path):  # item 0: any agent type slug, end to end
    reg = AdapterRegistry(f"sqlite:///{tmp_path}/registry.db")
    aid = _reg(reg, "1.0.0", adapter, agent_type="weather-report")
    reg.activate_adapter(aid)
    _eq(reg.get_active_adapter("acme", "weather-report").adapter_id, aid)
    _fail(_reg, args=(reg, "1.0.1", adapter), kwargs=dict(agent_type="../x"), contains="Invalid agent_type")
    reg.close()


# --- items 7, 9: config checks before training, and preflight ----------------------------------------------------------
def test_config_refuses_what_would_fail_after_training():
    base = dict(tenant_id="acme", project="cogniverse-acme", model_type="llm", agent_type="routing")
    _fail(lambda: OrchestrationConfig(**base, adapter_version="1.0 beta"), contains="Invalid adapter_version")
    _fail(lambda: OrchestrationConfig(**base, adapter_storage_uri="nosuch://x"), contains="Unknown storage scheme")
    for k, v in (("enable_registry", "false"), ("use_lora", "yes"), ("multi_turn", 1)):
        _fail(lambda: OrchestrationConfig(**base, **{k: v}), contains=f"Invalid {k}")


def test_preflight_checks_registry_and_output(tmp_path, monkeypatch):
    base = dict(tenant_id="acme", project="cogniverse-acme", model_type="llm", agent_type="routing", output_dir=str(tmp_path / "out"))
    reg = AdapterRegistry(f"sqlite:///{tmp_path}/registry.db", tenant_id="acme")
    got = preflight(OrchestrationConfig(**base), registry=reg)
    _eq(got["output_dir"], str(tmp_path / "out"))
    assert "registry" in got
    reg.close()
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("COGNIVERSE_FT_REGISTRY_URL", f"sqlite:///{tmp_path}/file/sub/registry.db")  # cannot exist
    _fail(preflight, args=(OrchestrationConfig(**base),), contains=f"Registry database {tmp_path}/file/sub/registry.db")
    _eq(preflight(OrchestrationConfig(**base, enable_registry=False))["output_dir"], str(tmp_path / "out"))
    _fail(preflight, args=(OrchestrationConfig(**{**base, "output_dir": str(tmp_path / "file" / "x")}),),
          kwargs=dict(registry=None), contains="not writable")


# --- item 5: concurrent first download --------------------------------------------------------------------------------
FIRST_USE = r"""
import sys, time
from cogniverse_ft.registry import AdapterRegistry
from cogniverse_ft.inference import AdapterAwareMixin
url, dl, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
class Agent(AdapterAwareMixin):
    def __init__(self): self.tenant_id, self.adapter_registry = "acme", AdapterRegistry(url)
a = Agent()
while time.time() < start: time.sleep(0.002)
print(a.load_adapter_if_available("routing", local_dir=dl))
"""


def _py(code, *args):
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_workers_starting_together_share_one_verified_download(adapter, tmp_path):
    "8 agents of one tenant ask for the active adapter at the same instant: all get the same verified folder."
    (adapter / "adapter_model.safetensors").write_bytes(os.urandom(24 << 20))  # big enough for the downloads to overlap
    uri = upload_adapter(adapter, f"file://{tmp_path}/published/routing/1.0.0")
    url = f"sqlite:///{tmp_path}/registry.db"
    reg = AdapterRegistry(url)
    reg.activate_adapter(_reg(reg, "1.0.0", adapter, adapter_uri=uri))
    reg.close()
    dl, start = tmp_path / "dl", time.time() + 4.0
    procs = [_py(FIRST_USE, url, dl, start) for _ in range(8)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        outs.append(out.strip().splitlines()[-1])
    _eq(len(set(outs)), 1)
    _eq(hash_folder(outs[0]), hash_folder(adapter))
    _eq([p.name for p in dl.iterdir()], [Path(outs[0]).name])  # no temp or duplicate folders left


# --- item 15: killed runs leave nothing that blocks the next one ---------------------------------------------------------
KILLED_WRITER = r"""
import os, signal, sys
from pathlib import Path
from cogniverse_ft.core import atomic_dir
with atomic_dir(sys.argv[1]) as tmp:
    (tmp / "half.bin").write_bytes(b"x" * 100)
    os.kill(os.getpid(), signal.SIGKILL)
"""

KILLED_UPLOAD = r"""
import os, signal, sys
from fsspec.implementations.local import LocalFileSystem
from cogniverse_ft.storage import upload_adapter
calls, put = [], LocalFileSystem.put_file
def dying_put(self, *a, **k):
    calls.append(1)
    if len(calls) == 2: os.kill(os.getpid(), signal.SIGKILL)  # killed half-way through the upload
    return put(self, *a, **k)
LocalFileSystem.put_file = dying_put
upload_adapter(sys.argv[1], sys.argv[2])
"""


def test_sigkilled_writer_leaves_no_permanent_partial(tmp_path):
    dest = tmp_path / "out"
    p = _py(KILLED_WRITER, dest); p.communicate(timeout=120)
    _eq(p.returncode, -signal.SIGKILL)
    assert [x for x in tmp_path.iterdir() if x.name.endswith(".partial")], "the killed writer left its temp folder"
    with atomic_dir(dest) as t: (t / "ok").write_text("1")
    _eq(sorted(x.name for x in tmp_path.iterdir()), ["out"])  # the dead writer's temp folder was cleaned


def test_killed_fsspec_upload_is_replaced_on_retry(adapter, tmp_path):
    dest = f"file://{tmp_path}/published/routing/1.0.0"
    p = _py(KILLED_UPLOAD, adapter, dest); p.communicate(timeout=120)
    _eq(p.returncode, -signal.SIGKILL)
    assert not (tmp_path / "published/routing/1.0.0" / MANIFEST_NAME).exists()
    upload_adapter(adapter, dest)  # no "immutable" for an upload that never finished
    _eq(hash_folder(download_adapter(dest, local_dir=tmp_path / "dl")), hash_folder(adapter))
    foreign = tmp_path / "foreign"; foreign.mkdir(); (foreign / "x.bin").write_bytes(b"someone else's")
    _fail(upload_adapter, args=(adapter, f"file://{foreign}"), contains="immutable")  # files without our marker stay


# --- item 16: malformed files are named ----------------------------------------------------------------------------------
def test_malformed_manifest_is_named(adapter, tmp_path):
    dest = f"memory://cf-rel-{uuid.uuid4().hex}/a"
    upload_adapter(adapter, dest)
    fs, root = fsspec.core.url_to_fs(dest)
    for bad in (b"{not json", b'{"nofiles": 1}', b'{"files": {"a": 5}}'):
        fs.pipe_file(f"{root}/{MANIFEST_NAME}", bad)
        _fail(download_adapter, args=(dest,), kwargs=dict(local_dir=tmp_path / "dl"), contains=f"Malformed manifest {dest}/{MANIFEST_NAME}")
    local = tmp_path / "local"; local.mkdir(); (local / "adapter_config.json").write_text("{}"); (local / MANIFEST_NAME).write_text("[")
    _fail(download_adapter, args=(str(local),), contains=f"Malformed manifest {local / MANIFEST_NAME}")


# --- item 2 (shared helper) and item 18: returned run folders -----------------------------------------------------------
def test_received_run_refuses_escapes_and_defaults_to_home(tmp_path, monkeypatch):
    import hashlib
    from cogniverse_ft.backend import receive_run
    monkeypatch.setenv("COGNIVERSE_FT_HOME", str(tmp_path / "home"))
    res = {"adapter_path": "/remote/x", "method": "sft", "base_model": BASE, "metrics": {}, "lora_config": {"use_lora": True},
           "loss_history_path": "", "summary_path": "", "target": "routing"}
    def events(rel, data=b"{}"):
        head = {"event": "run", "result": res, "folder": "sft_routing_20260101_000000", "remote_path": "/remote/x",
                "files": [{"path": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}]}
        return [head, {"event": "chunk", "path": rel, "data": data}, {"event": "end"}]
    for evil in ("../../escaped.txt", "/tmp/abs-escape.txt", "a/../../x"):
        _fail(receive_run, args=(events(evil), tmp_path / "runs"), contains="resolves outside")
    _eq(list(tmp_path.rglob("escaped.txt")), [])
    cfg = OrchestrationConfig(tenant_id="acme", project="cogniverse-acme", model_type="llm", agent_type="routing")
    got = receive_run(events("adapter_config.json"), cfg.output_dir)  # the default output_dir (None) is <home>/adapters, not ./outputs
    _eq(Path(got.adapter_path).parent, tmp_path / "home" / "adapters")
    _eq(sorted(p.name for p in (tmp_path / "runs").iterdir()) if (tmp_path / "runs").exists() else [], [])


KILLED_CLAIM = r"""
import os, signal, sys
from cogniverse_ft.training import claim_run_dir
final, claim = claim_run_dir(sys.argv[1], "sft_routing_20260101_000000")
print(claim, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_claims_of_killed_runs_are_cleaned(tmp_path):
    p = _py(KILLED_CLAIM, tmp_path); out, _ = p.communicate(timeout=300)
    claim = Path(out.strip().splitlines()[-1])
    assert claim.exists(), "the killed run left its claim"
    from cogniverse_ft.training import claim_run_dir
    final, mine = claim_run_dir(tmp_path, "sft_routing_20260101_000000")
    _eq(final.name, "sft_routing_20260101_000000")  # the dead run's name is free again
    _eq(sorted(x.name for x in tmp_path.iterdir()), [mine.name])
