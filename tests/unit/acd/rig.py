"""A test rig for the ACD engine: virtual time, every event kept, timers fired in deadline order."""

from __future__ import annotations

from typing import TypeVar

from ccdaemon.acd.engine import AcdEngine
from ccdaemon.acd.model import AcdConfig, AcdEvent, AgentState, Command, QueueConfig, QueueMember
from ccdaemon.acd.snapshot import AcdSnapshot

E = TypeVar("E", bound=AcdEvent)


def queue(name: str = "q", *agents: str | tuple[str, int], **settings: object) -> QueueConfig:
    """A queue whose members are ids (tier 0) or (id, tier) pairs."""
    members = tuple(QueueMember(a) if isinstance(a, str) else QueueMember(*a) for a in agents)
    return QueueConfig(name, members, **settings)  # type: ignore[arg-type]


class Rig:
    def __init__(self, *queues: QueueConfig, **settings: object) -> None:
        self.engine = AcdEngine(AcdConfig(tuple(queues), **settings))  # type: ignore[arg-type]
        self.now = 0.0
        self.log: list[AcdEvent] = []

    def do(self, command: Command, *, at: float | None = None) -> list[AcdEvent]:
        if at is not None:
            self.now = at
        self.engine.handle(command, now=self.now)
        return self._collect()

    def advance(self, to: float) -> list[AcdEvent]:
        """Fire every timer up to ``to`` at its own deadline, then stop at ``to``."""
        out: list[AcdEvent] = []
        while (deadline := self.engine.get_timer()) is not None and deadline <= to:
            self.now = deadline
            self.engine.handle_timer(now=deadline)
            out += self._collect()
        self.now = to
        return out

    def snap(self) -> AcdSnapshot:
        return self.engine.snapshot(now=self.now)

    def state(self, agent_id: str) -> AgentState:
        return self.snap().agent(agent_id).state

    def _collect(self) -> list[AcdEvent]:
        events = self.engine.events()
        assert all(e.at == self.now for e in events)
        self.log += events
        return events


def only(events: list[AcdEvent], kind: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]
