"""Face search: pgvector HNSW (the schema's per-version partial index on face_embeddings) against
exact search and numpy brute force, in the same run.

    .venv/bin/python bench/face_search.py [--sizes 100000] [--dims 128 512] [--queries 500]
                                         [--ef 40 64 100 200 400] [--workers 1] [--json out.json]

For each size × dimension: a synthetic model version registered in model_versions (its trigger
creates the partial HNSW index, which is dropped so that the rows load first and the index is
built once, as a bulk enrolment would), N random unit vectors (one person each) loaded with one
binary COPY written by numpy, then the index built by the schema's own fn_ensure_embedding_index
(m=16, ef_construction=64) with maintenance_work_mem sized to hold the whole graph and
`--workers` parallel maintenance workers: build time and size, with progress from
pg_stat_progress_create_index.

Queries: half planted near-duplicates (an enrolled vector + noise, cosine ~0.95 to it: what a
face search sees when the person is enrolled), half fresh random vectors (no true match; in
high dimension their neighbours are all nearly equidistant, the hardest case for any ANN
index). Truth: exact cosine top-10 by numpy over the same vectors. For each ef_search: recall@1
and recall@10 against that truth (planted, fresh, all), single-query p50/p99 and QPS (the
repository's own statement, storage/repositories/faces.py: SET LOCAL hnsw.ef_search, ORDER BY
embedding::vector(D) <=> q LIMIT 10), batched 64 (nearest_batch's unnest/LATERAL statement)
p99 per batch and QPS. Baseline: numpy brute force (matrix product + argpartition) over the
same vectors, single and batched 64, in the same run. Rows are deleted afterwards (VACUUM).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import threading
import time

import numpy as np
import psycopg
from benchenv import bench_settings, bench_stack
from pgvector.psycopg import register_vector

EF = (40, 64, 100, 200, 400)
K = 10


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def copy_rows(vectors: np.ndarray, ids: np.ndarray, version: str) -> np.ndarray:
    """face_embeddings rows (person_id, embedding, embedding_dim, source_image_path, model_version)
    in PostgreSQL's binary COPY tuple format, one structured numpy record per row."""
    n, dim = vectors.shape
    ver = version.encode()
    dtype = np.dtype([("nf", ">i2"), ("l1", ">i4"), ("pid", "V16"), ("l2", ">i4"), ("vdim", ">i2"),
                      ("vpad", ">i2"), ("vec", ">f4", (dim,)), ("l3", ">i4"), ("dim", ">i4"), ("l4", ">i4"),
                      ("path", "S5"), ("l5", ">i4"), ("ver", f"S{len(ver)}")])
    rows = np.zeros(n, dtype=dtype)
    rows["nf"], rows["l1"], rows["l2"], rows["vdim"] = 5, 16, 4 + 4 * dim, dim
    rows["pid"] = ids.view("V16").reshape(n)
    rows["vec"] = vectors
    rows["l3"], rows["dim"], rows["l4"], rows["path"], rows["l5"], rows["ver"] = 4, dim, 5, b"bench", len(ver), ver
    return rows


def load(conn, version: str, vectors: np.ndarray, ids: np.ndarray) -> float:
    n, dim = vectors.shape
    cleanup(conn, version)
    conn.execute("INSERT INTO model_versions (version_string, embedding_dim, match_threshold, created_at)"
                 " VALUES (%s, %s, 0.5, now() - interval '30 years')", (version, dim))
    index = conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'face_embeddings' AND indexname LIKE"
                         " 'idx_face_embeddings_hnsw_' || substr(md5(%s), 1, 16) || '%%'", (version,)).fetchone()[0]
    conn.execute(f'DROP INDEX "{index}"')  # load first, build once: as a bulk enrolment would
    started = time.perf_counter()
    hex_ids = [bytes(row).hex() for row in ids]
    # Synthetic bulk rows: triggers off for this transaction (session_replication_role = replica,
    # superuser): persons' audit trigger would otherwise write one audit_logs row per person (and
    # another per person on cleanup), which is not what this bench measures; the foreign keys hold
    # by construction (persons first, the version registered above with this dimension).
    with conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        _copy(conn, n, hex_ids, vectors, ids, version)
    return time.perf_counter() - started


