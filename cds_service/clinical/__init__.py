"""Clinical layer: pure functions over the patient record (no I/O, no HTTP, no raw JSON)."""
