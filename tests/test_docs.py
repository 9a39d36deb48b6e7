"The documentation site builds from the notebooks with MkDocs and works in a real headless browser: pages, navigation, search."
import base64, functools, http.server, importlib, inspect, itertools, json, os, re, shutil, subprocess, tempfile, threading
import time, urllib.request
from pathlib import Path
import pytest
from fastcore.test import test_eq as _eq
from cogniverse_ft.docs import build_docs, readme_text, project_root, STAGES
from cogniverse_ft._modidx import d as MODIDX

ROOT = project_root(Path(__file__).parent)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make sysdeps installs it)")

class Browser:
    "Headless Chromium driven over the DevTools protocol: open a page, run JavaScript, wait, take a screenshot."
    def __init__(self, exe):
        from websockets.sync.client import connect
        self.prof = tempfile.mkdtemp(prefix="cft-chromium-")
        self.proc = subprocess.Popen([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                      "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                      f"--user-data-dir={self.prof}", "--remote-debugging-port=0", "--window-size=1280,900",
                                      "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.prof)/"DevToolsActivePort"
        for _ in range(600):
            if port_file.exists() and port_file.read_text().strip(): break
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        tabs = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json").read())
        self.ws = connect(next(t for t in tabs if t["type"] == "page")["webSocketDebuggerUrl"], max_size=None)
        self.ids = itertools.count(1)

    def send(self, method, **params):
        i = next(self.ids)
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while (m := json.loads(self.ws.recv())).get("id") != i: pass
        if "error" in m: raise RuntimeError(f"{method}: {m['error']}")
        return m.get("result", {})

    def js(self, expr):
        r = self.send("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r: raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, cond, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            if self.js(f"!!({cond})"): return True
            time.sleep(0.2)
        raise TimeoutError(f"not true after {timeout}s: {cond}")

    def open(self, url):
        self.send("Page.navigate", url=url)
        time.sleep(0.2)
        self.wait("document.readyState === 'complete' && document.location.href !== 'about:blank'")

    def screenshot(self, name):
        "Save a PNG under $DOCS_SCREENSHOTS (when set): pictures of the site for a reader of the test's report."
        if not (d := os.environ.get("DOCS_SCREENSHOTS")): return
        Path(d).mkdir(parents=True, exist_ok=True)
        (Path(d)/name).write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))

    def close(self):
        self.ws.close()
        self.proc.kill(); self.proc.wait()
        shutil.rmtree(self.prof, ignore_errors=True)

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build_docs(tmp_path_factory.mktemp("docs") / "site", root=ROOT, use_quarto=False)

@pytest.fixture(scope="module")
def served(site):
    "The site over HTTP on loopback (search runs in a web worker, which file:// pages may not start)."
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()

@pytest.fixture(scope="module")
def browser():
    b = Browser(CHROMIUM)
    yield b
    b.close()

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
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or obj.__module__ != m.__name__: continue
            assert f'id="{sym}"' in txt or f'id="{sym.lower()}"' in txt, f"{sym} missing from {page.name}"

def test_pages_have_no_prompts_hidden_cells_or_tracebacks(site):
    for page in site.glob("*.html"):
        txt = page.read_text()
        assert not re.search(r"In&nbsp;\[|In \[\s*\d*\s*\]:", txt), f"{page.name} shows notebook prompts"
        assert not re.search(r'class="c1">#\|', txt), f"{page.name} shows nbdev directives"  # as code comments
        assert "Traceback (most recent call last)" not in txt, f"{page.name} shows a traceback"

@needs_chromium
def test_home_page_navigation_groups_stages_and_links_every_module(served, browser):
    browser.open(f"{served}/index.html")
    sections = browser.js("[...document.querySelectorAll('.md-nav--primary .md-nav__item--section > label')]"
                          ".map(e => e.textContent.trim())")
    assert set(STAGES.values()) <= set(sections), sections
    links = set(browser.js("[...document.querySelectorAll('.md-nav--primary a.md-nav__link')]"
                           ".map(a => a.getAttribute('href'))"))
    for mod in modules(): assert f"{mod}.html" in links, f"{mod}.html not in the sidebar"
    browser.screenshot("home.png")

@needs_chromium
def test_stage_page_renders_code_outputs_and_api(served, browser):
    browser.open(f"{served}/extract.html")
    _eq(browser.js("document.querySelector('article h1').textContent.trim().replace('¶', '')"), "extract")
    assert browser.js("document.querySelectorAll('.highlight-ipynb, .highlight pre').length") > 5, "no highlighted code"
    assert browser.js("document.querySelectorAll('.jp-OutputArea-output').length") > 3, "no saved outputs shown"
    assert browser.js("document.querySelector('.md-nav__link--active').textContent.trim()") == "extract"
    browser.screenshot("stage_page.png")

@needs_chromium
def test_search_box_finds_a_function_across_pages(served, browser):
    browser.open(f"{served}/index.html")
    browser.js("document.querySelector('input.md-search__input').focus()")
    browser.send("Input.insertText", text="start_phoenix")  # typed, as a reader types into the box
    browser.wait("document.querySelectorAll('.md-search-result__item').length > 0")
    time.sleep(1)  # let the result list finish rendering before the screenshot
    meta = browser.js("document.querySelector('.md-search-result__meta').textContent")
    assert re.search(r"\d+ matching document", meta), meta
    hrefs = browser.js("[...document.querySelectorAll('.md-search-result__item a')].map(a => a.getAttribute('href'))")
    assert any("phoenix_server.html" in h or "telemetry.html" in h for h in hrefs), hrefs
    browser.screenshot("search.png")

def test_readme_is_rendered_from_index_notebook():
    _eq((ROOT / "README.md").read_text(), readme_text(ROOT / "nbs" / "index.ipynb"))
