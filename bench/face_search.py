"""Face search: pgvector HNSW per model version (the index design its index_params name) against
numpy exact search of the same vectors, in the same run, on galleries that resemble faces and on
the i.i.d. worst case.

    .venv/bin/python bench/face_search.py [--sizes 100000] [--dims 128 512] [--data structured iid]
                                         [--designs vector halfvec-rerank bit-rerank] [--ef 40 64 100 200]
                                         [--queries 500] [--workers 1] [--json out.json]

Data (see FaceModel and gallery()):
- structured: identities with several faces each (1 + Poisson(1.5), at most 5), drawn so that the
  cosine between two faces of one identity (genuine) and of two identities (impostor) follow the
  published distributions of the model class (MODELS). Identity centres lie near a low-dimensional
  subspace (rank LATENT_RANK, weight `rho`): real embeddings cluster by identity on a manifold of far
  lower dimension than D, which is what makes impostors' cosines spread wider than i.i.d. vectors'.
  A face = normalize(sqrt(g) * centre + sqrt(1 - g) * noise), g per face ~ N(g_mean, g_std).
  Genuine probes: a *new* face of an enrolled identity (new noise, new g; never stored). Impostor
  probes: faces of identities never enrolled.
- iid: random unit vectors, one person each (the earlier bench's data): genuine probes are an enrolled
  vector plus noise (cosine ~0.95), impostor probes fresh random vectors.

For each size x dimension x data: persons and faces loaded with one binary COPY, then for each index
design (DESIGNS: model_versions.index_params) the version's index is built by the schema's own
fn_ensure_embedding_index (progress from pg_stat_progress_create_index; build time and size
recorded) and searched with the repository's own statement and settings
(storage/repositories/faces.py: _knn_statement, search_settings) at each ef_search, warm (index and
heap prewarmed into a buffer cache sized for them, as a server sized for its gallery runs; the bench
stack's shared_buffers is 6 GB). Binary-quantised designs re-rank ef_search candidates. Measured per
ef_search: recall@1 against numpy's exact top-1 (genuine and impostor probes), identification rate
(top-1 person is the probe's identity), false-match rate (impostor probes whose top-1 similarity
reaches the model's 1:1 threshold), p50/p99 latency and QPS of single queries on one connection.

The 1:N threshold: a 1:1 threshold names strangers more often the larger the gallery (the best of N
impostor scores grows with N). The bench measures the truth with CALIBRATION_PROBES faces of
strangers (exact search: the similarity exceeded in FPIR of their searches), and runs the product's
own calibration (FaceEmbeddingRepository.calibrate_identification, `vigil models calibrate`: enrolled
faces searched for their nearest other person) beside it; FMR 1:N and TPIR (genuine probes named
correctly at or above it) are measured at the strangers' threshold, and at the product's.
Rows are deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC

import numpy as np
import psycopg
from benchenv import bench_settings, bench_stack
from pgvector.psycopg import register_vector

EF = (40, 64, 100, 200)
K = 10
LATENT_RANK = 64
FPIR = 0.001  # the false-positive identification rate a 1:N threshold is set for
CALIBRATION_PROBES = 4_000
SAME_SIMILARITY = 2e-5  # float32 cosine in numpy and in pgvector agree to ~1e-6


@dataclass(frozen=True)
class FaceModel:
    """A model class's cosine distributions, and the generator parameters that reproduce them.

    Targets (genuine_*, impostor_*): ArcFace-class 512-d, read from the ArcFace paper's (Deng et al.,
    CVPR 2019) angle distributions of positive and negative pairs: negatives centred at ~88-90 degrees
    with a spread of ~4 degrees (cosine 0.0 +- 0.065), positives at ~45-55 degrees on the harder sets
    (cosine ~0.65 +- 0.10); threshold 0.36 (InsightFace's verification thresholds lie at 0.3-0.4).
    SFace 128-d: OpenCV's documented threshold 0.363; genuine ~0.60 +- 0.12, impostor 0.0 +- 0.09
    (in 128-d, near-orthogonal vectors already spread by 1/sqrt(128) = 0.088). Approximate readings,
    not fits: the bench prints the moments it generated beside these targets.
    """

    name: str
    dim: int
    threshold: float
    genuine_mean: float
    genuine_std: float
    impostor_mean: float
    impostor_std: float
    g_mean: float  # generator: a face's weight on its identity's centre
    g_std: float
    rho: float  # generator: the identity centres' weight on the shared low-rank subspace


MODELS = {
    512: FaceModel("ArcFace-class 512-d", 512, 0.36, 0.65, 0.10, 0.0, 0.065, g_mean=0.67, g_std=0.13, rho=0.55),
    128: FaceModel("SFace 128-d", 128, 0.363, 0.60, 0.12, 0.0, 0.09, g_mean=0.62, g_std=0.15, rho=0.35),
}

# Index designs (model_versions.index_params): the same keys the repository reads.
DESIGNS = {
    "vector": {"storage": "vector", "m": 16, "ef_construction": 64},
    "halfvec": {"storage": "halfvec", "m": 16, "ef_construction": 64},
    "halfvec-rerank": {"storage": "halfvec", "m": 16, "ef_construction": 64, "rerank": 40},
    "halfvec-m24-rerank": {"storage": "halfvec", "m": 24, "ef_construction": 96, "rerank": 40},
    "halfvec-c200-rerank": {"storage": "halfvec", "m": 16, "ef_construction": 200, "rerank": 40},
    "bit-rerank": {"storage": "bit", "m": 16, "ef_construction": 64, "rerank": 400},
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def normalized(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    return normalized(rng.standard_normal((n, dim), dtype=np.float32))


class Identities:
    """Identity centres near a shared low-rank subspace, and faces of them."""

    def __init__(self, model: FaceModel, rng: np.random.Generator):
        self.model, self.rng = model, rng
        self.basis = np.linalg.qr(rng.standard_normal((model.dim, LATENT_RANK)))[0].astype(np.float32)

    def centres(self, n: int) -> np.ndarray:
        latent = self.basis @ unit(self.rng, n, LATENT_RANK).T  # (dim, n): unit vectors in the subspace
        rho = self.model.rho
        return normalized(math.sqrt(rho) * latent.T + math.sqrt(1 - rho) * unit(self.rng, n, self.model.dim))

    def faces(self, centres: np.ndarray) -> np.ndarray:
        g = np.clip(self.rng.normal(self.model.g_mean, self.model.g_std, (len(centres), 1)), 0.05, 0.98)
        noise = unit(self.rng, len(centres), self.model.dim)
        return normalized(np.sqrt(g) * centres + np.sqrt(1 - g) * noise)


@dataclass
class Gallery:
    vectors: np.ndarray  # (N, D) stored faces
    owner: np.ndarray  # (N,) identity of each face
    identities: int
    genuine: np.ndarray  # (Q, D) probes of enrolled identities
    genuine_owner: np.ndarray
    impostor: np.ndarray  # (Q, D) probes of identities never enrolled
    moments: dict
    strangers: Callable[[int], np.ndarray]  # more faces of identities never enrolled (calibration)


def structured(n: int, model: FaceModel, queries: int, rng: np.random.Generator) -> Gallery:
    people = Identities(model, rng)
    counts = np.minimum(1 + rng.poisson(1.5, size=int(n / 2.5) + 10), 5)
    counts = counts[:np.searchsorted(np.cumsum(counts), n) + 1]
    counts[-1] -= counts.sum() - n  # exactly n faces
    counts = counts[counts > 0]
    centres = people.centres(len(counts))
    owner = np.repeat(np.arange(len(counts)), counts)
    vectors = np.empty((n, model.dim), np.float32)
    for start in range(0, n, 200_000):
        vectors[start:start + 200_000] = people.faces(centres[owner[start:start + 200_000]])
    genuine_owner = rng.choice(len(counts), queries, replace=False)
    genuine = people.faces(centres[genuine_owner])
    impostor = people.faces(people.centres(queries))
    first = np.searchsorted(owner, genuine_owner)  # a stored face of each probe's identity
    genuine_cos = np.einsum("ij,ij->i", genuine, vectors[first])
    impostor_cos = (impostor @ vectors[rng.choice(n, 200, replace=False)].T).ravel()
    moments = {"genuine_mean": float(genuine_cos.mean()), "genuine_std": float(genuine_cos.std()),
               "impostor_mean": float(impostor_cos.mean()), "impostor_std": float(impostor_cos.std()),
               "identities": int(len(counts)), "faces_per_identity": round(n / len(counts), 2)}
    return Gallery(vectors, owner, len(counts), genuine, genuine_owner, impostor, moments,
                   lambda m: people.faces(people.centres(m)))


def iid(n: int, model: FaceModel, queries: int, rng: np.random.Generator) -> Gallery:
    vectors = unit(rng, n, model.dim)
    genuine_owner = rng.choice(n, queries, replace=False)
    genuine = normalized(vectors[genuine_owner] + unit(rng, queries, model.dim) * 0.33)
    impostor = unit(rng, queries, model.dim)
    return Gallery(vectors, np.arange(n), n, genuine, genuine_owner, impostor,
                   {"genuine_mean": float(np.einsum("ij,ij->i", genuine, vectors[genuine_owner]).mean()),
                    "identities": n, "faces_per_identity": 1.0}, lambda m: unit(rng, m, model.dim))


DATA = {"structured": structured, "iid": iid}


# --------------------------------------------------------------------------- loading and building


def copy_rows(vectors: np.ndarray, person_ids: np.ndarray, version: str) -> np.ndarray:
    """face_embeddings rows (person_id, embedding, embedding_dim, source_image_path, model_version)
    in PostgreSQL's binary COPY tuple format, one structured numpy record per row."""
    n, dim = vectors.shape
    ver = version.encode()
    dtype = np.dtype([("nf", ">i2"), ("l1", ">i4"), ("pid", "V16"), ("l2", ">i4"), ("vdim", ">i2"),
                      ("vpad", ">i2"), ("vec", ">f4", (dim,)), ("l3", ">i4"), ("dim", ">i4"), ("l4", ">i4"),
                      ("path", "S5"), ("l5", ">i4"), ("ver", f"S{len(ver)}")])
    rows = np.zeros(n, dtype=dtype)
    rows["nf"], rows["l1"], rows["l2"], rows["vdim"] = 5, 16, 4 + 4 * dim, dim
    rows["pid"] = person_ids.view("V16").reshape(n)
    rows["vec"] = vectors
    rows["l3"], rows["dim"], rows["l4"], rows["path"], rows["l5"], rows["ver"] = 4, dim, 5, b"bench", len(ver), ver
    return rows


def index_names(conn, version: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'face_embeddings' AND indexname LIKE"
        " 'idx_face_embeddings_hnsw_' || substr(md5(%s), 1, 16) || '%%'", (version,)).fetchall()]


