"""CDS Hooks 2.0 protocol: schemas, request model, errors, discovery."""
