"""The campaign aggregate: creating, finding and listing campaigns, and their status."""

from __future__ import annotations

from typing import Any

from aloop.errors import UserError
from aloop.records import CampaignRecord
from aloop.versions import code_versions
from aloop.vocabulary import CampaignStatus, LabelStatus
from db.documents import Campaign, utcnow


class ConfigChangeRefused(UserError):
    """A stored campaign's results-relevant config differs from the one given."""


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
    name: str, config: dict, config_hash: str, allow_change: bool = False
) -> tuple[CampaignRecord, bool]:
    """The campaign called ``name``, created if absent; returns ``(campaign, created)``.

    An existing campaign whose stored ``config_hash`` differs is refused unless
    ``allow_change``; an allowed change is appended to ``config_changes`` with both hashes.

    Raises
    ------
    ConfigChangeRefused
        The stored configuration differs and ``allow_change`` is False.
    """
    existing = Campaign.objects(name=name).first()
    if existing is None:
        from mongoengine.errors import NotUniqueError

        campaign = Campaign(
            name=name, config=config, config_hash=config_hash, code_versions=code_versions()
        )
        try:
            campaign.save()
        except NotUniqueError:  # another process created it between find and save
            return get_or_create_campaign(name, config, config_hash, allow_change)
        return _record(campaign), True
    if existing.config_hash != config_hash:
        if not allow_change:
            raise ConfigChangeRefused(
                f"campaign {name!r} was created with a different configuration "
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
            }
        )
        existing.config = config
        existing.config_hash = config_hash
        existing.save()
    return _record(existing), False


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
    Campaign.objects(id=campaign_id).update_one(
        set__status=CampaignStatus(status).value,
        set__status_reason=reason,
        set__updated_at=utcnow(),
    )


def set_current_iteration(campaign_id: Any, index: int) -> None:
    """Record the iteration the campaign is working on."""
    Campaign.objects(id=campaign_id).update_one(
        set__current_iteration=index, set__updated_at=utcnow()
    )


def list_campaigns() -> list[dict]:
    """Every campaign with its structure and label counts, newest first."""
    from db.scan import count_by

    structures = count_by("structures", "campaign")
    labels = count_by("labels", "campaign", {"status": LabelStatus.OK.value})
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
