"""Train the shipped denoiser (toolchain/data/pretrained/) and record how, and how well.

    python scripts/make_pretrained.py                        # runs the recipe (12-16 min, one thread)
    python scripts/make_pretrained.py --trained A.pt --train-json A.json
                                                             # adopt a finished `cli.py train` run of it

Writes ``<name>.pt`` without its resumable training state and ``<name>.json`` with the command, the
commit it ran at (``--commit``, default HEAD), its SHA-256, the training report and the metrics on the
held-out photos. Run it from a clean checkout: the record names the commit, not local edits.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolchain.files import write_json  # noqa: E402
from toolchain.frontend.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from toolchain.verbs.pretrained import DENOISER, record, train_recipe  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trained", help="a finished run of the recipe's command (its checkpoint)")
    parser.add_argument("--train-json", help="that run's --json report")
    parser.add_argument("--commit", help="the commit the run was made at (default: HEAD)")
    a = parser.parse_args()
    torch.set_num_threads(1)
    commit = a.commit or subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                        check=True).stdout.strip()
    recipe = DENOISER
    if a.trained:
        if not a.train_json:
            parser.error("--trained needs --train-json (the run's report)")
        report = json.loads(Path(a.train_json).read_text())
        ckpt = load_checkpoint(a.trained, expect_kind="ann")
        if ckpt.meta.get("train", {}).get("config") != recipe.config.to_dict():
            parser.error(f"{a.trained}: not trained with the recipe's architecture")
        ckpt.training_state = None
        save_checkpoint(recipe.path, ckpt)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            out = Path(scratch) / "ann.pt"
            report = train_recipe(recipe, out, log=print).to_dict()
            shutil.copyfile(out, recipe.path)
    write_json(recipe.record_path, record(recipe, report, commit))
    print(json.dumps(json.loads(recipe.record_path.read_text())["metrics"], indent=1))


if __name__ == "__main__":
    main()
