"""Prepare a cohort directory for training: cached image features plus fitted encodings.

    python -m data.prepare COHORT_DIR [--encoder EfficientNetB0] [--image-size 224]
                           [--weights imagenet|none|FILE] [--cache-dir DIR] [--skip-bad-images]

The study does this on first use; running it by hand front-loads the slow part (the CNN pass).
"""
from __future__ import annotations

import argparse
import json

from .dataset import prepare
from .features import EncoderSpec
from .preprocess import PreprocessConfig


def encoder_from_args(args) -> EncoderSpec:
    weights = None if args.weights.lower() in ("none", "random") else args.weights
    return EncoderSpec(name=args.encoder, image_size=args.image_size, weights=weights)


def build_parser() -> argparse.ArgumentParser:
    """The command's flags (the CLI reference is generated from it)."""
    parser = argparse.ArgumentParser(prog="python -m data.prepare", description=__doc__.split("\n")[1])
    parser.add_argument("cohort_dir", help="directory holding cohort.parquet")
    parser.add_argument("--encoder", default="EfficientNetB0", help="keras.applications model name")
    parser.add_argument("--image-size", type=int, default=224, help="encoder input side in pixels")
    parser.add_argument("--weights", default="imagenet",
                        help="'imagenet' (falls back to random weights offline, with a warning), "
                             "'none' for random weights, or a local weights file")
    parser.add_argument("--cache-dir", default=None, help="where features and encodings are kept "
                                                          "(default COHORT_DIR/cache)")
    parser.add_argument("--skip-bad-images", action="store_true",
                        help="skip and count unreadable images instead of stopping")
    parser.add_argument("--report-vocab", type=int, default=PreprocessConfig.report_vocab)
    parser.add_argument("--report-length", type=int, default=PreprocessConfig.report_length)
    return parser


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    ds = prepare(args.cohort_dir, cache_dir=args.cache_dir, encoder=encoder_from_args(args),
                 preprocess=PreprocessConfig(report_vocab=args.report_vocab,
                                             report_length=args.report_length),
                 on_bad_image="skip" if args.skip_bad_images else "raise")
    print(f"prepared dataset: {ds.directory}")
    print(json.dumps({k: ds.meta[k] for k in ("split_sizes", "tokens", "dim", "weights_used",
                                              "cleaning_counts")}, indent=1))
    if ds.meta["warning"]:
        print(f"WARNING: {ds.meta['warning']}")


if __name__ == "__main__":
    main()
