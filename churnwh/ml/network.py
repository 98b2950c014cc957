"""The churn network (flax.nnx) and the pure scoring function built on it.

Architecture (TabM-style, Gorishniy et al. 2024, on piecewise-linear encodings, Gorishniy et al.
2022):

1. every numeric input is piecewise-linear encoded over its training-quantile bins (edges come from
   the preprocessor, passed in as arrays) and mapped by its own linear layer + ReLU to ``d_embed``;
2. every categorical column has an embedding (one shared table with per-column offsets, row 0 of
   each column is its unknown slot);
3. the embeddings are concatenated and fed to ``k`` ensemble members that share one MLP backbone:
   the first ``shared_layers`` layers are plain linear layers computed once per row (the widest
   layer, so this is where the cost is saved), each later layer is BatchEnsemble-style,
   ``y_i = ((x_i * r_i) @ W) * s_i + b_i`` for member i,
   with shared ``W`` and rank-1 member adapters ``r_i, s_i`` (first-layer ``r`` random +-1 so the
   members differ from the start, all others ones);
4. each member has its own linear head giving one logit.

Members are trained with the mean of their individual losses and combined by averaging
*probabilities*; ``ensemble_logit`` returns the logit of that mean probability (what calibration and
attributions use).

``member_logits(graphdef, params, inputs..., bin_edges, bin_mask)`` is pure: given the parameters,
the preprocessor arrays and a batch it always returns the same logits, with no hidden state, so it
can be shipped to Spark executors.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


@dataclass(frozen=True)
class NetworkShape:
    """Everything needed to rebuild the network (sizes only, no weights)."""

    n_numeric: int
    n_bins: int
    cardinalities: tuple[int, ...]
    d_embed: int = 16
    hidden: int = 256
    depth: int = 2
    k: int = 8
    dropout: float = 0.1
    shared_layers: int = 0
    ple_direct: bool = False
    """True: the flattened piecewise-linear encodings go straight into the first backbone layer
    (one large matrix product, cheap on CPU) instead of a per-feature linear + ReLU embedding."""
    """How many first backbone layers are plain linear layers shared by all members (computed once
    per row instead of k times); the ensemble starts after them. 0 = every layer is BatchEnsemble."""

    def to_dict(self) -> dict:
        return {**self.__dict__, "cardinalities": list(self.cardinalities)}

    @classmethod
    def from_dict(cls, values: dict) -> NetworkShape:
        """Rebuild a shape; fields missing in older artifacts take their (old-behaviour) default."""
        return cls(**{**values, "cardinalities": tuple(values["cardinalities"])})


def piecewise_linear_encoding(x: jax.Array, bin_edges: jax.Array, bin_mask: jax.Array) -> jax.Array:
    """Piecewise-linear encoding (rows, inputs) -> (rows, inputs, n_bins).

    Component ``t`` is the position of ``x`` inside bin ``t`` clipped to [0, 1]; the first bin is not
    clipped below and the last real bin is not clipped above (so values beyond the training range
    extrapolate linearly). Padded bins (``bin_mask == 0``) encode to 0.
    """
    left = bin_edges[:, :-1]
    width = bin_edges[:, 1:] - left
    width = jnp.where(width > 0, width, 1.0)
    ratio = (x[:, :, None] - left[None]) / width[None]
    n_bins = bin_mask.shape[1]
    bin_index = jnp.arange(n_bins)[None, :]
    last_real_bin = (bin_mask.sum(axis=1) - 1).astype(jnp.int32)[:, None]
    clipped_below = jnp.where(bin_index > 0, jnp.maximum(ratio, 0.0), ratio)
    clipped = jnp.where(bin_index < last_real_bin, jnp.minimum(clipped_below, 1.0), clipped_below)
    return clipped * bin_mask[None]


class BatchEnsembleLinear(nnx.Module):
    """Linear layer shared by ``k`` members, each with rank-1 input/output adapters and a bias."""

    def __init__(self, d_in: int, d_out: int, k: int, *, random_sign_input: bool, rngs: nnx.Rngs):
        self.kernel = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), (d_in, d_out)))
        if random_sign_input:
            signs = jax.random.rademacher(rngs.params(), (k, d_in), dtype=jnp.float32)
            self.adapter_in = nnx.Param(signs)
        else:
            self.adapter_in = nnx.Param(jnp.ones((k, d_in), jnp.float32))
        self.adapter_out = nnx.Param(jnp.ones((k, d_out), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((k, d_out), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        """(rows, k, d_in) -> (rows, k, d_out)."""
        return ((x * self.adapter_in[...]) @ self.kernel[...]) * self.adapter_out[...] + self.bias[...]


class ChurnNetwork(nnx.Module):
    """Piecewise-linear numeric embeddings + categorical embeddings + TabM-style ensemble MLP."""

    def __init__(self, shape: NetworkShape, *, rngs: nnx.Rngs):
        self.shape = shape
        d = shape.d_embed
        if shape.n_numeric and not shape.ple_direct:
            fan_in_scale = 1.0 / np.sqrt(shape.n_bins)
            self.numeric_weight = nnx.Param(
                jax.random.uniform(rngs.params(), (shape.n_numeric, shape.n_bins, d), jnp.float32,
                                   -fan_in_scale, fan_in_scale)
            )
            self.numeric_bias = nnx.Param(
                jax.random.uniform(rngs.params(), (shape.n_numeric, d), jnp.float32,
                                   -fan_in_scale, fan_in_scale)
            )
        if shape.cardinalities:
            self.category_offsets = tuple(int(o) for o in np.cumsum((0,) + shape.cardinalities[:-1]))
            self.category_embedding = nnx.Embed(
                sum(shape.cardinalities), d,
                embedding_init=nnx.initializers.normal(stddev=1.0 / np.sqrt(d)), rngs=rngs,
            )
        numeric_width = shape.n_numeric * (shape.n_bins if shape.ple_direct else d)
        d_in = numeric_width + d * len(shape.cardinalities)
        shared = min(shape.shared_layers, max(shape.depth - 1, 0))
        shared_layers = []
        for _ in range(shared):
            shared_layers.append(nnx.Linear(d_in, shape.hidden, rngs=rngs))
            d_in = shape.hidden
        self.shared_backbone = nnx.List(shared_layers)
        layers = []
        for depth_index in range(shape.depth - shared):
            layers.append(BatchEnsembleLinear(d_in, shape.hidden, shape.k,
                                              random_sign_input=depth_index == 0, rngs=rngs))
            d_in = shape.hidden
        self.backbone = nnx.List(layers)
        self.head_kernel = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), (shape.k, d_in)))
        self.head_bias = nnx.Param(jnp.zeros((shape.k,), jnp.float32))

    def __call__(
        self,
        numeric: jax.Array,
        categorical: jax.Array,
        bin_edges: jax.Array,
        bin_mask: jax.Array,
        dropout_key: jax.Array | None = None,
    ) -> jax.Array:
        """Member logits (rows, k). Dropout is applied only when ``dropout_key`` is given."""
        x = self.representation(numeric, categorical, bin_edges, bin_mask, dropout_key)
        return jnp.sum(x * self.head_kernel[...][None], axis=-1) + self.head_bias[...][None]

    def representation(
        self,
        numeric: jax.Array,
        categorical: jax.Array,
        bin_edges: jax.Array,
        bin_mask: jax.Array,
        dropout_key: jax.Array | None = None,
    ) -> jax.Array:
        """Every member's last hidden layer (rows, k, hidden): what the heads read."""
        embeddings = []
        if self.shape.n_numeric:
            encoded = piecewise_linear_encoding(numeric, bin_edges, bin_mask)
            if self.shape.ple_direct:
                embeddings.append(encoded.reshape(numeric.shape[0], -1))
        if self.shape.n_numeric and not self.shape.ple_direct:
            numeric_embedding = jnp.einsum("nft,ftd->nfd", encoded, self.numeric_weight[...])
            embeddings.append(jax.nn.relu(numeric_embedding + self.numeric_bias[...]))
        if self.shape.cardinalities:
            indices = categorical + jnp.asarray(self.category_offsets, jnp.int32)[None, :]
            embeddings.append(self.category_embedding(indices).reshape(numeric.shape[0], -1))
        x = jnp.concatenate([e.reshape(numeric.shape[0], -1) for e in embeddings], axis=1)

        def dropout(x, layer_index):
            if dropout_key is None or self.shape.dropout <= 0:
                return x
            keep = 1.0 - self.shape.dropout
            mask = jax.random.bernoulli(jax.random.fold_in(dropout_key, layer_index), keep, x.shape)
            return jnp.where(mask, x / keep, 0.0)

        for layer_index, layer in enumerate(self.shared_backbone):
            x = dropout(jax.nn.relu(layer(x)), layer_index)
        x = jnp.broadcast_to(x[:, None, :], (x.shape[0], self.shape.k, x.shape[1]))
        for layer_index, layer in enumerate(self.backbone, start=len(self.shared_backbone)):
            x = dropout(jax.nn.relu(layer(x)), layer_index)
        return x


