"""The campaign aggregate: creating, finding and listing campaigns, their status, and the
lease that lets one run at a time work on a campaign.

The lease is a few fields on the campaign document (owner, host, pid, since, expiry).
Taking, renewing and giving it back are each one conditional update on those fields, so
two runs cannot both hold it. The embedded store's updates read and rewrite the whole
document, so there every write to a campaign document goes through :func:`_exclusive`,
a lock file beside the store (across processes) and a lock (across threads): a
heartbeat cannot undo a status written at the same moment, nor two runs both win.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aloop.errors import AloopError, InfrastructureError, UserError
from aloop.records import CampaignRecord
from aloop.versions import code_versions
from aloop.vocabulary import CampaignStatus, LabelStatus, Origin
from db import connection
from db.documents import Campaign, utcnow


class ConfigChangeRefused(UserError):
    """A stored campaign's results-relevant config differs from the one given."""


class CampaignBusy(AloopError):
    """Another live run holds the campaign's lease (exit 1; the message names it)."""


_thread_lock = threading.Lock()


@contextmanager
def _exclusive(alias: str = "default") -> Iterator[None]:
    """Hold the campaign documents for one read-and-write (see the module docstring)."""
    target = connection.current_target(alias)
    with _thread_lock:
        if target is None or target.kind != "embedded" or target.path is None:
            yield
            return
        with open(target.path / "campaigns.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _record(doc: Campaign) -> CampaignRecord:
    return CampaignRecord(
        id=doc.id,
        name=doc.name,
        status=CampaignStatus(doc.status),
        status_reason=doc.status_reason or "",
        current_iteration=doc.current_iteration or 0,
        config=dict(doc.config or {}),
        config_hash=doc.config_hash or "",
        created_at=doc.created_at,
        updated_at=doc.updated_at,
    )


def get_or_create_campaign(
    name: str,
    config: dict,
    config_hash: str,
    allow_change: bool = False,
    earlier_hashes: Sequence[str] = (),
) -> tuple[CampaignRecord, bool]:
    """The campaign called ``name``, created if absent; returns ``(campaign, created)``.

    An existing campaign whose stored ``config_hash`` differs is refused unless
    ``allow_change`` (see :func:`accept_config`).

    Raises
    ------
    ConfigChangeRefused
        The stored configuration differs and ``allow_change`` is False.
    """
    campaign, created = find_or_create_campaign(name, config, config_hash)
    if not created:
        campaign = accept_config(campaign.id, config, config_hash, allow_change, earlier_hashes)
    return campaign, created


def find_or_create_campaign(
    name: str, config: dict, config_hash: str
) -> tuple[CampaignRecord, bool]:
    """The campaign called ``name`` as stored, or a new one with this config; returns
    ``(campaign, created)``. A stored campaign's config is not compared here: a run
    does that once it holds the campaign's lease, so a refused second run changes
    nothing."""
    existing = Campaign.objects(name=name).first()
    if existing is not None:
        return _record(existing), False
    from mongoengine.errors import NotUniqueError

    campaign = Campaign(
        name=name, config=config, config_hash=config_hash, code_versions=code_versions()
    )
    try:
        with _exclusive():
            campaign.save()
    except NotUniqueError:  # another process created it between find and save
        return find_or_create_campaign(name, config, config_hash)
    return _record(campaign), True


def accept_config(
    campaign_id: Any,
    config: dict,
    config_hash: str,
    allow_change: bool,
    earlier_hashes: Sequence[str] = (),
) -> CampaignRecord:
    """The campaign, once its stored config is the one given.

    A different ``config_hash`` is refused unless ``allow_change``; an allowed change
    is appended to ``config_changes`` with both hashes and the previous config. A stored
    hash among ``earlier_hashes`` (the same settings under an earlier hashing rule) is
    no change: it is replaced by ``config_hash``, and that is recorded too.

    Raises
    ------
    ConfigChangeRefused
        The stored configuration differs and ``allow_change`` is False.
    """
    existing = Campaign.objects.get(id=campaign_id)
    if existing.config_hash == config_hash:
        return _record(existing)
    rehashed = existing.config_hash in earlier_hashes
    if not allow_change and not rehashed:
        raise ConfigChangeRefused(
            f"campaign {existing.name!r} was created with a different configuration "
            f"(stored {existing.config_hash[:12]}, given {config_hash[:12]}); "
            "results would mix settings. Use a new campaign name, or pass "
            "--allow-config-change to record the change and continue."
        )
    existing.config_changes.append(
        {
            "at": utcnow(),
            "from_hash": existing.config_hash,
            "to_hash": config_hash,
            "previous_config": existing.config,
            **({"reason": "the same settings under a newer hashing rule"} if rehashed else {}),
        }
    )
    existing.config = config
    existing.config_hash = config_hash
    with _exclusive():
        existing.save()
    return _record(existing)


def get_campaign(name: str) -> CampaignRecord | None:
    """The campaign called ``name``, or None."""
    doc = Campaign.objects(name=name).first()
    return _record(doc) if doc is not None else None


def all_campaigns() -> list[CampaignRecord]:
    """Every campaign, most recently updated first."""
    return [_record(doc) for doc in Campaign.objects.order_by("-updated_at")]


def reload_campaign(campaign_id: Any) -> CampaignRecord:
    """The campaign with this id as stored now."""
    return _record(Campaign.objects.get(id=campaign_id))


def set_campaign_status(campaign_id: Any, status: CampaignStatus, reason: str = "") -> None:
    """Record the campaign's status and the reason for it."""
    with _exclusive():
        Campaign.objects(id=campaign_id).update_one(
            set__status=CampaignStatus(status).value,
            set__status_reason=reason,
            set__updated_at=utcnow(),
        )


def set_current_iteration(campaign_id: Any, index: int) -> None:
    """Record the iteration the campaign is working on."""
    with _exclusive():
        Campaign.objects(id=campaign_id).update_one(
            set__current_iteration=index, set__updated_at=utcnow()
        )


def list_campaigns() -> list[dict]:
    """Every campaign with its structure and label counts, newest first."""
    from db.scan import count_by

    # Isolated atoms (the E0 references) are neither explored structures nor their labels.
    explored = [o.value for o in Origin if o is not Origin.ISOLATED_ATOM]
    structures = count_by("structures", "campaign", {"origin": {"$in": explored}})
    labels = count_by("labels", "campaign", {"status": LabelStatus.OK.value})
    atoms = list(count_by("structures", "_id", {"origin": Origin.ISOLATED_ATOM.value}))
    if atoms:
        ok = {"status": LabelStatus.OK.value, "structure": {"$in": atoms}}
        for campaign_id, n in count_by("labels", "campaign", ok).items():
            labels[campaign_id] -= n
    out = []
    for c in Campaign.objects.order_by("-created_at").only(
        "name", "status", "status_reason", "current_iteration", "created_at", "updated_at"
    ):
        out.append(
            {
                "id": c.id,
                "name": c.name,
                "status": c.status,
                "status_reason": c.status_reason,
                "current_iteration": c.current_iteration,
                "structures": structures.get(c.id, 0),
                "labels_ok": labels.get(c.id, 0),
                "created_at": c.created_at,
                "updated_at": c.updated_at,
            }
        )
    return out


# ------------------------------------------------------------------------------ lease

#: The fields of a run's hold on a campaign (a copy of the campaign does not carry them).
LEASE_FIELDS = ("lease_owner", "lease_host", "lease_pid", "lease_since", "lease_expires")


@dataclass(frozen=True)
class LeaseHolder:
    """The run holding a campaign: its id, where it runs, since when, until when."""

    owner: str
    host: str
    pid: int
    since: datetime | None
    expires: float

    def describe(self) -> str:
        """``host HOST pid PID since TIME UTC``."""
        since = f"{self.since:%Y-%m-%d %H:%M:%S} UTC" if self.since else "an unknown time"
        return f"host {self.host} pid {self.pid} since {since}"

    def seconds_left(self, now: float | None = None) -> float:
        """Seconds until the lease expires unless renewed (0 when already expired)."""
        return max(0.0, self.expires - (time.time() if now is None else now))


def _holder(doc: dict | None) -> LeaseHolder | None:
    if not doc or not doc.get("lease_owner"):
        return None
    return LeaseHolder(
        owner=doc["lease_owner"],
        host=doc.get("lease_host") or "?",
        pid=int(doc.get("lease_pid") or 0),
        since=doc.get("lease_since"),
        expires=float(doc.get("lease_expires") or 0.0),
    )


def _campaigns(alias: str) -> Any:
    return connection.database(alias)[Campaign._meta["collection"]]


def lease_holder(campaign_id: Any, alias: str = "default") -> LeaseHolder | None:
    """Who holds the campaign's lease (possibly expired), or None."""
    return _holder(_campaigns(alias).find_one({"_id": campaign_id}))


def acquire_lease(
    campaign_id: Any, owner: str, duration_s: float, take_over: bool = False
) -> LeaseHolder | None:
    """Take the campaign for run ``owner`` for ``duration_s`` seconds.

    Succeeds when no run holds it, ``owner`` already does, the holder's lease has expired,
    or ``take_over`` is set. Returns the holder it replaced (None when it was free or
    ours), so the caller can say whose expired lease it took over.

    Raises
    ------
    CampaignBusy
        Another run holds an unexpired lease and ``take_over`` is False; the message names
        its host, pid and start time.
    """
    now = time.time()
    query: dict[str, Any] = {"_id": campaign_id}
    if not take_over:
        query["$or"] = [
            {"lease_owner": None},
            {"lease_owner": owner},
            {"lease_expires": {"$lt": now}},
        ]
    update = {
        "lease_owner": owner,
        "lease_host": socket.gethostname(),
        "lease_pid": os.getpid(),
        "lease_since": utcnow(),
        "lease_expires": now + duration_s,
    }
    with _exclusive():
        before = _campaigns("default").find_one_and_update(query, {"$set": update})
    if before is None:
        doc = _campaigns("default").find_one({"_id": campaign_id})
        if doc is None:
            raise InfrastructureError(f"campaign {campaign_id} was deleted while starting")
        holder = _holder(doc)
        if holder is None:  # released in between: try again
            return acquire_lease(campaign_id, owner, duration_s, take_over)
        raise CampaignBusy(
            f"campaign {doc.get('name')!r} is being run by {holder.describe()}; "
            f"a second run would trample it. If that run is gone, its lease expires in "
            f"{holder.seconds_left(now):.0f} s and a rerun then takes over, or pass "
            "--take-over to take it now."
        )
    previous = _holder(before)
    return previous if previous is not None and previous.owner != owner else None


def renew_lease(campaign_id: Any, owner: str, duration_s: float, alias: str = "default") -> bool:
    """Extend ``owner``'s lease by ``duration_s`` from now; False when it no longer holds it."""
    with _exclusive(alias):
        res = _campaigns(alias).update_one(
            {"_id": campaign_id, "lease_owner": owner},
            {"$set": {"lease_expires": time.time() + duration_s}},
        )
    return res.matched_count == 1


def release_lease(campaign_id: Any, owner: str, alias: str = "default") -> bool:
    """Give the campaign back if ``owner`` holds it; False when it did not."""
    with _exclusive(alias):
        res = _campaigns(alias).update_one(
            {"_id": campaign_id, "lease_owner": owner},
            {"$set": dict.fromkeys(LEASE_FIELDS)},
        )
    return res.matched_count == 1


@contextmanager
def thread_connection(alias: str = "aloop-lease") -> Iterator[str]:
    """A connection alias for a thread other than the one that connected; enter and leave
    it in that thread.

    The embedded store's SQLite handles belong to the thread that opened them, so that
    thread gets a connection of its own to the same files; other backends share theirs.
    """
    target = connection.current_target()
    if target is None or target.kind != "embedded":
        yield "default"
        return
    import mongoengine

    connection.connect(f"embedded://{target.path}", alias=alias)
    try:
        yield alias
    finally:
        mongoengine.disconnect(alias)


def add_analysis(campaign_id: Any, analysis: dict) -> None:
    """Store one analysis of the campaign (``aloop density``'s table), with its time."""
    entry = {**analysis, "created_at": utcnow()}
    Campaign.objects(id=campaign_id).update_one(push__analyses=entry)


def analyses(campaign_id: Any, kind: str | None = None) -> list[dict]:
    """The campaign's stored analyses, oldest first (only ``kind`` when given)."""
    doc = Campaign.objects.only("analyses").get(id=campaign_id)
    return [dict(a) for a in doc.analyses or [] if kind is None or a.get("kind") == kind]
