"""`vigil models prepare | list | calibrate`: the Triton model repository, the registered model
versions and their galleries' 1:N identification thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vigil.commands.common import cli_settings, console, err, fail

models_app = typer.Typer(help="Face models: prepare the Triton model repository, register model versions.",
                         no_args_is_help=True)

def _megabytes(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB" if path.is_file() else "-"


@models_app.command("prepare")
def prepare(
    force: Annotated[bool, typer.Option(help="Rebuild even when the model files are current.")] = False,
    register: Annotated[bool, typer.Option(help="Register the model versions in the database.")] = True,
    reference_image: Annotated[
        Path | None,
        typer.Option(help="Photo of a face to verify against OpenCV (default: obama.jpg of the face_recognition "
                          "sdist, fetched into <state_dir>/media once)."),
    ] = None,
) -> None:
    """Write the model files of the repository (setting triton.model_repository), verify them
    against OpenCV, and register their versions. Idempotent."""
    from vigil.models.errors import InvalidImageError, PreparationError, SampleMediaError
    from vigil.models.prepare import prepare_repository

    settings = cli_settings()
    repo = settings.triton.model_repository.expanduser().resolve()
    try:
        prepared = prepare_repository(repo, reference_image=reference_image, force=force)
    except SampleMediaError as exc:
        raise fail(f"{exc}. Pass --reference-image with a photo of a face.") from exc
    except (PreparationError, InvalidImageError) as exc:
        raise fail(str(exc)) from exc

    table = Table(title=f"Model repository {repo}", title_justify="left",
                  caption="Δ: largest output difference from the reference (OpenCV; NanoDet: numpy decoding) on the "
                          "reference photo")
    for column in ("model", "version", "status", "Δ", "dim", "match ≥"):
        table.add_column(column, no_wrap=True)
    for p in prepared:
        table.add_row(
            p.name, p.version_string, p.status,
            f"{p.max_abs_diff:.0e}" if p.max_abs_diff is not None else "-",
            str(p.embedding_dim or "-"), f"{p.match_threshold:.3f}" if p.match_threshold is not None else "-",
        )
    console.print(table)

    if register:
        import psycopg

        from vigil.endpoints import resolve
        from vigil.models.registry import register_model_version

        try:
            with psycopg.connect(resolve(settings).database_dsn, connect_timeout=5) as conn:
                for p in prepared:
                    register_model_version(conn, p)
        except psycopg.Error as exc:
            raise fail(f"registering the model versions failed: {exc}. Is the database up? Try `vigil stack up`, "
                        "or pass --no-register.") from exc
        console.print(f"registered {len(prepared)} model version(s) in model_versions")
    if any(p.status == "prepared" for p in prepared) and settings.triton.url is None:
        console.print("The embedded Triton binds models when it starts: restart the stack to serve new files "
                      "(`vigil stack down && vigil stack up`).")


@models_app.command("list")
def list_models() -> None:
    """Each model of the repository: its config, whether its file is in place, its version and
    whether that version is registered in the database."""
    import psycopg

    from vigil.endpoints import resolve
    from vigil.models.errors import PreparationError
    from vigil.models.prepare import read_manifest
    from vigil.models.registry import registered_versions
    from vigil.models.repository import list_models as repository_models

    settings = cli_settings()
    repo = settings.triton.model_repository.expanduser().resolve()
    try:
        models = repository_models(repo)
    except PreparationError as exc:
        raise fail(str(exc)) from exc
    try:
        with psycopg.connect(resolve(settings).database_dsn, connect_timeout=3) as conn:
            registered = registered_versions(conn)
    except psycopg.Error as exc:
        err.print(f"[yellow]database unreachable, registrations not shown:[/yellow] {str(exc).strip()[:160]}")
        registered = None

    table = Table(title=f"Model repository {repo}", title_justify="left")
    for column in ("model", "batch", "file", "version", "registered"):
        table.add_column(column, no_wrap=True)
    for model in models:
        manifest = read_manifest(model) or {}
        version = manifest.get("model", {}).get("version_string")
        if registered is None or version is None:
            state = "?" if registered is None else "-"
        else:
            row = registered.get(version)
            state = "no" if row is None else ("production" if row.is_production else "yes")
        table.add_row(model.name, str(model.config.max_batch_size),
                      _megabytes(model.model_file) if model.model_file.is_file() else "[yellow]absent[/yellow]",
                      version or "-", state)
    console.print(table)


async def _calibrate(settings, version: str | None, fpir: float, probes: int | None, store: bool):
    from vigil.endpoints import resolve
    from vigil.storage.db import create_pool
    from vigil.storage.repositories.faces import FaceEmbeddingRepository, ModelVersionRepository

    pool = create_pool(resolve(settings).database_dsn, min_size=1, max_size=1, statement_timeout_ms=0)
    await pool.open(wait=True, timeout=10)
    try:
        async with pool.connection() as conn:
            model = await ModelVersionRepository(conn).embedder(version)
            err.print(f"calibrating {model.version_string} for a false-positive identification rate of {fpir:.2%}")
            calibration = await FaceEmbeddingRepository(conn).calibrate_identification(
                model, fpir=fpir, probes=probes,
                progress=lambda done, total: err.print(f"  searched {done:,}/{total:,} enrolled faces"))
            if store:
                async with conn.transaction():
                    model = await ModelVersionRepository(conn).set_identification(
                        model.version_string, calibration, by="cli")
            return model, calibration
    finally:
        await pool.close()


@models_app.command("calibrate")
def calibrate(
    version: Annotated[str | None, typer.Option(help="Model version (default: the production embedder, "
                                                     "else the newest registered).")] = None,
    fpir: Annotated[float, typer.Option(help="False-positive identification rate to hold: the share of "
                                             "strangers' faces that may be named as someone.")] = 0.001,
    probes: Annotated[int | None, typer.Option(help="Enrolled faces searched (default: 10 / fpir).")] = None,
    store: Annotated[bool, typer.Option(help="Store the threshold on the model version (recognition and "
                                             "SearchFaces use it at once).")] = True,
) -> None:
    """Measure the 1:N identification threshold of a gallery: how similar the nearest other person
    of an enrolled face gets at this gallery's size. Run again as the gallery grows."""
    import asyncio

    import psycopg

    from vigil.errors import RepositoryError

    settings = cli_settings()
    try:
        model, calibration = asyncio.run(_calibrate(settings, version, fpir, probes, store))
    except RepositoryError as exc:
        raise fail(str(exc), 2) from exc
    except psycopg.Error as exc:
        raise fail(f"calibration failed: {str(exc).strip()[:300]}. Is the database up? Try `vigil stack up`.") \
            from exc
    details = calibration.details
    console.print(f"{model.version_string}: 1:N threshold {calibration.threshold:.4f} for FPIR {fpir:.2%} over "
                  f"{details['gallery_faces']:,} enrolled faces ({details['probes']:,} searched; best impostor "
                  f"score median {details['quantiles']['0.5']}, max {details['max']}); 1:1 match threshold "
                  f"{model.match_threshold}; persons are named at {model.identifies_at}"
                  + ("" if store else " (not stored: --no-store)"))
