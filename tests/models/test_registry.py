"""Registering prepared model versions in model_versions, and the `vigil models` commands."""

from __future__ import annotations

import shutil

import psycopg
import pytest
from typer.testing import CliRunner

from tests.fixtures.stack import TEST_PORTS
from vigil.models.cli import models_app
from vigil.models.registry import register_model_version, registered_versions
from vigil.storage.repositories.faces import MEASURED_DESIGNS, IndexParams


def _hnsw_indexes(db, version: str) -> list[str]:
    return [r[0] for r in db.execute(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'face_embeddings' "
        "AND indexname LIKE 'idx_face_embeddings_hnsw_%%' AND indexdef LIKE %s",
        (f"%model_version = '{version}'::text%",),  # exactly this version, not others it prefixes
    ).fetchall()]


def test_registering_the_embedder_creates_its_hnsw_index(endpoints, db, prepared_models):
    embedder = prepared_models["face_embedder"]
    with psycopg.connect(endpoints.database_dsn) as conn:
        first = register_model_version(conn, embedder)
        again = register_model_version(conn, embedder)  # upsert: same row
        versions = registered_versions(conn)
    assert first == again
    row = versions[embedder.version_string]
    assert row.embedding_dim == 128 and row.match_threshold == 0.363
    # registered with the design measured for 128-d galleries: halfvec graph, float32 re-rank
    params = db.execute("SELECT index_params FROM model_versions WHERE id = %s", (first,)).fetchone()[0]
    assert IndexParams.from_json(params) == MEASURED_DESIGNS[128] and params["storage"] == "halfvec"
    indexes = _hnsw_indexes(db, embedder.version_string)
    assert len(indexes) == 1 and indexes[0].endswith("_d128_h_m16_c64"), indexes
    definition = db.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", (indexes[0],)).fetchone()[0]
    assert "hnsw" in definition and "halfvec(128)" in definition and "halfvec_cosine_ops" in definition
    metrics = db.execute("SELECT metrics FROM model_versions WHERE id = %s", (first,)).fetchone()[0]
    assert metrics["triton_model"] == "face_embedder" and metrics["model_sha256"] == embedder.model_sha256


def test_registering_the_detector_creates_no_index(endpoints, db, prepared_models):
    detector = prepared_models["face_detector"]
    with psycopg.connect(endpoints.database_dsn, autocommit=True) as conn:  # works in autocommit too
        register_model_version(conn, detector)
    assert _hnsw_indexes(db, detector.version_string) == []


def test_models_cli_prepare_and_list(stack, stack_state_dir, model_repository, prepared_models, photos, monkeypatch):
    env = {**TEST_PORTS, "VIGIL_STATE_DIR": str(stack_state_dir),
           "VIGIL_TRITON__MODEL_REPOSITORY": str(model_repository)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    prepared = runner.invoke(models_app, ["prepare", "--reference-image", str(photos["obama"])])
    assert prepared.exit_code == 0, prepared.output
    assert "sface-2021dec-int8folded" in prepared.stdout and "current" in prepared.stdout
    assert "registered 3 model version(s)" in prepared.stdout
    listed = runner.invoke(models_app, ["list"])
    assert listed.exit_code == 0, listed.output
    lines = {line.split()[1]: line for line in listed.stdout.splitlines() if line.startswith("│")}
    assert "yes" in lines["face_embedder"] and "yes" in lines["object_detector"]


def test_models_cli_prepare_refuses_a_bad_reference_photo(stack_state_dir, model_repository, prepared_models,
                                                          tmp_path, monkeypatch):
    copy = tmp_path / "repo"
    shutil.copytree(model_repository, copy)
    not_a_photo = tmp_path / "notes.txt"
    not_a_photo.write_text("no pixels here")
    monkeypatch.setenv("VIGIL_STATE_DIR", str(stack_state_dir))
    monkeypatch.setenv("VIGIL_TRITON__MODEL_REPOSITORY", str(copy))
    result = CliRunner().invoke(
        models_app, ["prepare", "--force", "--no-register", "--reference-image", str(not_a_photo)]
    )
    assert result.exit_code == 1
    assert "do not decode as an image" in result.output
    # the served files were not touched: nothing replaces a model before it is verified
    assert (copy / "face_detector" / "1" / "model.onnx").read_bytes() == prepared_models[
        "face_detector"
    ].path.read_bytes()


def test_models_cli_calibrate_measures_and_stores_the_1n_threshold(stack, stack_state_dir, db, monkeypatch):
    """`vigil models calibrate` on a gallery of its own model version: 40 persons with two faces each."""
    import uuid

    import numpy as np
    from pgvector.psycopg import register_vector

    for name, value in {**TEST_PORTS, "VIGIL_STATE_DIR": str(stack_state_dir)}.items():
        monkeypatch.setenv(name, value)
    version = f"cli-calibrate-{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(4)
    faces = rng.normal(size=(80, 64))
    faces /= np.linalg.norm(faces, axis=1, keepdims=True)
    register_vector(db)
    db.execute("INSERT INTO model_versions (version_string, embedding_dim, match_threshold) VALUES (%s, 64, 0.3)",
               (version,))
    persons = [r[0] for r in db.execute("INSERT INTO persons (name, status) SELECT 'calibrated ' || n, 'known'"
                                        " FROM generate_series(1, 40) AS n RETURNING id").fetchall()]
    for i, face in enumerate(faces.astype(np.float32)):
        db.execute("INSERT INTO face_embeddings (person_id, model_version, embedding, embedding_dim,"
                   " source_image_path) VALUES (%s, %s, %s, 64, 'cli.jpg')", (persons[i // 2], version, face))
    try:
        runner = CliRunner()
        dry = runner.invoke(models_app, ["calibrate", "--version", version, "--fpir", "0.05", "--no-store"])
        assert dry.exit_code == 0, dry.output
        assert "1:N threshold" in dry.stdout and "not stored" in dry.stdout
        assert db.execute("SELECT identification_threshold FROM model_versions WHERE version_string = %s",
                          (version,)).fetchone()[0] is None
        stored = runner.invoke(models_app, ["calibrate", "--version", version, "--fpir", "0.05"])
        assert stored.exit_code == 0, stored.output
        threshold, calibration = db.execute(
            "SELECT identification_threshold::float8, identification_calibration FROM model_versions"
            " WHERE version_string = %s", (version,)).fetchone()
        similarity = faces @ faces.T
        owner = np.arange(80) // 2
        similarity[owner[:, None] == owner[None, :]] = -1
        assert threshold == pytest.approx(np.quantile(similarity.max(axis=1), 0.95), abs=0.05)
        assert calibration["fpir"] == 0.05 and calibration["gallery_faces"] == 80
        audited = db.execute("SELECT count(*) FROM audit_logs WHERE action = 'model_version.calibrate'"
                             " AND details -> 'calibration' ->> 'gallery_faces' = '80'").fetchone()[0]
        assert audited >= 1
        refused = runner.invoke(models_app, ["calibrate", "--version", version, "--fpir", "2"])
        assert refused.exit_code == 2 and "fpir" in refused.output
    finally:
        db.execute("DELETE FROM face_embeddings WHERE model_version = %s", (version,))
        db.execute("DELETE FROM persons WHERE id = ANY(%s)", (persons,))
        db.execute("DELETE FROM model_versions WHERE version_string = %s", (version,))
