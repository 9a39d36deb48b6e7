"The documentation site builds from the notebooks and renders in a real headless browser."
import importlib, inspect, shutil, subprocess, tempfile, re, json
from pathlib import Path
import pytest
from fastcore.test import test_eq as _eq
from cogniverse_ft.docs import build_docs, readme_text, project_root
from cogniverse_ft._modidx import d as MODIDX

ROOT = project_root(Path(__file__).parent)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

def dump_dom(url):
    with tempfile.TemporaryDirectory() as prof:
        r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                            f"--user-data-dir={prof}", "--virtual-time-budget=3000", "--dump-dom", url],
                           capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build_docs(tmp_path_factory.mktemp("docs") / "site", root=ROOT, use_quarto=False)

def modules():
    "Exported modules (`cogniverse_ft.core` -> `core`), excluding private ones."
    return sorted({m.split(".", 1)[1] for m in MODIDX["syms"] if not m.split(".", 1)[1].startswith("_")})

def test_every_module_has_a_page_with_its_api(site):
    for mod in modules():
        page = site / f"{mod}.html"
        assert page.exists(), f"no page for module {mod}"
        txt = page.read_text()
        m = importlib.import_module(f"cogniverse_ft.{mod}")
        for sym in m.__all__:
            obj = getattr(m, sym)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)): continue  # constants are documented in prose
            assert f'id="{sym}"' in txt or f'id="{sym.lower()}"' in txt, f"{sym} missing from {page.name}"

@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make sysdeps installs it)")
def test_index_renders_in_chromium_and_links_every_module(site):
    dom = dump_dom((site / "index.html").as_uri())
    assert "cogniverse_ft" in dom and 'id="cft-nav"' in dom
    links = set(re.findall(r'<a href="([^"#]+\.html)"', dom))
    for mod in modules():
        assert f"{mod}.html" in links, f"{mod}.html not linked from the index"
    for mod in modules():
        page = dump_dom((site / f"{mod}.html").as_uri())
        assert f'<h1 id="{mod}"' in page, f"{mod}.html did not render its title"
        assert "Traceback" not in page

def test_readme_is_rendered_from_index_notebook():
    _eq((ROOT / "README.md").read_text(), readme_text(ROOT / "nbs" / "index.ipynb"))
