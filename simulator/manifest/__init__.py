"""The simulations manifest, loaded one way: read → check → resolve → build.

Takes: a manifest file, the environment and the command's needs.
Gives: a `Manifest` of typed `Simulation`s, or a `ManifestError` listing every problem as
`file:line: field: what is wrong`.
Flow: `load` reads the YAML with positions (`parsing.yaml_source`) and checks it against the
schema; `variables` fills in `${VAR}`; `simulations` resolves personas, defaults, checks and
state requests; `targets` checks each URL target as the run will build it. Each step adds to one
list of problems and none calls back into an earlier one.
Used by: `run` (plans and plays it), the CLI's `validate` and the action.
"""

from .build import check_sides
from .files import default_root, is_inside, resolve_root
from .load import load_manifest
from .read import marker_comments
from .resolve import deep_merge
from .types import (
    DEFAULT_MANIFEST,
    DEFAULT_MAX_TURNS,
    DEFAULT_REPEAT,
    UNTRUSTED_NOTE,
    Manifest,
    ManifestError,
    Simulation,
)
from .variables import (
    ALLOWED_VARS_ENV,
    DEFAULT_KEY_VARS,
    HARMLESS_GITHUB_VARS,
    SECTIONS,
    interpolate,
    register_secrets,
    section_of,
    variable_refusal,
)

__all__ = [
    "ALLOWED_VARS_ENV",
    "DEFAULT_KEY_VARS",
    "DEFAULT_MANIFEST",
    "DEFAULT_MAX_TURNS",
    "DEFAULT_REPEAT",
    "HARMLESS_GITHUB_VARS",
    "SECTIONS",
    "UNTRUSTED_NOTE",
    "Manifest",
    "ManifestError",
    "Simulation",
    "check_sides",
    "deep_merge",
    "default_root",
    "interpolate",
    "is_inside",
    "load_manifest",
    "marker_comments",
    "register_secrets",
    "resolve_root",
    "section_of",
    "variable_refusal",
]
