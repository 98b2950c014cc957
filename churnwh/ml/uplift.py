"""Uplift from randomized pilots: who would churn less if contacted, learned from campaign members.

Input: campaign members with features, a treatment flag (contacted, or held out as control by the
campaign's random hash) and the realised outcome (churned in the window). Output: per member the
churn probability if contacted and if not, and their difference
``churn_change = tau(x) = P(churn | x, contacted) - P(churn | x, not contacted)``; ``prevented =
-tau(x)`` is the churn a contact prevents (the sign of the pilot report's ``effect``), the score to
target by.

Two estimators (``validate_uplift``'s ``estimator``; the build uses the first):

**Risk-offset model** (``fit_offset_uplift``, ``"risk_offset"``). The demo's planted effect, like the
retention literature's, is multiplicative: a contact removes a share ``s(x)`` of the customer's churn
probability ``p(x)``, so the uplift is ``p(x) s(x)``. ``p`` is what the churn model already estimates, from
every customer's history, far more data than a pilot; only the relative effect must come from the pilot.
So: ``P(churn | x, T) = sigmoid(a + b logit r(x) + c(x) + T g(x))``, ``r`` the churn model's probability,
``c`` a correction and ``g`` the effect on the churn logit, both linear in the standardized features plus
quantile steps per numeric feature (thresholds: who responds is often decided by a trait crossing a
level), every coefficient of ``c`` and ``g`` L2-penalized (``OFFSET_L2``). One convex penalized likelihood,
fitted to convergence by damped Newton: nothing stops before the effect is learned (the network's early
stopping did, with the same offset). Prevented churn = ``sigmoid(base) - sigmoid(base + g)``: large where
the customer is at risk *and* the effect is large. In the learning curve
(``benchmarks/bench_uplift_learning_curve.py --variants risk_offset``; top fifth of 10,000 held-out demo
customers; true customers saved per 1,000 contacts; three random pilots per size) it saves 51.9 / 57.2 /
56.6 at 6,000 / 13,000 / 20,000 members against 46.0 for the churn model it starts from (53.9 for a
perfect risk model, 77.8 for the oracle); with the effect set to its mean (the recalibrated risk alone) it
saves 46.8: the gain is the learned effect.

**Two-headed network** (``fit_uplift``, ``"network"``): a **two-headed network** (TARNet, Shalit, Johansson and
Sontag, ICML 2017) on the churn network's own building blocks: the same preprocessing, numeric
piecewise-linear and categorical embeddings and TabM-style ensemble backbone (``network.ChurnNetwork``)
with two heads per member: the control head gives the churn logit without contact, and the treated
logit is the control logit plus an *effect head* (started at zero and weight-decayed, so the
estimated effect shrinks toward "no effect" unless the data show one). Each member row trains only
the head of the arm it was in (the observed outcome), both arms train the shared backbone. Early
stopping on the held-out members' log loss of their observed arm.

Why this one and not the transformed outcome (``Z = Y T / e - Y (1 - T) / (1 - e)`` regressed on x
for a known treated share ``e``): both are unbiased under random assignment, but the transformed
outcome's variance grows as ``1 / (e (1 - e))`` and it learns churn risk and effect from one noisy
target, while the two heads let the whole pilot teach the shared risk structure and leave the
effect head to model only the difference between arms; on pilots of a few thousand members that
variance is what decides. The treated share is still used: ``fit_uplift`` checks that the observed
share matches the planned one (a broken assignment is not a randomized pilot).

Honest validation (``validate_uplift``): held-out members (stratified by treatment and outcome),
Qini / uplift curves and AUUC (``uplift_metrics``) of three rules: the network, a two-model
baseline (separate logistic regressions for treated and control members on the same features,
prevented = p_control - p_treated) and targeting by a given churn-risk score.

Too small to learn from (``pilot_size`` / ``require_learnable_pilot``): the rule and its derivation are
in ``churnwh.ml.pilot_size``: enough members to tell the effect among the customers uplift targeting
would contact (the top ``target_share``) from the effect among those risk targeting would contact, when
the first is larger by ``min_gain``, calibrated on the demo's learning curve: 12,267 members at the demo's
risk-targeted pilot (6.7% churn, even split).

The churn model's risk as an offset (``fit_uplift``'s ``risk_column``): the control head then adds a
learned correction to the churn model's logit (scaled by a learned weight per ensemble member) instead of
learning churn risk from the pilot alone; the churn model was trained on every customer's history, far
more than a pilot holds. The effect head is unchanged. With no effect learned, the estimate is then a
multiple of the churn model's risk, so targeting by it falls back to targeting by risk rather than by the
pilot's noisier risk estimate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import polars as pl
from flax import nnx

from churnwh.errors import DataError
from churnwh.ml import metrics, network, preprocess, splits, train, uplift_metrics
from churnwh.ml.pilot_size import (  # noqa: F401  (re-exported: the pilot-size rule is part of this API)
    PilotSize,
    PilotSizeRule,
    PilotTooSmall,
    pilot_size,
    require_learnable_pilot,
    required_members,
)

logger = logging.getLogger(__name__)

TREATMENT_VALUES = {"treatment": 1.0, "control": 0.0}
PREDICT_BATCH_ROWS = 4096
VALIDATION_CHUNK_ROWS = 2048
ASSIGNMENT_TOLERANCE_SE = 4.0
"""Observed treated share further than this many binomial standard errors from the planned share:
not a random assignment."""


# --- Columns -----------------------------------------------------------------------------------------


def treatment_flags(frame: pl.DataFrame, treatment_column: str) -> np.ndarray:
    """0/1 float32 treatment per row: 0/1 or boolean values, or ``treatment`` / ``control`` strings."""
    if treatment_column not in frame.columns:
        raise DataError(f"treatment column '{treatment_column}' is not in the members frame; check the name")
    series = frame[treatment_column]
    if series.null_count():
        raise DataError(f"treatment column '{treatment_column}' has NULL values; every member must be "
                        "treated or control")
    if series.dtype in (pl.String, pl.Categorical):
        values = series.cast(pl.String)
        unknown = values.filter(~values.is_in(list(TREATMENT_VALUES)))
        if unknown.len():
            raise DataError(f"treatment column '{treatment_column}' has values other than 'treatment' and "
                            "'control'; map contacted members to 'treatment' (or 1) and held-out ones to 'control'")
        return values.replace_strict(TREATMENT_VALUES, return_dtype=pl.Float32).to_numpy()
    if not (series.dtype.is_numeric() or series.dtype == pl.Boolean):
        raise DataError(f"treatment column '{treatment_column}' has dtype {series.dtype}; it must be 0/1 or "
                        "'treatment'/'control'")
    values = series.cast(pl.Float64).to_numpy()
    if not np.isin(values, (0.0, 1.0)).all():
        raise DataError(f"treatment column '{treatment_column}' has values other than 0 and 1; "
                        "map contacted members to 1 and control members to 0")
    return values.astype(np.float32)


def check_random_assignment(treated: np.ndarray, planned_share: float) -> None:
    """DataError when the observed treated share is implausible for a random draw at ``planned_share``."""
    if not 0 < planned_share < 1:
        raise DataError(f"treated share {planned_share} is not allowed: use a number between 0 and 1")
    n = treated.size
    observed = float(treated.mean())
    standard_error = np.sqrt(planned_share * (1 - planned_share) / n)
    if abs(observed - planned_share) > ASSIGNMENT_TOLERANCE_SE * standard_error:
        raise DataError(
            f"{observed:.1%} of the {n} members are treated but the planned treated share is {planned_share:.0%}"
            f" (more than {ASSIGNMENT_TOLERANCE_SE:g} standard errors apart): the assignment does not look "
            "random; use the campaign's own members and groups")


RISK_CLIP = 1e-4
"""Churn probabilities are clipped to [RISK_CLIP, 1 - RISK_CLIP] before their logit becomes the offset."""


def risk_logits(frame: pl.DataFrame, risk_column: str | None) -> np.ndarray:
    """The offset per row: logit of the churn model's probability in ``risk_column`` (zeros without one)."""
    if risk_column is None:
        return np.zeros(frame.height, np.float32)
    if risk_column not in frame.columns:
        raise DataError(f"risk column '{risk_column}' is not in the members frame; check the name")
    risk = frame[risk_column].cast(pl.Float64).to_numpy()
    if np.isnan(risk).any() or (risk < 0).any() or (risk > 1).any():
        raise DataError(f"risk column '{risk_column}' has NULL, NaN or values outside 0..1; score every member "
                        "with the churn model first")
    risk = np.clip(risk, RISK_CLIP, 1 - RISK_CLIP)
    return np.log(risk / (1 - risk)).astype(np.float32)