def _copy(conn, n: int, hex_ids: list[str], vectors: np.ndarray, ids: np.ndarray, version: str) -> None:
    with conn.cursor().copy("COPY persons (id, status) FROM STDIN") as copy:
        for start in range(0, n, 50_000):
            copy.write("".join(f"{h}\tknown\n" for h in hex_ids[start:start + 50_000]))
    rows = copy_rows(vectors, ids, version)
    with conn.cursor().copy("COPY face_embeddings (person_id, embedding, embedding_dim, source_image_path,"
                            " model_version) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.write(b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big"))
        step = max(1, 64 * 2**20 // rows.itemsize)
        for start in range(0, n, step):
            copy.write(rows[start:start + step].tobytes())
            if n > step:
                log(f"  COPY {min(n, start + step):,}/{n:,} rows")
        copy.write((-1).to_bytes(2, "big", signed=True))


def cleanup(conn, version: str) -> None:
    """This version's rows, persons and model version gone (any left by an interrupted run too);
    its index is dropped first, so that VACUUM does not repair a graph whose rows all went."""
    for (index,) in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'face_embeddings' AND"
                                 " indexname LIKE 'idx_face_embeddings_hnsw_' || substr(md5(%s), 1, 16) || '%%'",
                                 (version,)).fetchall():
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
            row = conn.execute("SELECT phase, tuples_done, tuples_total, blocks_done, blocks_total"
                               " FROM pg_stat_progress_create_index WHERE relid = 'face_embeddings'::regclass"
                               " LIMIT 1").fetchone()
            if row:
                phase, td, tt, bd, bt = row
                log(f"  build: {phase}, tuples {td:,}/{tt:,}, blocks {bd:,}/{bt:,}")


def build(conn, dsn: str, version: str, n: int, dim: int, workers: int) -> dict:
    # pgvector's graph in memory: per element the vector, its neighbour lists (2m at layer 0) and
    # overhead; sized with a margin so that the build never spills ("no longer fits" notice)
    mem_mb = max(256, math.ceil(n * (4 * dim + 2 * 16 * 8 + 256) * 1.3 / 2**20))
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary))
    conn.execute(f"SET maintenance_work_mem = '{mem_mb}MB'")
    conn.execute(f"SET max_parallel_maintenance_workers = {int(workers)}")
    stop = threading.Event()
    watcher = threading.Thread(target=watch_build, args=(dsn, stop, 10.0 if n < 500_000 else 30.0), daemon=True)
    watcher.start()
    started = time.perf_counter()
    try:
        name = conn.execute("SELECT fn_ensure_embedding_index(%s, %s)", (version, dim)).fetchone()[0]
    finally:
        stop.set()
    elapsed = time.perf_counter() - started
    watcher.join()
    size = conn.execute("SELECT pg_relation_size(%s::regclass)", (name,)).fetchone()[0]
    conn.execute("ANALYZE face_embeddings")
    for message in notices:
        log(f"  notice: {message}")
    return {"build_s": elapsed, "index_bytes": size, "maintenance_work_mem_mb": mem_mb, "workers": workers,
            "spilled": any("no longer fits" in m for m in notices)}


def topk(sims: np.ndarray, k: int = K) -> np.ndarray:
    """Indices of the k largest per row, largest first."""
    part = np.argpartition(-sims, k, axis=-1)[..., :k]
    order = np.argsort(-np.take_along_axis(sims, part, axis=-1), axis=-1)
    return np.take_along_axis(part, order, axis=-1)


