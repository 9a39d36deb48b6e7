"""Adapter registry on real SQLite and a real throwaway PostgreSQL: immutability, one active adapter under concurrent
activation by several processes, tenant isolation, recorded hashes, no secrets at rest, the `adapters` command."""
import json, os, pwd, shutil, socket, subprocess, sys, tempfile, time, uuid
from pathlib import Path
import pytest
import sqlalchemy as sa
from fastcore.test import test_eq as _eq, test_fail as _fail
from cogniverse_ft.registry import AdapterRegistry, AdapterNotFoundError, adapters_table
from cogniverse_ft.storage import upload_adapter, download_adapter, AdapterIntegrityError
from cogniverse_ft.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _pg_bin():
    for d in ("/usr/lib/postgresql/15/bin", *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)):
        if (Path(d) / "initdb").exists(): return Path(d)
    w = shutil.which("initdb")
    return Path(w).parent if w else None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.fixture(scope="module")
def pg_url():
    "A throwaway PostgreSQL cluster in a temp folder on a free loopback port, run as the `postgres` user when root."
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed (Debian package `postgresql`); Postgres tests skipped")
    as_user = []
    root = Path(tempfile.mkdtemp(prefix="cf-pg-"))
    if os.geteuid() == 0:
        try: pw = pwd.getpwnam("postgres")
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
            pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port, data = _free_port(), root / "data"
    r = subprocess.run(as_user + [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                                  "--no-sync"], capture_output=True, text=True)
    assert r.returncode == 0, f"initdb failed: {r.stderr[-2000:]}"
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
    r = subprocess.run(as_user + [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-o", opts, "-w", "start"],
                       capture_output=True, text=True)
    assert r.returncode == 0, f"pg_ctl start failed: {r.stderr[-2000:]} {(root / 'log').read_text()[-2000:] if (root / 'log').exists() else ''}"
    try:
        yield f"postgresql://postgres:pass@127.0.0.1:{port}/postgres"  # the README's form: plain scheme, user:password
    finally:
        subprocess.run(as_user + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    "A fresh registry database of each kind."
    if request.param == "sqlite": return f"sqlite:///{tmp_path}/registry.db"
    url = request.getfixturevalue("pg_url")
    reg = AdapterRegistry(url)  # the plain postgresql:// URL works as written (issue 17 item 8)
    with reg.engine.begin() as c: c.execute(sa.text("DROP TABLE IF EXISTS adapters, adapter_versions"))
    reg.close()
    return url


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "sft_routing_20260101_000000"
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"r": 8, "base_model_name_or_path": BASE}))
    (d / "adapter_model.safetensors").write_bytes(os.urandom(512))
    return d


def _reg(reg, tenant, name, version, folder, target="routing", **kw):
    return reg.register_adapter(tenant_id=tenant, name=name, version=version, base_model=BASE, model_type="llm",
                                training_method="sft", adapter_path=folder, agent_type=target, **kw)


def test_versions_are_immutable(db_url, folder, tmp_path):
    reg = AdapterRegistry(db_url)
    aid = _reg(reg, "acme", "routing_sft", "1.0.0", folder, metrics={"accuracy": 0.9})
    before = reg.get_adapter(aid).to_dict()
    other = tmp_path / "other"; shutil.copytree(folder, other); (other / "adapter_model.safetensors").write_bytes(b"new")
    _fail(_reg, args=(reg, "acme", "routing_sft", "1.0.0", other), contains="versions are immutable")
    _eq(reg.get_adapter(aid).to_dict(), before)  # the refused write changed nothing
    _eq(len(reg.list_adapters("acme")), 1)
    _eq(reg.get_adapter(_reg(reg, "acme", "routing_sft", None, other)).version, "1.0.1")
    _eq(reg.get_adapter(_reg(reg, "globex", "routing_sft", "1.0.0", folder)).tenant_id, "globex")  # per tenant
    reg.close()


WORKER = r"""
import json, sys, time
from cogniverse_ft.registry import AdapterRegistry
url, mode, start, n = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
reg = AdapterRegistry(url)
while time.time() < start: time.sleep(0.005)
out = []
if mode == "activate":
    ids = sys.argv[5].split(",")
    for i in range(n):
        m = reg.activate_adapter(ids[i % len(ids)])
        out.append(m.status)
elif mode == "register":
    for i in range(n):
        aid = reg.register_adapter(tenant_id="acme", name="auto", version=None, base_model="b", model_type="llm",
                                   training_method="sft", adapter_path=sys.argv[5], agent_type="routing")
        out.append(reg.get_adapter(aid).version)
elif mode == "watch":
    none_seen, multi_seen, polls = 0, 0, 0
    import os, sqlalchemy as sa
    from cogniverse_ft.registry import adapters_table as a
    stop = sys.argv[5]
    while not os.path.exists(stop) and time.time() < start + n:
        if reg.get_active_adapter("acme", "routing") is None: none_seen += 1
        with reg.engine.connect() as c:
            k = c.execute(sa.select(sa.func.count()).select_from(a).where(a.c.tenant_id == "acme", a.c.target == "routing",
                                                                          a.c.status == "active")).scalar()
        multi_seen += k != 1; polls += 1
    out = {"none": none_seen, "not_one": multi_seen, "polls": polls}
print(json.dumps(out))
"""


