"""What the demo needs before anything runs: the embedded stack, the sample videos, the face
models served by Triton, and API keys. Each step is idempotent, so a second run is quick."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vigil.logs import get_logger
from vigil.models.prepare import PreparedModel
from vigil.samples import SampleVideo
from vigil.settings import VigilSettings
from vigil.stack import Stack

log = get_logger("vigil.demo")

ADMIN_KEY_NAME = "vigil-demo admin"
NODE_KEY_NAME = "vigil-demo node"
KEY_LIFETIME = timedelta(days=1)  # demo keys are throwaway; each run revokes the previous run's


class SetupError(RuntimeError):
    """A step failed; the message says what to do next."""


def start_stack(settings: VigilSettings) -> Stack:
    from vigil.stack import StackError
    from vigil.storage.migrate import MigrationError

    stack = Stack(settings)
    try:
        stack.up()
    except (StackError, MigrationError, ValueError) as exc:
        raise SetupError(f"{exc}\nThe stack's logs are in {stack.state_dir / 'logs'}.") from exc
    return stack


def sample_videos(media_dir: Path) -> dict[str, SampleVideo]:
    from vigil.models.errors import SampleMediaError
    from vigil.samples import load_sample_videos

    try:
        return load_sample_videos(media_dir)
    except SampleMediaError as exc:
        raise SetupError(f"building the sample videos failed: {exc}") from exc


@dataclass(frozen=True)
class Models:
    prepared: list[PreparedModel]
    restarted_triton: bool

    @property
    def embedder(self) -> PreparedModel:
        return next(p for p in self.prepared if p.embedding_dim)


def serve_models(stack: Stack, settings: VigilSettings, reference_image: Path) -> Models:
    """`vigil models prepare` (idempotent), register the versions, and make sure Triton serves
    them: the embedded Triton binds models only when it starts, so it is restarted when the
    files are new or it does not serve them yet."""
    import psycopg

    from vigil.models.errors import InferenceError, InvalidImageError, PreparationError, SampleMediaError
    from vigil.models.faces import FaceAnalyzer
    from vigil.models.prepare import prepare_repository
    from vigil.models.registry import register_model_version

    repo = settings.triton.model_repository.expanduser().resolve()
    try:
        prepared = prepare_repository(repo, reference_image=reference_image)
    except (PreparationError, InvalidImageError, SampleMediaError) as exc:
        raise SetupError(f"preparing the face models in {repo} failed: {exc}") from exc
    with psycopg.connect(stack.endpoints.database_dsn, connect_timeout=5) as conn:
        for p in prepared:
            register_model_version(conn, p)

    restart = any(p.status == "prepared" for p in prepared) and settings.triton.url is None
    if not restart:
        with FaceAnalyzer(stack.endpoints) as analyzer:
            try:
                analyzer.wait_until_ready(timeout_s=10)
            except InferenceError:
                if settings.triton.url is not None:
                    raise SetupError(f"the Triton at {settings.triton.url} does not serve the face models; "
                                     f"copy {repo} into its model repository") from None
                restart = True
    if restart:
        log.info("restarting the embedded triton to bind the prepared models")
        next(svc for svc in stack.services if svc.name == "triton").stop()
        start_stack_again(stack)
    with FaceAnalyzer(stack.endpoints) as analyzer:
        try:
            analyzer.wait_until_ready(timeout_s=120)
        except InferenceError as exc:
            raise SetupError(f"{exc}. Triton's log: {stack.state_dir / 'logs' / 'triton.log'}") from exc
    return Models(prepared, restart)


def start_stack_again(stack: Stack) -> None:
    from vigil.stack import StackError

    try:
        stack.up(migrate=False)
    except StackError as exc:
        raise SetupError(str(exc)) from exc


@dataclass(frozen=True)
class Keys:
    admin: str
    admin_prefix: str
    node: str
    node_prefix: str
    revoked: int  # keys of earlier runs revoked now


def create_keys(stack: Stack) -> Keys:
    return asyncio.run(_create_keys(stack.endpoints.database_dsn))


async def _create_keys(dsn: str) -> Keys:
    from vigil.storage.db import create_pool
    from vigil.storage.repositories.api_keys import ApiKeyRepository

    pool = create_pool(dsn, min_size=1, max_size=1)
    await pool.open(wait=True, timeout=10)
    try:
        async with pool.connection() as conn:
            repo = ApiKeyRepository(conn)
            # the plaintext of an earlier run's keys is gone: revoke them rather than pile them up
            earlier, token = [], None
            while True:
                page = await repo.list(page_size=1000, page_token=token)
                earlier += [k for k in page.items if k.name in (ADMIN_KEY_NAME, NODE_KEY_NAME)]
                if not (token := page.next_page_token):
                    break
            for key in earlier:
                await repo.revoke(key.id)
            expires = datetime.now(UTC) + KEY_LIFETIME
            admin = await repo.create(ADMIN_KEY_NAME, "admin", expires_at=expires, rate_limit_per_minute=6000)
            node = await repo.create(NODE_KEY_NAME, "api_client", expires_at=expires, rate_limit_per_minute=60000)
    finally:
        await pool.close()
    return Keys(admin.plaintext, admin.key.key_prefix, node.plaintext, node.key.key_prefix, len(earlier))
