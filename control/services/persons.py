"""PersonService: persons with their labels and aliases, enrolled faces, unknown-face clusters and
merges, and the face gallery (enrolment and search, through control.gallery)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from google.protobuf.message import Message

from vigil.api.v1 import common_pb2, person_pb2_grpc
from vigil.api.v1 import person_pb2 as pb
from vigil.control.convert import EnumMap, text, timestamp
from vigil.control.field_mask import masked_changes
from vigil.control.gallery import (
    Box,
    FaceGallery,
    ImageOutcome,
    SearchAttempt,
    SearchFilters,
    account_for_failed_search,
    account_for_search,
    nearest_persons,
)
from vigil.control.request_checks import (
    api_token,
    checked_text,
    enum_label,
    id_list,
    page_request,
    required_id,
    required_message,
    time_bounds,
)
from vigil.control.rpc import rpc, status_of
from vigil.control.transactions import CallerDatabase
from vigil.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, RepositoryError
from vigil.models.errors import InferenceError
from vigil.storage.repositories.faces import (
    ClusterRepository,
    FaceEmbedding,
    FaceEmbeddingRepository,
    ModelVersion,
    ModelVersionRepository,
    UnknownCluster,
)
from vigil.storage.repositories.persons import (
    Person,
    PersonAlias,
    PersonDetails,
    PersonLabel,
    PersonRepository,
)
from vigil.storage.repositories.searches import SearchRecord, SearchRepository

STATUS = EnumMap(common_pb2.PersonStatus, "PERSON_STATUS_", "status")
LABEL = EnumMap(common_pb2.PersonLabel, "PERSON_LABEL_", "label")
CLUSTER_STATUS = EnumMap(pb.ClusterStatus, "CLUSTER_STATUS_", "statuses")

# Person fields stored as text columns, with their length limits (person.proto).
TEXT_LIMITS = {"name": 200, "role": 100, "department": 100, "company": 200, "notes": 10000}
UPDATABLE = (*TEXT_LIMITS, "status", "primary_face_id")
OUTPUT_ONLY = ("id", "labels", "aliases", "face_count", "created_by", "create_time", "update_time")
MAX_MERGE_SOURCES = 100
# SearchQueryType <-> searches.query_type ('face': a probe embedding, as ChronoTrace names it)
SEARCH_QUERY_TYPES = {pb.SEARCH_QUERY_TYPE_IMAGE: "image", pb.SEARCH_QUERY_TYPE_EMBEDDING: "face"}


# --------------------------------------------------------------------------- request checks


def merge_sources(request: Message, field: str, target: UUID, target_field: str) -> list[UUID]:
    """The 1..100 distinct ids to merge into `target`, none of them the target."""
    values = getattr(request, field)
    if not 1 <= len(values) <= MAX_MERGE_SOURCES:
        raise InvalidArgument(field, f"name 1 to {MAX_MERGE_SOURCES} ids, got {len(values)}")
    sources = id_list(field, values)
    for i, source in enumerate(sources):
        if source == target:
            raise InvalidArgument(f"{field}[{i}]", f"must differ from {target_field}")
        if source in sources[:i]:
            raise InvalidArgument(f"{field}[{i}]", "is named twice")
    return sources


# --------------------------------------------------------------------------- persons as requested


def person_columns(person: pb.Person, field: str, names: Sequence[str]) -> dict[str, str | None]:
    """The named Person fields as column values, checked; `field` is the person's path in the request."""
    columns = {}
    for name in names:
        if name == "status":
            columns[name] = enum_label(STATUS, person.status, f"{field}.status")
        else:
            columns[name] = checked_text(f"{field}.{name}", getattr(person, name), TEXT_LIMITS[name])
    return columns


