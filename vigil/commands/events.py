"""`vigil events tail`: the live event feed of a control plane."""

from __future__ import annotations

from typing import Annotated

import typer

from vigil.commands.common import cli_settings, fail

events_app = typer.Typer(help="The live event feed.", no_args_is_help=True)


@events_app.command("tail")
def events_tail(
    key: Annotated[str, typer.Option(envvar="VIGIL_API_KEY", help="API key (or VIGIL_API_KEY).")],
    camera: Annotated[list[str] | None, typer.Option(help="Only these camera ids (repeatable).")] = None,
    resume: Annotated[str, typer.Option(help="Resume token: replay everything after it.")] = "",
    address: Annotated[str | None, typer.Option(help="host:port of the control plane.")] = None,
) -> None:
    """Print feed messages (events, suspicious activities, alerts) as they happen, one per line."""
    import asyncio
    import sys

    import grpc

    from vigil.api.v1 import event_pb2, event_pb2_grpc

    settings = cli_settings()
    target = address or f"{settings.control.host}:{settings.control.port}"

    def describe(item, kind: str) -> str:
        from vigil.api.v1 import common_pb2

        if kind == "event":
            kind_name = common_pb2.EventType.Name(item.event_type).removeprefix("EVENT_TYPE_").lower()
            who = f"person {item.person_id}" if item.person_id else (
                f"cluster {item.cluster_id}" if item.cluster_id else item.object_label)  # e.g. a vehicle's "truck"
            return f"{kind_name:18} track {item.track_id:8} {who}"
        if kind == "suspicious_activity":
            activity = common_pb2.ActivityType.Name(item.activity_type).removeprefix("ACTIVITY_TYPE_").lower()
            severity = common_pb2.Severity.Name(item.severity).removeprefix("SEVERITY_").lower()
            return f"{activity:18} {severity} zone {item.zone_id or '-'}"
        if kind == "alert":
            severity = common_pb2.Severity.Name(item.severity).removeprefix("SEVERITY_").lower()
            return f"{severity:8} {item.message}"
        if kind == "alert_update":
            from vigil.api.v1 import alert_pb2

            change = alert_pb2.AlertUpdateKind.Name(item.kind).removeprefix("ALERT_UPDATE_KIND_").lower()
            status = alert_pb2.AlertStatus.Name(item.alert.status).removeprefix("ALERT_STATUS_").lower()
            return (f"{change:18} alert {item.alert.id} {status}, {item.alert.match_count} match(es)"
                    + (f" track {item.match.track_id}" if item.match.track_id else ""))
        return str(item).replace("\n", " ")

    async def tail() -> None:
        async with grpc.aio.insecure_channel(target) as channel:
            call = event_pb2_grpc.EventServiceStub(channel).SubscribeBatches(
                event_pb2.SubscribeBatchesRequest(
                    filter=event_pb2.SubscribeRequest(camera_ids=camera or [], resume_token=resume)),
                metadata=(("authorization", f"Bearer {key}"),))
            async for batch in call:  # a busy feed in few messages; a keepalive is an empty batch
                for item in batch.items:
                    kind = item.WhichOneof("item")
                    print(f"{item.resume_token}  {kind:19} {describe(getattr(item, kind), kind)}")
                sys.stdout.flush()

    try:
        asyncio.run(tail())
    except grpc.aio.AioRpcError as exc:
        raise fail(f"{exc.code().name}: {exc.details()}") from exc
    except KeyboardInterrupt:
        pass
