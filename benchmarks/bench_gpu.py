"""Training throughput of the default churn network on a GPU, next to the CPU on the same data.

Usage::

    python benchmarks/bench_gpu.py                       # 1,000,000 synthetic rows
    python benchmarks/bench_gpu.py --rows 4000000 --epochs 3
    python benchmarks/bench_gpu.py --frame training_set.parquet   # a saved marts.training_set

When JAX sees no GPU it says so and exits 0. Otherwise it trains the default ``TrainConfig`` (auto
batch size, so 4,096-row batches at this size) for ``--epochs`` epochs with early stopping off, on
the GPU and then on the CPU (``--cpu-epochs``, default 1: the CPU is slow), on the same encoded
rows, and reports training rows per second of each (the first, compiling epoch excluded) and
scoring rows per second. The synthetic frame has the demo training set's shape: 40 features
(34 numeric with some NULLs, 6 categorical), an 8% churn rate driven by non-linear interactions.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def synthetic_frame(rows: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(rows, 34)).astype(np.float32)
    numeric[rng.random((rows, 34)) < 0.02] = np.nan
    filled = np.nan_to_num(numeric)
    categories = rng.integers(0, 6, size=(rows, 6))
    logit = (-2.9 + 0.8 * filled[:, 0] - 0.6 * filled[:, 1] + 0.9 * filled[:, 2] * filled[:, 3]
             + 0.7 * (filled[:, 4] > 1.0) * (categories[:, 0] == 1) + 0.3 * np.abs(filled[:, 5]))
    churned = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    columns = {f"x{i}": numeric[:, i] for i in range(34)}
    columns.update({f"c{i}": np.array(list("abcdef"))[categories[:, i]] for i in range(6)})
    months = np.array(["2025-01-01", "2025-02-01", "2025-03-01", "2025-04-01"], dtype="datetime64[D]")
    return pl.DataFrame({"customer_pseudonym": np.arange(rows).astype(str),
                         "observation_date": months[np.arange(rows) % 4], **columns, "churned": churned})


def device_throughput(device, data_np, shape, config, epochs: int) -> tuple[float, float]:
    """(training rows/s after the first epoch, scoring rows/s) on ``device``."""
    import jax
    import jax.numpy as jnp

    from churnwh.ml import network, train

    with jax.default_device(device):
        graphdef = train._graphdef_for(shape)
        params = network.build_network(shape, seed=config.seed)[1]
        rows = int(data_np[5])  # the real rows; the arrays are padded to train._row_bucket
        batch, learning_rate = config.batch_and_learning_rate(rows)
        settings = train._EpochSettings(batch, learning_rate, config.weight_decay,
                                        config.grad_clip_norm, 0)
        opt_state = train.make_optimizer(learning_rate, config.weight_decay,
                                         config.grad_clip_norm).init(params)
        data = tuple(jax.device_put(jnp.asarray(a), device) for a in data_np)
        key = jax.random.key(config.seed)
        seconds = []
        for epoch in range(epochs + 1):
            started = time.perf_counter()
            params, opt_state, loss = train._train_epoch(
                graphdef, settings, params, opt_state, jax.random.fold_in(key, epoch), data)
            float(loss)
            seconds.append(time.perf_counter() - started)
        training = rows * epochs / sum(seconds[1:])
        score = jax.jit(network.score_batch, static_argnames=("graphdef",))
        chunk = min(rows, 65536)
        numeric, categorical = data[0][:chunk], data[1][:chunk]
        score(graphdef, params, numeric, categorical, data[3], data[4]).block_until_ready()
        started = time.perf_counter()
        repeats = max(1, rows // chunk)
        for _ in range(repeats):
            out = score(graphdef, params, numeric, categorical, data[3], data[4])
        out.block_until_ready()
        scoring = chunk * repeats / (time.perf_counter() - started)
    return training, scoring


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--frame", type=Path, help="a Parquet training frame instead of synthetic rows")
    parser.add_argument("--epochs", type=int, default=3, help="timed GPU epochs (after one compiling epoch)")
    parser.add_argument("--cpu-epochs", type=int, default=1, help="timed CPU epochs")
    args = parser.parse_args()

    import jax

    gpus = [d for d in jax.devices() if d.platform == "gpu"] if _has_backend(jax, "gpu") else []
    if not gpus:
        print(f"no GPU visible to JAX (backend: {jax.default_backend()}, devices: {jax.devices()}); "
              "nothing to measure. Install jax[cuda12] on a machine with a GPU to run this.")
        return
    cpu = jax.devices("cpu")[0]

    from churnwh.ml import network, preprocess, splits, train

    frame = pl.read_parquet(args.frame) if args.frame else synthetic_frame(args.rows)
    train_part, _, _ = splits.time_split(frame, "observation_date")
    config = train.TrainConfig()
    exclude = ("customer_pseudonym", "churned", "observation_date")
    preprocessor = preprocess.fit_preprocessor(train_part, exclude=exclude, n_bins=config.n_bins)
    encoded = preprocess.transform(preprocessor, train_part)
    labels = train_part["churned"].cast(pl.Float32).to_numpy()
    shape = network.NetworkShape(
        n_numeric=encoded.numeric.shape[1], n_bins=config.n_bins,
        cardinalities=preprocessor.cardinalities, d_embed=config.d_embed, hidden=config.hidden,
        depth=config.depth, k=config.k, dropout=config.dropout,
        shared_layers=config.shared_layers_for(encoded.rows),
        ple_direct=config.ple_direct)
    data_np = tuple(np.asarray(a) for a in train._training_data(encoded, labels, preprocessor.bin_edges,
                                                                 preprocessor.bin_mask))
    print(f"{train_part.height:,d} training rows, {encoded.numeric.shape[1]} numeric inputs, "
          f"{len(preprocessor.cardinalities)} categorical; "
          f"batch/lr {config.batch_and_learning_rate(train_part.height)}")
    gpu_train, gpu_score = device_throughput(gpus[0], data_np, shape, config, args.epochs)
    print(f"GPU {gpus[0].device_kind}: training {gpu_train:,.0f} rows/s, scoring {gpu_score:,.0f} rows/s", flush=True)
    cpu_train, cpu_score = device_throughput(cpu, data_np, shape, config, args.cpu_epochs)
    print(f"CPU: training {cpu_train:,.0f} rows/s, scoring {cpu_score:,.0f} rows/s")
    print(f"GPU / CPU: training {gpu_train / cpu_train:.1f}x, scoring {gpu_score / cpu_score:.1f}x")


def _has_backend(jax, platform: str) -> bool:
    try:
        return bool(jax.devices(platform))
    except RuntimeError:
        return False


if __name__ == "__main__":
    main()
