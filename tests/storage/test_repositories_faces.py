"""Model versions and the face gallery: validation, primary embeddings, and k-NN search over
128-d and 512-d model versions living side by side in one table."""

from __future__ import annotations

import hashlib
import uuid

import numpy as np
import pytest

from tests.storage.builders import count
from vigil.errors import AlreadyExists, InvalidArgument, NotFound
from vigil.storage.repositories import faces as faces_repository
from vigil.storage.repositories.faces import (
    FaceEmbeddingRepository,
    IndexParams,
    ModelVersion,
    ModelVersionRepository,
    search_settings,
)
from vigil.storage.repositories.persons import PersonRepository


def index_name(model: ModelVersion) -> str:
    """The per-version index fn_ensure_embedding_index builds (SCHEMA.md, deviation 5)."""
    return (
        f"idx_face_embeddings_hnsw_{hashlib.md5(model.version_string.encode()).hexdigest()[:16]}_d{model.embedding_dim}"
    )


def unit(rng: np.random.Generator, *shape: int) -> np.ndarray:
    vectors = rng.normal(size=shape)
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


async def register_pair(conn) -> tuple[ModelVersion, ModelVersion]:
    """An SFace-like 128-d and an ArcFace-like 512-d model version."""
    versions = ModelVersionRepository(conn)
    tag = uuid.uuid4().hex[:8]
    return (await versions.register(f"repo-sface-{tag}", 128, 0.35),
            await versions.register(f"repo-arcface-{tag}", 512, 0.30, metrics={"top1_accuracy": 0.98}))