def numpy_baseline(vectors: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """Exact top-10 of every query (the truth), batched-64 QPS and p99 per batch, single QPS."""
    truth, batch_lat = [], []
    for start in range(0, len(q), 64):
        t = time.perf_counter()
        truth.append(topk(q[start:start + 64] @ vectors.T))
        batch_lat.append(time.perf_counter() - t)
    single = []
    for vec in q[:50]:
        t = time.perf_counter()
        topk(vectors @ vec)
        single.append(time.perf_counter() - t)
    return (np.vstack(truth), len(q) / sum(batch_lat), float(np.percentile(batch_lat, 99)),
            1 / float(np.mean(single)))


def recall(found: list[list[int]], truth: np.ndarray, rows: slice) -> tuple[float, float]:
    f, t = found[rows], truth[rows]
    r1 = sum(bool(a) and a[0] == b[0] for a, b in zip(f, t)) / len(f)
    r10 = sum(len(set(a) & set(b.tolist())) for a, b in zip(f, t)) / (K * len(f))
    return round(r1, 4), round(r10, 4)


def run_one(dsn: str, n: int, dim: int, queries: int, efs: list[int], workers: int,
            rng: np.random.Generator) -> dict:
    from psycopg import sql

    from vigil.storage.repositories.faces import _knn_statement

    version = f"bench-{dim}d-{n}"
    log(f"{n:,} × {dim}-d: generating vectors")
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.frombuffer(os.urandom(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    index_of = {bytes(row): i for i, row in enumerate(ids)}
    planted = rng.choice(n, queries // 2, replace=False)
    noise = rng.standard_normal((len(planted), dim), dtype=np.float32) * (0.33 / np.sqrt(dim))
    near = vectors[planted] + noise
    fresh = rng.standard_normal((queries - len(planted), dim), dtype=np.float32)
    q = np.vstack([near, fresh])
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    halves = {"planted": slice(0, len(planted)), "fresh": slice(len(planted), queries), "all": slice(0, queries)}

    log("numpy brute force (truth and baseline)")
    truth, np_batch_qps, np_batch_p99, np_single_qps = numpy_baseline(vectors, q)
    log(f"  numpy: {np_single_qps:,.1f} QPS single, {np_batch_qps:,.1f} QPS batched 64 "
        f"(p99 {np_batch_p99 * 1000:.1f} ms per batch)")

    single_sql = _knn_statement(dim, sql.Placeholder("query"), filtered=False)
    batch_sql = sql.SQL("SELECT q.ord, n.person_id, n.distance FROM unnest(%(queries)s::vector[]) WITH ORDINALITY"
                        " AS q(vec, ord) CROSS JOIN LATERAL ({knn}) AS n ORDER BY q.ord, n.distance").format(
        knn=_knn_statement(dim, sql.SQL("q.vec"), filtered=False))
    with psycopg.connect(dsn, autocommit=True) as conn:
        register_vector(conn)
        log(f"COPY {n:,} rows")
        load_s = load(conn, version, vectors, ids)
        log(f"  loaded in {load_s:.1f} s ({n / load_s:,.0f} rows/s)")
        log(f"building HNSW (m=16, ef_construction=64, {workers} parallel worker(s))")
        b = build(conn, dsn, version, n, dim, workers)
        log(f"  built in {b['build_s']:.1f} s, {b['index_bytes'] / 2**20:.0f} MB, maintenance_work_mem "
            f"{b['maintenance_work_mem_mb']} MB{' (spilled!)' if b['spilled'] else ''}")
        plan = "\n".join(r[0] for r in conn.execute(sql.SQL("EXPLAIN ") + single_sql,
                                                    {"query": q[0], "model_version": version, "k": K}))
        uses_index = "idx_face_embeddings_hnsw_" in plan
        log(f"  plan uses the version's HNSW index: {uses_index}")
        sweeps = []
        for ef in efs:
            with conn.transaction():
                conn.execute("SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan',"
                             " 'off', true)", (str(ef),))
                latencies, found = [], []
                for vec in q:
                    t = time.perf_counter()
                    rows = conn.execute(single_sql, {"query": vec, "model_version": version, "k": K}).fetchall()
                    latencies.append(time.perf_counter() - t)
                    found.append([index_of[r[1].bytes] for r in rows])
                batch_lat, batch_found = [], [[] for _ in range(queries)]
                for start in range(0, queries - 63, 64):
                    t = time.perf_counter()
                    rows = conn.execute(batch_sql, {"queries": list(q[start:start + 64]), "model_version": version,
                                                    "k": K}).fetchall()
                    batch_lat.append(time.perf_counter() - t)
                    for ord_, pid, _ in rows:
                        batch_found[start + ord_ - 1].append(index_of[pid.bytes])
            lat = np.asarray(latencies)
            s = {"ef_search": ef,
                 **{f"recall_at_1_{h}": recall(found, truth, sl)[0] for h, sl in halves.items()},
                 **{f"recall_at_10_{h}": recall(found, truth, sl)[1] for h, sl in halves.items()},
                 "single_p50_ms": round(float(np.percentile(lat, 50)) * 1000, 2),
                 "single_p99_ms": round(float(np.percentile(lat, 99)) * 1000, 2),
                 "single_qps": round(1 / lat.mean(), 1),
                 "batch64_p99_ms": round(float(np.percentile(batch_lat, 99)) * 1000, 2),
                 "batch64_qps": round(64 * len(batch_lat) / sum(batch_lat), 1),
                 "batch64_recall_at_1_all": recall(batch_found[:64 * len(batch_lat)], truth[:64 * len(batch_lat)],
                                                   slice(None))[0]}
            sweeps.append(s)
            log(f"  ef {ef}: R@1 planted {s['recall_at_1_planted']:.3f} fresh {s['recall_at_1_fresh']:.3f}, "
                f"R@10 all {s['recall_at_10_all']:.3f}, single p99 {s['single_p99_ms']:.2f} ms "
                f"{s['single_qps']:,.0f} QPS, batch64 p99 {s['batch64_p99_ms']:.1f} ms {s['batch64_qps']:,.0f} QPS")
        log("cleaning up")
        cleanup(conn, version)
        conn.execute("VACUUM face_embeddings")

    def meeting(half: str) -> int | None:
        return next((s["ef_search"] for s in sweeps if s[f"recall_at_1_{half}"] >= 0.99
                     and s["single_p99_ms"] <= 10), None)

    return {"n": n, "dim": dim, "queries": queries, "load_s": round(load_s, 1), "build_s": round(b["build_s"], 1),
            "index_mb": round(b["index_bytes"] / 2**20, 1), "maintenance_work_mem_mb": b["maintenance_work_mem_mb"],
            "workers": workers, "build_spilled": b["spilled"], "plan_uses_index": uses_index,
            "numpy_single_qps": round(np_single_qps, 1), "numpy_batched_qps": round(np_batch_qps, 1),
            "numpy_batch64_p99_ms": round(np_batch_p99 * 1000, 2), "sweeps": sweeps,
            "ef_meeting_target_planted": meeting("planted"), "ef_meeting_target_all": meeting("all")}


def report(r: dict) -> None:
    print(f"\n{r['n']:,} × {r['dim']}-d: COPY {r['load_s']} s, HNSW build {r['build_s']} s "
          f"({r['workers']} worker(s), maintenance_work_mem {r['maintenance_work_mem_mb']} MB"
          f"{', spilled' if r['build_spilled'] else ''}), index {r['index_mb']} MB; numpy brute force "
          f"{r['numpy_single_qps']:,.1f} QPS single, {r['numpy_batched_qps']:,.1f} QPS batched 64")
    print(f"{'ef':>4} {'R@1 pl':>6} {'R@1 fr':>6} {'R@1 all':>7} {'R@10':>6} {'p50 ms':>7} {'p99 ms':>7} {'QPS':>7}"
          f" {'vs np':>6} {'b64 p99':>8} {'b64 QPS':>8} {'vs np':>6}")
    for s in r["sweeps"]:
        print(f"{s['ef_search']:>4} {s['recall_at_1_planted']:>6.3f} {s['recall_at_1_fresh']:>6.3f}"
              f" {s['recall_at_1_all']:>7.3f} {s['recall_at_10_all']:>6.3f} {s['single_p50_ms']:>7.2f}"
              f" {s['single_p99_ms']:>7.2f} {s['single_qps']:>7,.0f} {s['single_qps'] / r['numpy_single_qps']:>6.1f}"
              f" {s['batch64_p99_ms']:>8.1f} {s['batch64_qps']:>8,.0f}"
              f" {s['batch64_qps'] / r['numpy_batched_qps']:>6.1f}")
    print(f"ef_search meeting recall@1 >= 0.99 with p99 <= 10 ms: planted queries "
          f"{r['ef_meeting_target_planted'] or 'none'}, all queries {r['ef_meeting_target_all'] or 'none'}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--ef", type=int, nargs="+", default=list(EF))
    parser.add_argument("--workers", type=int, default=1, help="max_parallel_maintenance_workers for the build")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    settings = bench_settings()
    dsn = bench_stack(settings).endpoints.database_dsn
    rng = np.random.default_rng(3)
    results = []
    for n in args.sizes:
        for dim in args.dims:
            results.append(run_one(dsn, n, dim, args.queries, args.ef, args.workers, rng))
            report(results[-1])
            if args.json:
                with open(args.json, "w") as fh:
                    json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
