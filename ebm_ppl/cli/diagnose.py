"""``ebm-ppl diagnose``: R-hat / ESS report (PNGs + JSON) of chains.

    ebm-ppl diagnose FILE.npz --out DIR [--json]
    ebm-ppl diagnose CKPT|--target NAME --sampler nuts|hmc|progressive|long-run [--chains C] [--steps N] --out DIR

A .npz written by ``ebm-ppl sample`` holds ``chains`` (C, N, *data_shape) and per-draw
statistics; otherwise the chains are drawn first (as ``ebm-ppl sample`` would).
Writes DIR/trace.png, DIR/rank.png (energy and 4 fixed random projections), DIR/diagnostics.json.
"""

from __future__ import annotations

import os

from ebm_ppl.cli import UsageError

HELP = "R-hat and bulk/tail ESS over pixels and energy, trace and rank plots (PNGs + JSON)"
STATS = ("log_density", "acceptance_rate", "step_size", "is_divergent", "tree_depth")


def add_arguments(parser):
    parser.add_argument("ckpt", nargs="?", help="a .npz from `ebm-ppl sample`, or a checkpoint folder")
    parser.add_argument("--target", help="a named analytic target (chains are drawn first)")
    parser.add_argument("--schedule", default=None)
    parser.add_argument("--sampler", default="nuts", choices=("progressive", "nuts", "hmc", "long-run"))
    parser.add_argument("--inner", default="mala")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--n", type=int, default=400, help="draws in all (progressive, long-run)")
    parser.add_argument("--level", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output folder")
    parser.set_defaults(_energy_required=True)


def run(args) -> dict:
    import numpy as np

    from ebm_ppl import diagnostics

    if args.ckpt and args.ckpt.endswith(".npz"):
        if not os.path.exists(args.ckpt):
            raise UsageError(f"no such file: {args.ckpt}")
        data = np.load(args.ckpt)
        if "chains" not in data:
            raise UsageError(f"{args.ckpt} holds no 'chains' array (write it with `ebm-ppl sample ... --out FILE.npz`)")
        chains = data["chains"]
        stats = {k: data[k] for k in STATS if k in data and data[k].shape[:1] == chains.shape[:1]}
        source = args.ckpt
    else:
        from ebm_ppl.cli.common import resolve_energy
        from ebm_ppl.cli.sample import draw

        energy = resolve_energy(args)
        out = draw(
            energy,
            args.sampler,
            n=args.n,
            chains=args.chains,
            steps=args.steps,
            inner=args.inner,
            level=args.level,
            seed=args.seed,
        )
        chains = out["chains"]
        stats = {k: out[k] for k in STATS if k in out}
        source = args.target or args.ckpt
    if chains.ndim < 3 or chains.shape[1] < 4:
        raise UsageError(f"need chains of shape (chains, draws >= 4, ...), got {chains.shape}")
    dt = diagnostics.to_datatree(chains, stats)
    summary = diagnostics.write_report(dt, args.out, extra={"source": source})
    e = summary.get("energy", {})
    print(
        f"{summary['num_chains']} chains x {summary['num_draws']} draws: max R-hat {summary['pixels']['max_rhat']:.3f} "
        f"min bulk ESS {summary['pixels']['min_ess_bulk']:.0f}; energy R-hat {e.get('rhat', float('nan')):.3f}; "
        f"report in {args.out}"
    )
    return summary
