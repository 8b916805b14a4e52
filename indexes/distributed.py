"""Distributed ingestion: the chunks that need embedding go through a Ray Data actor pool, one encoder per actor.

The driver reads, chunks and diffs the folder exactly as :class:`~grace_rag.indexes.ingest.Indexer`
does, then plans the same model batches the single-process path would encode
(:func:`plan_groups`), streams them through ``Dataset.map_batches`` over a pool of
:class:`EmbedWorker` actors (order preserved), and writes the results into the same
:class:`GraceIndex` batch by batch, in the same order, one committed transaction each. A killed
job therefore resumes like a single-process one: chunks already stored are not embedded again.

Install with ``pip install 'grace-rag[ray]'``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import socket
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grace_rag import errors
from grace_rag.errors import ClusterError, ConfigError, GraceError
from grace_rag.indexes.ingest import Indexer, IngestReport
from grace_rag.indexes.records import Chunk, EncoderInfo, check_fingerprint

logger = logging.getLogger(__name__)

#: environment variables an actor needs to find models the way the driver does
FORWARDED_ENV = ("GRACE_RAG_HOME", "HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def require_ray() -> Any:
    """The ``ray`` module, or an ImportError naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError("distributed indexing (--ray) needs Ray: pip install 'grace-rag[ray]'") from None
    return ray


@dataclass
class RayConfig:
    """Where and how wide the embedding actor pool runs."""

    address: str | None = field(default=None, metadata={
        "help": "Ray cluster to join: host:port of the head node's GCS, 'auto' (the cluster this node belongs to) "
                "or ray://host:port; default: RAY_ADDRESS, else a new local cluster."})
    workers: int | None = field(default=None, metadata={
        "help": "Embedding actors (one model each); default: the cluster's CPUs / cpus_per_worker, or its GPUs / gpus_per_worker."})
    gpus_per_worker: float = field(default=0.0, metadata={"help": "GPUs per actor (0: CPU actors; 0.5: two actors share a GPU)."})
    cpus_per_worker: float = field(default=1.0, metadata={"help": "CPUs (and torch threads) per actor."})
    connect_timeout_s: float = field(default=20.0, metadata={"help": "Seconds to wait for the cluster to answer."})
    max_retries: int = field(default=3, metadata={
        "help": "Restarts of a dead actor and retries of its batch; beyond them the job stops, the index intact and resumable."})

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}")
        if self.gpus_per_worker < 0 or self.cpus_per_worker <= 0:
            raise ConfigError(f"need gpus_per_worker >= 0 and cpus_per_worker > 0, got {self.gpus_per_worker} "
                              f"and {self.cpus_per_worker}")
        if self.connect_timeout_s <= 0 or self.max_retries < 0:
            raise ConfigError(f"need connect_timeout_s > 0 and max_retries >= 0, got {self.connect_timeout_s} "
                              f"and {self.max_retries}")

    @property
    def device(self) -> str:
        return "cuda" if self.gpus_per_worker > 0 else "cpu"


# -- pure steps -------------------------------------------------------------------------
def plan_groups(todo: Sequence[Chunk], known: set[str], batch_size: int) -> list[list[str]]:
    """The texts each model call embeds, exactly as the single-process Indexer batches them.

    ``todo`` is cut into batches of ``batch_size``; a batch embeds its distinct texts whose
    content hash is neither in ``known`` (already stored) nor in an earlier batch. Batches with
    nothing to embed make no group.
    """
    seen, groups = set(known), []
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        texts = list(dict.fromkeys(c.text for c in batch if c.content_hash not in seen))
        if texts:
            groups.append(texts)
        seen.update(c.content_hash for c in batch)
    return groups


def gcs_endpoint(address: str) -> tuple[str, int] | None:
    """(host, port) to probe for ``host:port`` or ``ray://host:port``; None for 'auto'/'local'."""
    if address in ("auto", "local"):
        return None
    bare = address.removeprefix("ray://")
    host, sep, port = bare.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"Ray address {address!r} is not host:port, ray://host:port or 'auto'")
    return host.strip("[]"), int(port)


