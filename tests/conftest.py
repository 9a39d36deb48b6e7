"Shared pytest setup: offline models, a home folder inside the checkout unless one is given."
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PHOENIX_TELEMETRY_ENABLED", "false")
os.environ.setdefault("COGNIVERSE_FT_HOME", str(ROOT / ".test-home"))
