"""Magnesium-product CDS Hooks 2.0 service.

Data flows one way: HTTP -> protocol -> fhir (data) -> record -> clinical rules -> cards -> HTTP.
"""

__version__ = "0.1.0"
