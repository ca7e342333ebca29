"""Settings (environment, prefix ``ASSAY_``) and the audit spec (SPEC.md §3) as pydantic models.

The spec is validated in two steps: :func:`load_spec` checks the shape (unknown keys, types,
enumerations), then :func:`service.inputs.validate.check_spec_against_data` checks it against the
data (columns present, reference groups present, threshold inside the score range).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.errors import InputError


class Settings(BaseSettings):
    """Process settings; every field can be set as ``ASSAY_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="ASSAY_", extra="ignore")

    data_dir: Path = Path("./assay-data")
    database_url: str | None = None
    max_upload_bytes: int = 2 * 1024**3
    workers: int = 2
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    job_timeout_s: int = 3600
    scheduler: bool = True

    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'assay.db').resolve()}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, populate_by_name=True)


class BisgSpec(_Strict):
    surname: str
    geography: str
    geography_kind: Literal["auto", "zcta", "tract"] = "auto"


class ProtectedSpec(_Strict):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    name: str
    column: str | None = None
    reference: str
    categories: dict[str, str] | None = None  # raw value -> label, e.g. {1: male, 2: female}
    bins: list[float] | None = None
    labels: list[str] | None = None
    population_shares: dict[str, float] | None = None
    bisg: BisgSpec | None = None

    @model_validator(mode="after")
    def _column_or_bisg(self) -> ProtectedSpec:
        if self.column is None and self.bisg is None:
            raise ValueError(f"protected attribute '{self.name}' needs either 'column' or 'bisg'")
        if self.column is not None and self.bisg is not None:
            raise ValueError(f"protected attribute '{self.name}' has both 'column' and 'bisg'; pick one")
        if self.bins is not None:
            if len(self.bins) < 2 or any(b >= a for b, a in zip(self.bins, self.bins[1:], strict=False)):
                raise ValueError("bins must be at least two strictly increasing numbers")
            if self.labels is not None and len(self.labels) != len(self.bins) - 1:
                raise ValueError("labels must have one entry fewer than bins")
        if self.population_shares is not None:
            total = sum(self.population_shares.values())
            if not 0.98 <= total <= 1.02 or any(v < 0 for v in self.population_shares.values()):
                raise ValueError(f"population_shares must be non-negative and sum to 1 (got {total:.3f})")
        return self

    def band_labels(self) -> list[str] | None:
        """Labels of numeric bands: explicit ``labels`` or "lo-hi" from ``bins``."""
        if self.bins is None:
            return None
        if self.labels is not None:
            return list(self.labels)
        return [f"{_fmt_num(lo)}-{_fmt_num(hi)}" for lo, hi in zip(self.bins, self.bins[1:], strict=False)]


def _fmt_num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


class ScoreSpec(_Strict):
    column: str | None = None
    direction: Literal["higher_is_riskier", "higher_is_safer"] = "higher_is_riskier"
    threshold: float = 0.5
    kind: Literal["auto", "probability", "log_odds", "score"] = "auto"


class TemporalSpec(_Strict):
    period: Literal["auto", "month", "quarter", "year"] = "auto"
    months_on_book_column: str | None = None
    oot_after: dt.date | None = None
    min_period_rows: int = 30


class RegimeSpec(_Strict):
    name: str
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> RegimeSpec:
        if self.end < self.start:
            raise ValueError(f"regime '{self.name}' ends ({self.end}) before it starts ({self.start})")
        return self


