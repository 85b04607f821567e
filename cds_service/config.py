"""Service configuration: one YAML file (--config or CDS_SERVICE_CONFIG), env overrides for secrets.

Defaults are embedded, so `cds-service serve` runs with no file at all. Every key is checked at
start; a wrong one stops the service with a message that names it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .knowledge import Knowledge, KnowledgeError, load_knowledge
from .knowledge.suggestions import ACTIONS
from .security.jwt_verifier import ASYMMETRIC, DEFAULT_ALGORITHMS, TrustedIssuer, keys_by_kid

TOP_LEVEL_KEYS = {
    "data_dir",
    "database_url",
    "store_url",
    "feedback",
    "log_level",
    "public_base_url",
    "security",
    "limits",
    "fhir",
    "cors",
    "cards",
    "rules",
    "renal_function",
    "lab_lookbacks",
    "level_checks",
    "metrics",
    "gating",
    "clients",
    "memory",
    "silent",
}
# The keys each section accepts, by its dotted path ("[]": each item of a list, "<iss>", "<rule id>":
# each entry of a mapping). One place: the checks below read it, and tests/test_readme.py checks that
# the README documents every one.
SECTION_KEYS: dict[str, frozenset[str]] = {
    "metrics": frozenset({"host", "port"}),
    "feedback": frozenset({"keep_user_comments"}),
    "limits": frozenset({"max_body_bytes"}),
    "fhir": frozenset({"servers", "timeout_seconds", "deadline_seconds", "max_pages", "max_response_bytes"}),
    "fhir.servers[]": frozenset({"base_url", "allow_without_token", "allow_http"}),
    "cors": frozenset({"allowed_origins"}),
    "cards": frozenset({"topic_system", "source_label", "source_url"}),
    "security": frozenset(
        {"trusted_issuers", "max_token_lifetime_seconds", "clock_skew_seconds", "development_trust_sandbox"}
    ),
    "security.trusted_issuers[]": frozenset(
        {"iss", "jwks_url", "jwks", "jwks_file", "jku_allowed", "algorithms", "tenants", "fhir_servers"}
    ),
    "clients.<iss>": frozenset({"update_suggestions", "name", "suggestions", "prefetch"}),
    "memory": frozenset({"enabled", "secret", "window_minutes", "rules", "info_card"}),
    "memory.rules.<rule id>": frozenset({"window_minutes"}),
}
KNOWLEDGE_KEYS = ("rules", "renal_function", "lab_lookbacks", "level_checks", "gating")  # knowledge overrides
ENV_OVERRIDES = {
    "CDS_SERVICE_DATA_DIR": "data_dir",
    "CDS_SERVICE_DATABASE_URL": "database_url",
    "CDS_SERVICE_STORE_URL": "store_url",
    "CDS_SERVICE_LOG_LEVEL": "log_level",
}
MEMORY_SECRET_ENV = "CDS_SERVICE_MEMORY_SECRET"  # memory.secret, kept out of the config file


# Development only: the public CDS Hooks Sandbox signs with a key it publishes at this jku. Anyone can
# get a token signed by it, so it is never trusted unless security.development_trust_sandbox is true.
SANDBOX_ISSUER = TrustedIssuer(
    iss="https://sandbox.cds-hooks.org",
    jwks_url="https://sandbox.cds-hooks.org/.well-known/jwks.json",
    jku_allowed=("https://sandbox.cds-hooks.org/.well-known/jwks.json",),
    algorithms=("ES256", "ES384"),
)


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


@dataclass(frozen=True, slots=True)
class FhirServerAccess:
    """A FHIR server this service may call; the access token goes only here."""

    base_url: str
    allow_without_token: bool = False
    allow_http: bool = False


@dataclass(frozen=True, slots=True)
class FhirSettings:
    """`fhir:`: the FHIR servers this service may fetch from and how long and how much it may fetch."""

    servers: tuple[FhirServerAccess, ...] = ()
    timeout_seconds: float = 2.0
    deadline_seconds: float = 3.0
    max_pages: int = 3
    max_response_bytes: int = 20_000_000

    def server(self, base_url: str) -> FhirServerAccess | None:
        wanted = base_url.rstrip("/")
        return next((s for s in self.servers if s.base_url == wanted), None)


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """`data_dir`, `database_url` (old name `store_url`) and `feedback:`: where the store and the card
    spool live and what feedback keeps."""

    data_dir: Path = Path("data")
    database_url: str | None = None  # PostgreSQL in deployments; None = SQLite in data_dir
    keep_user_comments: bool = False

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'feedback.sqlite3').resolve()}"


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """`security:`: the EHRs whose JWTs are trusted, and how long-lived and how skewed a token may be."""

    trusted_issuers: tuple[TrustedIssuer, ...] = ()
    max_token_lifetime_seconds: float = 3600
    clock_skew_seconds: float = 60


@dataclass(frozen=True, slots=True)
class CardSettings:
    """`cards:`: how each card names its source."""

    topic_system: str = "urn:mg-cds:rules"
    source_label: str = "Magnesium product safety (mg-cds)"
    source_url: str | None = None


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """`metrics:`: /metrics on its own port, never on the port the EHR reaches."""

    host: str = "127.0.0.1"
    port: int = 9464  # 0: no metrics server
    port_configured: bool = False  # metrics.port given: a busy port then stops the start


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole configuration, one typed section per component (each handed its own section)."""

    store: StoreSettings = field(default_factory=StoreSettings)
    fhir: FhirSettings = field(default_factory=FhirSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    cards: CardSettings = field(default_factory=CardSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    memory: MemorySettings = field(default_factory=lambda: MemorySettings())
    clients: Mapping[str, ClientProfile] = field(default_factory=dict)  # by JWT iss; "default" for the rest
    log_level: str = "INFO"
    max_body_bytes: int = 5_000_000  # limits.max_body_bytes
    cors_allowed_origins: tuple[str, ...] = ("*",)  # cors.allowed_origins
    public_base_url: str | None = None  # what EHRs call, for the JWT `aud` (behind TLS termination)
    silent: bool = False  # every rule evaluated and recorded, no card returned (shadow mode before go-live)
    now: datetime | None = None
    knowledge_overrides: Mapping[str, Any] = field(default_factory=dict)

    def client(self, iss: str | None) -> ClientProfile:
        """What the calling EHR can take (config `clients:`), by its JWT issuer, else the default."""
        return self.clients.get(iss or "", self.clients.get("default", ClientProfile()))

    def knowledge(self) -> Knowledge:
        """The knowledge with this site's overrides: built once per process for each set of
        overrides (load_knowledge keeps what it built), so a second call costs a dictionary look-up."""
        try:
            return load_knowledge(self.knowledge_overrides)
        except KnowledgeError as exc:
            raise ConfigError(str(exc)) from exc


def load_settings(
    path: str | os.PathLike[str] | None = None, now: datetime | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    environ = os.environ if environ is None else environ
    path = path or environ.get("CDS_SERVICE_CONFIG")
    raw: dict[str, Any] = {}
    if path:
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"config file {path}: cannot read ({exc.strerror})") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path}: not valid YAML ({exc})") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {path}: must be a mapping of keys")
    for env, key in ENV_OVERRIDES.items():
        if environ.get(env):
            raw[key] = environ[env]
    if environ.get(MEMORY_SECRET_ENV):
        memory = raw.get("memory")
        raw["memory"] = {**(memory if isinstance(memory, dict) else {}), "secret": environ[MEMORY_SECRET_ENV]}
    return settings_from_mapping(raw, now=now)


