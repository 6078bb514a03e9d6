"""Hypothesis strategies for ingress that breaks its contract: each case says what the rejection must say.

Built on valid approvals (tests/strategies.py), each with one flaw: a value of the wrong JSON type, a
required field left out, a string or list past its bounds, an unknown role, a role or task listed twice,
bytes that are not UTF-8, a body that is not JSON (or nested past what a decoder can read), a string far
past its limit in a body near or over NATS's 1 MiB payload limit, a header missing or contradicting the
subject or the payload, or an unknown subject.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import msgspec
import msgspec.inspect as mi
from hypothesis import strategies as st

from contracts import catalog
from contracts.catalog import EventSpec
from contracts.envelope import AGGREGATE_ID, AGGREGATE_TYPE, EVENT_TYPE, MSG_ID, OCCURRED_AT, SCHEMA_VERSION
from contracts.events import Role
from tests.strategies import INT64, MiB, approvals, from_info, header_values, legacy_approvals, text_chars

INGRESS = (catalog.PLAN_APPROVED, catalog.LEGACY_PLAN_APPROVED)


@dataclass(frozen=True)
class Ingress:
    """A message as an upstream publisher sends it, what is wrong with it, and what the rejection must say."""

    flaw: str
    subject: str
    headers: dict[str, str]
    body: bytes
    says: tuple[str, ...]

    def __repr__(self) -> str:
        # Hypothesis prints a failing case: a 1 MiB body would bury it.
        body = self.body if len(self.body) <= 200 else self.body[:200] + f"... ({len(self.body)} bytes)".encode()
        return f"Ingress({self.flaw!r}, {self.subject!r}, {self.headers!r}, {body!r}, says={self.says!r})"

    def __post_init__(self) -> None:
        # A case that says nothing would pass any rejection: `all()` over no parts is true.
        if not self.says:
            raise ValueError(f"{self.flaw}: a malformed message must say what its rejection names")

    @property
    def wire_size(self) -> int:
        """Headers and body as NATS counts them against its 1 MiB payload limit."""
        block = sum(len(k.encode()) + len(v.encode()) + 4 for k, v in self.headers.items())
        return len(self.body) + (len("NATS/1.0\r\n\r\n") + block if self.headers else 0)

    @property
    def fits(self) -> bool:
        return self.wire_size <= MiB


@dataclass(frozen=True)
class Site:
    """Where a value sits in a document, in msgspec's notation, and the type the contract expects there."""

    path: tuple[str | int, ...]
    where: str
    info: mi.Type
    # A struct field without a default: leaving it out breaks the contract.
    required_field: bool = False


def sites(info: mi.Type, doc: object, path: tuple = (), where: str = "$") -> list[Site]:
    found = []
    match info:
        case mi.StructType(fields=fields):
            for f in fields:
                if f.encode_name in doc:
                    inner = sites(f.type, doc[f.encode_name], (*path, f.encode_name), f"{where}.{f.encode_name}")
                    found += [Site(inner[0].path, inner[0].where, inner[0].info, f.required), *inner[1:]]
        case mi.ListType(item_type=item):
            for i, value in enumerate(doc):
                found += sites(item, value, (*path, i), f"{where}[{i}]")
        case mi.DictType(value_type=value_info):
            for key, value in doc.items():
                found += sites(value_info, value, (*path, key), f"{where}[...]")
    return [Site(path, where, info), *found]


def _kinds(info: mi.Type) -> set[str]:
    """The JSON kinds a msgspec type accepts."""
    match info:
        case mi.StrType() | mi.EnumType() | mi.DateTimeType() | mi.BytesType():
            return {"string"}
        case mi.IntType():
            return {"integer"}
        case mi.FloatType():
            return {"integer", "number"}
        case mi.BoolType():
            return {"boolean"}
        case mi.NoneType():
            return {"null"}
        case mi.ListType():
            return {"array"}
        case mi.DictType() | mi.StructType():
            return {"object"}
        case mi.UnionType(types=types):
            return set().union(*(_kinds(t) for t in types))
    raise TypeError(f"no JSON kind for {info!r}")


