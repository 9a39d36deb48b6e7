"Adapter storage: round trips through local folders, file:// and memory://, sha256 checks, token hygiene."
import json, logging, os, uuid
from pathlib import Path
import fsspec, pytest
from fastcore.test import test_eq as _eq, test_fail as _fail
from cogniverse_ft.storage import (upload_adapter, download_adapter, hash_folder, verify_folder, parse_storage_uri,
                                   AdapterIntegrityError, MANIFEST_NAME)


@pytest.fixture
def adapter(tmp_path):
    "A small adapter-like folder with a nested file and binary content."
    d = tmp_path / "sft_routing_20260101_000000"
    (d / "nested").mkdir(parents=True)
    (d / "adapter_config.json").write_text(json.dumps({"r": 8, "lora_alpha": 16}))
    (d / "adapter_model.safetensors").write_bytes(os.urandom(4096))
    (d / "nested" / "tokenizer.json").write_text('{"v": 1}')
    return d


def _dests(tmp_path):
    return [str(tmp_path / "pub" / "a"), f"file://{tmp_path}/pub-file/a", f"memory://cf-test-{uuid.uuid4().hex}/routing/1.0.0"]


def test_round_trips_keep_every_byte(adapter, tmp_path):
    files = hash_folder(adapter)
    for dest in _dests(tmp_path):
        uri = upload_adapter(adapter, dest)
        # with the registry's record, and with only the manifest that travelled with the files
        got1 = download_adapter(uri, local_dir=tmp_path / "dl1", expected_hashes=files)
        got2 = download_adapter(uri, local_dir=tmp_path / "dl2")
        for got in (got1, got2):
            _eq(hash_folder(got), files)
            _eq((got / "adapter_model.safetensors").read_bytes(), (adapter / "adapter_model.safetensors").read_bytes())
        _eq(download_adapter(uri, local_dir=tmp_path / "dl1", expected_hashes=files), got1)  # verified reuse


def test_registry_hashes_beat_a_rewritten_manifest(adapter, tmp_path):
    "An attacker who swaps a file and rewrites the shipped manifest still fails the registry's check."
    files = hash_folder(adapter)
    dest = f"memory://cf-test-{uuid.uuid4().hex}/a"
    upload_adapter(adapter, dest)
    fs, root = fsspec.core.url_to_fs(dest)
    fs.pipe_file(f"{root}/adapter_model.safetensors", b"evil weights")
    forged = dict(files, **{"adapter_model.safetensors": __import__("hashlib").sha256(b"evil weights").hexdigest()})
    fs.pipe_file(f"{root}/{MANIFEST_NAME}", json.dumps({"files": forged}).encode())
    download_adapter(dest, local_dir=tmp_path / "trusting")  # the forged manifest alone is self-consistent
    _fail(download_adapter, args=(dest,), kwargs=dict(local_dir=tmp_path / "dl", expected_hashes=files),
          contains="sha256 mismatch")
    assert not any((tmp_path / "dl").iterdir()), "a rejected download must leave nothing behind"


def test_mismatch_missing_and_unexpected_files_are_errors(adapter, tmp_path):
    files = hash_folder(adapter)
    dest = f"memory://cf-test-{uuid.uuid4().hex}/a"
    upload_adapter(adapter, dest)
    fs, root = fsspec.core.url_to_fs(dest)
    fs.rm(f"{root}/nested/tokenizer.json")
    fs.pipe_file(f"{root}/backdoor.py", b"import os")
    with pytest.raises(AdapterIntegrityError) as e:
        download_adapter(dest, local_dir=tmp_path / "dl", expected_hashes=files)
    assert "missing: nested/tokenizer.json" in str(e.value) and "unexpected: backdoor.py" in str(e.value), str(e.value)


def test_tampered_earlier_download_is_caught(adapter, tmp_path):
    files = hash_folder(adapter)
    dest = f"memory://cf-test-{uuid.uuid4().hex}/a"
    upload_adapter(adapter, dest)
    got = download_adapter(dest, local_dir=tmp_path / "dl", expected_hashes=files)
    (got / "adapter_config.json").write_text('{"r": 64}')
    _fail(download_adapter, args=(dest,), kwargs=dict(local_dir=tmp_path / "dl", expected_hashes=files),
          contains="changed: adapter_config.json")


def test_local_source_verified_in_place(adapter):
    files = hash_folder(adapter)
    _eq(download_adapter(str(adapter), expected_hashes=files), adapter)
    _fail(download_adapter, args=(str(adapter),), contains="No sha256 manifest")  # nothing to verify against
    _eq(download_adapter(str(adapter), verify=False), adapter)
    (adapter / "adapter_config.json").write_text("{}")
    _fail(download_adapter, args=(str(adapter),), kwargs=dict(expected_hashes=files), contains="changed: adapter_config.json")


def test_partial_upload_without_manifest_is_refused(adapter, tmp_path):
    "Files without a manifest (an interrupted upload, or foreign files) are not accepted unless verify=False."
    dest = f"memory://cf-test-{uuid.uuid4().hex}/a"
    fs, root = fsspec.core.url_to_fs(dest)
    fs.pipe_file(f"{root}/adapter_config.json", b"{}")
    _fail(download_adapter, args=(dest,), kwargs=dict(local_dir=tmp_path / "dl"), contains="No sha256 manifest")
    got = download_adapter(dest, local_dir=tmp_path / "dl", verify=False)
    _eq(sorted(hash_folder(got)), ["adapter_config.json"])
    _fail(upload_adapter, args=(adapter, dest), contains="immutable")  # never uploads over foreign files


def test_published_versions_are_immutable(adapter, tmp_path):
    for dest in _dests(tmp_path):
        upload_adapter(adapter, dest)
        _eq(upload_adapter(adapter, dest), parse_storage_uri(dest).uri)  # identical re-upload: no-op
    (adapter / "adapter_config.json").write_text('{"r": 16}')
    for dest in _dests(tmp_path)[:2]:
        _fail(upload_adapter, args=(adapter, dest), contains="immutable")


def test_bad_input_named(tmp_path):
    _fail(upload_adapter, args=(tmp_path / "missing", "memory://x/y"), contains="does not exist")
    (tmp_path / "empty").mkdir()
    _fail(upload_adapter, args=(tmp_path / "empty", "memory://x/y"), contains="holds no files")
    _fail(download_adapter, args=("nosuch://bucket/x",), contains="Unknown storage scheme 'nosuch'")
    _fail(download_adapter, args=("hf://just-a-name",), contains="expected hf://org/repo")
    _fail(download_adapter, args=(f"memory://cf-test-{uuid.uuid4().hex}/none",), kwargs=dict(local_dir=tmp_path),
          contains="No adapter files")


def test_hf_token_never_logged_or_raised(adapter, tmp_path, caplog, monkeypatch):
    "The hub is unreachable here: the failure must name the problem without echoing the token."
    token = "hf_" + "S3cr3tT0ken" * 3
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    caplog.set_level(logging.DEBUG)
    for call in (lambda: upload_adapter(adapter, "hf://acme/routing-adapter", hf_token=token),
                 lambda: download_adapter("hf://acme/routing-adapter", local_dir=tmp_path / "dl", hf_token=token)):
        with pytest.raises(Exception) as e:
            call()
        assert token not in str(e.value) and token not in repr(e.value)
        assert "offline" in str(e.value).lower(), str(e.value)
    assert token not in caplog.text
    assert not any((tmp_path / "dl").iterdir()), "a failed hub download must leave nothing behind"
