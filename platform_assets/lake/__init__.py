"""The lake contract: versioned table folders with a manifest (`tables`), the one type mapping
(`types`), the segment checksums both sides compute alike (`fingerprint`) and what the lake
engine's statements cost (`athena_cost`)."""