def build_network(shape: NetworkShape, seed: int) -> tuple[nnx.GraphDef, nnx.State]:
    """Fresh network split once into its static graph and its parameter state."""
    return nnx.split(ChurnNetwork(shape, rngs=nnx.Rngs(seed)))


def network_structure(shape: NetworkShape) -> tuple[nnx.GraphDef, nnx.State]:
    """The graph and the parameter shapes (``jax.ShapeDtypeStruct`` leaves) of a network of ``shape``,
    without initializing it: eager initialization dispatches (and compiles) every random op one by one,
    seconds on a loaded CPU, and loading a saved model or scoring needs only the structure."""
    return nnx.split(nnx.eval_shape(lambda: ChurnNetwork(shape, rngs=nnx.Rngs(0))))


def member_logits(
    graphdef: nnx.GraphDef,
    params: nnx.State,
    numeric: jax.Array,
    categorical: jax.Array,
    bin_edges: jax.Array,
    bin_mask: jax.Array,
    dropout_key: jax.Array | None = None,
) -> jax.Array:
    """Pure forward pass: logits (rows, k) of every ensemble member."""
    return nnx.merge(graphdef, params)(numeric, categorical, bin_edges, bin_mask, dropout_key)


def ensemble_logit(logits: jax.Array) -> jax.Array:
    """Logit of the members' mean probability, (rows, k) -> (rows,), computed in log space."""
    k = logits.shape[-1]
    log_mean_p = jax.nn.logsumexp(jax.nn.log_sigmoid(logits), axis=-1) - jnp.log(k)
    log_mean_not_p = jax.nn.logsumexp(jax.nn.log_sigmoid(-logits), axis=-1) - jnp.log(k)
    return log_mean_p - log_mean_not_p


def score_batch(
    graphdef: nnx.GraphDef,
    params: nnx.State,
    numeric: jax.Array,
    categorical: jax.Array,
    bin_edges: jax.Array,
    bin_mask: jax.Array,
) -> jax.Array:
    """Pure scoring of one batch: the ensemble logit (rows,), uncalibrated, no dropout."""
    return ensemble_logit(member_logits(graphdef, params, numeric, categorical, bin_edges, bin_mask))


score_batch_jit = jax.jit(score_batch, static_argnames=("graphdef",))
