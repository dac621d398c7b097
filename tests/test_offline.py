"""relabel embeds with no network: the packaged all-MiniLM-L6-v2 loads and embeds with every socket refused.

The guard runs in a fresh interpreter, so nothing imported earlier in the test session can hide a network call
made at import time; the Hugging Face offline variables are removed and the Hugging Face libraries imported before
relabel, so it is relabel's own loading (by local path, local files only) that keeps the network untouched.
Connection attempts are recorded as well as refused: a library that swallowed the error would still be caught.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

GUARDED_EMBED = textwrap.dedent("""
    import json, socket, sys
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[1:] if args and isinstance(args[0], socket.socket) else args)[:200])
        raise OSError("network disabled by test_offline")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse

    # The hard case: the Hugging Face stack is imported before relabel could set HF_HUB_OFFLINE, so only
    # relabel's loading by local path with local_files_only keeps it off the network.
    import sentence_transformers, huggingface_hub
    from relabel.models.fit import featurizer
    f = featurizer("sentence-transformers", threads=1)
    X = f.transform(["A man is playing a guitar.", "Someone plays an instrument.",
                     "The stock market fell sharply today."], ["a", "b", "c"])
    json.dump({"attempts": attempts, "shape": list(X.shape), "vectors": X.tolist(), "model_id": f.model_id},
              sys.stdout)
""")


def run_guarded(backend: str = "torch", cache_dir=None):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    if cache_dir is not None:
        env["RELABEL_CACHE_DIR"] = str(cache_dir)
    script = GUARDED_EMBED.replace('featurizer("sentence-transformers", threads=1)',
                                   f'featurizer("sentence-transformers", threads=1, backend={backend!r})')
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          timeout=300, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_packaged_minilm_loads_and_embeds_without_opening_a_socket():
    result = run_guarded()
    assert result["attempts"] == []
    assert result["shape"] == [3, 384]
    assert result["model_id"].startswith("st:all-MiniLM-L6-v2@")


@pytest.mark.slow
def test_packaged_minilm_puts_related_sentences_closer_than_unrelated():
    from relabel.models.fit import featurizer
    X = featurizer("sentence-transformers", threads=1).transform([
        "A man is playing a guitar.", "Someone plays an instrument.",
        "The stock market fell sharply today.", "Share prices dropped on Wall Street."])
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=1e-5)
    cos = X @ X.T
    assert cos[0, 1] > cos[0, 2] + 0.2 and cos[0, 1] > cos[0, 3] + 0.2
    assert cos[2, 3] > cos[2, 0] + 0.2 and cos[2, 3] > cos[2, 1] + 0.2


@pytest.mark.slow
def test_int8_onnx_path_exports_and_embeds_without_opening_a_socket(tmp_path):
    """The fast path's first use exports and quantises the installed weights, all offline; its vectors stay
    within cosine 0.99 of the float model's."""
    pytest.importorskip("onnxruntime")
    fast = run_guarded("onnx-int8", cache_dir=tmp_path)
    assert fast["attempts"] == [] and fast["shape"] == [3, 384]
    assert fast["model_id"].endswith(":onnx-int8")
    assert list((tmp_path / "onnx").glob("*-int8.onnx"))
    exact = run_guarded()
    cosine = np.sum(np.array(fast["vectors"]) * np.array(exact["vectors"]), axis=1)
    assert (cosine >= 0.99).all(), cosine


def test_guard_would_catch_a_connection():
    """The guard itself works: the same patching makes a plain connection attempt fail and be recorded."""
    code = GUARDED_EMBED.split("# The hard case")[0] + textwrap.dedent("""
        try:
            socket.create_connection(("example.com", 80), timeout=1)
        except OSError:
            pass
        print(json.dumps(attempts))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert len(json.loads(done.stdout)) == 1
