"Packaging hook: the papermill pipeline and report notebooks (sources in nbs/) ship inside the wheel as package data."
from pathlib import Path
import shutil
from setuptools import setup
from setuptools.command.build_py import build_py

BUNDLED = ["nbs/pipelines/tenant_finetune.ipynb", "nbs/reports/finetuning_report.ipynb"]  # -> cogniverse_ft/notebooks/

class BuildPyWithNotebooks(build_py):
    "build_py, then copy the bundled notebooks into the built package's `notebooks/` folder."
    def run(self):
        super().run()
        dest = Path(self.build_lib)/"cogniverse_ft"/"notebooks"
        dest.mkdir(parents=True, exist_ok=True)
        for src in BUNDLED:
            if not Path(src).exists(): raise FileNotFoundError(f"bundled notebook {src} is missing from the source tree")
            shutil.copy2(src, dest/Path(src).name)

setup(cmdclass={"build_py": BuildPyWithNotebooks})