def default_workers(resources: dict[str, float], config: RayConfig) -> int:
    """As many actors as the cluster's GPUs (or CPUs) allow, at least one."""
    if config.gpus_per_worker > 0:
        return max(1, int(resources.get("GPU", 0) // config.gpus_per_worker))
    return max(1, int(resources.get("CPU", 1) // config.cpus_per_worker))


def check_fits(resources: dict[str, float], config: RayConfig, workers: int) -> None:
    """Refuse a pool the cluster cannot hold (Ray Data would wait for it forever)."""
    for kind, each in (("CPU", config.cpus_per_worker), ("GPU", config.gpus_per_worker)):
        have = resources.get(kind, 0.0)
        if each and workers * each > have:
            raise ConfigError(f"{workers} Ray workers x {each:g} {kind} need {workers * each:g} {kind}s but the "
                              f"cluster has {have:g}; lower --workers (or --gpus-per-worker) or add nodes")


# -- the actor --------------------------------------------------------------------------
@dataclass(frozen=True)
class EncoderSpec:
    """How each actor rebuilds the driver's encoder: model, settings, device, dtype, and the fingerprint to match."""

    model: str
    settings: dict[str, Any]
    device: str
    dtype: str  # "float32", "bfloat16": the index's vectors are computed in one dtype everywhere
    info: dict[str, Any]  # EncoderInfo of the index
    index_path: str = ""  # for messages
    env: dict[str, str] = field(default_factory=dict)
    threads: int = 1

    @classmethod
    def of(cls, encoder: Any, info: EncoderInfo, device: str, threads: int, index_path: str = "") -> "EncoderSpec":
        from grace_rag import EncoderConfig

        names = {f.name for f in dataclasses.fields(EncoderConfig)}
        settings = {k: v for k, v in encoder.config.to_dict().items() if k in names}
        settings.update(cache=False, show_progress=False)  # the index is the cache; actors draw no bars
        return cls(model=str(encoder.model_name), settings=settings, device=device,
                   dtype=str(encoder.backbone.model.dtype).removeprefix("torch."), info=info.to_dict(),
                   index_path=index_path, env={k: os.environ[k] for k in FORWARDED_ENV if k in os.environ},
                   threads=threads)

    def load(self) -> Any:
        """The encoder, checked against the index's fingerprint (a GraceIndexError naming both otherwise)."""
        import torch

        from grace_rag import EncoderConfig, GraceEncoder
        from grace_rag.models import load_backbone

        backbone = load_backbone(self.model, device=self.device, dtype=getattr(torch, self.dtype))
        encoder = GraceEncoder(model=self.model, config=EncoderConfig(**self.settings), device=self.device,
                               backbone=backbone)
        check_fingerprint(EncoderInfo.from_dict(self.info), EncoderInfo.of(encoder),
                          f"{self.index_path} (checked on Ray worker {socket.gethostname()})")
        return encoder


class EmbedWorker:
    """A Ray Data callable class: one encoder per actor; a row is one model batch of texts."""

    def __init__(self, spec: EncoderSpec) -> None:
        import torch

        os.environ.update(spec.env)
        torch.set_num_threads(max(1, spec.threads))
        self.encoder = spec.load()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """{"texts": (G,) arrays of texts} -> one row per text: its hash, vector and rationale."""
        from grace_rag.indexes.records import content_hash

        hashes, vectors, rationales = [], [], []
        for group in batch["texts"]:
            texts = [str(t) for t in group]
            encoding = self.encoder.encode(texts, role="document")
            hashes += [content_hash(t) for t in texts]
            vectors.append(encoding.vectors)
            rationales += encoding.rationales
        return {"hash": np.array(hashes, dtype=object), "vector": np.concatenate(vectors),
                "rationale": np.array(rationales, dtype=object)}


# -- the cluster ------------------------------------------------------------------------
@contextmanager
def ray_session(config: RayConfig) -> Iterator[Any]:
    """Join (or start) a Ray cluster for the duration of the block; a session already open is reused.

    An address that does not answer within ``connect_timeout_s`` is a ClusterError (Ray itself
    would wait for minutes).
    """
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    address = probe_cluster(config)
    _init_within(ray, address, config.connect_timeout_s)
    try:
        yield ray
    finally:
        ray.shutdown()


def probe_cluster(config: RayConfig) -> str | None:
    """The address to join (None: a new local cluster), after checking that its port answers (a ClusterError if not)."""
    address = config.address or os.environ.get("RAY_ADDRESS") or None
    endpoint = gcs_endpoint(address) if address else None
    if endpoint is not None:
        _probe(address, endpoint, config.connect_timeout_s)
    return address


def _probe(address: str, endpoint: tuple[str, int], timeout: float) -> None:
    try:
        socket.create_connection(endpoint, timeout=timeout).close()
    except OSError as exc:
        raise ClusterError(
            f"cannot reach a Ray cluster at {address} within {timeout:g} s ({exc.strerror or exc}); start one there "
            "with `ray start --head`, pass the head node's address, or leave out --address for a local cluster"
        ) from None


def _init_within(ray: Any, address: str | None, timeout: float) -> None:
    """``ray.init``; joining a remote address runs in a helper thread, so that a port that is open but
    not Ray cannot hang the caller. A new local cluster starts in this thread: Ray ties its processes'
    lifetime to the thread that starts them."""
    local = address in (None, "local")
    options = {"include_dashboard": False} if local else {}

    def connect() -> BaseException | None:
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False, **options)
        except Exception as exc:  # handed to the caller
            return exc
        return None

    if address is None or gcs_endpoint(address) is None:
        failure = connect()
    else:
        outcome: list[BaseException | None] = []
        thread = threading.Thread(target=lambda: outcome.append(connect()), name="ray-connect", daemon=True)
        thread.start()
        thread.join(timeout)
        if not outcome:
            raise ClusterError(f"the Ray cluster at {address} did not answer within {timeout:g} s; "
                               "check that the address is the head node's GCS port (6379 by default)")
        failure = outcome[0]
    if failure is not None:
        first = str(failure).strip().splitlines()[0] if str(failure).strip() else type(failure).__name__
        raise ClusterError(f"cannot join the Ray cluster at {address or 'localhost'} ({first}); start one with "
                           "`ray start --head` or leave out --address for a local cluster")


#: how a GraceError raised in an actor's constructor reaches the driver: as the last line of the
#: creation task's traceback, inside ``ActorDiedError.error_msg``
_REMOTE_ERROR = re.compile(r"^grace_rag\.errors\.(\w+): (.+)$", re.MULTILINE)


def grace_error_in(exc: BaseException) -> GraceError | None:
    """The GraceError raised inside an actor, found in the chain of Ray's wrappers (or None)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, GraceError):
            return current
        remote = _REMOTE_ERROR.findall(str(getattr(current, "error_msg", "") or ""))
        kind = getattr(errors, remote[-1][0], None) if remote else None
        if isinstance(kind, type) and issubclass(kind, GraceError):
            return kind(remote[-1][1].strip())
        todo += [current.__cause__, current.__context__, getattr(current, "cause", None)]
    return None


@contextmanager
def _nothing() -> Iterator[Iterator[dict[str, np.ndarray]]]:
    yield iter(())


# -- the stateful run -------------------------------------------------------------------
class RayIndexer(Indexer):
    """An :class:`Indexer` whose embedding step runs on a Ray actor pool; everything else is unchanged."""

    def __init__(self, *args: Any, cluster: RayConfig | None = None, **kwargs: Any) -> None:
        require_ray()
        super().__init__(*args, **kwargs)
        self.cluster = cluster or RayConfig()

    def _embed_missing(self, documents: dict[str, list[Chunk]], report: IngestReport) -> None:
        todo = self._pending(documents, report)
        size = self.config.batch_size
        known = set(self.index.store.embedded(list({c.content_hash for c in todo})))
        groups = plan_groups(todo, known, size)
        self.progress.start("embedding", len(todo))
        if not todo:
            return
        with self._results(groups) if groups else _nothing() as results:
            fresh: dict[str, tuple[np.ndarray, str]] = {}
            for start in range(0, len(todo), size):
                batch = todo[start:start + size]
                stored = self.index.store.embedded([c.content_hash for c in batch])
                while any(c.content_hash not in stored and c.content_hash not in fresh for c in batch):
                    rows = next(results)
                    fresh.update(zip(rows["hash"], zip(rows["vector"], rows["rationale"])))
                done = {**stored, **fresh}
                for chunk in batch:
                    chunk.rationale = str(done[chunk.content_hash][1])
                self.index.upsert(batch, np.stack([done[c.content_hash][0] for c in batch]))  # one transaction
                report.chunks_embedded += sum(1 for h in {c.content_hash for c in batch} if h in fresh)
                for chunk in batch:
                    fresh.pop(chunk.content_hash, None)
                self.progress.advance("embedding", len(batch))

    @contextmanager
    def _results(self, groups: list[list[str]]) -> Iterator[Iterator[dict[str, np.ndarray]]]:
        """Embedded rows ({hash, vector, rationale} blocks) in the order of ``groups``, from the actor pool."""
        with ray_session(self.cluster) as ray:
            spec = EncoderSpec.of(self.encoder, self.index.manifest.encoder, self.cluster.device,
                                  threads=int(self.cluster.cpus_per_worker), index_path=str(self.index.path))
            workers = min(self.cluster.workers or default_workers(ray.cluster_resources(), self.cluster), len(groups))
            check_fits(ray.cluster_resources(), self.cluster, workers)
            context = ray.data.DataContext.get_current()
            saved = (context.execution_options.preserve_order, context.enable_progress_bars,
                     context.max_consecutive_actor_init_deaths)
            context.execution_options.preserve_order = True
            context.enable_progress_bars = False
            context.max_consecutive_actor_init_deaths = self.cluster.max_retries
            try:
                rows = ray.data.from_items([{"texts": g} for g in groups], override_num_blocks=max(1, len(groups)))
                with warnings.catch_warnings():
                    # Ray 2.60 offers no other way to bound actor restarts (its default is unbounded) and
                    # warns that these generic remote args go away in 2.64; ray is pinned to 2.60.x
                    warnings.filterwarnings("ignore", message=r".*ray_remote_args.* is deprecated")
                    embedded = rows.map_batches(
                        EmbedWorker, fn_constructor_kwargs={"spec": spec}, batch_size=1, batch_format="numpy",
                        compute=ray.data.ActorPoolStrategy(size=workers),
                        num_cpus=self.cluster.cpus_per_worker, num_gpus=self.cluster.gpus_per_worker or None,
                        max_restarts=self.cluster.max_retries, max_task_retries=self.cluster.max_retries,
                    )
                logger.info("embedding %d batches on %d Ray workers", len(groups), workers)
                blocks = iter(embedded.iter_batches(batch_size=None, batch_format="numpy"))
                try:
                    yield self._guarded(blocks)
                finally:
                    getattr(blocks, "close", lambda: None)()  # stop the stream while the session is alive
            finally:
                (context.execution_options.preserve_order, context.enable_progress_bars,
                 context.max_consecutive_actor_init_deaths) = saved

    def _guarded(self, blocks: Any) -> Iterator[dict[str, np.ndarray]]:
        """The result blocks; a failure in the cluster leaves a saved, resumable index and one clear error."""
        iterator = iter(blocks)
        while True:
            try:
                block = next(iterator)
            except StopIteration:
                return
            except GraceError:
                raise
            except Exception as exc:  # Ray's wrappers around a dead worker or an error in an actor
                self.index.save()
                inner = grace_error_in(exc)
                if inner is not None:
                    raise type(inner)(str(inner)) from None
                first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
                raise ClusterError(
                    f"the Ray embedding job failed ({type(exc).__name__}: {first.strip()[:200]}); every batch "
                    f"finished before is saved in {self.index.path}: re-run the same command to resume "
                    "(stored chunks are not embedded again)"
                ) from None
            yield block

