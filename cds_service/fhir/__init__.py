"""Getting data: prefetch resolution and the FHIR client for what is missing."""
