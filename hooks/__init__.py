"""CDS Hooks contracts (JSON Schemas and discovery) shipped inside the package as cds_service.contracts."""
