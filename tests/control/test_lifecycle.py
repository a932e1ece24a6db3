"""Composition and lifecycle of a control-plane replica: building the app and its servicers starts
no task, start() starts every background task, stop() leaves none running.

The app runs on an event loop of its own (a thread), so every task on that loop is the app's:
the session's control plane, on the test loop, cannot be mistaken for it."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from tests.fixtures.control import as_replica
from vigil.control.app import ControlApp
from vigil.control.ingest.fanout import Subscriber
from vigil.control.ingest.feed import FeedFilter
from vigil.control.services import SERVICES, servicers


def _others() -> set[str]:
    return {t.get_name() for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()}


def _on_a_loop_of_its_own(scenario):
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, scenario()).result(timeout=180)


def test_the_app_owns_every_background_task(stack, settings):
    # scheduled jobs on: the scheduler is one of the things start() starts and stop() stops
    jobs_on = settings.model_copy(update={"jobs": settings.jobs.model_copy(update={"enabled": True})})

    async def scenario():
        app = as_replica(ControlApp(jobs_on, stack.endpoints))
        built = servicers(app)
        await asyncio.sleep(0.2)  # anything a constructor scheduled would be running now
        after_building = _others()
        await app.start()
        try:
            subscriber = Subscriber(FeedFilter(), None, 10)
            await app.ingest.hub.join(subscriber)  # a Subscribe call's reader of the feed
            await asyncio.sleep(0.2)
            while_running = _others()
            scheduler_running = app.jobs.next_run_time("partitions") is not None
        finally:
            await app.stop()
        await asyncio.sleep(0.2)
        return len(built), after_building, while_running, scheduler_running, _others(), subscriber.error

    built, after_building, while_running, scheduler_running, after_stop, subscriber_error = \
        _on_a_loop_of_its_own(scenario)
    assert built == len(SERVICES)
    assert after_building == set(), f"constructors started tasks: {after_building}"
    assert {"feed-relay", "node-reconciler", "node-assignment-signal", "notifications-writer",
            "notifications-sweeper"} <= while_running
    assert any(name.startswith("feed-hub ") for name in while_running)
    assert scheduler_running
    assert after_stop == set(), f"left running after stop(): {after_stop}"
    assert "replica stopped" in str(subscriber_error)  # an open feed subscription ends (UNAVAILABLE)