def settings_from_mapping(raw: Mapping[str, Any], now: datetime | None = None) -> Settings:
    unknown = set(raw) - TOP_LEVEL_KEYS
    if unknown:
        raise ConfigError(f"config: unknown key '{sorted(unknown)[0]}' (known: {', '.join(sorted(TOP_LEVEL_KEYS))})")
    limits, fhir, cors, cards, feedback, metrics = (
        _section(raw, k) for k in ("limits", "fhir", "cors", "cards", "feedback", "metrics")
    )
    _only(metrics, "metrics", SECTION_KEYS["metrics"])
    _only(feedback, "feedback", SECTION_KEYS["feedback"])
    if raw.get("database_url") and raw.get("store_url") and raw["database_url"] != raw["store_url"]:
        raise ConfigError("config: database_url and store_url (its old name) disagree; set database_url only")
    _only(limits, "limits", SECTION_KEYS["limits"])
    _only(fhir, "fhir", SECTION_KEYS["fhir"])
    _only(cors, "cors", SECTION_KEYS["cors"])
    _only(cards, "cards", SECTION_KEYS["cards"])
    security = _section(raw, "security")
    _only(security, "security", SECTION_KEYS["security"])
    issuers = tuple(_issuer(row, i) for i, row in enumerate(security.get("trusted_issuers") or []))
    if _bool(security, "security.development_trust_sandbox"):
        issuers += (SANDBOX_ISSUER,)
    log_level = str(raw.get("log_level", "INFO")).upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("config: log_level must be DEBUG, INFO, WARNING or ERROR")
    settings = Settings(
        store=StoreSettings(
            data_dir=Path(str(raw.get("data_dir", "data"))),
            database_url=_database_url(raw.get("database_url") or raw.get("store_url")),
            keep_user_comments=_bool(feedback, "feedback.keep_user_comments"),
        ),
        fhir=FhirSettings(
            servers=tuple(_server(s, i) for i, s in enumerate(fhir.get("servers") or [])),
            timeout_seconds=_float(fhir, "fhir.timeout_seconds", 2.0, 0.05, 60),
            deadline_seconds=_float(fhir, "fhir.deadline_seconds", 3.0, 0.05, 120),
            max_pages=_int(fhir, "fhir.max_pages", 3, 1, 50),
            max_response_bytes=_int(fhir, "fhir.max_response_bytes", 20_000_000, 10_000, 500_000_000),
        ),
        security=SecuritySettings(
            trusted_issuers=issuers,
            max_token_lifetime_seconds=_float(security, "security.max_token_lifetime_seconds", 3600, 10, 3600),
            clock_skew_seconds=_float(security, "security.clock_skew_seconds", 60, 0, 300),
        ),
        cards=CardSettings(
            topic_system=str(cards.get("topic_system", "urn:mg-cds:rules")),
            source_label=str(cards.get("source_label", "Magnesium product safety (mg-cds)")),
            source_url=_opt_str(cards, "source_url"),
        ),
        metrics=MetricsSettings(
            host=str(metrics.get("host", "127.0.0.1")),
            port=_int(metrics, "metrics.port", 9464, 0, 65535),
            port_configured="port" in metrics,
        ),
        memory=_memory(_section(raw, "memory")),
        clients=_clients(raw.get("clients")),
        log_level=log_level,
        max_body_bytes=_int(limits, "limits.max_body_bytes", 5_000_000, 1_000, 100_000_000),
        cors_allowed_origins=tuple(str(o) for o in (cors.get("allowed_origins") or ["*"])),
        public_base_url=_base_url(raw.get("public_base_url")),
        silent=_bool(raw, "silent"),
        now=now,
        knowledge_overrides={k: raw[k] for k in KNOWLEDGE_KEYS if k in raw},
    )
    knowledge = settings.knowledge()  # fail at start, naming the key, not at the first request
    unknown_rules = sorted(set(settings.memory.rule_windows) - set(knowledge.rules))
    if unknown_rules:
        raise ConfigError(f"config: memory.rules.{unknown_rules[0]}: unknown rule id")
    return settings


