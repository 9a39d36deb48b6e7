"""Literate-style measures of the notebooks, per notebook and in total (a report, not a gate).

Usage: python tools/nb_metrics.py [NOTEBOOK_OR_DIR ...] [--json]   (default: nbs/)
Columns: export cells, their median non-blank lines, share over 30 and 40 lines, functions over 40 lines, example
cells (code cells that neither export nor only import) and the share with saved outputs, share of export lines over
120 characters. Targets (the anchors fastcore/nbdev/claudette): median <= 12, over 30 <= 5%, examples with output
>= 40%, long lines <= 3%.
"""
import ast, json, statistics, sys
from pathlib import Path

def cells(nb):
    "(cell_type, source, outputs) of each cell of notebook `nb`."
    for c in json.loads(Path(nb).read_text()).get("cells", []):
        src = c.get("source", "")
        yield c.get("cell_type"), "".join(src) if isinstance(src, list) else src, c.get("outputs", [])

def is_export(lines):
    "Does a cell whose non-blank `lines` these are export code?"
    return any(l.replace(" ", "").startswith(("#|export", "#|exports")) for l in lines[:3])

def long_functions(src, limit=40):
    "Functions in `src` longer than `limit` lines (an unparsable cell has none)."
    try: tree = ast.parse(src)
    except SyntaxError: return 0
    fns = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return sum(n.end_lineno - n.lineno + 1 > limit for n in fns)

def measure(paths):
    "The measures over the notebooks `paths`."
    exp, ex, ex_out, long_lines, all_lines, long_fns = [], 0, 0, 0, 0, 0
    for nb in paths:
        for kind, src, outs in cells(nb):
            if kind != "code": continue
            lines = [l for l in src.splitlines() if l.strip()]
            body = [l for l in lines if not l.startswith("#|")]
            if is_export(lines):
                exp.append(len(body)); all_lines += len(body); long_lines += sum(len(l) > 120 for l in body)
                long_fns += long_functions("\n".join(l for l in src.splitlines() if not l.startswith("#|")))
            elif body and not all(l.startswith(("import ", "from ")) for l in body):
                ex += 1; ex_out += bool(outs)
    n = max(len(exp), 1)
    return {"export_cells": len(exp), "median_lines": statistics.median(exp) if exp else 0,
            "over_30": round(sum(k > 30 for k in exp) / n, 3), "over_40": round(sum(k > 40 for k in exp) / n, 3),
            "fns_over_40": long_fns, "example_cells": ex, "with_output": round(ex_out / max(ex, 1), 3),
            "long_lines": round(long_lines / max(all_lines, 1), 3)}

def notebooks(args):
    "Notebooks named by `args` (files or folders; default nbs/), checkpoints left out."
    out = []
    for a in args or ["nbs"]:
        p = Path(a)
        out += [p] if p.is_file() else sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts)
    return out

def table(rows):
    "A fixed-width text table of `rows` (name -> measures)."
    keys = list(next(iter(rows.values())))
    lines = [f"{'notebook':32}" + "".join(f"{k:>14}" for k in keys)]
    lines += [f"{name[:32]:32}" + "".join(f"{v:>14}" for v in m.values()) for name, m in rows.items()]
    return "\n".join(lines)

if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    nbs = notebooks(args)
    rows = {nb.stem: measure([nb]) for nb in nbs}
    rows["TOTAL"] = measure(nbs)
    print(json.dumps(rows) if "--json" in sys.argv else table(rows))