# --- The network -------------------------------------------------------------------------------------


class UpliftNetwork(network.ChurnNetwork):
    """The churn network with two heads per ensemble member: control logit and treated logit.

    The treated logit is the control logit plus an effect head that starts at zero.
    """

    def __init__(self, shape: network.NetworkShape, *, rngs: nnx.Rngs):
        super().__init__(shape, rngs=rngs)
        self.effect_kernel = nnx.Param(jnp.zeros_like(self.head_kernel[...]))
        self.effect_bias = nnx.Param(jnp.zeros_like(self.head_bias[...]))
        self.risk_weight = nnx.Param(jnp.ones_like(self.head_bias[...]))

    def __call__(self, numeric, categorical, offset, bin_edges, bin_mask, dropout_key=None) -> jax.Array:
        """Member logits (rows, k, 2): ``[..., 0]`` without contact, ``[..., 1]`` if contacted.

        ``offset`` (rows,): the churn model's logit per row (zeros without a risk column); the control
        head learns a correction to it, scaled by a learned weight per member."""
        x = self.representation(numeric, categorical, bin_edges, bin_mask, dropout_key)
        control = (jnp.sum(x * self.head_kernel[...][None], axis=-1) + self.head_bias[...][None]
                   + offset[:, None] * self.risk_weight[...][None])
        effect = jnp.sum(x * self.effect_kernel[...][None], axis=-1) + self.effect_bias[...][None]
        return jnp.stack([control, control + effect], axis=-1)