@dataclass(frozen=True, slots=True)
class ClientProfile:
    """What one EHR client can apply. The CDS Hooks Sandbox applies medication orders only; Epic's
    suggestions cannot edit an order's dose or timing. A kind the client cannot apply gets no button:
    the card's Do line already says what to do."""

    update_suggestions: bool = True  # kept for existing configs: false = no update-order buttons
    suggestions: frozenset[str] = ACTIONS
    prefetch: str = "2.0"  # "3.0": discovery offers this client CDS Hooks 3.0 templates (protocol/prefetch3.py)

    def applies(self, kind: str) -> bool:
        if kind == "update-order" and not self.update_suggestions:
            return False
        return kind in self.suggestions


def _clients(raw: Any) -> dict[str, ClientProfile]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError("config: clients must be a mapping of JWT issuers (or 'default') to profiles")
    out = {}
    for key, row in raw.items():
        where = f"clients.{key}"
        if not isinstance(row, Mapping):
            raise ConfigError(f"config: {where} must be a mapping")
        _only(row, where, SECTION_KEYS["clients.<iss>"])
        kinds = row.get("suggestions", sorted(ACTIONS))
        if not isinstance(kinds, list) or any(k not in ACTIONS for k in kinds):
            raise ConfigError(f"config: {where}.suggestions: a list of {', '.join(sorted(ACTIONS))}")
        prefetch = str(row.get("prefetch", "2.0"))
        if prefetch not in ("2.0", "3.0"):
            raise ConfigError(f'config: {where}.prefetch: "2.0" (the default) or "3.0"')
        out[str(key)] = ClientProfile(
            update_suggestions=_bool(row, f"{where}.update_suggestions", True),
            suggestions=frozenset(kinds),
            prefetch=prefetch,
        )
    return out


