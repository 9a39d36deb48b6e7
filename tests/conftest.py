"Shared pytest setup: offline models, a home folder inside the checkout unless one is given."
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PHOENIX_TELEMETRY_ENABLED", "false")
os.environ.setdefault("COGNIVERSE_FT_HOME", str(ROOT / ".test-home"))


import pytest

@pytest.fixture(scope="session")
def phoenix_server(tmp_path_factory):
    "One embedded Phoenix server for the whole pytest session (SQLite in a temp folder); use `.url`, never stop it."
    from cogniverse_ft.telemetry import start_phoenix
    srv = start_phoenix(working_dir=tmp_path_factory.mktemp("phoenix"), timeout=300)
    try: yield srv
    finally: srv.stop()
