"""The `daml` command (console script): `daml detect VIDEO_OR_FOLDER... --model PATH`.

Exit status of `daml detect`: 0 when every video was scored, 1 when some were not (each has
a row with its reason in videos.csv), 2 for a usage error or a model file that cannot be used.
Bad input never shows a traceback. Heavy packages are imported only once a command runs, so
`--help` answers at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from daml.errors import DamlError

SCORED, SOME_FAILED, UNUSABLE = 0, 1, 2


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="daml", description=__doc__.splitlines()[0])
    commands = top.add_subparsers(dest="command", required=True)
    detect = commands.add_parser(
        "detect",
        help="score videos with a trained model",
        description=(
            "Score videos with a trained model. Frames are sampled, faces detected, aligned "
            "and resized exactly as the model's training faces were (the model file carries "
            "those settings). Writes videos.csv (one score per video: the mean frame "
            "probability of fake), frames.csv and detections.json, and with --plot a "
            "picture per video under plots/."
        ),
        epilog=(
            "Exit status: 0 every video scored; 1 some failed (reason rows in videos.csv); "
            "2 usage error or unusable model file."
        ),
    )
    detect.add_argument("inputs", nargs="+", metavar="VIDEO_OR_FOLDER",
                        help="video files, or folders searched recursively for videos")
    detect.add_argument("--model", required=True, type=Path,
                        help="a model.pt of results/train/, or a models.pt of results/evaluate/ "
                             "(fine-tuned models; pick one with --adapted)")
    detect.add_argument("--adapted", metavar="KEY",
                        help="with a models.pt: the fine-tuned model TARGET/shotsK/episodeE")
    detect.add_argument("--out", type=Path, default=Path("."),
                        help="output folder (default: the current folder)")
    detect.add_argument("--plot", action="store_true",
                        help="also draw each video's face crops and score against time")
    detect.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    detect.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="auto: bf16 where the hardware computes it natively (as the "
                             "evaluate stage)")
    detect.add_argument("--batch-size", type=int, default=64, help="faces per forward pass")
    detect.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch and the face detector (default 1)")
    detect.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        from daml.detect import DetectSettings, detect_videos

        if args.batch_size < 1 or args.threads < 0:
            raise DamlError("--batch-size must be at least 1 and --threads at least 0")
        table = detect_videos(
            args.inputs, args.model, args.out,
            DetectSettings(args.device, args.precision, args.batch_size, args.threads),
            adapted=args.adapted, plot=args.plot, progress=not args.quiet,
        )
    except DamlError as error:
        print(f"daml {args.command}: error: {error}", file=sys.stderr)
        return UNUSABLE
    failed = int((table["status"] == "failed").sum())
    print(f"{len(table) - failed} of {len(table)} videos scored; results in {args.out}/"
          + (f" ({failed} failed: see the reason column of videos.csv)" if failed else ""))
    return SOME_FAILED if failed else SCORED


if __name__ == "__main__":
    sys.exit(main())