@dataclass(frozen=True, slots=True)
class MemorySettings:
    """Card memory (off by default): a card shown at order-select is not repeated at order-sign for the
    same clinician, patient, encounter, rule and order within a window; snooze override reasons keep a
    rule silent for a patient and product. Everything kept is a keyed hash (HMAC with `secret`)."""

    enabled: bool = False
    secret: str = field(default="", repr=False)
    window_minutes: float = 60
    rule_windows: Mapping[str, float] = field(default_factory=dict)  # minutes, per rule id
    info_card: bool = False  # one info card saying how many cards were held back

    def window(self, rule_id: str) -> float:
        return self.rule_windows.get(rule_id, self.window_minutes)


def _memory(section: Mapping[str, Any]) -> MemorySettings:
    _only(section, "memory", SECTION_KEYS["memory"])
    enabled = _bool(section, "memory.enabled")
    rules = section.get("rules") or {}
    if not isinstance(rules, Mapping):
        raise ConfigError("config: memory.rules must map rule ids to {window_minutes: N}")
    windows = {}
    for rule_id, row in rules.items():
        where = f"memory.rules.{rule_id}"
        if not isinstance(row, Mapping):
            raise ConfigError(f"config: {where} must be a mapping")
        _only(row, where, SECTION_KEYS["memory.rules.<rule id>"])
        windows[str(rule_id)] = _float(row, f"{where}.window_minutes", 60, 0, 7 * 24 * 60)
    secret = section.get("secret") or ""
    if not isinstance(secret, str):
        raise ConfigError("config: memory.secret must be a string")
    if enabled and len(secret) < 16:
        raise ConfigError(
            f"config: memory.secret: required (16 characters or more) when memory is enabled; set {MEMORY_SECRET_ENV}"
        )
    return MemorySettings(
        enabled=enabled,
        secret=secret,
        window_minutes=_float(section, "memory.window_minutes", 60, 0, 7 * 24 * 60),
        rule_windows=windows,
        info_card=_bool(section, "memory.info_card"),
    )


def _bool(section: Mapping[str, Any], key: str, default: bool = False) -> bool:
    """A true/false setting; `key` is its dotted name in the config (the last part is looked up)."""
    value = section.get(key.rsplit(".", 1)[-1], default)
    if not isinstance(value, bool):
        raise ConfigError(f"config: {key} must be true or false")
    return value


def _section(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"config: {key} must be a mapping")
    return value


def _only(section: Mapping[str, Any], name: str, allowed: frozenset[str]) -> None:
    unknown = set(section) - allowed
    if unknown:
        raise ConfigError(f"config: {name}.{sorted(unknown)[0]}: unknown key (known: {', '.join(sorted(allowed))})")


def _opt_str(section: Mapping[str, Any], key: str) -> str | None:
    value = section.get(key)
    return None if value in (None, "") else str(value)


