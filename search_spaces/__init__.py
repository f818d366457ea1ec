"""YAML search spaces shipped with the tool; ``resolve`` turns a name or a path into a file."""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent


def available() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.yaml"))


def resolve(name_or_path: str) -> Path:
    """``"smoke"`` -> the shipped ``smoke.yaml``; anything with a suffix or a slash is a path."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if not candidate.exists():
            raise FileNotFoundError(f"search space file {candidate} does not exist")
        return candidate
    shipped = HERE / f"{name_or_path}.yaml"
    if not shipped.exists():
        raise FileNotFoundError(f"no search space named {name_or_path!r}; shipped: {available()}")
    return shipped
