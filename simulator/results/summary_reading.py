"""summary.json read back as a stream: a folder's own, a shard's, a base run's.

Read whole, 100,000 simulations' entries are some 400 MB of dicts before anyone reads one. Here
the file is read a chunk at a time (`parsing.json_stream`, under `strict_json`'s rules), each
simulation is checked against the schema as it comes and kept in a `SimulationStore` (on disk
past a thousand), and so is each simulation's comparison with a base run (`comparison.simulations`,
another 100 MB of dicts at 100,000); the rest (`run`, `gate`, `totals`, ...) is kept as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

from ..errors import UnreadableRecord
from ..parsing.json_stream import stream_members
from ..parsing.schema_check import schema_errors
from .simulation_store import RecordStore, SimulationStore

SIMULATIONS = "simulations"
COMPARISON = "comparison"
#: the objects read member by member: the simulations, and the comparison's
_STREAMED = {(SIMULATIONS,), (COMPARISON,), (COMPARISON, SIMULATIONS)}


def read_summary_file(file: Path) -> dict[str, Any]:
    """The summary in `file`, its `simulations` a read-only mapping in the file's order.

    `OSError` when the file cannot be read, `strict_json.JSONError` when it is not JSON that can be
    trusted, `UnreadableRecord` when it is not a summary this tool wrote."""
    with file.open("rb") as handle:
        return _read(handle, file)


def _read(handle: IO[bytes], file: Path) -> dict[str, Any]:
    top: dict[str, Any] = {}
    simulations = SimulationStore()
    comparison: dict[str, Any] = {}
    moves: RecordStore[Any] = RecordStore()
    for path, key, value in stream_members(handle, _STREAMED):
        if path == (SIMULATIONS,):
            _refuse(schema_errors(value, "summary", source=str(file), definition="simulation", prefix=(*path, key)))
            simulations.put(key, value)
        elif path == (COMPARISON, SIMULATIONS):
            comparison.setdefault(SIMULATIONS, moves)  # in its place among the comparison's members
            moves.put(key, value)
        elif path == (COMPARISON,):
            comparison[key] = value
        else:
            top[key] = value
    if comparison:
        top[COMPARISON] = comparison
        if moves:
            comparison[SIMULATIONS] = moves.as_summary_value()
    if not simulations and not isinstance(top.get(SIMULATIONS), dict):
        raise UnreadableRecord(f"{file}: not a summary.json written by this tool (no '{SIMULATIONS}')")
    top.pop(SIMULATIONS, None)
    # every figure a reader uses is of its type and in range, or the summary is not used
    _refuse(schema_errors({**top, SIMULATIONS: {}}, "summary", source=str(file)))
    return {**top, SIMULATIONS: simulations}


def _refuse(problems: list[str]) -> None:
    if problems:
        raise UnreadableRecord(f"not a summary.json written by this tool: {problems[0]}")
