"""Trust: verification of the EHR's JWT (CDS Hooks 2.0 security) and who may call without one."""

from .jwt_verifier import JwtRejected, TokenVerifier, TrustedIssuer

__all__ = ["JwtRejected", "TokenVerifier", "TrustedIssuer"]
