"Rendering the report: what a user sees on the terminal and in the HTML, beyond the notebook's inline tests."
import subprocess, sys, textwrap
from pathlib import Path

import nbformat
from fastcore.test import test_eq as _eq


def _tiny_report(path:Path) -> Path:
    "A report notebook with a parameters cell and one chart (no Phoenix needed)."
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "python3", "language": "python"},
                                            "language_info": {"name": "python"}})
    params = nbformat.v4.new_code_cell("tenant_id = 'x'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(textwrap.dedent("""
        from IPython.display import HTML, display
        from cogniverse_ft.report import loss_figure, figure_html
        display(HTML(figure_html(loss_figure({'r': {'train_loss': [[s, 3.0 / s] for s in range(1, 60)], 'eval_loss': [[59, 0.2]]}}),
                                 f'loss of {tenant_id}')))"""))]
    nbformat.write(nb, str(path))
    return path


def test_render_prints_no_kernel_transport_warning(tmp_path):
    "The kernel runs over IPC: no 'Kernel is running over TCP without encryption' line on the terminal, and the HTML is whole."
    nb, out = _tiny_report(tmp_path/"tiny.ipynb"), tmp_path/"out"/"r.html"
    code = f"from cogniverse_ft.report import render_report; render_report('acme', notebook={str(nb)!r}, out={str(out)!r})"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "without encryption" not in p.stderr + p.stdout, p.stderr
    html = out.read_text()
    assert 'aria-label="loss of acme"' in html and "<svg" in html
    assert "<script src=\"http" not in html  # one self-contained file
    _eq(sorted(x.name for x in out.parent.iterdir()), ["r.html", "r.ipynb"])  # no socket files left beside it


def test_report_glyphs_are_in_dejavu():
    "Every non-ASCII character the report code writes is one DejaVu Sans (the default Linux fonts) can draw."
    from fontTools.ttLib import TTFont
    font = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    if not font.exists():
        import matplotlib
        font = Path(matplotlib.get_data_path())/"fonts"/"ttf"/"DejaVuSans.ttf"  # matplotlib ships the same font
    cmap = TTFont(str(font), lazy=True).getBestCmap()
    root = Path(__file__).resolve().parents[1]
    text = (root/"cogniverse_ft"/"report.py").read_text() + (root/"nbs"/"reports"/"finetuning_report.ipynb").read_text()
    missing = sorted({c for c in text if ord(c) > 127 and ord(c) not in cmap})
    _eq(missing, [])