async def copy_gallery(conn, person_id, model: ModelVersion, vectors: np.ndarray) -> None:
    """Bulk-load test vectors (COPY; the repository inserts one embedding at a time)."""
    async with conn.cursor() as cur:  # noqa: SIM117
        async with cur.copy("COPY face_embeddings (person_id, embedding, embedding_dim, source_image_path,"
                            " model_version) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["uuid", "vector", "int4", "text", "text"])
            for vector in vectors.astype(np.float32):
                await copy.write_row((person_id, vector, model.embedding_dim, "gallery.jpg", model.version_string))


async def test_model_version_registry(conn):
    sface, arcface = await register_pair(conn)
    versions = ModelVersionRepository(conn)
    assert await versions.get(sface.version_string) == sface
    assert (arcface.embedding_dim, arcface.match_threshold, arcface.metrics) == (512, 0.30, {"top1_accuracy": 0.98})
    assert [m for m in await versions.list() if m.id in (sface.id, arcface.id)] == [arcface, sface]  # by name
    cur = await conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'face_embeddings'")
    assert {index_name(sface), index_name(arcface)} <= {r["indexname"] for r in await cur.fetchall()}

    with pytest.raises(AlreadyExists) as dup:
        await versions.register(sface.version_string, 256, 0.4)
    assert (dup.value.resource, dup.value.field) == ("model_version", "version_string")
    for kwargs, field in (({"embedding_dim": 0}, "embedding_dim"), ({"embedding_dim": 4096}, "embedding_dim"),
                          ({"match_threshold": 1.5}, "match_threshold"),
                          ({"match_threshold": float("nan")}, "match_threshold"),
                          ({"version_string": ""}, "version_string")):
        args = {"version_string": f"repo-bad-{uuid.uuid4().hex[:6]}", "embedding_dim": 128, "match_threshold": 0.3,
                **kwargs}
        with pytest.raises(InvalidArgument) as refused:
            await versions.register(**args)
        assert refused.value.field == field
    with pytest.raises(NotFound):
        await versions.get("repo-never-registered")


async def test_embedding_insert_validates_before_writing(conn):
    sface, _ = await register_pair(conn)
    person = await PersonRepository(conn).create(name="probe")
    embeddings = FaceEmbeddingRepository(conn)
    good = np.full(128, 0.1)
    bad_vectors = {
        "wrong dimension": np.full(512, 0.1),
        "NaN": np.concatenate([[np.nan], good[1:]]),
        "infinity": np.concatenate([[np.inf], good[1:]]),
        "beyond float32": np.concatenate([[1e39], good[1:]]),
        "not numbers": ["a"] * 128,
        "matrix": np.full((2, 64), 0.1),
    }
    for reason, vector in bad_vectors.items():
        with pytest.raises(InvalidArgument) as refused:
            await embeddings.insert(person.id, sface, vector, "crop.jpg")
        assert refused.value.field == "embedding", reason
    with pytest.raises(InvalidArgument) as bad_quality:
        await embeddings.insert(person.id, sface, good, "crop.jpg", face_quality=1.5)
    assert bad_quality.value.field == "face_quality"
    with pytest.raises(InvalidArgument) as missing_person:
        await embeddings.insert(uuid.uuid4(), sface, good, "crop.jpg")
    assert missing_person.value.field == "person_id"
    with pytest.raises(NotFound) as unknown_version:
        await embeddings.insert(person.id, "repo-no-such-model", good, "crop.jpg")
    assert unknown_version.value.resource == "model_version"
    assert await count(conn, "SELECT count(*) FROM face_embeddings WHERE person_id = %s", (person.id,)) == 0

    stored = await embeddings.insert(person.id, sface.version_string, good, "crop.jpg", face_quality=0.9,
                                     confidence=0.99)
    assert (stored.embedding_dim, stored.model_version, stored.face_quality, stored.is_primary) == (
        128, sface.version_string, 0.9, False)
    assert await embeddings.get(stored.id) == stored
    np.testing.assert_allclose(await embeddings.vector(stored.id), good, rtol=1e-6)
    await embeddings.delete(stored.id)
    with pytest.raises(NotFound):
        await embeddings.get(stored.id)


async def test_one_primary_per_person_and_model_version(conn):
    sface, arcface = await register_pair(conn)
    persons = PersonRepository(conn)
    embeddings = FaceEmbeddingRepository(conn)
    rng = np.random.default_rng(1)
    person = await persons.create(name="primary probe")
    a, b = [await embeddings.insert(person.id, sface, v, f"{n}.jpg") for n, v in enumerate(unit(rng, 2, 128))]
    c = await embeddings.insert(person.id, arcface, unit(rng, 512), "c.jpg")

    assert (await embeddings.set_primary(a.id)).is_primary
    assert (await persons.get(person.id)).primary_face_embedding_id == a.id
    await embeddings.set_primary(b.id)
    await embeddings.set_primary(c.id)
    flags = {e.id: e.is_primary for e in await embeddings.list_for_person(person.id)}
    assert flags == {a.id: False, b.id: True, c.id: True}  # one primary in each model version's gallery
    assert {e.id for e in await embeddings.list_for_person(person.id, model_version=sface.version_string)} == {
        a.id,
        b.id,
    }
    assert (await persons.get(person.id)).primary_face_embedding_id == c.id
    await embeddings.delete(c.id)
    assert (await persons.get(person.id)).primary_face_embedding_id is None
    with pytest.raises(NotFound):
        await embeddings.set_primary(c.id)


async def test_knn_finds_the_planted_neighbour_in_each_model_version(conn):
    rng = np.random.default_rng(42)
    models = await register_pair(conn)
    persons = PersonRepository(conn)
    embeddings = FaceEmbeddingRepository(conn)
    crowd = [await persons.create(name=f"crowd {n}") for n in range(4)]
    target = await persons.create(name="target")
    for model in models:
        d = model.embedding_dim
        for n, vector in enumerate(unit(rng, 120, d)):
            await embeddings.insert(crowd[n % 4].id, model, vector, f"crowd-{n}.jpg")
        query = unit(rng, d)
        planted = await embeddings.insert(target.id, model, query + 0.02 * unit(rng, d), "target.jpg")

        hits = await embeddings.nearest(model, query, k=5)
        assert hits[0].embedding_id == planted.id and hits[0].person_id == target.id
        assert hits[0].similarity > 0.9 and hits[0].distance == pytest.approx(1 - hits[0].similarity)
        assert [h.distance for h in hits] == sorted(h.distance for h in hits)
        assert all(h.similarity < 0.5 for h in hits[1:])  # random unit vectors are near orthogonal

        # nearest within the match threshold: only the planted face is a match
        matches = await embeddings.nearest(model, query, k=5, max_distance=1 - model.match_threshold)
        assert [m.embedding_id for m in matches] == [planted.id]
        # restricted to some persons (e.g. a watchlist): the target is not among them
        crowd_only = await embeddings.nearest(model.version_string, query, k=3, person_ids=[p.id for p in crowd[:2]])
        assert len(crowd_only) == 3 and {h.person_id for h in crowd_only} <= {crowd[0].id, crowd[1].id}
        # ef_search below k is raised to k, so k rows still come back
        assert len(await embeddings.nearest(model, query, k=20, ef_search=1)) == 20

    # the 512-d gallery is invisible to a 128-d search and the other way round
    sface, arcface = models
    ids_128 = {e.id for e in await embeddings.list_for_person(target.id, model_version=sface.version_string)}
    ids_512 = {e.id for e in await embeddings.list_for_person(target.id, model_version=arcface.version_string)}
    hits_128 = await embeddings.nearest(sface, unit(rng, 128), k=200)
    assert len(hits_128) == 121 and not {h.embedding_id for h in hits_128} & ids_512
    assert {h.embedding_id for h in hits_128} >= ids_128

    with pytest.raises(InvalidArgument) as wrong_dim:
        await embeddings.nearest(sface, unit(rng, 512), k=5)
    assert wrong_dim.value.field == "query_vector"
    with pytest.raises(InvalidArgument) as bad_k:
        await embeddings.nearest(sface, unit(rng, 128), k=0)
    assert bad_k.value.field == "k"


async def test_batch_knn_equals_single_knn_per_query(conn):
    rng = np.random.default_rng(7)
    persons = PersonRepository(conn)
    embeddings = FaceEmbeddingRepository(conn)
    people = [await persons.create(name=f"batch {n}") for n in range(10)]
    for model in await register_pair(conn):
        d = model.embedding_dim
        for n, vector in enumerate(unit(rng, 150, d)):
            await embeddings.insert(people[n % 10].id, model, vector, f"{n}.jpg")
        queries = list(unit(rng, 6, d))
        batch = await embeddings.nearest_batch(model, queries, k=7, ef_search=200)
        singles = [await embeddings.nearest(model, q, k=7, ef_search=200) for q in queries]
        assert len(batch) == len(queries)
        for got, expected in zip(batch, singles):
            assert [n.embedding_id for n in got] == [n.embedding_id for n in expected]
            assert [n.distance for n in got] == pytest.approx([n.distance for n in expected], abs=1e-6)

        limit = 1 - model.match_threshold
        filtered = await embeddings.nearest_batch(model, queries[:2], k=5, max_distance=limit,
                                                  person_ids=[people[0].id])
        assert filtered == [[n for n in await embeddings.nearest(model, q, k=5, max_distance=limit,
                                                                 person_ids=[people[0].id])] for q in queries[:2]]
        assert await embeddings.nearest_batch(model, [], k=5) == []
        with pytest.raises(InvalidArgument) as bad_query:
            await embeddings.nearest_batch(model, [queries[0], np.full(d, np.nan)], k=5)
        assert bad_query.value.field == "query_vectors[1]"


async def test_search_plan_uses_the_versions_own_hnsw_index(owner_conn):
    """EXPLAIN of the statement nearest() issues, with both galleries loaded and analysed.

    Sizes: on small galleries the planner rightly prefers an exact sort; with both versions in
    the table it picks HNSW from ~1k rows at 128-d and ~2.5k rows at 512-d (SCHEMA.md)."""
    rng = np.random.default_rng(11)
    person = await PersonRepository(owner_conn).create(name="explain probe")
    models = await register_pair(owner_conn)
    for model, rows in zip(models, (1500, 3000)):
        await copy_gallery(owner_conn, person.id, model, unit(rng, rows, model.embedding_dim))
    await owner_conn.execute("ANALYZE face_embeddings")
    embeddings = FaceEmbeddingRepository(owner_conn)
    for model in models:
        plan = await embeddings.explain_nearest(model, unit(rng, model.embedding_dim), k=10)
        assert f"Index Scan using {index_name(model)}" in plan, plan
        hits = await embeddings.nearest(model, unit(rng, model.embedding_dim), k=10)
        assert len(hits) == 10


# --------------------------------------------------------------------------- index design per model version


async def _crowd(conn, model: ModelVersion, vectors: np.ndarray) -> list[uuid.UUID]:
    """One person per vector (a person each, so that a person filter selects faces one by one)."""
    cur = await conn.execute("INSERT INTO persons (name, status) SELECT 'crowd ' || n, 'known'"
                             " FROM generate_series(1, %s) AS n RETURNING id", (len(vectors),))
    ids = [row["id"] for row in await cur.fetchall()]
    async with conn.cursor() as cur, cur.copy("COPY face_embeddings (person_id, embedding, embedding_dim,"
                                             " source_image_path, model_version) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["uuid", "vector", "int4", "text", "text"])
        for person_id, vector in zip(ids, vectors.astype(np.float32)):
            await copy.write_row((person_id, vector, model.embedding_dim, "crowd.jpg", model.version_string))
    await conn.execute("ANALYZE face_embeddings")
    return ids


TWO_STAGE = {
    "halfvec": IndexParams(storage="halfvec", m=16, ef_construction=64, ef_search=40, rerank=40),
    "bit": IndexParams(storage="bit", m=16, ef_construction=64, ef_search=200, rerank=200),
}


@pytest.mark.parametrize("design", sorted(TWO_STAGE))
async def test_two_stage_search_recall_on_a_planted_set(owner_conn, design):
    """A compact index (halfvec, or binary-quantised sign bits) yields candidates that are re-ranked
    on the float32 vectors: the planted face comes first, with its exact distance."""
    rng = np.random.default_rng(5)
    index = TWO_STAGE[design]
    model = await ModelVersionRepository(owner_conn).register(f"repo-{design}-{uuid.uuid4().hex[:8]}", 128, 0.36,
                                                              index=index)
    assert model.index == index
    cur = await owner_conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname LIKE %s",
                                   (index_name(model) + "\\_%",))
    definition = (await cur.fetchone())["indexdef"]
    assert ("halfvec_cosine_ops" if design == "halfvec" else "bit_hamming_ops") in definition, definition
    gallery = unit(rng, 3000, 128)
    ids = await _crowd(owner_conn, model, gallery)
    embeddings = FaceEmbeddingRepository(owner_conn)
    plan = await embeddings.explain_nearest(model, gallery[0], k=5)
    assert f"Index Scan using {index_name(model)}_{design[0]}_m16_c64" in plan, plan

    planted = rng.choice(len(gallery), 100, replace=False)
    probes = gallery[planted] + unit(rng, 100, 128) * 0.3  # the same face seen again: cosine ~0.95
    found = await embeddings.nearest_batch(model, probes, k=5)
    exact = np.argsort(-(probes / np.linalg.norm(probes, axis=1, keepdims=True)) @ gallery.T, axis=1)[:, :5]
    recall = np.mean([hits[0].person_id == ids[row[0]] for hits, row in zip(found, exact)])
    assert recall >= 0.99, recall
    first = found[0][0]
    expected = 1 - float(probes[0] @ gallery[planted[0]] / np.linalg.norm(probes[0]))
    assert first.distance == pytest.approx(expected, abs=1e-5)  # re-ranked on float32, not float16 or bits


@pytest.mark.parametrize("path", ["exact", "iterative index scan"])
async def test_a_filter_hiding_99_percent_of_the_gallery_loses_no_one(owner_conn, monkeypatch, path):
    """A watchlist-sized filter (1 % of 3,000 persons): the filtered person nearest the probe is found
    although 99 % of the gallery, nearer decoys included, is filtered out."""
    if path != "exact":
        monkeypatch.setattr(faces_repository, "EXACT_FILTER_PERSONS", 0)  # force the graph walk
    rng = np.random.default_rng(9)
    model = await ModelVersionRepository(owner_conn).register(
        f"repo-filter-{uuid.uuid4().hex[:8]}", 128, 0.36, index=TWO_STAGE["halfvec"])
    gallery = unit(rng, 3000, 128)
    probe = unit(rng, 128)
    gallery[:200] = probe + unit(rng, 200, 128) * 0.4  # decoys near the probe, all filtered out
    gallery[2500] = probe + unit(rng, 128) * 0.9  # the watched person: farther than every decoy
    ids = await _crowd(owner_conn, model, gallery / np.linalg.norm(gallery, axis=1, keepdims=True))
    watched = [ids[i] for i in range(2500, 3000, 17)]  # 30 persons, 1 %
    embeddings = FaceEmbeddingRepository(owner_conn)
    hits = await embeddings.nearest(model, probe, k=3, person_ids=watched)
    assert hits[0].person_id == ids[2500] and len(hits) == 3
    assert {h.person_id for h in hits} <= set(watched)
    unfiltered = await embeddings.nearest(model, probe, k=3)
    assert unfiltered[0].person_id in ids[:200]  # without the filter a decoy wins


def test_index_params_are_checked():
    for params, field in ((IndexParams(storage="pq"), "storage"), (IndexParams(m=1), "m"),
                          (IndexParams(m=32, ef_construction=40), "ef_construction"),
                          (IndexParams(storage="bit"), "rerank"), (IndexParams(ef_search=0), "ef_search")):
        with pytest.raises(InvalidArgument) as refused:
            params.checked()
        assert refused.value.field == f"index_params.{field}"
    assert IndexParams.from_json({}) == IndexParams()
    for dim, design in faces_repository.MEASURED_DESIGNS.items():  # what `vigil models prepare` registers
        assert design.checked() == design and IndexParams.from_json(design.to_json()) == design, dim
    assert IndexParams.from_json({"storage": "halfvec", "rerank": 40}).to_json()["rerank"] == 40
    settings = search_settings(IndexParams(rerank=300, ef_search=40), 10, filtered=True)
    assert settings["hnsw.ef_search"] == "300" and settings["hnsw.iterative_scan"] == "relaxed_order"


# --------------------------------------------------------------------------- 1:N calibration


async def test_calibration_measures_the_galleries_best_impostor_scores(owner_conn):
    """The 1:N threshold is the (1 - fpir) quantile of each enrolled face's nearest *other* person,
    as exact search over the same gallery gives it; placeholders of unknown-face clusters (here
    near-copies of enrolled faces, as an unmerged second sighting would be) are no impostors."""
    from datetime import UTC, datetime

    from vigil.storage.repositories.clusters import ClusterSightingRepository

    rng = np.random.default_rng(11)
    model = await ModelVersionRepository(owner_conn).register(f"repo-calib-{uuid.uuid4().hex[:8]}", 128, 0.36)
    identities = unit(rng, 600, 128)
    faces = np.repeat(identities, 2, axis=0) + unit(rng, 1200, 128) * 0.35  # two faces per person, cosine ~0.9
    faces /= np.linalg.norm(faces, axis=1, keepdims=True)
    cur = await owner_conn.execute("INSERT INTO persons (name, status) SELECT 'calib ' || n, 'known'"
                                   " FROM generate_series(1, 600) AS n RETURNING id")
    persons = [row["id"] for row in await cur.fetchall()]
    owner = np.repeat(np.arange(600), 2)
    async with owner_conn.cursor() as cur, cur.copy(
            "COPY face_embeddings (person_id, embedding, embedding_dim, source_image_path, model_version)"
            " FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["uuid", "vector", "int4", "text", "text"])
        for i, vector in enumerate(faces.astype(np.float32)):
            await copy.write_row((persons[owner[i]], vector, 128, "calib.jpg", model.version_string))
    now = datetime.now(UTC)
    for face in faces[:120:2]:  # 60 enrolled persons also seen as strangers, not yet merged
        copy_of = face + unit(rng, 128) * 0.1
        await ClusterSightingRepository(owner_conn).create_unknown(
            model.version_string, (copy_of / np.linalg.norm(copy_of)).astype(np.float32), "sighting.jpg",
            face_quality=0.8, confidence=0.9, sample_count=1, first_seen=now, last_seen=now)

    similarity = faces @ faces.T
    similarity[owner[:, None] == owner[None, :]] = -1  # a person's own faces are no impostors
    exact = np.quantile(similarity.max(axis=1), 0.98)

    embeddings = FaceEmbeddingRepository(owner_conn)
    calibration = await embeddings.calibrate_identification(model, fpir=0.02, probes=1000)
    assert calibration.details["gallery_faces"] == 1200 and calibration.details["probes"] >= 700
    assert calibration.threshold == pytest.approx(exact, abs=0.03), (calibration.threshold, exact)
    assert calibration.threshold < 0.6  # the placeholders' ~0.99 copies did not count

    stored = await ModelVersionRepository(owner_conn).set_identification(
        model.version_string, faces_repository.Calibration(0.5, calibration.details), by="test")
    assert stored.identification_threshold == 0.5 and stored.identifies_at == 0.5
    assert stored.identification_calibration["fpir"] == 0.02
    lowered = await ModelVersionRepository(owner_conn).set_identification(
        model.version_string, faces_repository.Calibration(0.2, {}), by="test")
    assert lowered.identifies_at == pytest.approx(0.36)  # never below the 1:1 threshold
    with pytest.raises(InvalidArgument) as refused:
        await embeddings.calibrate_identification(model, fpir=0.7)
    assert refused.value.field == "fpir"
