"Model resolution and loading with the real bundled weights, cold and warm caches."
import os, subprocess, sys, json, time, shutil
from pathlib import Path
import pytest
from fastcore.test import test_eq as _eq, test_fail as _fail
from cogniverse_ft.models import (resolve_causal_lm, gguf_cache_dir, materialize_gguf, bundled_file, BUNDLED_CAUSAL_LM,
                                  ModelNotFoundError, load_causal_lm, chat, load_embedding_model)

LOAD = """
import time, json; t=time.time()
from cogniverse_ft.models import load_causal_lm, resolve_causal_lm
m, tok = load_causal_lm(); print(json.dumps({"s": time.time()-t, "source": resolve_causal_lm().source}))
"""

def _load_in_fresh_process(home):
    env = {**os.environ, "COGNIVERSE_FT_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-c", LOAD], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])

def test_cold_then_warm_load(tmp_path):
    cold = _load_in_fresh_process(tmp_path)
    caches = list((tmp_path / "cache" / "models").iterdir())
    _eq(len(caches), 1)
    assert (caches[0] / "model.safetensors").exists() and (caches[0] / "config.json").exists()
    assert not [p for p in caches[0].parent.iterdir() if p.name.startswith(".")], "temporary folders left behind"
    warm = _load_in_fresh_process(tmp_path)
    print(f"first load (GGUF parse + dequantize + cache) {cold['s']:.1f}s, second load {warm['s']:.1f}s")
    _eq((cold["source"], warm["source"]), ("bundled package", "bundled package"))
    assert warm["s"] < cold["s"]

def test_cache_is_keyed_by_content(tmp_path):
    a, b, c = tmp_path / "a.gguf", tmp_path / "b.gguf", tmp_path / "c.gguf"
    a.write_bytes(b"x" * 100); b.write_bytes(b"x" * 100); c.write_bytes(b"y" * 100)
    _eq(gguf_cache_dir(a).name.split("-")[-1], gguf_cache_dir(b).name.split("-")[-1])
    assert gguf_cache_dir(a).name.split("-")[-1] != gguf_cache_dir(c).name.split("-")[-1]

def test_broken_gguf_leaves_no_cache(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(Exception):
        materialize_gguf(bad)
    assert not gguf_cache_dir(bad).exists()

def test_gguf_file_and_folder_paths_resolve():
    g = bundled_file("HuggingFaceTB/SmolLM2-135M-Instruct", BUNDLED_CAUSAL_LM)
    r = resolve_causal_lm(str(g))
    _eq(r.source, "local folder")
    _eq(r.path, resolve_causal_lm().path)  # same content -> same cache

def test_unknown_model_lists_what_was_tried():
    with pytest.raises(ModelNotFoundError) as e:
        resolve_causal_lm("acme/does-not-exist")
    msg = str(e.value)
    for part in ["acme/does-not-exist", "local folder", "HF cache", "offline"]:
        assert part in msg, msg

def test_local_folder_and_chat_format(tmp_path):
    model, tok = load_causal_lm()
    model.save_pretrained(tmp_path / "m"); tok.save_pretrained(tmp_path / "m")
    m2, t2 = load_causal_lm(str(tmp_path / "m"))
    _eq(resolve_causal_lm(str(tmp_path / "m")).source, "local folder")
    text = t2.apply_chat_template([{"role": "user", "content": "Say hi"}], add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|im_start|>system") and text.rstrip().endswith("<|im_start|>assistant")
    assert "Paris" in chat(m2, t2, "What is the capital of France?", max_new_tokens=12)

def test_embedding_model_offline():
    m = load_embedding_model("sentence-transformers/all-MiniLM-L6-v2", device="cpu")
    _eq(m.get_embedding_dimension(), 384)