@dataclass(frozen=True)
class NewPerson:
    """A person to create, checked: column values, labels and aliases (each once)."""
    columns: dict[str, str | None]
    labels: list[str]
    aliases: list[str]

    @classmethod
    def from_message(cls, person: pb.Person, field: str) -> NewPerson:
        if person.primary_face_id:
            raise InvalidArgument(f"{field}.primary_face_id", "a new person has no faces; set it after enrolment")
        columns = person_columns(person, field, list(TEXT_LIMITS))
        columns["status"] = enum_label(STATUS, person.status, f"{field}.status") if person.status else "unknown"
        labels = [enum_label(LABEL, label, f"{field}.labels[{i}]") for i, label in enumerate(person.labels)]
        aliases = [checked_text(f"{field}.aliases[{i}]", alias, TEXT_LIMITS["name"], required=True)
                   for i, alias in enumerate(person.aliases)]
        return cls(columns, list(dict.fromkeys(labels)), list(dict.fromkeys(aliases)))


def primary_face_change(person: pb.Person, paths: Sequence[str], replace_all: bool) -> UUID | None:
    """The face to make primary. A primary face can be replaced, not removed, so an empty
    primary_face_id under "*" keeps the current one and is refused when named explicitly."""
    if "primary_face_id" not in paths or (replace_all and not person.primary_face_id):
        return None
    return required_id("person.primary_face_id", person.primary_face_id)


# --------------------------------------------------------------------------- messages


def person_message(p: Person, details: PersonDetails) -> pb.Person:
    return pb.Person(id=str(p.id), name=p.name or "", status=STATUS.number(p.status), role=p.role or "",
                     department=p.department or "", company=p.company or "", notes=p.notes or "",
                     primary_face_id=text(p.primary_face_embedding_id),
                     labels=[LABEL.number(label) for label in details.labels], aliases=details.aliases,
                     face_count=details.face_count, created_by=text(p.created_by),
                     create_time=timestamp(p.created_at), update_time=timestamp(p.updated_at))


def label_entry_message(entry: PersonLabel) -> pb.PersonLabelEntry:
    return pb.PersonLabelEntry(person_id=str(entry.person_id), label=LABEL.number(entry.label),
                               created_by=text(entry.created_by), create_time=timestamp(entry.created_at))


def alias_message(alias: PersonAlias) -> pb.PersonAlias:
    return pb.PersonAlias(id=str(alias.id), person_id=str(alias.person_id), alias_name=alias.alias_name,
                          create_time=timestamp(alias.created_at))


def face_message(face: FaceEmbedding) -> pb.Face:
    return pb.Face(id=str(face.id), person_id=str(face.person_id), model_version=face.model_version,
                   embedding_dim=face.embedding_dim, quality=face.face_quality, confidence=face.confidence,
                   is_primary=face.is_primary, create_time=timestamp(face.created_at))


def model_version_message(model: ModelVersion) -> pb.ModelVersion:
    return pb.ModelVersion(id=str(model.id), version_string=model.version_string,
                           embedding_dim=model.embedding_dim or 0, match_threshold=model.match_threshold,
                           identification_threshold=model.identification_threshold,
                           is_production=model.is_production, deploy_time=timestamp(model.deployed_at),
                           create_time=timestamp(model.created_at))


def cluster_message(c: UnknownCluster) -> pb.UnknownCluster:
    # Before review the cluster's faces belong to a placeholder person; the API names a person
    # only once the cluster has been identified as one.
    person_id = text(c.representative_person_id) if c.status == "reviewed" else ""
    return pb.UnknownCluster(
        id=str(c.id), label=c.cluster_label, status=CLUSTER_STATUS.number(c.status),
        representative_face_id=text(c.representative_embedding_id),
        representative_quality=c.representative_quality or 0.0, sample_count=c.sample_count,
        event_count=c.event_count, first_seen_time=timestamp(c.first_seen), last_seen_time=timestamp(c.last_seen),
        camera_ids=[str(i) for i in c.camera_ids], site_ids=[str(i) for i in c.site_ids],
        merged_into_cluster_id=text(c.merged_into_cluster_id), person_id=person_id,
        create_time=timestamp(c.created_at))


# --------------------------------------------------------------------------- the service


