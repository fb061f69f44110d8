"""Which AFAS GetConnectors feed the pipeline: `mappings/afas_sources.yaml`, validated at load time."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from afas_pipeline.mapping.errors import MappingError

Entity = Literal["contacts", "persons", "organisations", "debtors", "delivery_addresses"]
#: What every destination reads (the CRM), and what only an audience of customers reads (seed 002).
CRM_ENTITIES: tuple[Entity, ...] = ("contacts", "persons", "organisations")
CUSTOMER_ENTITIES: tuple[Entity, ...] = ("debtors", "delivery_addresses")
ENTITIES: tuple[Entity, ...] = (*CRM_ENTITIES, *CUSTOMER_ENTITIES)

MAPPINGS_DIR = Path(os.environ.get("AFAS_PIPELINE_MAPPINGS", Path(__file__).resolve().parents[2] / "mappings"))
SOURCES_FILE = MAPPINGS_DIR / "afas_sources.yaml"


class AfasSource(BaseModel):
    """One GetConnector and how the pipeline reads it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connector: str = Field(min_length=1)
    key: str = Field(min_length=1)
    modified: tuple[str, ...] = Field(min_length=1)
    required: tuple[str, ...] = ()
    order_by: tuple[str, ...] = ()
    #: A yes/no field that marks a row for erasure (P2): contacts only, optional.
    erase_flag: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _key_is_required_and_sorts(self) -> AfasSource:
        # The key always has to exist (R9) and paging must be sorted on something unique.
        required = self.required if self.key in self.required else (self.key, *self.required)
        order_by = self.order_by or (self.key,)
        object.__setattr__(self, "required", required)
        object.__setattr__(self, "order_by", order_by)
        return self

    @property
    def fields_needed(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.required, *self.modified, *([self.erase_flag] if self.erase_flag else []))))


class AfasSources(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    contacts: AfasSource
    persons: AfasSource
    organisations: AfasSource
    # Only needed by a destination whose audience is AFAS's debtors (`source: {entity: debtor}`).
    debtors: AfasSource | None = None
    delivery_addresses: AfasSource | None = None

    def __getitem__(self, entity: Entity) -> AfasSource:
        source = getattr(self, entity)
        if source is None:
            raise MappingError(f"{SOURCES_FILE}: `{entity}` is not set; a debtor audience reads it (copy the "
                               f"`{entity}:` block of the project's mappings/afas_sources.yaml)")
        return source

    def connectors(self) -> dict[str, str]:
        """The GetConnector of each entity that is set."""
        return {entity: getattr(self, entity).connector for entity in ENTITIES if getattr(self, entity) is not None}


def load_sources(path: Path = SOURCES_FILE) -> AfasSources:
    """Load and validate the sources file; any problem raises MappingError naming file and field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise MappingError(f"{path}: file not found (set AFAS_PIPELINE_MAPPINGS to the mappings folder)") from exc
    except yaml.YAMLError as exc:
        raise MappingError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return AfasSources.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise MappingError(f"{path}: {problems}") from exc


@cache
def default_sources() -> AfasSources:
    return load_sources()
