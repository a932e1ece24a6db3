"""Face search: pgvector HNSW (the schema's per-version partial index on face_embeddings) against
exact search and numpy brute force, in the same run.

    .venv/bin/python bench/face_search.py [--sizes 100000 1000000] [--dims 512 128] [--queries 500]

For each size × dimension: a synthetic model version, N random unit vectors (one person each)
loaded with COPY (binary), the index built by the schema's own fn_ensure_embedding_index
(m=16, ef_construction=64) with maintenance_work_mem 1GB and 2 parallel workers: build time and
size. Queries: half planted near-duplicates (an enrolled vector + noise, cosine ~0.95 to it), half
fresh random vectors. Truth: exact cosine k-NN by numpy over the same vectors. For each ef_search:
recall@1 and recall@10 against that truth, single-query p50/p99 and QPS (the repository's
statement: SET LOCAL hnsw.ef_search, ORDER BY embedding::vector(D) <=> q LIMIT 10), batched 64
(the unnest/LATERAL statement of nearest_batch) p99 per batch and QPS; baseline: numpy brute
force QPS, single and batched 64, same vectors. Rows are deleted afterwards (VACUUM).
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from benchenv import bench_settings, bench_stack

EF = (40, 64, 100, 200)


def load(conn, version: str, vectors: np.ndarray) -> float:
    n, dim = vectors.shape
    conn.execute("DELETE FROM persons WHERE id IN (SELECT person_id FROM face_embeddings WHERE model_version = %s)",
                 (version,))
    conn.execute("DELETE FROM model_versions WHERE version_string = %s", (version,))
    conn.execute("INSERT INTO model_versions (version_string, embedding_dim, match_threshold, created_at)"
                 " VALUES (%s, %s, 0.5, now() - interval '30 years')", (version, dim))
    index = conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'face_embeddings' AND indexname LIKE"
                         " 'idx_face_embeddings_hnsw_' || substr(md5(%s), 1, 16) || '%%'", (version,)).fetchone()[0]
    conn.execute(f'DROP INDEX "{index}"')  # load first, build once: as a bulk enrolment would
    started = time.perf_counter()
    ids = [uuid.uuid4() for _ in range(n)]
    with conn.cursor().copy("COPY persons (id, status) FROM STDIN") as copy:
        for pid in ids:
            copy.write_row((pid, "known"))
    with conn.cursor().copy("COPY face_embeddings (person_id, embedding, embedding_dim, source_image_path,"
                            " model_version) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["uuid", "vector", "int4", "text", "text"])
        for pid, vec in zip(ids, vectors):
            copy.write_row((pid, vec, dim, "bench", version))
    return time.perf_counter() - started


def build(conn, version: str, dim: int) -> tuple[float, int, str]:
    conn.execute("SET maintenance_work_mem = '1GB'")
    conn.execute("SET max_parallel_maintenance_workers = 2")
    started = time.perf_counter()
    name = conn.execute("SELECT fn_ensure_embedding_index(%s, %s)", (version, dim)).fetchone()[0]
    elapsed = time.perf_counter() - started
    size = conn.execute("SELECT pg_relation_size(%s::regclass)", (name,)).fetchone()[0]
    conn.execute("ANALYZE face_embeddings")
    return elapsed, size, name


def knn_sql(dim: int) -> str:
    return (f"SELECT person_id FROM face_embeddings WHERE model_version = %s"
            f" ORDER BY embedding::vector({dim}) <=> %s::vector({dim}) LIMIT 10")


def batch_sql(dim: int) -> str:
    return (f"SELECT q.ord, n.person_id FROM unnest(%s::vector[]) WITH ORDINALITY AS q(vec, ord) CROSS JOIN LATERAL"
            f" (SELECT person_id, embedding::vector({dim}) <=> q.vec AS d FROM face_embeddings"
            f" WHERE model_version = %s ORDER BY embedding::vector({dim}) <=> q.vec LIMIT 10) n ORDER BY q.ord, n.d")


def run_one(dsn: str, n: int, dim: int, queries: int, rng: np.random.Generator) -> dict:
    version = f"bench-{dim}d-{n}"
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    planted = rng.choice(n, queries // 2, replace=False)
    noise = rng.standard_normal((len(planted), dim), dtype=np.float32) * (0.33 / np.sqrt(dim))
    near = vectors[planted] + noise
    fresh = rng.standard_normal((queries - len(planted), dim), dtype=np.float32)
    q = np.vstack([near, fresh])
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        register_vector(conn)
        load_s = load(conn, version, vectors)
        build_s, size, _ = build(conn, version, dim)
        person_ids = np.array([r[0] for r in conn.execute(
            "SELECT person_id FROM face_embeddings WHERE model_version = %s ORDER BY ctid", (version,))])
        # numpy brute force: the truth, and the baseline's speed (rows in the table's order)
        table_vectors = np.vstack([np.asarray(r[0].to_numpy(), dtype=np.float32) for r in conn.execute(
            f"SELECT embedding::vector({dim}) FROM face_embeddings WHERE model_version = %s ORDER BY ctid",
            (version,))])
        t = time.perf_counter()
        truth = np.argsort(-(q @ table_vectors.T), axis=1)[:, :10]
        numpy_batched_qps = queries / (time.perf_counter() - t)
        single = []
        for vec in q[:50]:
            t = time.perf_counter()
            sims = table_vectors @ vec
            np.argpartition(-sims, 10)[:10]
            single.append(time.perf_counter() - t)
        numpy_single_qps = 1 / np.mean(single)
        truth_ids = person_ids[truth]
        sweeps = []
        for ef in EF:
            with conn.transaction():
                conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef),))
                latencies, hits1, hits10 = [], 0, 0
                for i, vec in enumerate(q):
                    t = time.perf_counter()
                    found = [r[0] for r in conn.execute(knn_sql(dim), (version, vec))]
                    latencies.append(time.perf_counter() - t)
                    hits1 += bool(found) and found[0] == truth_ids[i, 0]
                    hits10 += len(set(found) & set(truth_ids[i]))
                batch_lat = []
                for start in range(0, len(q) - 63, 64):
                    t = time.perf_counter()
                    conn.execute(batch_sql(dim), (list(q[start:start + 64]), version)).fetchall()
                    batch_lat.append(time.perf_counter() - t)
            lat = np.asarray(latencies)
            sweeps.append({"ef_search": ef, "recall_at_1": round(hits1 / queries, 4),
                           "recall_at_10": round(hits10 / (10 * queries), 4),
                           "single_p50_ms": round(float(np.percentile(lat, 50)) * 1000, 2),
                           "single_p99_ms": round(float(np.percentile(lat, 99)) * 1000, 2),
                           "single_qps": round(1 / lat.mean(), 1),
                           "batch64_p99_ms": round(float(np.percentile(batch_lat, 99)) * 1000, 2) if batch_lat else None,
                           "batch64_qps": round(64 * len(batch_lat) / sum(batch_lat), 1) if batch_lat else None})
        conn.execute("DELETE FROM persons WHERE id IN (SELECT person_id FROM face_embeddings WHERE model_version = %s)",
                     (version,))
        conn.execute("DELETE FROM model_versions WHERE version_string = %s", (version,))
        conn.execute("VACUUM face_embeddings")
    meeting = next((s["ef_search"] for s in sweeps if s["recall_at_1"] >= 0.99 and s["single_p99_ms"] <= 10), None)
    return {"n": n, "dim": dim, "load_s": round(load_s, 1), "build_s": round(build_s, 1),
            "index_mb": round(size / 2**20, 1), "numpy_single_qps": round(numpy_single_qps, 1),
            "numpy_batched_qps": round(numpy_batched_qps, 1), "sweeps": sweeps, "ef_meeting_target": meeting}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[512, 128])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    settings = bench_settings()
    dsn = bench_stack(settings).endpoints.database_dsn
    rng = np.random.default_rng(3)
    results = []
    for n in args.sizes:
        for dim in args.dims:
            r = run_one(dsn, n, dim, args.queries, rng)
            results.append(r)
            print(f"\n{n:,} × {dim}-d: COPY {r['load_s']} s, HNSW build {r['build_s']} s, index {r['index_mb']} MB; "
                  f"numpy brute force {r['numpy_single_qps']:,.0f} QPS single, {r['numpy_batched_qps']:,.0f} batched")
            print(f"{'ef':>4} {'R@1':>6} {'R@10':>6} {'p50 ms':>7} {'p99 ms':>7} {'QPS':>7} {'vs numpy':>8} "
                  f"{'b64 p99 ms':>10} {'b64 QPS':>8} {'vs numpy':>8}")
            for s in r["sweeps"]:
                print(f"{s['ef_search']:>4} {s['recall_at_1']:>6.3f} {s['recall_at_10']:>6.3f} {s['single_p50_ms']:>7.2f}"
                      f" {s['single_p99_ms']:>7.2f} {s['single_qps']:>7,.0f} {s['single_qps'] / r['numpy_single_qps']:>8.2f}"
                      f" {s['batch64_p99_ms'] or 0:>10.1f} {s['batch64_qps'] or 0:>8,.0f}"
                      f" {(s['batch64_qps'] or 0) / r['numpy_batched_qps']:>8.2f}", flush=True)
            print(f"ef_search meeting recall@1 >= 0.99 with p99 <= 10 ms: {r['ef_meeting_target'] or 'none'}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