def load(conn, version: str, gallery: Gallery, model: FaceModel) -> tuple[float, np.ndarray]:
    """Persons (one per identity) and faces by binary COPY; the version registered first with its
    index dropped, so that the rows load first and each design's index is built once."""
    n = len(gallery.vectors)
    cleanup(conn, version)
    conn.execute("INSERT INTO model_versions (version_string, embedding_dim, match_threshold, created_at)"
                 " VALUES (%s, %s, %s, now() - interval '30 years')", (version, model.dim, model.threshold))
    for index in index_names(conn, version):
        conn.execute(f'DROP INDEX "{index}"')
    person_ids = np.frombuffer(os.urandom(16 * gallery.identities), dtype=np.uint8).reshape(-1, 16).copy()
    started = time.perf_counter()
    # Synthetic bulk rows: triggers off for this transaction (session_replication_role = replica,
    # superuser): persons' audit trigger would otherwise write one audit_logs row per person; the
    # foreign keys hold by construction (persons first, the version registered above).
    with conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        hex_ids = [bytes(row).hex() for row in person_ids]
        with conn.cursor().copy("COPY persons (id, status) FROM STDIN") as copy:
            for start in range(0, len(hex_ids), 50_000):
                copy.write("".join(f"{h}\tknown\n" for h in hex_ids[start:start + 50_000]))
        rows = copy_rows(gallery.vectors, person_ids[gallery.owner], version)
        with conn.cursor().copy("COPY face_embeddings (person_id, embedding, embedding_dim, source_image_path,"
                                " model_version) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.write(b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big"))
            step = max(1, 64 * 2**20 // rows.itemsize)
            for start in range(0, n, step):
                copy.write(rows[start:start + step].tobytes())
                if n > step:
                    log(f"  COPY {min(n, start + step):,}/{n:,} rows")
            copy.write((-1).to_bytes(2, "big", signed=True))
    return time.perf_counter() - started, person_ids


def cleanup(conn, version: str) -> None:
    """This version's rows, persons and model version gone (any left by an interrupted run too);
    its index is dropped first, so that VACUUM does not repair a graph whose rows all went."""
    for index in index_names(conn, version):
        conn.execute(f'DROP INDEX "{index}"')
    with conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")  # see load()
        conn.execute("DELETE FROM persons WHERE id IN (SELECT person_id FROM face_embeddings"
                     " WHERE model_version = %s)", (version,))
        conn.execute("DELETE FROM face_embeddings WHERE model_version = %s", (version,))
    conn.execute("DELETE FROM model_versions WHERE version_string = %s", (version,))


def watch_build(dsn: str, stop: threading.Event, interval: float) -> None:
    """Progress of the index build, from another session."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        while not stop.wait(interval):
            row = conn.execute("SELECT phase, tuples_done, tuples_total FROM pg_stat_progress_create_index"
                               " WHERE relid = 'face_embeddings'::regclass LIMIT 1").fetchone()
            if row:
                log(f"  build: {row[0]}, tuples {row[1]:,}/{row[2]:,}")


def build(conn, dsn: str, version: str, n: int, dim: int, params: dict, workers: int) -> dict:
    """The version's index as `params` say, built by the schema's trigger (UPDATE index_params)."""
    # the graph in memory: per element the indexed value, neighbour lists (2m candidates of ~24 bytes
    # at layer 0) and overhead; an estimate short of it spills the build to disk (10x slower)
    bytes_per = {"vector": 4 * dim, "halfvec": 2 * dim, "bit": dim // 8}[params["storage"]]
    mem_mb = max(256, math.ceil(n * (bytes_per + 2 * params["m"] * 24 + 512) * 1.3 / 2**20))
    for index in index_names(conn, version):
        conn.execute(f'DROP INDEX "{index}"')
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary))
    conn.execute(f"SET maintenance_work_mem = '{mem_mb}MB'")
    conn.execute(f"SET max_parallel_maintenance_workers = {int(workers)}")
    stop = threading.Event()
    watcher = threading.Thread(target=watch_build, args=(dsn, stop, 10.0 if n < 500_000 else 30.0), daemon=True)
    watcher.start()
    started = time.perf_counter()
    try:
        conn.execute("UPDATE model_versions SET index_params = %s WHERE version_string = %s",
                     (json.dumps(params), version))
    finally:
        stop.set()
    elapsed = time.perf_counter() - started
    watcher.join()
    (name,) = index_names(conn, version)
    size = conn.execute("SELECT pg_relation_size(%s::regclass)", (name,)).fetchone()[0]
    conn.execute("ANALYZE face_embeddings")
    # Searched warm, as a server whose buffer cache holds its gallery (database.shared_buffers_mb;
    # pg_prewarm's autoprewarm restores the cache after a restart) searches it in steady state.
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
    conn.execute("SELECT pg_prewarm(%s::regclass), pg_prewarm('face_embeddings')", (name,))
    return {"build_s": round(elapsed, 1), "index_mb": round(size / 2**20, 1), "maintenance_work_mem_mb": mem_mb,
            "spilled": any("no longer fits" in m for m in notices), "index": name}


# --------------------------------------------------------------------------- searching


def numpy_exact(vectors: np.ndarray, probes: np.ndarray, *, timed: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
    """Exact top-1 index and similarity of each probe, and numpy's single-query QPS."""
    best, sims = [], []
    for start in range(0, len(probes), 64):
        s = probes[start:start + 64] @ vectors.T
        i = np.argmax(s, axis=1)
        best.append(i)
        sims.append(s[np.arange(len(i)), i])
    single = []
    for vec in probes[:30 if timed else 0]:
        t = time.perf_counter()
        s = vectors @ vec
        np.argpartition(-s, K)[:K]
        single.append(time.perf_counter() - t)
    return np.concatenate(best), np.concatenate(sims), 1 / float(np.mean(single)) if single else 0.0


def model_version(version: str, model: FaceModel, params: dict):
    from datetime import datetime
    from uuid import uuid4

    from vigil.storage.repositories.faces import ModelVersion

    return ModelVersion(id=uuid4(), version_string=version, embedding_dim=model.dim, match_threshold=model.threshold,
                        metrics={}, is_production=False, is_rollback_available=False, deployed_at=None,
                        training_job_id=None, created_at=datetime.now(UTC), index_params=params,
                        identification_threshold=None, identification_calibration={})


def sweep(conn, mv, probes: np.ndarray, efs: list[int]) -> list[dict]:
    """For each ef_search: the repository's statement under the repository's settings, one probe at
    a time: (top-1 person ids, top-1 similarities, latencies). A binary-quantised design re-ranks
    ef_search candidates (its Hamming order is too coarse to re-rank fewer than it walks)."""
    from psycopg import sql

    from vigil.storage.repositories.faces import _knn_statement, search_settings

    statement = _knn_statement(mv, sql.Placeholder("query"), filtered=False)
    out = []
    for ef in efs:
        index = replace(mv.index, rerank=ef) if mv.index.storage == "bit" else mv.index
        settings = search_settings(index, K, filtered=False, ef_search=ef)
        with conn.transaction():
            conn.execute("SELECT " + ", ".join("set_config(%s, %s, true)" for _ in settings),
                         [v for item in settings.items() for v in item])
            ids, sims, latencies = [], [], []
            params = {"model_version": mv.version_string, "k": K, "candidates": max(index.rerank, K)}
            for vec in probes:
                t = time.perf_counter()
                rows = conn.execute(statement, {**params, "query": vec}).fetchall()
                latencies.append(time.perf_counter() - t)
                ids.append(rows[0][1] if rows else None)
                sims.append(1 - rows[0][2] if rows else -1.0)
        out.append({"ef": ef, "ids": ids, "sims": np.asarray(sims), "lat": np.asarray(latencies)})
    return out


def profile(conn, mv, probes: np.ndarray, ef: int, top: int = 25) -> list[str]:
    """Where the search backend's time goes at `ef`: `perf record` on its process while the probes
    are searched, the hottest symbols (self time) returned. Needs perf (linux-perf) and the rights
    to attach to the PostgreSQL backend."""
    import shutil
    import signal
    import subprocess
    import tempfile

    if not shutil.which("perf"):
        return ["perf not installed (apt install linux-perf): no profile"]
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    with tempfile.TemporaryDirectory() as tmp:
        data = f"{tmp}/perf.data"
        recorder = subprocess.Popen(["perf", "record", "-F", "1999", "-p", str(pid), "-o", data],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        sweep(conn, mv, probes, [ef])
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=30)
        report = subprocess.run(["perf", "report", "--stdio", "--no-children", "--sort", "dso,symbol", "-i", data],
                                capture_output=True, text=True, timeout=120).stdout
    return [line.strip() for line in report.splitlines() if line.strip() and not line.startswith("#")][:top]


def calibrate(dsn: str, mv, probes: int, last: dict, s: dict, gallery: Gallery, identity_of: dict, genuine: slice,
              impostor: slice, threshold_1n: float) -> dict:
    """The product's own 1:N calibration (vigil models calibrate) on this gallery, against the
    threshold measured with strangers' faces; FMR and TPIR at it from the last (largest ef) sweep."""
    import asyncio

    from pgvector.psycopg import register_vector_async
    from psycopg.rows import dict_row

    from vigil.storage.repositories.faces import FaceEmbeddingRepository

    async def measure():
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
            await register_vector_async(conn)
            return await FaceEmbeddingRepository(conn).calibrate_identification(
                mv, fpir=FPIR, probes=probes,
                progress=lambda done, total: done % 1000 == 0 and log(f"  calibrating: {done:,}/{total:,}"))

    started = time.perf_counter()
    calibration = asyncio.run(measure())
    person = np.array([identity_of.get(p.bytes, -1) if p else -1 for p in s["ids"]])
    threshold = calibration.threshold
    out = {"threshold": round(threshold, 4), "strangers_threshold": round(threshold_1n, 4),
           "probes": calibration.details["probes"], "seconds": round(time.perf_counter() - started, 1),
           "ef_search": last["ef_search"],
           "fmr": round(float(np.mean(s["sims"][impostor] >= threshold)), 4),
           "tpir": round(float(np.mean((person[genuine] == gallery.genuine_owner)
                                       & (s["sims"][genuine] >= threshold))), 4)}
    log(f"  product calibration ({out['probes']:,} enrolled faces, {out['seconds']} s): 1:N threshold"
        f" {out['threshold']:.4f} (strangers' {threshold_1n:.4f}); at ef {out['ef_search']}: FMR {out['fmr']:.4f},"
        f" TPIR {out['tpir']:.4f}")
    return out


def run_one(dsn: str, n: int, dim: int, data: str, designs: list[str], queries: int, efs: list[int], workers: int,
            rng: np.random.Generator, calibration_probes: int = 0, profile_ef: int = 0) -> dict:
    model = MODELS[dim]
    version = f"bench-{data}-{dim}d-{n}"
    log(f"{n:,} x {dim}-d {data} ({model.name}): generating")
    gallery = DATA[data](n, model, queries, rng)
    moments = json.dumps({k: round(v, 3) for k, v in gallery.moments.items()})
    log(f"  {gallery.identities:,} identities; moments {moments}"
        f" (targets: genuine {model.genuine_mean} +- {model.genuine_std}, impostor {model.impostor_mean} +- "
        f"{model.impostor_std})")
    probes = np.vstack([gallery.genuine, gallery.impostor])
    genuine, impostor = slice(0, queries), slice(queries, 2 * queries)
    log("numpy exact search (truth and baseline)")
    exact_idx, exact_sim, np_qps = numpy_exact(gallery.vectors, probes)
    exact_ident = float(np.mean(gallery.owner[exact_idx[genuine]] == gallery.genuine_owner))
    exact_fmr = float(np.mean(exact_sim[impostor] >= model.threshold))
    log(f"  numpy: {np_qps:,.1f} QPS single; identification {exact_ident:.4f}, FMR at {model.threshold} "
        f"{exact_fmr:.4f}")
    # The 1:N threshold: the similarity that strangers' best matches in this gallery exceed in FPIR of
    # searches (exact search of CALIBRATION_PROBES faces of identities never enrolled).
    _, stranger_sim, _ = numpy_exact(gallery.vectors, gallery.strangers(CALIBRATION_PROBES), timed=False)
    threshold_1n = float(np.quantile(stranger_sim, 1 - FPIR))
    exact_tpir = float(np.mean((gallery.owner[exact_idx[genuine]] == gallery.genuine_owner)
                               & (exact_sim[genuine] >= threshold_1n)))
    log(f"  1:N threshold for FPIR {FPIR:.1%}: {threshold_1n:.3f} (model's 1:1 threshold {model.threshold});"
        f" numpy's true-positive identification rate at it {exact_tpir:.4f}")
    result = {"n": n, "dim": dim, "data": data, "model": model.name, "threshold": model.threshold,
              "moments": gallery.moments, "numpy_single_qps": round(np_qps, 1),
              "numpy_identification": round(exact_ident, 4), "numpy_fmr": round(exact_fmr, 4),
              "threshold_1n": round(threshold_1n, 4), "numpy_tpir_1n": round(exact_tpir, 4), "designs": []}
    with psycopg.connect(dsn, autocommit=True) as conn:
        register_vector(conn)
        log(f"COPY {n:,} faces")
        load_s, person_ids = load(conn, version, gallery, model)
        result["load_s"] = round(load_s, 1)
        identity_of = {pid.tobytes(): i for i, pid in enumerate(person_ids)}
        for design in designs:
            params = DESIGNS[design]
            log(f"{design}: building HNSW {json.dumps(params)} ({workers} parallel worker(s))")
            b = build(conn, dsn, version, n, dim, params, workers)
            log(f"  built in {b['build_s']} s, {b['index_mb']} MB{' (spilled!)' if b['spilled'] else ''}")
            mv = model_version(version, model, params)
            entry = {"design": design, "params": params, **{k: v for k, v in b.items() if k != "index"}, "sweeps": []}
            for s in sweep(conn, mv, probes, efs):
                # the exact top-1 was found when the top-1 has its similarity (ties of distinct faces to
                # SAME_SIMILARITY are negligible); identification by the top-1 person's identity
                hit = np.abs(s["sims"] - exact_sim) <= SAME_SIMILARITY
                person = np.array([identity_of.get(p.bytes, -1) if p else -1 for p in s["ids"]])
                lat = s["lat"] * 1000
                r = {"ef_search": s["ef"],
                     "recall_at_1_genuine": round(float(np.mean(hit[genuine])), 4),
                     "recall_at_1_impostor": round(float(np.mean(hit[impostor])), 4),
                     "identification": round(float(np.mean(person[genuine] == gallery.genuine_owner)), 4),
                     "fmr": round(float(np.mean(s["sims"][impostor] >= model.threshold)), 4),
                     "fmr_1n": round(float(np.mean(s["sims"][impostor] >= threshold_1n)), 4),
                     "tpir_1n": round(float(np.mean((person[genuine] == gallery.genuine_owner)
                                                    & (s["sims"][genuine] >= threshold_1n))), 4),
                     "p50_ms": round(float(np.percentile(lat, 50)), 2),
                     "p99_ms": round(float(np.percentile(lat, 99)), 2),
                     "qps": round(1000 / float(lat.mean()), 1)}
                entry["sweeps"].append(r)
                log(f"  ef {r['ef_search']}: R@1 genuine {r['recall_at_1_genuine']:.3f} impostor "
                    f"{r['recall_at_1_impostor']:.3f}, identification {r['identification']:.3f}, FMR {r['fmr']:.4f}, "
                    f"p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms, {r['qps']:,.0f} QPS")
            if profile_ef:
                log(f"  profile of the search backend at ef {profile_ef} (perf, self time):")
                entry["profile"] = profile(conn, mv, probes, profile_ef)
                for line in entry["profile"]:
                    log(f"    {line}")
            if calibration_probes:
                entry["calibration"] = calibrate(dsn, replace(mv, index_params={**params, "ef_search": max(efs)}),
                                                 calibration_probes, entry["sweeps"][-1], s, gallery, identity_of,
                                                 genuine, impostor, threshold_1n)
            result["designs"].append(entry)
        log("cleaning up")
        cleanup(conn, version)
        conn.execute("VACUUM face_embeddings")
    return result


def report(r: dict) -> None:
    print(f"\n{r['n']:,} x {r['dim']}-d {r['data']} ({r['model']}, threshold {r['threshold']}): COPY {r['load_s']} s;"
          f" numpy exact {r['numpy_single_qps']:,.1f} QPS, identification {r['numpy_identification']:.3f},"
          f" FMR {r['numpy_fmr']:.4f}; 1:N threshold {r['threshold_1n']:.3f} (FPIR {FPIR:.1%}), numpy TPIR at it"
          f" {r['numpy_tpir_1n']:.3f}; moments {json.dumps({k: round(v, 3) for k, v in r['moments'].items()})}")
    print(f"{'design':<20} {'build s':>8} {'MB':>7} {'ef':>4} {'R@1 gen':>7} {'R@1 imp':>7} {'ident':>6} {'FMR':>7}"
          f" {'FMR 1:N':>7} {'TPIR':>6} {'p50 ms':>7} {'p99 ms':>7} {'QPS':>6} {'x np':>5}")
    for d in r["designs"]:
        for i, s in enumerate(d["sweeps"]):
            head = f"{d['design']:<20} {d['build_s']:>8} {d['index_mb']:>7}" if i == 0 else " " * 37
            print(f"{head} {s['ef_search']:>4} {s['recall_at_1_genuine']:>7.3f} {s['recall_at_1_impostor']:>7.3f}"
                  f" {s['identification']:>6.3f} {s['fmr']:>7.4f} {s['fmr_1n']:>7.4f} {s['tpir_1n']:>6.3f}"
                  f" {s['p50_ms']:>7.2f} {s['p99_ms']:>7.2f}"
                  f" {s['qps']:>6,.0f} {s['qps'] / r['numpy_single_qps']:>5.1f}")
        if "calibration" in d:
            c = d["calibration"]
            print(f"{'':<20} product's 1:N calibration ({c['probes']:,} faces, {c['seconds']} s): threshold"
                  f" {c['threshold']:.4f} (strangers' {c['strangers_threshold']:.4f}); at ef {c['ef_search']}"
                  f" FMR {c['fmr']:.4f}, TPIR {c['tpir']:.3f}")
    print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[128, 512], choices=sorted(MODELS))
    parser.add_argument("--data", nargs="+", default=["structured", "iid"], choices=sorted(DATA))
    parser.add_argument("--designs", nargs="+", default=["vector", "halfvec-rerank", "bit-rerank"],
                        choices=sorted(DESIGNS))
    parser.add_argument("--queries", type=int, default=500, help="genuine probes; as many impostor probes")
    parser.add_argument("--ef", type=int, nargs="+", default=list(EF))
    parser.add_argument("--workers", type=int, default=1, help="max_parallel_maintenance_workers for the build")
    parser.add_argument("--calibration-probes", type=int, default=2000,
                        help="enrolled faces the product's 1:N calibration searches per design (0: skip)")
    parser.add_argument("--profile-ef", type=int, default=0,
                        help="also profile the search backend with perf at this ef_search (0: no profile)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    settings = bench_settings()
    dsn = bench_stack(settings).endpoints.database_dsn
    rng = np.random.default_rng(3)
    results = []
    for n in args.sizes:
        for dim in args.dims:
            for data in args.data:
                results.append(run_one(dsn, n, dim, data, args.designs, args.queries, args.ef, args.workers, rng,
                                       args.calibration_probes, args.profile_ef))
                report(results[-1])
                if args.json:
                    with open(args.json, "w") as fh:
                        json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
