"""The one state object every step of a round works on (relabel/loop/*_step.py): the store, the connector (made
when first needed), the model and review settings, and the writer lock the running command holds."""
from __future__ import annotations

from typing import Callable

from connectors.records import Connector
from relabel.config import DEFAULT_FULL_PULL_HOURS, ReviewSettings
from relabel.errors import ConfigError, StoreLocked
from relabel.loop.lock import lock_wait_seconds
from relabel.loop.store import Store


class LoopState:
    """What the steps share; relabel.loop.rounds.Loop adds the steps themselves, each under the writer lock."""

    def __init__(self, store: Store, connector: Connector | Callable[[], Connector] | None = None, *,
                 model: dict | object | None = None, review: ReviewSettings | None = None,
                 full_pull_hours: float | None = DEFAULT_FULL_PULL_HOURS, lock_wait: float = 0.0):
        self.store = store
        self._connector = connector
        self.model = model
        self.review = review or ReviewSettings()
        self.full_pull_hours = full_pull_hours
        self.lock_wait = lock_wait_seconds(lock_wait)
        self._lock = None
        self._model_cache = None
        # relabel serve sets it: each round's model is held for the next (relabel.loop.model_phase.hold_round_model).
        self.keep_round_model = False

    @property
    def model_cache(self):
        """What the model phase keeps between rounds, in a folder beside the store (relabel.loop.model_phase)."""
        if self._model_cache is None:
            from relabel.loop.model_phase import model_cache_for
            self._model_cache = model_cache_for(self.store)
        return self._model_cache

    def working_on(self, round_number: int | None) -> None:
        """Tell a refused second writer which round this command is on; stop if our lock was taken over."""
        if self._lock is None:
            return
        if self._lock.lost:
            raise StoreLocked("This command's writer lock was taken over by another relabel command (this one "
                              "looked dead: no heartbeat for a minute); stopping before writing more; "
                              "run it again when the other one has finished.")
        self._lock.set_round(round_number)

    @property
    def connector(self) -> Connector:
        if self._connector is None:
            raise ConfigError("This command needs Label Studio but no connector was configured; "
                              "run it with a relabel.toml (see `relabel init`).")
        if callable(self._connector) and not hasattr(self._connector, "pull"):
            self._connector = self._connector()
        return self._connector

    def close(self) -> None:
        self.store.close()
