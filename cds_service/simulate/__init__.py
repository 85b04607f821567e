"""Shadow mode before go-live: replay a site's history (FHIR Bulk Data NDJSON or bundles) through the
rules and report the alert burden a pharmacy and therapeutics committee needs to decide."""
