"""Rebuild the shipped digits classifier (ebm_ppl/assets/digits_classifier.{msgpack,json}).

    .venv/bin/python benchmarks/train_digits_classifier.py [--out PATH] [--steps N] [--seed S]

Trains on the digits training split only (see ebm_ppl.metrics.train_digits_classifier);
deterministic given the seed on a given platform (CPU). Prints the card as JSON.
"""

import argparse
import json
import os
import time

from ebm_ppl.metrics.digits import CLASSIFIER_WEIGHTS, train_digits_classifier


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=CLASSIFIER_WEIGHTS)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.time()
    _, card = train_digits_classifier(steps=args.steps, seed=args.seed, out=args.out, progress=True)
    card["wall_time_s"] = round(time.time() - t0, 1)
    print(json.dumps(card, indent=2))
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