def search_message(record: SearchRecord) -> pb.SearchLogEntry:
    filters, metadata = record.filters, record.metadata
    entry = pb.SearchLogEntry(
        id=str(record.id), user_id=text(record.user_id), api_key_id=text(record.api_key_id),
        query_type={label: number for number, label in SEARCH_QUERY_TYPES.items()}.get(record.query_type, 0),
        model_version=record.model_version or "", watchlist_ids=filters.get("watchlist_ids", []),
        statuses=[STATUS.number(s) for s in filters.get("statuses", [])],
        labels=[LABEL.number(label) for label in filters.get("labels", [])], top_k=filters.get("top_k") or 0,
        matched_person_ids=metadata.get("matched_person_ids", []), embed_time_ms=record.embed_time_ms,
        vector_time_ms=record.vector_time_ms, db_time_ms=record.db_time_ms, total_time_ms=record.execution_time_ms,
        client_ip=text(record.ip_address), create_time=timestamp(record.created_at),
        error=metadata.get("error") or "")
    if filters.get("min_similarity") is not None:
        entry.min_similarity = filters["min_similarity"]
    if record.top_score is not None:
        entry.top_score = record.top_score
    return entry


def face_box(message: Message, field: str) -> Box | None:
    if not message.HasField(field):
        return None
    b = getattr(message, field)
    return Box(b.x, b.y, b.width, b.height)


def box_message(box: Box | None) -> common_pb2.BoundingBox:
    return common_pb2.BoundingBox(x=box.x, y=box.y, width=box.w, height=box.h) if box else common_pb2.BoundingBox()


REJECTION = EnumMap(pb.FaceRejectionReason, "FACE_REJECTION_REASON_", "reason")


def enroll_result(outcome: ImageOutcome) -> pb.EnrollFaceResult:
    result = pb.EnrollFaceResult(image_index=outcome.index)
    if outcome.face_box:
        result.face_box.CopyFrom(box_message(outcome.face_box))
    if outcome.face:
        result.face.CopyFrom(face_message(outcome.face))
    else:
        result.rejection.CopyFrom(pb.FaceRejection(reason=REJECTION.number(outcome.rejection.reason),
                                                   message=outcome.rejection.message))
    return result


def embedding_values(values: Sequence[float], dim: int) -> list[float]:
    if len(values) != dim:
        raise InvalidArgument("embedding.values", f"has {len(values)} values; the model version has {dim}")
    if not all(math.isfinite(v) for v in values):
        raise InvalidArgument("embedding.values", "must all be finite")
    return list(values)