def _float(section: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = section.get(key.rsplit(".", 1)[-1], default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(f"config: {key} must be a number from {low} to {high}, got {value!r}")
    return float(value)


def _int(section: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = section.get(key.rsplit(".", 1)[-1], default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"config: {key} must be a whole number from {low} to {high}, got {value!r}")
    return value


def _server(row: Any, i: int) -> FhirServerAccess:
    where = f"fhir.servers[{i}]"
    if not isinstance(row, Mapping) or not isinstance(row.get("base_url"), str):
        raise ConfigError(f"config: {where}.base_url: required")
    _only(row, where, SECTION_KEYS["fhir.servers[]"])
    base = row["base_url"].rstrip("/")
    parts = urlsplit(base)
    allow_http = bool(row.get("allow_http", False))
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ConfigError(f"config: {where}.base_url: must be an absolute http(s) URL")
    if parts.scheme == "http" and not allow_http:
        raise ConfigError(f"config: {where}.base_url: https required (set allow_http: true for development only)")
    return FhirServerAccess(base, bool(row.get("allow_without_token", False)), allow_http)


def _database_url(value: Any) -> str | None:
    """postgresql://... is taken to mean psycopg 3 (the driver this service ships with)."""
    if value in (None, ""):
        return None
    url = str(value)
    if url.startswith(("postgres://", "postgresql://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if not url.startswith(("postgresql+psycopg://", "sqlite:///")):
        raise ConfigError(f"config: database_url must be postgresql://... or sqlite:///path; {DATABASE_URL_HELP}")
    if url.startswith("postgresql"):
        _check_host_and_port(url)
    return url


DATABASE_URL_HELP = "set database_url (or CDS_SERVICE_DATABASE_URL) to postgresql://USER:PASSWORD@HOST:5432/DB"


def _check_host_and_port(url: str) -> None:
    """A placeholder such as postgresql://... parses, then fails deep in the driver (an idna error):
    say so here, in one line. The password is never quoted."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parts = make_url(url)
        port = parts.port
    except (ArgumentError, ValueError):
        raise ConfigError(f"config: database_url: not a database URL; {DATABASE_URL_HELP}") from None
    host = parts.host or ""
    try:
        host.encode("idna")
    except UnicodeError:
        raise ConfigError(f"config: database_url: {host[:40]!r} is not a host name; {DATABASE_URL_HELP}") from None
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"config: database_url: port {port} is out of range; {DATABASE_URL_HELP}")


def _base_url(value: Any) -> str | None:
    if value in (None, ""):
        return None
    parts = urlsplit(str(value))
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ConfigError("config: public_base_url must be an absolute URL such as https://cds.example.org")
    return str(value).rstrip("/")


def _loopback(url: str) -> bool:
    return urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


def _jwks_from_file(path: Any, where: str) -> Any:
    """Public keys mounted from a file (a Kubernetes Secret), so they need not sit in the ConfigMap."""
    try:
        return json.loads(Path(str(path)).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"config: {where}.jwks_file: cannot read {path} ({exc.strerror})") from exc
    except ValueError as exc:
        raise ConfigError(f"config: {where}.jwks_file: {path} is not JSON ({exc})") from exc


def _issuer(row: Any, i: int) -> TrustedIssuer:
    where = f"security.trusted_issuers[{i}]"
    if not isinstance(row, Mapping) or not isinstance(row.get("iss"), str) or not row["iss"]:
        raise ConfigError(f"config: {where}.iss: required")
    _only(row, where, SECTION_KEYS["security.trusted_issuers[]"])
    row = {**row, "jwks": _jwks_from_file(row["jwks_file"], where)} if row.get("jwks_file") else row
    urls = [row.get("jwks_url"), *(row.get("jku_allowed") or [])]
    for url in (u for u in urls if u is not None):
        if not isinstance(url, str) or not (
            url.startswith("https://") or (url.startswith("http://") and _loopback(url))
        ):
            raise ConfigError(f"config: {where}: JWKS URLs must be https (http only on loopback), got {url!r}")
    if not row.get("jwks_url") and not row.get("jwks") and not row.get("jku_allowed"):
        raise ConfigError(f"config: {where}: give jwks_url, jwks or jwks_file (public keys) or jku_allowed")
    if row.get("jwks") is not None:
        try:
            keys_by_kid(row["jwks"])
        except Exception as exc:
            raise ConfigError(f"config: {where}.jwks: not a JWK Set of public keys ({exc})") from exc
    algorithms = tuple(row.get("algorithms") or DEFAULT_ALGORITHMS)
    bad = [a for a in algorithms if a not in ASYMMETRIC]
    if bad:
        raise ConfigError(f"config: {where}.algorithms: only asymmetric algorithms, not {bad[0]}")
    return TrustedIssuer(
        iss=row["iss"],
        jwks_url=row.get("jwks_url"),
        jwks=row.get("jwks"),
        jku_allowed=tuple(row.get("jku_allowed") or ()),
        algorithms=algorithms,
        tenants=tuple(str(t) for t in row.get("tenants") or ()),
        fhir_servers=tuple(str(u).rstrip("/") for u in row.get("fhir_servers") or ()),
    )
