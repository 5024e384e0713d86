#!/usr/bin/env python3
"""Run an exported ``.net`` file as one Lava process in your own Lava script.

``toolchain.LavaNetwork(net_config=path)`` is a hierarchical Lava process (as lava-dl's
``netx.hdf5.Network``) with an ``inp`` and an ``out`` port, built from Lava's stock ``Conv`` synapses
and this toolchain's MT neurons. This script connects a ``RingBuffer`` source of the image's integer
levels to ``inp`` and a ``RingBuffer`` sink to ``out``, runs ``latency + T`` Lava steps under its
own run config and decodes the output accumulator::

    python examples/lava_network.py model.net                     # a random image of the input's size
    python examples/lava_network.py model.net --image noisy.npy --out denoised.npy
    python examples/lava_network.py model.net --lava-models       # Lava's own (slow) stock models
    python examples/lava_network.py model.net --free-running      # the fast models without the per-step barrier
    python examples/lava_network.py model.net --check             # compare with the reference simulator

Timing: layer l works on logical step k at Lava step depth(l) + 1 + k, so the output accumulator
holds its T-step sum at Lava step ``net.output_step()`` = latency + T, the last step run. A sink
with a buffer of one step keeps exactly that value (reading a Var costs one message per element).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout without installing


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("net", help="a .net file written by `export` (or a stock lava-dl netx file: see --help)")
    p.add_argument("--image", help="a (C, H, W) .npy image in [0, 1] of the network's input size (default: random)")
    p.add_argument("--steps", type=int, help="T (default: the file's)")
    p.add_argument("--lava-models", action="store_true",
                   help="run Lava's own stock models (plain Loihi2SimCfg(select_tag='fixed_pt')), not the fast ones")
    p.add_argument("--free-running", action="store_true",
                   help="the fast models in their AsyncProtocol form (no per-step barrier; the RingBuffers stay "
                        "LoihiProtocol)")
    p.add_argument("--check", action="store_true", help="compare the output with the reference simulator")
    p.add_argument("--out", help="write the decoded output (C, H, W) here (.npy)")
    args = p.parse_args(argv)

    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    from toolchain import LavaNetwork

    net = LavaNetwork(net_config=args.net, steps=args.steps)
    if net.stock:
        raise SystemExit("a stock netx file: net.netx is lava-dl's own netx.hdf5.Network; drive it as lava-dl does")
    shape = tuple(net.network.input.shape)
    image = np.load(args.image) if args.image else np.random.default_rng(0).random(shape)
    if image.shape != shape:
        raise SystemExit(f"the image is {image.shape}, the network takes {shape}")

    source = Source(data=net.encode(image)[..., None])     # (W, H, C, 1): the same frame every step
    sink = Sink(shape=net.out.shape, buffer=1)             # keeps the last step's accumulator
    source.s_out.connect(net.inp)
    net.out.connect(sink.a_in)
    run_cfg = (Loihi2SimCfg(select_tag="fixed_pt") if args.lava_models
               else net.run_config(free_running=args.free_running))
    steps = net.lava_steps()                               # latency + T
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=run_cfg)
        accumulator = sink.data.get()[..., 0]
    finally:
        net.stop()
    output = net.decode(accumulator)                       # A / (unit T), (C, H, W)
    print(f"{args.net}: {len(net.processes())} processes, latency {net.latency}, T = {net.steps}, "
          f"{steps} Lava steps; output {output.shape}, mean {output.mean():.4f}")
    if args.out:
        np.save(args.out, output)
    if args.check:
        from toolchain import ReferenceSimulator

        reference = ReferenceSimulator(net.network).run(image[None], net.steps)
        same = np.array_equal(np.rint(accumulator).astype(np.int64).transpose(2, 1, 0), reference.accumulator[0])
        print("identical to the reference simulator" if same else "DIFFERENT from the reference simulator")
        return 0 if same else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