class PersonService(person_pb2_grpc.PersonServiceServicer):
    def __init__(self, db: CallerDatabase, gallery: FaceGallery):
        self.db = db
        self.gallery = gallery

    async def _messages(self, repo: PersonRepository, persons: list[Person]) -> list[pb.Person]:
        details = await repo.details([p.id for p in persons])
        return [person_message(p, details[p.id]) for p in persons]

    async def _message(self, repo: PersonRepository, person: Person) -> pb.Person:
        return (await self._messages(repo, [person]))[0]

    async def _create(self, tx, repo: PersonRepository, new: NewPerson) -> Person:
        person = await repo.create(**new.columns, created_by=tx.caller.user_id)
        for label in new.labels:
            await repo.add_label(person.id, label, created_by=tx.caller.user_id)
        for alias in new.aliases:
            await repo.add_alias(person.id, alias)
        await tx.audit("person.create", "person", person.id,
                       {**new.columns, "labels": new.labels, "aliases": new.aliases})
        return person

    # ----------------------------------------------------------------------- persons

    @rpc("persons", "read")
    async def GetPerson(self, request, context):
        person_id = required_id("id", request.id)
        async with self.db.transaction() as tx:
            repo = PersonRepository(tx.conn)
            return pb.GetPersonResponse(person=await self._message(repo, await repo.get(person_id)))

    @rpc("persons", "read")
    async def ListPersons(self, request, context):
        statuses = [enum_label(STATUS, s, f"statuses[{i}]") for i, s in enumerate(request.statuses) if s]
        filters = {
            "statuses": [] if 0 in request.statuses else statuses,  # UNSPECIFIED means any status
            "labels": [enum_label(LABEL, label, f"labels[{i}]") for i, label in enumerate(request.labels)],
            "watchlist_ids": id_list("watchlist_ids", request.watchlist_ids),
            "roles": [checked_text(f"roles[{i}]", r, TEXT_LIMITS["role"], required=True)
                      for i, r in enumerate(request.roles)],
            "search": checked_text("query", request.query, TEXT_LIMITS["name"]),
        }
        async with self.db.transaction() as tx:
            repo = PersonRepository(tx.conn)
            page = await repo.list_by_name(**filters, **page_request(request))
            return pb.ListPersonsResponse(persons=await self._messages(repo, page.items),
                                          next_page_token=api_token(request, page.next_page_token))

    @rpc("persons", "write")
    async def CreatePerson(self, request, context):
        new = NewPerson.from_message(required_message(request, "person"), "person")
        async with self.db.transaction() as tx:
            repo = PersonRepository(tx.conn)
            return pb.CreatePersonResponse(person=await self._message(repo, await self._create(tx, repo, new)))

    @rpc("persons", "write")
    async def UpdatePerson(self, request, context):
        person = required_message(request, "person")
        person_id = required_id("person.id", person.id)
        paths = list(masked_changes(request.update_mask, dict.fromkeys(UPDATABLE), resource="person",
                                    immutable=OUTPUT_ONLY))
        changes = person_columns(person, "person", [p for p in paths if p != "primary_face_id"])
        face_id = primary_face_change(person, paths, list(request.update_mask.paths) == ["*"])
        async with self.db.transaction() as tx:
            repo = PersonRepository(tx.conn)
            updated = await repo.update(person_id, changes)
            if face_id is not None:
                await self._make_primary(tx.conn, person_id, face_id)
                updated = await repo.get(person_id)
            await tx.audit("person.update", "person", person_id,
                           {**changes, **({"primary_face_id": str(face_id)} if face_id else {})})
            return pb.UpdatePersonResponse(person=await self._message(repo, updated))

    async def _make_primary(self, conn, person_id: UUID, face_id: UUID) -> None:
        faces = FaceEmbeddingRepository(conn)
        try:
            face = await faces.get(face_id)
        except NotFound:
            face = None
        if face is None or face.person_id != person_id:
            raise InvalidArgument("person.primary_face_id", f"{face_id} is not a face of this person")
        await faces.set_primary(face_id)

    @rpc("persons", "delete")
    async def DeletePerson(self, request, context):
        person_id = required_id("id", request.id)
        async with self.db.transaction() as tx:
            repo = PersonRepository(tx.conn)
            rules = await repo.alert_rules_naming(person_id)
            if rules:  # deleting the person would silently delete these rules (ON DELETE CASCADE)
                raise FailedPrecondition(f"alert rules {', '.join(map(str, rules))} name this person; "
                                         "change or delete them first")
            await repo.delete(person_id)
            await tx.audit("person.delete", "person", person_id)
            return pb.DeletePersonResponse()

    # ----------------------------------------------------------------------- labels

    @rpc("persons", "write")
    async def AddPersonLabel(self, request, context):
        person_id = required_id("person_id", request.person_id)
        label = enum_label(LABEL, request.label, "label")
        async with self.db.transaction() as tx:
            repo = PersonRepository(tx.conn)
            try:
                entry = await repo.add_label(person_id, label, created_by=tx.caller.user_id)
            except AlreadyExists:  # the person has it: nothing changes
                entry = next(e for e in await repo.list_labels(person_id) if e.label == label)
            else:
                await tx.audit("person.add_label", "person", person_id, {"label": label})
            return pb.AddPersonLabelResponse(label_entry=label_entry_message(entry))

    @rpc("persons", "write")
    async def RemovePersonLabel(self, request, context):
        person_id = required_id("person_id", request.person_id)
        label = enum_label(LABEL, request.label, "label")
        async with self.db.transaction() as tx:
            repo = PersonRepository(tx.conn)
            await repo.get(person_id)  # a missing person is NOT_FOUND, a missing label is not
            try:
                await repo.remove_label(person_id, label)
            except NotFound:  # the person lacks it: nothing changes
                return pb.RemovePersonLabelResponse()
            await tx.audit("person.remove_label", "person", person_id, {"label": label})
            return pb.RemovePersonLabelResponse()

    @rpc("persons", "read")
    async def ListPersonLabels(self, request, context):
        person_id = required_id("person_id", request.person_id)
        async with self.db.transaction() as tx:
            repo = PersonRepository(tx.conn)
            await repo.get(person_id)
            page = await repo.labels_page(person_id, **page_request(request))
            return pb.ListPersonLabelsResponse(label_entries=[label_entry_message(e) for e in page.items],
                                               next_page_token=api_token(request, page.next_page_token))

    # ----------------------------------------------------------------------- aliases

    @rpc("persons", "write")
    async def AddPersonAlias(self, request, context):
        person_id = required_id("person_id", request.person_id)
        alias_name = checked_text("alias_name", request.alias_name, TEXT_LIMITS["name"], required=True)
        async with self.db.transaction() as tx:
            repo = PersonRepository(tx.conn)
            try:
                alias = await repo.add_alias(person_id, alias_name)
            except AlreadyExists:  # an existing alias comes back unchanged
                alias = next(a for a in await repo.list_aliases(person_id) if a.alias_name == alias_name)
            else:
                await tx.audit("person.add_alias", "person", person_id, {"alias_name": alias_name})
            return pb.AddPersonAliasResponse(alias=alias_message(alias))

    @rpc("persons", "write")
    async def RemovePersonAlias(self, request, context):
        alias_id = required_id("id", request.id)
        async with self.db.transaction() as tx:
            removed = await PersonRepository(tx.conn).delete_alias(alias_id)
            await tx.audit("person.remove_alias", "person", removed.person_id,
                           {"alias_id": str(removed.id), "alias_name": removed.alias_name})
            return pb.RemovePersonAliasResponse()

    @rpc("persons", "read")
    async def ListPersonAliases(self, request, context):
        person_id = required_id("person_id", request.person_id)
        async with self.db.transaction() as tx:
            repo = PersonRepository(tx.conn)
            await repo.get(person_id)
            page = await repo.aliases_page(person_id, **page_request(request))
            return pb.ListPersonAliasesResponse(aliases=[alias_message(a) for a in page.items],
                                                next_page_token=api_token(request, page.next_page_token))

    # ----------------------------------------------------------------------- faces

    @rpc("persons", "read")
    async def ListFaces(self, request, context):
        person_id = required_id("person_id", request.person_id)
        model_versions = [checked_text(f"model_versions[{i}]", v, 100, required=True)
                          for i, v in enumerate(request.model_versions)]
        async with self.db.transaction() as tx:
            await PersonRepository(tx.conn).get(person_id)
            page = await FaceEmbeddingRepository(tx.conn).page_for_person(
                person_id, model_versions=model_versions, **page_request(request))
            return pb.ListFacesResponse(faces=[face_message(f) for f in page.items],
                                        next_page_token=api_token(request, page.next_page_token))

    @rpc("persons", "write")  # like labels and aliases, faces are edited by those who may enrol them
    async def DeleteFace(self, request, context):
        face_id = required_id("id", request.id)
        async with self.db.transaction() as tx:
            faces = FaceEmbeddingRepository(tx.conn)
            face = await faces.get(face_id)
            await faces.delete(face_id)
            await faces.settle_primaries(face.person_id)  # a deleted primary hands over to the best remaining face
            await tx.audit("face.delete", "face", face_id,
                           {"person_id": str(face.person_id), "model_version": face.model_version,
                            "was_primary": face.is_primary})
            return pb.DeleteFaceResponse()

    @rpc("persons", "read")
    async def ListModelVersions(self, request, context):
        async with self.db.transaction() as tx:
            page = await ModelVersionRepository(tx.conn).list_page(**page_request(request))
            return pb.ListModelVersionsResponse(model_versions=[model_version_message(m) for m in page.items],
                                                next_page_token=api_token(request, page.next_page_token))

    # ----------------------------------------------------------------------- unknown clusters

    @rpc("persons", "read")
    async def ListUnknownClusters(self, request, context):
        since, until = time_bounds(request, "last_seen_range")
        if request.min_sample_count < 0:
            raise InvalidArgument("min_sample_count", "must not be negative")
        filters = {
            # no status (or UNSPECIFIED alone) means the clusters awaiting review
            "statuses": [enum_label(CLUSTER_STATUS, s, f"statuses[{i}]")
                         for i, s in enumerate(request.statuses) if s] or ["active"],
            "camera_ids": id_list("camera_ids", request.camera_ids),
            "site_ids": id_list("site_ids", request.site_ids),
            "last_seen_since": since, "last_seen_until": until, "min_sample_count": request.min_sample_count,
        }
        async with self.db.transaction() as tx:
            page = await ClusterRepository(tx.conn).list(**filters, **page_request(request))
            return pb.ListUnknownClustersResponse(clusters=[cluster_message(c) for c in page.items],
                                                  next_page_token=api_token(request, page.next_page_token))

    @rpc("persons", "read")
    async def GetUnknownCluster(self, request, context):
        cluster_id = required_id("id", request.id)
        async with self.db.transaction() as tx:
            cluster = await ClusterRepository(tx.conn).get(cluster_id)
            return pb.GetUnknownClusterResponse(cluster=cluster_message(cluster))

    @rpc("persons", "merge")
    async def MergeClusters(self, request, context):
        target_id = required_id("target_cluster_id", request.target_cluster_id)
        source_ids = merge_sources(request, "source_cluster_ids", target_id, "target_cluster_id")
        async with self.db.transaction() as tx:
            clusters = ClusterRepository(tx.conn)
            holders = [(await clusters.get(c)).representative_person_id for c in (target_id, *source_ids)]
            await clusters.merge(target_id, source_ids)
            await self._gather_faces(tx.conn, holders)
            await tx.audit("cluster.merge", "cluster", target_id,
                           {"source_cluster_ids": [str(s) for s in source_ids]})
            return pb.MergeClustersResponse(cluster=cluster_message(await clusters.get(target_id)))

    async def _gather_faces(self, conn, holders: list[UUID | None]) -> None:
        """Clusters' faces belong to the persons holding their representative faces: merge those
        persons into the first of them, so that the faces end up together."""
        persons = list(dict.fromkeys(p for p in holders if p is not None))
        if len(persons) > 1:
            await PersonRepository(conn).merge(persons[0], persons[1:])

    @rpc("persons", "merge")
    async def AssignClusterToPerson(self, request, context):
        cluster_id = required_id("cluster_id", request.cluster_id)
        target = request.WhichOneof("target")
        if target is None:
            raise InvalidArgument("target", "set person_id or new_person")
        if target == "person_id":
            person_id, new = required_id("person_id", request.person_id), None
        else:
            person_id, new = None, NewPerson.from_message(request.new_person, "new_person")
        async with self.db.transaction() as tx:
            clusters, persons = ClusterRepository(tx.conn), PersonRepository(tx.conn)
            holder = (await clusters.get(cluster_id)).representative_person_id
            person = await persons.get(person_id) if new is None else await self._create(tx, persons, new)
            await self._gather_faces(tx.conn, [person.id, holder])
            cluster = await clusters.assign_to_person(cluster_id, person.id)
            await tx.audit("cluster.assign", "cluster", cluster_id, {"person_id": str(person.id)})
            return pb.AssignClusterToPersonResponse(person=await self._message(persons, await persons.get(person.id)),
                                                    cluster=cluster_message(cluster))

    @rpc("persons", "merge")
    async def MergePersons(self, request, context):
        target_id = required_id("target_person_id", request.target_person_id)
        source_ids = merge_sources(request, "source_person_ids", target_id, "target_person_id")
        async with self.db.transaction() as tx:
            repo = PersonRepository(tx.conn)
            await repo.merge(target_id, source_ids)
            await tx.audit("person.merge", "person", target_id, {"source_person_ids": [str(s) for s in source_ids]})
            return pb.MergePersonsResponse(person=await self._message(repo, await repo.get(target_id)))


    # ----------------------------------------------------------------------- face gallery

    @rpc("persons", "write")
    async def EnrollFace(self, request, context):
        images = [(image.image, face_box(image, "face_box")) for image in request.images]
        async with self.db.transaction() as tx:
            outcomes = await self.gallery.enroll(
                tx, str(required_id("person_id", request.person_id)), images,
                model_version=request.model_version or None, replace_primary=request.replace_primary)
        return pb.EnrollFaceResponse(results=[enroll_result(o) for o in outcomes])

    @rpc("persons", "read")
    async def SearchFaces(self, request, context):
        """Every call is accounted for: a search that fails (no face in the image, an unknown model
        version, bad input, the face models down) is logged and audited with its error too."""
        attempt = SearchAttempt("face" if request.WhichOneof("query") == "embedding" else "image")
        try:
            return await self._search_faces(request, attempt)
        except (RepositoryError, InferenceError) as exc:
            async with self.db.transaction() as tx:
                await account_for_failed_search(tx, attempt, f"{status_of(exc).name}: {exc}")
            raise

    async def _search_faces(self, request, attempt: SearchAttempt):
        top_k = request.top_k or 10
        if not 1 <= top_k <= 100:
            raise InvalidArgument("top_k", "must be 1..100 (0 = 10)")
        min_similarity = request.min_similarity if request.HasField("min_similarity") else None
        if min_similarity is not None and not -1.0 <= min_similarity <= 1.0:
            raise InvalidArgument("min_similarity", "must be a cosine similarity in [-1, 1]")
        filters = SearchFilters(watchlist_ids=id_list("watchlist_ids", request.watchlist_ids),
                                statuses=[enum_label(STATUS, s, "statuses") for s in request.statuses],
                                labels=[enum_label(LABEL, s, "labels") for s in request.labels])
        query = request.WhichOneof("query")
        if query is None:
            raise InvalidArgument("query", "give an image or an embedding")
        if query == "embedding" and not request.model_version:
            raise InvalidArgument("model_version", "is required with an embedding query")
        box = face_box(request, "face_box")
        clock = attempt.clock
        logged_filters = attempt.filters = {**filters.logged(), "top_k": top_k, "min_similarity": min_similarity,
                                            "face_box": None if box is None else vars(box)}
        async with self.db.transaction() as tx:
            with clock.timing("db"):
                model = attempt.model = await ModelVersionRepository(tx.conn).embedder(request.model_version or None)
            response = pb.SearchFacesResponse(model_version=model.version_string,
                                              match_threshold=model.identifies_at or 0.0)
            if query == "embedding":
                vector = embedding_values(request.embedding.values, model.embedding_dim)
            else:
                with clock.timing("embed"):
                    vector, used_box, quality = await asyncio.to_thread(self.gallery.query_vector,
                                                                        request.image, box)
                response.query_face_box.CopyFrom(box_message(used_box))
                response.query_face_quality = quality
            neighbours = await nearest_persons(tx.conn, model, vector, top_k, filters=filters,
                                               min_similarity=min_similarity, clock=clock)
            with clock.timing("db"):
                repo = PersonRepository(tx.conn)
                persons = {n.person_id: await repo.get(n.person_id) for n in neighbours}
                messages = dict(zip(persons, await self._messages(repo, list(persons.values()))))
            context = {} if query == "embedding" else {"query_face_quality": round(quality, 3)}
            await account_for_search(tx, attempt.query_type, model, logged_filters, neighbours, clock, **context)
        threshold = model.identifies_at if model.identifies_at is not None else 1.0
        response.matches.extend(
            pb.FaceMatch(person=messages[n.person_id], similarity=n.similarity, face_id=str(n.embedding_id),
                         above_threshold=n.similarity >= threshold)
            for n in neighbours if n.person_id in messages)
        return response

    @rpc("audit", "read")
    async def ListSearches(self, request, context):
        since, until = time_bounds(request, "time_range")
        query_types = []
        for i, number in enumerate(request.query_types):
            if number not in SEARCH_QUERY_TYPES:
                raise InvalidArgument(f"query_types[{i}]", "must be SEARCH_QUERY_TYPE_IMAGE or _EMBEDDING")
            query_types.append(SEARCH_QUERY_TYPES[number])
        user_id = required_id("user_id", request.user_id) if request.user_id else None
        async with self.db.transaction() as tx:
            page = await SearchRepository(tx.conn).list(query_types=query_types, user_id=user_id, since=since,
                                                        until=until, **page_request(request))
        return pb.ListSearchesResponse(searches=[search_message(r) for r in page.items],
                                       next_page_token=page.next_page_token or "")


SERVICE = (PersonService, person_pb2_grpc.add_PersonServiceServicer_to_server, "vigil.v1.PersonService")
