"""Load `mappings/<destination>.yaml` into a DestinationMapping; any problem raises MappingError naming
the file, the field and the rule."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from afas_pipeline.afas.sources import MAPPINGS_DIR, AfasSources, load_sources
from afas_pipeline.lib.text import printable
from afas_pipeline.mapping.errors import MappingError, Problem
from afas_pipeline.mapping.models import DestinationMapping


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice (plain YAML silently keeps the last one)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key '{key}' appears twice in one block; keep one", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

SOURCES_FILE_NAME = "afas_sources.yaml"


def mappings_folder_problems(folder: Path, destinations: Iterable[str]) -> list[str]:
    """What the mappings folder lacks for the AFAS reads and for each destination's mapping, one line each
    naming AFAS_PIPELINE_MAPPINGS and the fix; empty when every file is there."""
    shown = printable(folder)
    fix = f"set AFAS_PIPELINE_MAPPINGS to the folder that holds {SOURCES_FILE_NAME} and the destinations' mappings"
    if not folder.exists():
        return [f"the mappings folder '{shown}' (AFAS_PIPELINE_MAPPINGS) does not exist: {fix}"]
    if not folder.is_dir():
        return [f"the mappings folder '{shown}' (AFAS_PIPELINE_MAPPINGS) is a file: {fix}"]
    needed = {SOURCES_FILE_NAME: "the GetConnectors to read",
              **{f"{d}.yaml": f"the mapping of destination {d}" for d in destinations}}
    return [
        f"{printable(folder / name)}: file not found ({what}): copy the project's mappings/{name} there, or set "
        f"AFAS_PIPELINE_MAPPINGS to the folder that holds it"
        for name, what in needed.items()
        if not (folder / name).is_file()
    ]


def load_mapping(path: Path | str, *, sources: AfasSources | None = None) -> DestinationMapping:
    """Read and validate a mapping file.

    `sources` gives the GetConnectors the mapping's source must be one of (R9); by default the
    `afas_sources.yaml` next to the mapping file, or the shipped one when there is none.
    """
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except FileNotFoundError as exc:
        problems = mappings_folder_problems(path.parent, [path.stem])
        raise MappingError(problems[-1] if problems else f"{path}: file not found", file=path) from exc
    except yaml.YAMLError as exc:
        raise MappingError(f"{path}: not valid YAML: {exc}", file=path) from exc
    if not isinstance(raw, dict):
        raise MappingError.of(path, [Problem("<root>", "M2", "the file must be a YAML mapping with `destination:`, "
                                                             "`source:`, `external_id:`, ... (see mappings/spotler.yaml)")])
    if sources is None:
        beside = path.parent / "afas_sources.yaml"
        sources = load_sources(beside) if beside.exists() else load_sources()
    try:
        mapping = DestinationMapping.model_validate(raw, context={"connectors": sources.connectors()})
    except ValidationError as exc:
        raise MappingError.of(path, _problems(exc, raw)) from exc
    mapping._file = str(path)
    return mapping


@cache
def default_mapping(destination: str) -> DestinationMapping:
    """The shipped (or AFAS_PIPELINE_MAPPINGS) `mappings/<destination>.yaml`, loaded once per process."""
    path = MAPPINGS_DIR / f"{destination}.yaml"
    mapping = load_mapping(path)
    if mapping.destination != destination:
        raise MappingError.of(path, [Problem(
            "destination", "M2", f"the file is named {destination}.yaml but says `destination: {mapping.destination}`; "
                                 f"make them agree")])
    return mapping


# --- pydantic errors -> problems -----------------------------------------------------------------------


def _problems(exc: ValidationError, raw: dict) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for err in exc.errors(include_url=False):
        ctx = err.get("ctx") or {}
        if "problems" in ctx:  # the rule checks of DestinationMapping, already with paths
            problems.extend(ctx["problems"])
            continue
        loc = _user_loc(err["loc"], raw)
        path = _render_loc(loc)
        rule = ctx.get("rule", "M2")
        message = _message(err, rule, loc)
        if path in seen:  # a union type reports once per alternative; say it once
            merged = problems[seen[path]]
            if message not in merged.message:
                problems[seen[path]] = Problem(merged.path, merged.rule, f"{merged.message}; or {message}", merged.context)
            continue
        seen[path] = len(problems)
        problems.append(Problem(path, rule, message, _context(loc, raw)))
    return problems


def _user_loc(loc: tuple, raw: Any) -> tuple:
    """The part of pydantic's location that exists in the file (drops union-member and validator names)."""
    out: list = []
    node = raw
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif i == len(loc) - 1 and isinstance(node, dict) and isinstance(part, str):
            out.append(part)  # a missing or unknown key: name it
            break
        else:
            break
        out.append(part)
    return tuple(out)


def _render_loc(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<root>"


def _message(err: dict, rule: str, loc: tuple) -> str:
    kind = err["type"]
    if rule != "M2" or kind == "mapping_rule":
        return err["msg"].split(": ", 1)[1] if err["msg"].startswith(f"{rule}: ") else err["msg"]
    if kind == "extra_forbidden":
        allowed = _allowed_settings(loc[:-1])
        known = f" (the settings here are: {', '.join(allowed)})" if allowed else ""
        return f"unknown setting{known}; correct the spelling or remove it"
    if kind == "missing":
        return "required setting is missing; add it (mappings/spotler.yaml has a commented example)"
    if kind == "string_pattern_mismatch":
        return (f"{err.get('input')!r} is not an AFAS field id (letters, digits and _ only); copy it from "
                f"GET /metainfo/update/<connector>")
    text = err["msg"].replace("Input should be", "must be").replace("Input should", "must")
    return f"{text} (got {err.get('input')!r})"


def _allowed_settings(loc: tuple) -> list[str]:
    """The keys the model at `loc` accepts, for 'unknown setting' messages."""
    model: Any = DestinationMapping
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = _model_in(field.annotation)
        if model is None:
            return []
    return list(getattr(model, "model_fields", {}))


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _context(loc: tuple, raw: Any) -> str | None:
    """'<afas ref> -> <property>' of the innermost entry on the path that has them."""
    node, found = raw, None
    for part in loc:
        if isinstance(node, dict) and "afas" in node:
            found = node
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
    if isinstance(node, dict) and "afas" in node:
        found = node
    if found is None:
        return None
    target = found.get("property")
    if target is None and "bit" in found:
        target = f"permission bit {found['bit']}"
    if target is None and "id" in found:
        target = f"permission id {found['id']}"
    return f"{found['afas']} -> {target}" if target is not None else str(found["afas"])