def _spawn(args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", WORKER, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _results(procs):
    res = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, f"worker failed: {err[-3000:]}"
        res.append(json.loads(out.strip().splitlines()[-1]))
    return res


def test_one_active_adapter_under_concurrent_activation(db_url, folder, tmp_path):
    "4 processes activate 4 different adapters of one tenant+target at once while a 5th watches every state."
    reg = AdapterRegistry(db_url)
    ids = [_reg(reg, "acme", "routing_sft", f"1.0.{i}", folder) for i in range(4)]
    other = _reg(reg, "acme", "profile_sft", "1.0.0", folder, target="profile_selection")
    reg.activate_adapter(other)
    reg.activate_adapter(ids[0])
    start, n, stop = time.time() + 2.0, 25, tmp_path / "stop"
    procs = [_spawn([db_url, "activate", start, n, ",".join(ids[i:] + ids[:i])]) for i in range(4)]
    watch = _spawn([db_url, "watch", start, 120, stop])
    res = _results(procs)
    stop.touch()
    seen = _results([watch])[0]
    assert all(s == "active" for r in res for s in r), "every activation must return the adapter as active"
    active = reg.list_adapters("acme", agent_type="routing", status="active")
    _eq(len(active), 1)
    _eq(reg.get_active_adapter("acme", "routing").adapter_id, active[0].adapter_id)
    with reg.engine.connect() as c:
        a = adapters_table
        rows = c.execute(sa.select(a.c.adapter_id, a.c.status, a.c.active_key).where(a.c.tenant_id == "acme")).all()
    _eq(sum(r.active_key == "routing" for r in rows), 1)
    _eq(reg.get_active_adapter("acme", "profile_selection").adapter_id, other)  # another target is untouched
    assert seen["polls"] > 0
    _eq((seen["none"], seen["not_one"]), (0, 0))  # no reader ever saw zero or two active adapters
    reg.close()


def test_concurrent_auto_versions_are_distinct(db_url, folder):
    reg = AdapterRegistry(db_url)
    start = time.time() + 2.0
    res = _results([_spawn([db_url, "register", start, 5, folder]) for _ in range(3)])
    versions = [v for r in res for v in r]
    _eq(len(versions), 15)
    _eq(len(set(versions)), 15)
    _eq(sorted(x.version for x in reg.list_adapters("acme", name="auto")), sorted(f"1.0.{i}" for i in range(15)))
    reg.close()


def test_tenant_isolation(db_url, folder):
    admin = AdapterRegistry(db_url)
    a1 = _reg(admin, "acme", "routing_sft", "1.0.0", folder)
    admin.activate_adapter(a1)
    b1 = _reg(admin, "globex", "routing_sft", "1.0.0", folder)
    globex = AdapterRegistry(db_url, tenant_id="globex")
    _eq(globex.get_adapter(a1), None)
    _eq([m.adapter_id for m in globex.list_adapters()], [b1])
    _eq(globex.get_active_adapter(None, "routing"), None)
    for op in (globex.activate_adapter, globex.deactivate_adapter, globex.deprecate_adapter, globex.delete_adapter):
        with pytest.raises(AdapterNotFoundError) as e:
            op(a1)
        assert "not found for tenant 'globex'" in str(e.value)
    for op in (admin.activate_adapter, admin.deactivate_adapter, admin.delete_adapter):  # explicit tenant on an admin registry
        _fail(op, args=(a1,), kwargs=dict(tenant_id="globex"), contains="not found")
    _fail(globex.list_adapters, args=("acme",), contains="scoped to tenant 'globex'")
    _fail(globex.get_active_adapter, args=("acme", "routing"), contains="scoped to tenant 'globex'")
    globex.activate_adapter(b1)
    _eq(admin.get_active_adapter("acme", "routing").adapter_id, a1)  # acme's active adapter is untouched
    _eq(admin.get_active_adapter("globex", "routing").adapter_id, b1)
    _eq(admin.get_adapter(a1).status, "active")
    admin.close(); globex.close()


def test_hashes_recorded_and_checked_on_download(db_url, folder, tmp_path):
    uri = f"memory://cf-reg-{uuid.uuid4().hex}/routing/1.0.0"
    upload_adapter(folder, uri)
    reg = AdapterRegistry(db_url)
    m = reg.get_adapter(_reg(reg, "acme", "routing_sft", "1.0.0", folder, adapter_uri=uri))
    _eq(set(m.file_hashes), {"adapter_config.json", "adapter_model.safetensors"})
    got = download_adapter(m.adapter_uri, local_dir=tmp_path / "dl", expected_hashes=m.file_hashes)
    _eq((got / "adapter_model.safetensors").read_bytes(), (folder / "adapter_model.safetensors").read_bytes())
    import fsspec
    fs, root = fsspec.core.url_to_fs(uri)
    fs.pipe_file(f"{root}/adapter_model.safetensors", b"swapped")
    with pytest.raises(AdapterIntegrityError) as e:
        download_adapter(m.adapter_uri, local_dir=tmp_path / "dl2", expected_hashes=m.file_hashes)
    assert "changed: adapter_model.safetensors" in str(e.value)
    reg.close()


def test_tokens_never_reach_the_database(db_url, folder, tmp_path):
    token = "hf_" + uuid.uuid4().hex
    reg = AdapterRegistry(db_url)
    aid = _reg(reg, "acme", "routing_sft", "1.0.0", folder,
               training_config={"epochs": 1, "hf_token": token, "remote": {"api_key": token, "headers": [{"Authorization": token}]}},
               metrics={"accuracy": 0.5})
    _eq(reg.get_adapter(aid).training_config["hf_token"], "***")
    with reg.engine.connect() as c:
        dump = json.dumps([dict(r._mapping) for r in c.execute(sa.select(adapters_table))], default=str)
    assert token not in dump
    reg.close()
    if db_url.startswith("sqlite"):  # the database file itself (and its WAL)
        for p in tmp_path.glob("registry.db*"): assert token.encode() not in p.read_bytes(), p


def test_bad_input_is_named(db_url, folder, tmp_path):
    reg = AdapterRegistry(db_url)
    kw = dict(tenant_id="acme", name="r", version="1", base_model=BASE, model_type="llm", training_method="sft",
              adapter_path=folder, agent_type="routing")
    for bad, msg in [(dict(tenant_id="../etc"), "Invalid tenant_id"), (dict(name="a b"), "Invalid adapter name"),
                     (dict(version="1.0 beta"), "Invalid version"), (dict(model_type="vision"), "Unknown model_type"),
                     (dict(training_method="rlhf"), "Unknown training_method"), (dict(agent_type=None), "Invalid agent_type"),
                     (dict(model_type="embedding", agent_type=None, modality="sm ell"), "Invalid modality"),
                     (dict(adapter_path=tmp_path / "missing"), "is not a folder"),
                     (dict(adapter_uri="nosuch://x"), "Unknown storage scheme")]:
        _fail(reg.register_adapter, kwargs={**kw, **bad}, contains=msg)
    _eq(reg.list_adapters("acme"), [])
    _fail(reg.activate_adapter, args=("no-such-id",), contains="not found")
    _fail(reg.list_adapters, contains="tenant_id is required")
    _fail(reg.list_adapters, args=("acme",), kwargs=dict(status="live"), contains="Unknown status 'live'")
    reg.close()


def test_adapters_command(folder, tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/cli.db"
    reg = AdapterRegistry(url)
    aid = _reg(reg, "acme", "routing_sft", "1.0.0", folder)
    _eq(cli_main(["adapters", "list", "--tenant", "acme", "--db-url", url]), 0)
    out = capsys.readouterr().out
    assert "routing_sft" in out and "inactive" in out, out
    _eq(cli_main(["adapters", "activate", "routing_sft@1.0.0", "--tenant", "acme", "--db-url", url]), 0)
    assert "status active" in capsys.readouterr().out
    _eq(reg.get_active_adapter("acme", "routing").adapter_id, aid)
    _eq(cli_main(["adapters", "show", aid, "--tenant", "acme", "--db-url", url]), 0)
    _eq(json.loads(capsys.readouterr().out)["status"], "active")
    _eq(cli_main(["adapters", "show", aid, "--tenant", "globex", "--db-url", url]), 1)  # other tenant: not found
    assert "No adapter" in capsys.readouterr().err
    _eq(cli_main(["adapters", "list", "--tenant", "globex", "--db-url", url, "--json"]), 0)
    _eq(json.loads(capsys.readouterr().out), [])
    reg.close()
