"""The prepared dataset a study trains on: the cohort (the synthetic one generated on first use),
its cached image features and encodings. Used by the driver before Ray starts and by the plain
loop of the benchmarks (no Ray)."""
from __future__ import annotations

from pathlib import Path


def prepare_data(args, cohort_dir: Path):
    """Cohort directory (synthetic generated on first use) -> prepared dataset (cached)."""
    from data.dataset import prepare
    from data.features import EncoderSpec
    from data.synthetic import generate

    if args.data == "synthetic" and not (cohort_dir / "cohort.parquet").exists():
        print(f"generating the synthetic cohort ({args.n_synthetic} studies, data seed {args.data_seed}) "
              f"in {cohort_dir}")
        generate(cohort_dir, n=args.n_synthetic, seed=args.data_seed, image_size=args.image_size)
    weights = None if args.weights.lower() in ("none", "random") else args.weights
    print(f"preparing features and encodings for {cohort_dir} (cached after the first run)")
    return prepare(cohort_dir, cache_dir=args.cache_dir, encoder=EncoderSpec(args.encoder, args.image_size, weights))