_GRAPHDEFS: dict[network.NetworkShape, nnx.GraphDef] = {}
DECAYED_PARAMETERS = train.DECAYED_PARAMETERS + ("['effect_kernel']",)


def build_uplift_network(shape: network.NetworkShape, seed: int) -> tuple[nnx.GraphDef, nnx.State]:
    graphdef, params = nnx.split(UpliftNetwork(shape, rngs=nnx.Rngs(seed)))
    return _GRAPHDEFS.setdefault(shape, graphdef), params


def _optimizer(learning_rate: float, weight_decay: float, grad_clip_norm: float):
    def decay_mask(params):
        return jax.tree_util.tree_map_with_path(
            lambda path, _: any(name in jax.tree_util.keystr(path) for name in DECAYED_PARAMETERS), params)

    return optax.chain(optax.clip_by_global_norm(grad_clip_norm),
                       optax.adamw(learning_rate, weight_decay=weight_decay, mask=decay_mask))


def _observed_arm_logits(logits: jax.Array, treated: jax.Array) -> jax.Array:
    """(rows, k, 2) logits -> (rows, k) logits of the arm each row was in."""
    return jnp.where(treated[:, None] > 0.5, logits[..., 1], logits[..., 0])


def _arm_probabilities(graphdef, params, numeric, categorical, offset, bin_edges, bin_mask) -> jax.Array:
    """Members' mean churn probability per arm, (rows, 2): without contact, if contacted."""
    logits = nnx.merge(graphdef, params)(numeric, categorical, offset, bin_edges, bin_mask)
    return jnp.mean(jax.nn.sigmoid(logits), axis=1)


_arm_probabilities_jit = jax.jit(_arm_probabilities, static_argnames=("graphdef",))


@partial(jax.jit, static_argnames=("graphdef", "settings"))
def _train_epoch(graphdef, settings: train._EpochSettings, params, opt_state, epoch_key, data, valid):
    """One epoch over shuffled batches plus the validation log loss of the observed arm."""
    numeric, categorical, offset, treated, labels, bin_edges, bin_mask = data
    rows = labels.shape[0]
    batch_size = min(settings.batch_size, rows)
    n_batches = -(-rows // batch_size)
    shuffle_key, dropout_key = jax.random.split(epoch_key)
    order = jax.random.permutation(shuffle_key, rows)
    order = jnp.resize(order, (n_batches * batch_size,)).reshape(n_batches, batch_size)
    optimizer = _optimizer(settings.learning_rate, settings.weight_decay, settings.grad_clip_norm)

    def step(carry, batch):
        params, opt_state = carry
        batch_index, rows_of_batch = batch

        def loss_fn(p):
            logits = nnx.merge(graphdef, p)(numeric[rows_of_batch], categorical[rows_of_batch],
                                            offset[rows_of_batch], bin_edges, bin_mask,
                                            jax.random.fold_in(dropout_key, batch_index))
            observed = _observed_arm_logits(logits, treated[rows_of_batch])
            return jnp.mean(optax.sigmoid_binary_cross_entropy(observed, labels[rows_of_batch][:, None]))

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), (jnp.arange(n_batches), order))
    valid_numeric, valid_categorical, valid_offset, valid_treated, valid_labels, valid_weights = valid

    def chunk_probabilities(chunk):
        return _arm_probabilities(graphdef, params, chunk[0], chunk[1], chunk[2], bin_edges, bin_mask)

    probabilities = jax.lax.map(chunk_probabilities,
                                (valid_numeric, valid_categorical, valid_offset)).reshape(-1, 2)
    observed = jnp.where(valid_treated > 0.5, probabilities[:, 1], probabilities[:, 0])
    observed = jnp.clip(observed, metrics.PROBABILITY_EPSILON, 1 - metrics.PROBABILITY_EPSILON)
    losses_valid = -(valid_labels * jnp.log(observed) + (1 - valid_labels) * jnp.log1p(-observed))
    return params, opt_state, jnp.mean(losses), jnp.sum(losses_valid * valid_weights) / jnp.sum(valid_weights)


