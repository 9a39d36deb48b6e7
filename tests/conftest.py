"Shared pytest setup: offline models, a home folder inside the checkout unless one is given."
import os, sys, subprocess, textwrap
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


# a tiny random Llama with the bundled tokenizer: for tests of the plumbing (resume, recipe, multi-turn, KTO), not of learning
TINY = textwrap.dedent("""
    import sys, torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from cogniverse_ft.models import load_tokenizer
    tok = load_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(sys.argv[1]); tok.save_pretrained(sys.argv[1])
""")

@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    "A tiny random Llama with SmolLM2's tokenizer, as a local base-model folder (trains in milliseconds per step)."
    d = tmp_path_factory.mktemp("tiny")/"llama"
    subprocess.run([sys.executable, "-c", TINY, str(d)], check=True, capture_output=True)
    return str(d)
