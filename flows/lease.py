"""One run per campaign: the lease a run holds on its campaign, renewed by a heartbeat.

A run takes the lease before it touches the campaign and gives it back when it ends. A
thread renews it every quarter of its length (default: a 60 s lease renewed every 15 s;
``ALOOP_RUN_LEASE_S`` sets the length). A run that is killed stops renewing, so its
lease expires within that length and the next run takes over without anyone stepping in;
``aloop run --take-over`` takes it at once. A run whose lease was taken from it stops at
the next stage boundary instead of trampling the new holder.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import uuid
from typing import Any

from aloop.errors import AloopError, UserError
from db import campaigns

LEASE_ENV = "ALOOP_RUN_LEASE_S"
DEFAULT_LEASE_S = 60.0


class LeaseLost(AloopError):
    """Another run took the campaign over while this one was working on it (exit 1)."""


def lease_seconds() -> float:
    """The lease length: ``ALOOP_RUN_LEASE_S``, else 60 s.

    Raises
    ------
    UserError
        The variable is set to something other than a positive number of seconds.
    """
    raw = os.environ.get(LEASE_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_LEASE_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise UserError(f"{LEASE_ENV}: expected a positive number of seconds, got {raw!r}")
    return value


class RunLease:
    """The campaign's lease for the length of a ``with`` block, renewed by a thread."""

    def __init__(
        self, campaign_id: Any, name: str, duration_s: float | None = None, take_over: bool = False
    ) -> None:
        self.campaign_id = campaign_id
        self.name = name
        self.duration = duration_s or lease_seconds()
        self.interval = self.duration / 4
        self.take_over = take_over
        self.owner = uuid.uuid4().hex
        self.previous: campaigns.LeaseHolder | None = None
        self._stop = threading.Event()
        self._lost: str | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RunLease:
        self.previous = campaigns.acquire_lease(
            self.campaign_id, self.owner, self.duration, self.take_over
        )
        self._thread = threading.Thread(target=self._beat, name="aloop-lease", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        try:
            with campaigns.thread_connection() as alias:
                while not self._stop.wait(self.interval):
                    try:
                        held = campaigns.renew_lease(
                            self.campaign_id, self.owner, self.duration, alias
                        )
                    except Exception:  # a database hiccup: the lease outlasts a few beats
                        continue
                    if not held:
                        self._lost = "another run took the campaign over"
                        return
        except Exception as exc:  # no connection for the heartbeat: stop rather than risk
            self._lost = f"the lease could not be renewed ({type(exc).__name__}: {exc})"

    def check(self) -> None:
        """Raise :class:`LeaseLost` if the campaign is no longer this run's."""
        if self._lost is not None:
            holder = campaigns.lease_holder(self.campaign_id)
            who = f" ({holder.describe()})" if holder and holder.owner != self.owner else ""
            raise LeaseLost(
                f"campaign {self.name!r}: {self._lost}{who}; this run stops here, "
                "everything it finished is stored"
            )

    @property
    def lost(self) -> bool:
        """Whether the lease is known to be gone."""
        return self._lost is not None

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        # The database may be what failed; an unreleased lease expires anyway.
        with contextlib.suppress(Exception):
            campaigns.release_lease(self.campaign_id, self.owner)
