"""Standard operating procedures: the checklist an operator works per alert kind.

Authored in ``resources/procedures/sop.toml`` (by the control room, not in
code). The engine refuses to resolve an alert while a mandatory step is
neither ticked nor skipped with a reason; the alert panel shows the same list.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

SOP_FILE = Path(__file__).resolve().parent.parent / "resources" / "procedures" / "sop.toml"


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    text: str
    mandatory: bool


class Procedures:
    def __init__(self, steps: dict[str, list[Step]]) -> None:
        self._steps = steps

    @classmethod
    def load(cls, path: Path = SOP_FILE) -> Procedures:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        steps: dict[str, list[Step]] = {}
        for kind, body in data.items():
            items = body.get("steps", []) if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise ValueError(f"{path.name}: [{kind}] needs steps = [ ... ]")
            seen: set[str] = set()
            out: list[Step] = []
            for item in items:
                if (not isinstance(item, dict) or not isinstance(item.get("id"), str)
                        or not isinstance(item.get("text"), str)
                        or not isinstance(item.get("mandatory", False), bool)):
                    raise ValueError(f"{path.name}: each {kind} step needs an id and a text "
                                     f"(strings) and mandatory = true/false: {item!r}")
                step = Step(item["id"], item["text"], item.get("mandatory", False))
                if step.id in seen:
                    raise ValueError(f"{path.name}: {kind} has step {step.id!r} twice")
                seen.add(step.id)
                out.append(step)
            steps[kind] = out
        return cls(steps)

    def steps(self, kind: str) -> list[Step]:
        return list(self._steps.get(kind, []))

    def step(self, kind: str, step_id: str) -> Step | None:
        return next((s for s in self._steps.get(kind, []) if s.id == step_id), None)

    def missing_mandatory(self, kind: str, done: list[str]) -> list[str]:
        """Mandatory steps of ``kind`` neither ticked nor skipped."""
        return [s.id for s in self._steps.get(kind, []) if s.mandatory and s.id not in done]