class ShockSpec(_Strict):
    multiply: float | None = None
    add: float | None = None
    set_quantile: float | None = Field(default=None, ge=0.0, le=1.0)
    shift_mix: dict[str, float] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ShockSpec:
        given = [k for k in ("multiply", "add", "set_quantile", "shift_mix") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("each shock needs exactly one of multiply, add, set_quantile, shift_mix")
        return self


class StressSpec(_Strict):
    name: str
    shocks: dict[str, ShockSpec]


class ReasonsSpec(_Strict):
    reference: Literal["marginal", "all"] = "marginal"
    max_reasons: int = Field(default=4, ge=1, le=10)
    grouping: Literal["sum", "partition"] = "sum"


class PolicySpec(_Strict):
    """Thresholds. Each is printed in the report as *policy* when the spec sets it, else *default*."""

    air_min: float = Field(default=0.80, gt=0, le=1)
    smd_max: float = Field(default=0.20, gt=0)
    psi_amber: float = 0.10
    psi_red: float = 0.25
    min_group_size: int = Field(default=30, ge=1)
    significance: float = Field(default=0.05, gt=0, lt=1)
    error_rate_gap_max: float = Field(default=0.10, gt=0, le=1)
    auc_min: float = 0.60
    auc_drop_max: float = 0.05
    calibration_ratio_max: float = 0.25
    leakage_auc: float = 0.95
    missing_max: float = 0.20
    proxy_auc_max: float = 0.70
    proxy_association_max: float = 0.30
    missing_gap_max: float = 0.05
    low_default_events: int = 20
    low_default_rate: float = 0.05

    def source(self, name: str) -> Literal["default", "policy"]:
        return "policy" if name in self.model_fields_set else "default"


class OwnerSpec(_Strict):
    model_owner: str | None = None
    developer: str | None = None
    validator: str | None = None
    approver: str | None = None
    intended_use: str | None = None
    business_use: str | None = None
    model_version: str | None = None
    validation_type: Literal["initial", "periodic", "change"] = "initial"
    review_period: str | None = None
    risk_tier: str | None = None


class ImbalanceSpec(_Strict):
    mitigation: str | None = None


class ReportSpec(_Strict):
    paper: Literal["A4", "Letter"] = "A4"


class AuditSpec(_Strict):
    """The audit spec of SPEC.md §3. Paths are resolved relative to the spec file."""

    model_name: str
    dataset: str
    oot_dataset: str | None = None
    model: str | None = None
    target: str
    event_value: Annotated[Any, Field()] = 1
    score: ScoreSpec = ScoreSpec()
    protected: list[ProtectedSpec] = []
    date_column: str | None = None
    temporal: TemporalSpec = TemporalSpec()
    regimes: list[RegimeSpec] | None = None
    features: list[str] | None = None
    id_column: str | None = None
    weight_column: str | None = None
    dtypes: dict[str, Literal["numeric", "categorical", "date", "string"]] | None = None
    seed: int = 20261203
    bootstrap: int = Field(default=1000, ge=0, le=100_000)
    monotone: dict[str, Literal["increasing_risk", "decreasing_risk"]] | None = None
    stress: list[StressSpec] | None = None
    reason_codes: str | dict[str, Any] | None = None
    reasons: ReasonsSpec = ReasonsSpec()
    policy: PolicySpec = PolicySpec()
    owner: OwnerSpec = OwnerSpec()
    imbalance: ImbalanceSpec = ImbalanceSpec()
    report: ReportSpec = ReportSpec()

    # set by load_spec, not by users
    base_dir: Path = Field(default=Path("."), exclude=True)
    spec_path: Path | None = Field(default=None, exclude=True)

    @field_validator("event_value")
    @classmethod
    def _scalar_event(cls, v: Any) -> Any:
        if not isinstance(v, str | int | float | bool):
            raise ValueError("event_value must be a single value (number or text)")
        return v

    @model_validator(mode="after")
    def _consistency(self) -> AuditSpec:
        if self.model is None and self.score.column is None:
            raise ValueError("give either 'model' (a model file) or 'score.column' (a score column)")
        names = [p.name for p in self.protected]
        if len(set(names)) != len(names):
            raise ValueError(f"protected attribute names must be unique (got {names})")
        if self.regimes:
            ordered = sorted(self.regimes, key=lambda r: r.start)
            for a, b in zip(ordered, ordered[1:], strict=False):
                if b.start <= a.end:
                    raise ValueError(f"regimes '{a.name}' and '{b.name}' overlap")
        return self

    def resolve(self, path: str | None) -> Path | None:
        """A spec path (relative to the spec file) as an absolute path."""
        if path is None:
            return None
        p = Path(path)
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    def is_policy(self, name: str) -> bool:
        return name in self.policy.model_fields_set


def _format_validation_error(err: ValidationError, source: str) -> InputError:
    first = err.errors()[0]
    loc = ".".join(str(x) for x in first["loc"]) or "(top level)"
    kind = first["type"]
    if kind == "extra_forbidden":
        msg = f"unknown key '{loc}'"
        expected = "only the keys documented in SPEC.md §3 (check the spelling)"
    elif kind == "missing":
        msg = f"required key '{loc}' is missing"
        expected = "see SPEC.md §3 for the required keys"
    else:
        msg = f"{first['msg']} (got {first.get('input')!r})"
        expected = None
    more = len(err.errors()) - 1
    if more:
        msg += f" (and {more} more problem{'s' if more > 1 else ''})"
    return InputError(msg, file=source, field=loc, expected=expected)


def parse_spec(data: Any, *, source: str = "spec", base_dir: Path | None = None) -> AuditSpec:
    """Validate a spec given as a mapping (from YAML, JSON or an API body)."""
    if not isinstance(data, dict):
        raise InputError(
            f"the spec must be a mapping of keys to values, got {type(data).__name__}",
            file=source,
            expected="a YAML/JSON object with model_name, dataset, target, ...",
        )
    try:
        spec = AuditSpec.model_validate(data)
    except ValidationError as err:
        raise _format_validation_error(err, source) from None
    spec.base_dir = (base_dir or Path(".")).resolve()
    return spec


def read_mapping(path: Path) -> Any:
    """Read a YAML or JSON file (by extension; YAML otherwise) into Python data."""
    if not path.exists():
        raise InputError("file not found", file=str(path), expected="an existing YAML or JSON file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the file ({exc})", file=str(path), expected="UTF-8 text") from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InputError(
            f"not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}".replace("\n", " "),
            file=str(path),
        ) from None


def load_spec(path: str | Path) -> AuditSpec:
    """Load and validate a spec file (YAML or JSON)."""
    p = Path(path).resolve()
    spec = parse_spec(read_mapping(p), source=str(path), base_dir=p.parent)
    spec.spec_path = p
    return spec


__all__ = [
    "AuditSpec",
    "BisgSpec",
    "OwnerSpec",
    "PolicySpec",
    "ProtectedSpec",
    "ReasonsSpec",
    "RegimeSpec",
    "ScoreSpec",
    "Settings",
    "ShockSpec",
    "StressSpec",
    "TemporalSpec",
    "load_spec",
    "parse_spec",
    "read_mapping",
]
