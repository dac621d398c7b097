"""Sentence embeddings on a Dask cluster: a LocalCluster of N processes, or any running cluster by its address.

Embedding costs ~0.08 CPU-s per 1,250-character text with all-MiniLM-L6-v2 on a CPU core, so a million texts is
about 22 CPU-hours: more than one machine should do. Dask (dask.distributed) spreads the texts over workers; this
module only cuts them into chunks and keeps the embedding cache up to date:

- Each worker process loads the model once (kept in the process between tasks) with the same options as the
  local path, so the vectors are the local path's vectors. The worker resolves the model by the same setting
  (an installed model package, or a directory that must exist on the worker) and reports the model id it
  computed; a worker holding other weights is refused instead of filling the cache with foreign vectors.
- Chunks are submitted a few at a time (``IN_FLIGHT_PER_THREAD`` per worker thread), so neither this process
  nor the scheduler holds all the texts, and every finished chunk is handed to ``on_chunk`` (the featurizer
  writes it to the embedding cache) as soon as it arrives: an interrupted run resumes from what was saved.
- Torch on a worker uses that worker's Dask threads (``threads_per_worker``), unless ``threads`` is set, so N
  processes on N cores do not each start one torch thread per core.

Workers of an existing cluster need relabel and the model installed. No worker pool is written here: the
scheduling, retries and worker management are Dask's.
"""
from __future__ import annotations

import contextlib
import json
from typing import Callable, Iterator, Sequence

import numpy as np

from relabel.about import DISTRIBUTION
from relabel.errors import ConfigError

# Texts per Dask task: large enough that the task overhead (~ms) vanishes beside the embedding (~20 CPU-s for
# MiniLM), small enough that an interruption loses little and the last chunks spread over the workers.
CHUNK_TEXTS = 256
# Chunks queued per worker thread: one running and one waiting, so a worker never idles between chunks.
IN_FLIGHT_PER_THREAD = 2
# Seconds to wait for an existing scheduler to answer.
CONNECT_TIMEOUT = 30

def check_scheduler(address: str | None) -> str | None:
    """Validate the ``dask_scheduler`` setting (an address such as tcp://host:8786)."""
    if address is None:
        return None
    if not isinstance(address, str) or "://" not in address:
        raise ConfigError(f"The 'dask_scheduler' setting must be a scheduler address such as "
                          f"'tcp://host:8786'. Got {address!r}.")
    return address


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None,
                timeout: float | None = None) -> Iterator[object]:
    """A dask.distributed Client: on the cluster at ``scheduler``, else on a LocalCluster of ``workers`` processes
    (one thread each) that lives as long as the block."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("Embedding on Dask needs dask.distributed; install it with "
                          f"`pip install '{DISTRIBUTION}[dask]'` or unset 'workers' and 'dask_scheduler'.") from None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT if timeout is None else timeout)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"Cannot reach the Dask scheduler at {scheduler} ({type(exc).__name__}); start it "
                              "(`dask scheduler`) or fix the 'dask_scheduler' setting.") from None
        with client:
            yield client
        return
    # Loopback only, and the dashboard on a free port: a local cluster serves nobody but this process.
    with LocalCluster(n_workers=int(workers or 1), threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


def embed_on_dask(spec: dict, model_id: str, texts: Sequence[str], hashes: Sequence[str], client,
                  encode: Callable[[str, list[str]], tuple[str, np.ndarray]],
                  on_chunk: Callable[[list[str], np.ndarray], None] | None = None,
                  chunk: int = CHUNK_TEXTS) -> np.ndarray:
    """Embed ``texts`` on the cluster behind ``client``; rows in the order of ``texts``.

    ``spec`` holds the featurizer's options (model, batch_size, device, threads, normalize, max_seq_length);
    ``encode(spec_json, texts)`` runs on a worker and returns its featurizer's model id and the vectors (the
    featurizer module passes its own, so this module never imports it); ``model_id`` is the id the local
    featurizer computed, which every worker's must equal. ``on_chunk(hashes,
    vectors)`` is called once per finished chunk, in the order chunks finish.
    """
    from distributed import as_completed

    starts = list(range(0, len(texts), chunk))
    out: np.ndarray | None = None
    window = IN_FLIGHT_PER_THREAD * max(1, sum(client.nthreads().values()))
    spec_json = json.dumps(spec, sort_keys=True)
    pending = iter(starts)

    start_of: dict[str, int] = {}

    def submit(start: int):
        future = client.submit(encode, spec_json, list(texts[start:start + chunk]), pure=False)
        start_of[future.key] = start
        return future

    running = as_completed([submit(s) for _, s in zip(range(window), pending)])
    for future in running:
        worker_model_id, vectors = future.result()
        if worker_model_id != model_id:
            raise ConfigError(f"A Dask worker embeds with model {worker_model_id!r}, not {model_id!r} like this "
                              "process; install the same model on every worker.")
        start = start_of.pop(future.key)
        if out is None:
            out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
        out[start:start + len(vectors)] = vectors
        if on_chunk is not None:
            on_chunk(list(hashes[start:start + len(vectors)]), vectors)
        following = next(pending, None)
        if following is not None:
            running.add(submit(following))
    return out if out is not None else np.empty((0, 0), dtype=np.float32)
