"The built wheel works outside the checkout: its bundled pipeline and report notebooks run a tenant end to end."
import json, os, subprocess, sys, sysconfig, zipfile
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    "The project's wheel, built from this checkout without network (the build backend is already installed)."
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, text=True)
    (whl,) = out.glob("cogniverse_ft-*.whl")
    return whl

@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory):
    "A new venv holding the wheel; its dependencies are read from this environment's site-packages (no checkout on the path)."
    venv = tmp_path_factory.mktemp("venv")/"v"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv/"bin"/"python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "deps-from-test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True, text=True)
    return venv

def test_wheel_ships_the_pipeline_and_report_notebooks(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for nb in ("tenant_finetune.ipynb", "finetuning_report.ipynb"):
        assert f"cogniverse_ft/notebooks/{nb}" in names, f"{nb} is not in {wheel.name}"

def test_run_from_the_installed_wheel_outside_the_checkout(fresh_venv, phoenix_server, tiny, tmp_path):
    # the dependencies' data files (nbconvert's templates, the kernel spec) are where this environment installed them
    env = {**os.environ, "COGNIVERSE_FT_HOME": str(tmp_path/"home"), "PYTHONPATH": "", "HF_HUB_OFFLINE": "1",
           "JUPYTER_PATH": str(Path(sys.prefix)/"share"/"jupyter")}
    where = subprocess.run([str(fresh_venv/"bin"/"python"), "-c", "import cogniverse_ft; print(cogniverse_ft.__file__)"],
                           cwd=tmp_path, env=env, check=True, capture_output=True, text=True).stdout.strip()
    assert where.startswith(str(fresh_venv)), f"cogniverse_ft imported from {where}, not from the installed wheel"
    r = subprocess.run([str(fresh_venv/"bin"/"cogniverse-ft"), "run", "--tenants", "wheel-demo", "--seed-demo",
                        "--url", phoenix_server.url, "--base-model", str(tiny), "--epochs", "1", "--out", str(tmp_path/"runs")],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    (res,) = (tmp_path/"runs").rglob("result.json")
    out = json.loads(res.read_text())
    assert out["status"] == "succeeded", out
    assert out["report_path"] and Path(out["report_path"]).exists(), out