JSON_VALUES = {
    "string": st.text(max_size=8),
    "integer": st.integers(*INT64),
    "number": st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer()),
    "boolean": st.booleans(),
    "null": st.none(),
    "array": st.lists(st.integers(0, 9), max_size=2),
    "object": st.dictionaries(st.text(max_size=4), st.integers(0, 9), max_size=2),
}
BAD_UTF8 = (b"\xff", b"\xfe\xff", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82")
SENTINEL = "FUZZ-SENTINEL"
known_roles = {role.value for role in Role}
unknown_role_names = st.one_of(
    st.sampled_from(["dev", "Dev", " DEV", "DEV ", "JANITOR", "", "ＤＥＶ", "DEV\u200b", "ARCHITECTS"]),
    st.text(max_size=12),
).filter(lambda name: name not in known_roles)


def _at(path: tuple, doc: object, value: object = None, *, remove: bool = False) -> object:
    """A copy of `doc` with the value at `path` replaced, or removed."""
    doc = msgspec.json.decode(msgspec.json.encode(doc))
    if not path:
        return value
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    if remove:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


def _headers(spec: EventSpec) -> st.SearchStrategy[dict[str, str]]:
    with_id = st.fixed_dictionaries({MSG_ID: header_values})
    return st.one_of(st.just({}), with_id) if spec.legacy else with_id


@st.composite
def _valid(draw) -> tuple[EventSpec, dict, dict[str, str]]:
    spec = draw(st.sampled_from(INGRESS))
    payload = draw(legacy_approvals if spec.legacy else approvals)
    return spec, msgspec.to_builtins(payload), draw(_headers(spec))


def _sites_of(spec: EventSpec, doc: dict) -> list[Site]:
    return sites(mi.type_info(spec.payload), doc)


@st.composite
def wrong_types(draw) -> Ingress:
    spec, doc, headers = draw(_valid())
    site = draw(st.sampled_from(_sites_of(spec, doc)))
    kind = draw(st.sampled_from(sorted(JSON_VALUES.keys() - _kinds(site.info))))
    body = msgspec.json.encode(_at(site.path, doc, draw(JSON_VALUES[kind])))
    says = (f"at `{site.where}`",) if site.path else ("Expected `object`",)
    return Ingress(f"a {kind} at {site.where}", spec.subject, headers, body, says)


@st.composite
def missing_fields(draw) -> Ingress:
    spec, doc, headers = draw(_valid())
    site = draw(st.sampled_from([s for s in _sites_of(spec, doc) if s.required_field]))
    body = msgspec.json.encode(_at(site.path, doc, remove=True))
    return Ingress(f"no {site.where}", spec.subject, headers, body, (f"missing required field `{site.path[-1]}`",))


@st.composite
def out_of_bounds(draw) -> Ingress:
    """A string or list shorter or longer than its contract allows."""
    spec, doc, headers = draw(_valid())
    bounded = [(site, bound) for site in _sites_of(spec, doc) if isinstance(site.info, mi.StrType | mi.ListType)
               for bound in ("min_length", "max_length") if getattr(site.info, bound)]
    site, bound = draw(st.sampled_from(bounded))
    limit = getattr(site.info, bound)
    length = limit - 1 if bound == "min_length" else limit + draw(st.integers(1, 3))
    if isinstance(site.info, mi.StrType):
        value = draw(text_chars) * length
    else:
        item = draw(from_info(site.info.item_type)) if not _value(doc, site.path) else _value(doc, site.path)[0]
        value = [msgspec.to_builtins(item)] * length
    body = msgspec.json.encode(_at(site.path, doc, value))
    says = (f"of length {'>=' if bound == 'min_length' else '<='} {limit} - at `{site.where}`",)
    return Ingress(f"{length} long at {site.where}", spec.subject, headers, body, says)


def _value(doc: object, path: tuple) -> object:
    for step in path:
        doc = doc[step]
    return doc


@st.composite
def unknown_roles(draw) -> Ingress:
    spec, doc, headers = draw(_valid())
    index, name = draw(st.integers(0, len(doc["roles"]) - 1)), draw(unknown_role_names)
    doc["roles"][index] = name
    return Ingress(f"role {name!r}", spec.subject, headers, msgspec.json.encode(doc),
                   ("Invalid enum value", f"at `$.roles[{index}]`"))


@st.composite
def repeated_entries(draw) -> Ingress:
    """A role or a task id listed twice: valid types, but no approval the planning service can carry out."""
    spec, doc, headers = draw(_valid())
    if spec.legacy or draw(st.booleans()):
        doc["roles"].append(doc["roles"][0])
        body = msgspec.json.encode(doc)
        return Ingress("a role twice", spec.subject, headers, body, ("roles listed more than once",))
    task = {"task_id": "t-1", "title": "twice"}
    doc["tasks"] = [task, *doc["tasks"], task]
    return Ingress("a task twice", spec.subject, headers, msgspec.json.encode(doc),
                   ("task_id listed more than once",))


@st.composite
def invalid_utf8(draw) -> Ingress:
    """Bytes that are not UTF-8, in a field the contract reads, in one it ignores, or as the whole body."""
    spec, doc, headers = draw(_valid())
    strings = [s for s in _sites_of(spec, doc) if isinstance(s.info, mi.StrType)]
    where = draw(st.sampled_from(["unknown field", "garbage", *(s.where for s in strings)]))
    if where == "garbage":
        body = draw(st.binary(min_size=1, max_size=64).filter(lambda b: not _is_utf8(b)))
    else:
        path = ("note",) if where == "unknown field" else next(s.path for s in strings if s.where == where)
        body = msgspec.json.encode(_at(path, doc, SENTINEL))
        body = body.replace(SENTINEL.encode(), b"FUZZ" + draw(st.sampled_from(BAD_UTF8)), 1)
    return Ingress(f"invalid UTF-8 in {where}", spec.subject, headers, body, ("invalid UTF-8",))


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@st.composite
def not_json(draw) -> Ingress:
    spec, doc, headers = draw(_valid())
    body = msgspec.json.encode(doc)
    how = draw(st.sampled_from(["truncated", "trailing bytes", "not an object", "nested too deeply"]))
    if how == "truncated":
        body, says = body[:draw(st.integers(0, len(body) - 1))], "body is not valid JSON"
    elif how == "trailing bytes":
        body, says = body + draw(st.sampled_from([b"x", b"}", b",", b"{}", b"\x00", b"\n]"])), "body is not valid JSON"
    elif how == "not an object":
        value = draw(st.one_of(JSON_VALUES["string"], JSON_VALUES["integer"], JSON_VALUES["array"], st.none()))
        body, says = msgspec.json.encode(value), "Expected `object`"
    else:
        # In a field the contract ignores: where it reads one, the first level of nesting is already wrong.
        depth = draw(st.integers(5_000, 200_000))
        body = body[:-1] + b',"note":' + b"[" * depth + b"]" * depth + b"}"
        says = "nested too deeply"
    return Ingress(how, spec.subject, headers, body, (says,))


@st.composite
def huge_bodies(draw) -> Ingress:
    """A string far past its limit, in a body just under NATS's 1 MiB payload limit, over it, or neither."""
    spec, doc, headers = draw(_valid())
    bounded = [s for s in _sites_of(spec, doc) if isinstance(s.info, mi.StrType) and s.info.max_length]
    site = draw(st.sampled_from(bounded))
    size = draw(st.one_of(st.integers(MiB - 4096, MiB - 1024), st.integers(MiB + 1, MiB + 4096),
                          st.integers(100_000, 300_000)))
    fill = draw(st.sampled_from(["x", "é", "\x01"]))
    width = len(msgspec.json.encode(fill)) - 2
    room = size - len(msgspec.json.encode(_at(site.path, doc, "")))
    length = max(room // width, site.info.max_length + 1)
    body = msgspec.json.encode(_at(site.path, doc, fill * length))
    return Ingress(f"{len(body)} bytes, {site.where} {length} long", spec.subject, headers, body,
                   (f"<= {site.info.max_length} - at `{site.where}`",))


def _not_a_utc_time(raw: str) -> bool:
    try:
        moment = dt.datetime.fromisoformat(raw)
        moment.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        return True
    return moment.tzinfo is None


@st.composite
def bad_headers(draw) -> Ingress:
    """A valid body with a header missing, or one that contradicts the subject or the payload."""
    spec, doc, headers = draw(_valid())
    body = msgspec.json.encode(doc)
    flaws = ["event type", "schema version", "occurred at", "aggregate type", "aggregate id"]
    flaw = draw(st.sampled_from(flaws if spec.legacy else ["no message id", *flaws]))
    if flaw == "no message id":
        headers = draw(st.sampled_from([{}, {MSG_ID: ""}, {"nats-msg-id": "m-1"}, {"Nats-Msg-ID": "m-1"}]))
        return Ingress(flaw, spec.subject, headers, body, (f"missing required header {MSG_ID}",))
    header, right = {
        "event type": (EVENT_TYPE, spec.event_type),
        "schema version": (SCHEMA_VERSION, str(spec.version)),
        "occurred at": (OCCURRED_AT, None),
        "aggregate type": (AGGREGATE_TYPE, spec.aggregate_type),
        "aggregate id": (AGGREGATE_ID, doc["plan_id"]),
    }[flaw]
    if header == OCCURRED_AT:
        naive = st.datetimes().map(dt.datetime.isoformat)
        overflowing = st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
        value = draw(st.one_of(header_values, naive, overflowing).filter(_not_a_utc_time))
    else:
        near = st.sampled_from(["0", "2", "01", "1.0", "v1", "Plan", "plan.approved.v1", "deliberation"])
        value = draw(st.one_of(near, header_values).filter(lambda v: v != right))
    return Ingress(f"{header}: {value}", spec.subject, headers | {header: value}, body, (f"header {header}",))


@st.composite
def unknown_subjects(draw) -> Ingress:
    """An approval on a subject no contract names: another version, another spelling."""
    subject = draw(st.one_of(
        st.integers(2, 99).map(lambda n: f"planning.plan.approved.v{n}"),
        st.sampled_from(["planning.plan.approved.v0", "planning.plan.approved.V1", "planning.plan.Approved.v1",
                         "planning.plans.approved.v1", "planning.plan.approved.v1.x", "planning.plan.approved.v"]),
    ))
    payload, headers = draw(approvals), draw(_headers(catalog.PLAN_APPROVED))
    return Ingress(subject, subject, headers, msgspec.json.encode(payload), ("no event is published on subject",))


# Every way ingress can break its contract on the planning durable's subjects.
FLAWS: dict[str, st.SearchStrategy[Ingress]] = {
    "wrong type": wrong_types(), "missing field": missing_fields(), "out of bounds": out_of_bounds(),
    "unknown role": unknown_roles(), "repeated entry": repeated_entries(), "invalid UTF-8": invalid_utf8(),
    "not JSON": not_json(), "huge body": huge_bodies(), "bad header": bad_headers(),
}
malformed_approvals: st.SearchStrategy[Ingress] = st.one_of(*FLAWS.values())
