"""A stranger's cluster as ingest creates it in one statement, and a face no better than the
representative (as stored: three decimals) that leaves the gallery as it is."""

from __future__ import annotations

import re

from tests.fixtures.control import database
from tests.ingest.builders import accepted, batch, best_face, face_track


async def test_a_stranger_seen_again_with_an_equally_good_face_keeps_one_representative(
        ingest, node, app, camera, model_version, real_faces):
    face = best_face(real_faces["biden"], model_version, quality=0.8)  # 0.800000011920929 as float32 on the wire
    await accepted(ingest, node, batch(camera.id, [face_track("first", face)]),
                   batch(camera.id, [face_track("again", face, second=5)]))
    async with database(app) as conn:
        cur = await conn.execute(
            "SELECT c.cluster_label, c.sample_count, c.status, p.status AS holder_status, p.name,"
            " p.primary_face_embedding_id = f.id AS primary, f.is_primary, f.face_quality::float8 AS quality,"
            " (SELECT count(*) FROM face_embeddings WHERE model_version = %s) AS faces"
            " FROM person_clusters c JOIN face_embeddings f ON f.id = c.representative_embedding_id"
            " JOIN persons p ON p.id = f.person_id WHERE f.model_version = %s", (model_version, model_version))
        rows = await cur.fetchall()
    (cluster,) = rows  # both tracks in one cluster
    assert re.fullmatch(r"Unknown-\d{3,}", cluster["cluster_label"]), cluster
    assert (cluster["sample_count"], cluster["status"], cluster["holder_status"], cluster["name"]) == \
        (2, "active", "unknown", None)
    assert cluster["primary"] and cluster["is_primary"] and cluster["quality"] == 0.8
    assert cluster["faces"] == 1  # the second sighting's face is not better: no second embedding
