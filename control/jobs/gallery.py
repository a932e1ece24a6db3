"""Job "gallery_calibration": keep each face gallery's 1:N identification threshold true to its size.

The best of N impostor scores grows with the gallery, so the threshold measured by
`vigil models calibrate` goes stale as persons are enrolled. Nightly, every embedding model version
whose gallery is large enough to resolve the target rate (10 / fpir enrolled faces) and has grown
or shrunk by `GROWTH` since its last calibration (or was never calibrated) is calibrated again and
the threshold stored and audited. Smaller galleries keep their 1:1 threshold: too few faces to
measure a 1-in-1,000 tail, and too few persons for it to matter.
"""

from __future__ import annotations

from typing import Any

from vigil.logs import get_logger
from vigil.storage.db import acting_as
from vigil.storage.repositories.faces import FaceEmbeddingRepository, ModelVersionRepository, calibration_probes

log = get_logger("vigil.control.jobs.gallery")

GROWTH = 0.10  # a gallery this much larger or smaller than at its calibration is calibrated again


async def calibrate_galleries(app) -> dict[str, Any]:
    fpir = app.settings.jobs.identification_fpir
    minimum = calibration_probes(fpir)
    async with app.pool.connection() as conn:
        models = [m for m in await ModelVersionRepository(conn).list() if m.embedding_dim]
        sizes = await FaceEmbeddingRepository(conn).enrolled_counts()
    calibrated, skipped = [], {}
    for model in models:
        faces = sizes.get(model.version_string, 0)
        last = model.identification_calibration
        if faces < minimum:
            skipped[model.version_string] = f"{faces} enrolled faces (< {minimum})"
            continue
        if last.get("fpir") == fpir and abs(faces - last.get("gallery_faces", 0)) < GROWTH * faces:
            skipped[model.version_string] = f"calibrated at {last['gallery_faces']} faces"
            continue
        async with acting_as(app.pool, user_id=None, role="super_admin") as conn:
            calibration = await FaceEmbeddingRepository(conn).calibrate_identification(model, fpir=fpir)
            stored = await ModelVersionRepository(conn).set_identification(
                model.version_string, calibration, by="job gallery_calibration")
        calibrated.append({"model_version": model.version_string, "threshold": stored.identification_threshold,
                           "gallery_faces": faces})
        log.info("gallery calibrated", model_version=model.version_string,
                 threshold=stored.identification_threshold, gallery_faces=faces, fpir=fpir)
    return {"calibrated": calibrated, "skipped": skipped}