def _chunked(arrays: list[np.ndarray], rows: int):
    """Arrays padded to whole chunks and reshaped (chunks, chunk rows, ...), plus row weights."""
    chunk = min(VALIDATION_CHUNK_ROWS, rows)
    padded_rows = -(-rows // chunk) * chunk
    out = []
    for array in arrays + [np.ones(rows, np.float32)]:
        padded = train._pad_rows(array, padded_rows)
        out.append(padded.reshape((padded_rows // chunk, chunk) + array.shape[1:]))
    numeric, categorical, offset, treated, labels, weights = out
    return (jnp.asarray(numeric), jnp.asarray(categorical), jnp.asarray(offset), jnp.asarray(treated.reshape(-1)),
            jnp.asarray(labels.reshape(-1)), jnp.asarray(weights.reshape(-1)))


# --- Fitting and predicting -----------------------------------------------------------------------


@dataclass
class UpliftModel:
    """A fitted uplift network: everything ``predict_uplift`` needs and nothing row-level."""

    preprocessor: preprocess.Preprocessor
    shape: network.NetworkShape
    params: nnx.State
    config: train.TrainConfig
    label_column: str
    treatment_column: str
    pilot: PilotSize
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    risk_column: str | None = None
    """The churn model's probability column whose logit is the control head's offset (None: no offset)."""

    @property
    def graphdef(self) -> nnx.GraphDef:
        if self.shape not in _GRAPHDEFS:
            build_uplift_network(self.shape, seed=0)
        return _GRAPHDEFS[self.shape]


@dataclass(frozen=True)
class UpliftEstimates:
    """Per member: churn probability without contact and if contacted."""

    churn_if_not_contacted: np.ndarray
    churn_if_contacted: np.ndarray

    @property
    def churn_change(self) -> np.ndarray:
        """tau(x) = P(churn | contacted) - P(churn | not contacted); negative: contact helps."""
        return self.churn_if_contacted - self.churn_if_not_contacted

    @property
    def prevented(self) -> np.ndarray:
        """-tau(x): churn prevented by a contact, the score to target by (the pilot report's sign)."""
        return self.churn_if_not_contacted - self.churn_if_contacted


UPLIFT_DEFAULTS = train.TrainConfig(hidden=64, k=8, n_bins=16, d_embed=8, dropout=0.1, patience=16,
                                    valid_fraction=0.2, test_fraction=0.3)
"""Network settings for pilots of a few thousand members (the churn defaults are sized for warehouses)."""


def fit_uplift(
    members: pl.DataFrame,
    *,
    treatment_column: str,
    label_column: str,
    id_column: str | None = None,
    exclude: tuple[str, ...] | list[str] = (),
    treated_share: float | None = None,
    config: train.TrainConfig = UPLIFT_DEFAULTS,
    rule: PilotSizeRule | None = PilotSizeRule(),
    risk_column: str | None = None,
) -> UpliftModel:
    """Fit the two-headed uplift network on randomized campaign members.

    ``config.valid_fraction`` of the members (stratified by treatment and outcome) are held out for
    early stopping; used fields of ``config``: the network sizes, optimizer, ``epochs``, ``patience``,
    ``batch_size``, ``seed``, ``n_bins``, category settings (``shared_layers = -1``, auto, means none:
    pilots are small; ``max_epoch_rows``, ``patience_rows`` and ``calibration`` are not used: the two
    arms' probabilities are left as trained, on the natural churn rate). Every column except the
    treatment, label, id and ``exclude`` columns is a feature. Deterministic for a seed.

    Raises
    ------
    PilotTooSmall
        Too few members or churners per arm (``require_learnable_pilot`` with ``rule``; ``rule=None``:
        the caller checked the whole pilot and passes a part of it).
    DataError
        Bad label or treatment values, an assignment far from ``treated_share``, unusable features.
    """
    treated = treatment_flags(members, treatment_column)
    labels = train._labels(members, label_column, "members")
    if treated_share is not None:
        check_random_assignment(treated, treated_share)
    size = pilot_size(treated, labels) if rule is None else require_learnable_pilot(treated, labels, rule)
    offset = risk_logits(members, risk_column)
    strata = (2 * treated + labels).astype(np.int64)
    learn_rows, valid_rows = splits.stratified_split_indices(
        strata, (1.0 - config.valid_fraction, config.valid_fraction), config.seed)
    learn, valid = members[learn_rows], members[valid_rows]
    not_features = tuple(c for c in (id_column, label_column, treatment_column, risk_column, *exclude)
                         if c is not None)
    preprocessor = preprocess.fit_preprocessor(learn, exclude=not_features, n_bins=config.n_bins,
                                               min_category_count=config.min_category_count,
                                               max_categories=config.max_categories)
    learn_encoded = preprocess.transform(preprocessor, learn)
    valid_encoded = preprocess.transform(preprocessor, valid)
    shape = network.NetworkShape(
        n_numeric=learn_encoded.numeric.shape[1], n_bins=config.n_bins, cardinalities=preprocessor.cardinalities,
        d_embed=config.d_embed, hidden=config.hidden, depth=config.depth, k=config.k, dropout=config.dropout,
        shared_layers=max(config.shared_layers, 0), ple_direct=config.ple_direct,
    )
    graphdef, params = build_uplift_network(shape, config.seed)
    batch_size, learning_rate = config.batch_and_learning_rate(learn_encoded.rows)
    settings = train._EpochSettings(batch_size, learning_rate, config.weight_decay, config.grad_clip_norm)
    opt_state = _optimizer(learning_rate, config.weight_decay, config.grad_clip_norm).init(params)
    bin_edges, bin_mask = jnp.asarray(preprocessor.bin_edges), jnp.asarray(preprocessor.bin_mask)
    data = (jnp.asarray(learn_encoded.numeric), jnp.asarray(learn_encoded.categorical),
            jnp.asarray(offset[learn_rows]), jnp.asarray(treated[learn_rows]), jnp.asarray(labels[learn_rows]),
            bin_edges, bin_mask)
    valid_data = _chunked([valid_encoded.numeric, valid_encoded.categorical, offset[valid_rows],
                           treated[valid_rows], labels[valid_rows]], valid_encoded.rows)
    base_key = jax.random.key(config.seed)
    history: list[dict] = []
    best_loss, best_params, best_epoch, without_gain = np.inf, params, 0, 0
    for epoch in range(1, config.epochs + 1):
        params, opt_state, train_loss, valid_loss = _train_epoch(
            graphdef, settings, params, opt_state, jax.random.fold_in(base_key, epoch), data, valid_data)
        valid_loss = float(valid_loss)
        history.append({"epoch": epoch, "train_loss": float(train_loss), "valid_log_loss": valid_loss})
        if valid_loss < best_loss:
            best_loss, best_params, best_epoch, without_gain = valid_loss, params, epoch, 0
        else:
            without_gain += 1
        if without_gain >= config.patience:
            break
    logger.info("uplift network: %d epochs, best epoch %d (validation log loss %.4f)",
                len(history), best_epoch, best_loss)
    return UpliftModel(preprocessor, shape, best_params, config, label_column, treatment_column, size,
                       history, best_epoch, risk_column)


def _bucket_rows(rows: int) -> int:
    bucket = 256
    while bucket < min(rows, PREDICT_BATCH_ROWS):
        bucket *= 2
    return bucket


def predict_uplift(model: UpliftModel | OffsetUpliftModel, frame: pl.DataFrame) -> UpliftEstimates:
    """Churn probability without and with contact for every row of ``frame`` (the features, and the model's
    risk column when it has one)."""
    if isinstance(model, OffsetUpliftModel):
        return predict_offset_uplift(model, frame)
    encoded = preprocess.transform(model.preprocessor, frame)
    offset = risk_logits(frame, model.risk_column)
    rows = encoded.rows
    if rows == 0:
        empty = np.zeros(0)
        return UpliftEstimates(empty, empty)
    batch_rows = _bucket_rows(rows)
    edges, mask = jnp.asarray(model.preprocessor.bin_edges), jnp.asarray(model.preprocessor.bin_mask)
    outputs = []
    for start in range(0, rows, batch_rows):
        numeric = train._pad_rows(encoded.numeric[start:start + batch_rows], batch_rows)
        categorical = train._pad_rows(encoded.categorical[start:start + batch_rows], batch_rows)
        offsets = train._pad_rows(offset[start:start + batch_rows], batch_rows)
        probabilities = _arm_probabilities_jit(model.graphdef, model.params, jnp.asarray(numeric),
                                               jnp.asarray(categorical), jnp.asarray(offsets), edges, mask)
        outputs.append(np.asarray(probabilities, dtype=np.float64)[: min(batch_rows, rows - start)])
    both = np.concatenate(outputs)
    return UpliftEstimates(churn_if_not_contacted=both[:, 0], churn_if_contacted=both[:, 1])


# --- The risk-offset estimator -------------------------------------------------------------------


OFFSET_L2 = 300.0
"""L2 penalty on each standardized effect (and risk-correction) coefficient of ``fit_offset_uplift``."""
EFFECT_STEPS = 8
"""Quantile steps per numeric input in the effect's design: thresholds at the pilot's 1/8 ... 7/8 quantiles."""
ESTIMATORS = ("risk_offset", "network")
"""``validate_uplift``'s estimators: the churn model's logit plus a regularized linear effect (the build's
default), and the two-headed network."""


@dataclass
class OffsetUpliftModel:
    """A fitted risk-offset uplift model: the churn model's logit, recalibrated and corrected, plus a linear
    effect on the treated, each a logistic regression coefficient (``fit_offset_uplift``). No row-level data:
    the thresholds are quantiles of the pilot's features, like the preprocessor's bin edges."""

    preprocessor: preprocess.Preprocessor
    thresholds: tuple[tuple[float, ...], ...]
    """Per numeric input, the values above which a step feature is 1."""
    center: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    """``[risk logit, correction (d), treated, effect (d), intercept]`` for ``d`` standardized design columns."""
    config: train.TrainConfig
    label_column: str
    treatment_column: str
    risk_column: str
    pilot: PilotSize
    l2: float = OFFSET_L2


def _effect_design(preprocessor: preprocess.Preprocessor, thresholds, encoded) -> np.ndarray:
    """The unscaled design of ``encoded`` (``preprocess.transform``'s output): numeric inputs, a step per
    threshold, one-hot categoricals."""
    numeric = encoded.numeric.astype(np.float64)
    steps = [(numeric[:, [j]] > np.asarray(cuts)[None, :]).astype(np.float64)
             for j, cuts in enumerate(thresholds) if cuts]
    return np.hstack([preprocess.one_hot_design_matrix(preprocessor, encoded), *steps])


def _step_thresholds(numeric: np.ndarray, steps: int) -> tuple[tuple[float, ...], ...]:
    quantiles = np.linspace(0, 1, steps + 1)[1:-1]
    out = []
    for column in numeric.T.astype(np.float64):
        cuts = np.unique(np.quantile(column, quantiles))
        out.append(tuple(float(c) for c in cuts if column.min() <= c < column.max()))
    return tuple(out)


def fit_offset_uplift(
    members: pl.DataFrame,
    *,
    treatment_column: str,
    label_column: str,
    risk_column: str,
    id_column: str | None = None,
    exclude: tuple[str, ...] | list[str] = (),
    treated_share: float | None = None,
    config: train.TrainConfig = UPLIFT_DEFAULTS,
    rule: PilotSizeRule | None = PilotSizeRule(),
    l2: float = OFFSET_L2,
    steps: int = EFFECT_STEPS,
) -> OffsetUpliftModel:
    """Fit ``P(churn | x, T) = sigmoid(a + b logit r(x) + c(x) + T g(x))`` on randomized campaign members.

    ``r`` is the churn model's probability (``risk_column``, learned from every customer's history, far more
    than a pilot holds); ``c`` corrects it and ``g`` is the effect of a contact on the churn logit, both linear
    in the standardized design (numeric inputs, ``steps`` quantile steps per numeric input, one-hot
    categoricals), every coefficient of ``c`` and ``g`` L2-penalized by ``l2``; the intercept, ``b`` and the
    mean effect are not. One penalized likelihood fitted to convergence (damped Newton): nothing stops
    before the effect is learned. Deterministic. Raises as ``fit_uplift``.
    """
    treated = treatment_flags(members, treatment_column).astype(np.float64)
    labels = train._labels(members, label_column, "members")
    if treated_share is not None:
        check_random_assignment(treated, treated_share)
    size = pilot_size(treated, labels) if rule is None else require_learnable_pilot(treated, labels, rule)
    offset = risk_logits(members, risk_column).astype(np.float64)
    not_features = tuple(c for c in (id_column, label_column, treatment_column, risk_column, *exclude)
                         if c is not None)
    preprocessor = preprocess.fit_preprocessor(members, exclude=not_features, n_bins=config.n_bins,
                                               min_category_count=config.min_category_count,
                                               max_categories=config.max_categories)
    encoded = preprocess.transform(preprocessor, members)
    thresholds = _step_thresholds(encoded.numeric, steps)
    design = _effect_design(preprocessor, thresholds, encoded)
    center, scale = design.mean(axis=0), design.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    standardized = (design - center) / scale
    columns = standardized.shape[1]
    features = np.hstack([offset[:, None], standardized, treated[:, None], treated[:, None] * standardized])
    penalty = np.concatenate([[0.0], np.full(columns, l2), [0.0], np.full(columns, l2)])
    weights = metrics.fit_logistic_regression(features, labels, penalty=penalty, max_iterations=100)
    logger.info("risk-offset uplift model: %d design columns, churn-logit weight %.3f, mean effect %.3f",
                columns, weights[0], weights[columns + 1])
    return OffsetUpliftModel(preprocessor, thresholds, center, scale, weights, config, label_column,
                             treatment_column, risk_column, size, l2)


def predict_offset_uplift(model: OffsetUpliftModel, frame: pl.DataFrame) -> UpliftEstimates:
    """Churn probability without and with contact per row (the features and the model's risk column)."""
    if frame.height == 0:
        empty = np.zeros(0)
        return UpliftEstimates(empty, empty)
    offset = risk_logits(frame, model.risk_column).astype(np.float64)
    encoded = preprocess.transform(model.preprocessor, frame)
    standardized = (_effect_design(model.preprocessor, model.thresholds, encoded) - model.center) / model.scale
    columns = standardized.shape[1]
    w = model.weights
    control = w[-1] + w[0] * offset + standardized @ w[1:columns + 1]
    effect = w[columns + 1] + standardized @ w[columns + 2:2 * columns + 2]
    return UpliftEstimates(churn_if_not_contacted=metrics._sigmoid(control),
                           churn_if_contacted=metrics._sigmoid(control + effect))


# --- Validation ---------------------------------------------------------------------------------------


def two_model_prevented(model: UpliftModel, learn: pl.DataFrame, test: pl.DataFrame) -> np.ndarray:
    """Two-model baseline: L2 logistic regressions fitted on the treated and on the control members of
    ``learn`` (the network's preprocessed features, one-hot categoricals); prevented = p_control - p_treated."""
    design = preprocess.one_hot_design_matrix(model.preprocessor, preprocess.transform(model.preprocessor, learn))
    test_design = preprocess.one_hot_design_matrix(model.preprocessor,
                                                   preprocess.transform(model.preprocessor, test))
    treated = treatment_flags(learn, model.treatment_column) == 1
    labels = train._labels(learn, model.label_column, "members")
    probabilities = []
    for arm in (treated, ~treated):
        weights = metrics.fit_logistic_regression(design[arm], labels[arm], l2=model.config.logistic_l2)
        probabilities.append(metrics.predict_logistic_regression(weights, test_design))
    return probabilities[1] - probabilities[0]


@dataclass(frozen=True)
class UpliftValidation:
    """Held-out comparison of targeting rules (``uplift_metrics.UpliftCurve`` per rule)."""

    rules: dict[str, uplift_metrics.UpliftCurve]
    """``network``, ``two_model`` and ``risk`` (when a risk score was given)."""
    test_members: int
    test_treated: int
    test_control: int
    pilot: PilotSize
    observed_effect: float
    """Held-out control churn rate - treated churn rate (the average effect, the pilot report's sign)."""
    network_gain: dict[str, tuple[float, float, float]]
    """Per other rule: the network's Qini coefficient minus that rule's, with a 95% paired bootstrap
    interval (difference, low, high) on the same held-out members."""

    def to_dict(self) -> dict:
        return {
            "rules": {name: curve.to_dict() for name, curve in self.rules.items()},
            "network_gain": {name: list(gain) for name, gain in self.network_gain.items()},
            "test_members": self.test_members, "test_treated": self.test_treated,
            "test_control": self.test_control, "observed_effect": self.observed_effect,
            "pilot": self.pilot.to_dict(),
        }


def compare_targeting(model: UpliftModel, learn: pl.DataFrame, test: pl.DataFrame,
                      risk_column: str | None = None) -> UpliftValidation:
    """Qini / uplift curves on ``test`` of the network, the two-model baseline fitted on ``learn`` and
    (with ``risk_column``) targeting by the given churn-risk score, highest first."""
    treated = treatment_flags(test, model.treatment_column)
    churned = train._labels(test, model.label_column, "test members")
    scores = {"network": predict_uplift(model, test).prevented,
              "two_model": two_model_prevented(model, learn, test)}
    if risk_column is not None:
        if risk_column not in test.columns:
            raise DataError(f"risk column '{risk_column}' is not in the members frame; check the name")
        risk = test[risk_column].cast(pl.Float64).to_numpy()
        if np.isnan(risk).any():
            raise DataError(f"risk column '{risk_column}' has NULL/NaN values; score every member first")
        scores["risk"] = risk
    effect = float(churned[treated == 0].mean() - churned[treated == 1].mean())
    return UpliftValidation(
        rules={name: uplift_metrics.uplift_curve(score, treated, churned) for name, score in scores.items()},
        test_members=test.height, test_treated=int(treated.sum()), test_control=int((1 - treated).sum()),
        pilot=model.pilot, observed_effect=effect,
        network_gain={name: uplift_metrics.qini_difference_interval(scores["network"], score, treated, churned,
                                                                   seed=model.config.seed)
                      for name, score in scores.items() if name != "network"},
    )


def split_members(members: pl.DataFrame, *, treatment_column: str, label_column: str, test_fraction: float,
                  seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(learn, test) members, stratified by treatment and outcome; ``validate_uplift``'s split."""
    strata = (2 * treatment_flags(members, treatment_column)
              + train._labels(members, label_column, "members")).astype(np.int64)
    learn_rows, test_rows = splits.stratified_split_indices(strata, (1.0 - test_fraction, test_fraction), seed)
    return members[learn_rows], members[test_rows]


def validate_uplift(
    members: pl.DataFrame,
    *,
    treatment_column: str,
    label_column: str,
    risk_column: str | None = None,
    id_column: str | None = None,
    exclude: tuple[str, ...] | list[str] = (),
    treated_share: float | None = None,
    config: train.TrainConfig = UPLIFT_DEFAULTS,
    rule: PilotSizeRule = PilotSizeRule(),
    risk_offset: bool = False,
    estimator: str = "network",
) -> tuple[UpliftModel | OffsetUpliftModel, UpliftValidation]:
    """Hold out ``config.test_fraction`` of the members (stratified by treatment and outcome), fit the
    network and the two-model baseline on the rest and compare them with risk targeting on the held-out
    members. The pilot-size rule applies to the whole pilot; the risk column is never a feature, and with
    ``risk_offset`` its logit is the control head's offset (``fit_uplift``'s ``risk_column``)."""
    treated = treatment_flags(members, treatment_column)
    labels = train._labels(members, label_column, "members")
    size = require_learnable_pilot(treated, labels, rule)
    learn, test = split_members(members, treatment_column=treatment_column, label_column=label_column,
                                test_fraction=config.test_fraction, seed=config.seed + 1)
    if estimator not in ESTIMATORS:
        raise ValueError(f"uplift estimator {estimator!r} is not one of {', '.join(ESTIMATORS)}")
    if estimator == "risk_offset":
        if risk_column is None:
            raise DataError("the risk-offset uplift estimator needs the churn model's probability: give its column")
        model = fit_offset_uplift(learn, treatment_column=treatment_column, label_column=label_column,
                                  risk_column=risk_column, id_column=id_column, exclude=exclude,
                                  treated_share=treated_share, config=config, rule=None)
        model.pilot = size
        return model, compare_targeting(model, learn, test, risk_column)
    offset_column = risk_column if risk_offset else None
    excluded = (*exclude, *((risk_column,) if risk_column and not risk_offset else ()))
    model = fit_uplift(learn, treatment_column=treatment_column, label_column=label_column, id_column=id_column,
                       exclude=excluded, treated_share=treated_share, config=config, rule=None,
                       risk_column=offset_column)
    model.pilot = size
    return model, compare_targeting(model, learn, test, risk_column)
