"""Draw the reliability diagram and the precision/coverage curves of an evaluation report.

    python -m bench.reliability_plot REPORT.json --out docs/reliability.png

REPORT.json is what ``python -m training.evaluate --gold --out REPORT`` writes; its ``confidence`` section
holds, per field, the reliability bins (mean confidence against the share right) and the curves.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def draw(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confidence = report["confidence"]
    figure, (reliability, curves) = plt.subplots(1, 2, figsize=(11, 4.6))
    reliability.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for name, rows in confidence["reliability"].items():
        reliability.plot(
            [r["confidence"] for r in rows],
            [r["right"] for r in rows],
            marker="o",
            label=f"{name} (ECE {confidence['ece'][name]:.3f})",
        )
    reliability.set(xlabel="confidence (bin mean)", ylabel="share right", xlim=(0, 1), ylim=(0, 1),
                    title=f"Reliability, {confidence['items']} gold items")
    reliability.legend(loc="upper left", fontsize=8)
    for name, rows in confidence["curves"].items():
        rows = [r for r in rows if r["precision"] is not None]  # a threshold that keeps nothing has no precision
        curves.plot([r["coverage"] for r in rows], [r["precision"] for r in rows], marker=".", label=name)
        for row in rows[::2]:
            curves.annotate(f"{row['threshold']:.1f}", (row["coverage"], row["precision"]), fontsize=7, alpha=0.7)
    curves.set(xlabel="coverage (share of items keeping the field)", ylabel="precision (share of kept that is right)",
               xlim=(0, 1.02), ylim=(0.5, 1.0), title="Precision against coverage by threshold")
    curves.legend(loc="lower left", fontsize=8)
    figure.suptitle(f"{report.get('name', '')}: model {report['model'].get('version', '')}", fontsize=9)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    report = json.loads(args.report.read_text(encoding="utf-8"))
    if not report.get("confidence"):
        raise SystemExit(f"error: {args.report} has no confidence section (a --gold or --data report of a model with a calibration)")
    draw(report, args.out)
    print(args.out)


if __name__ == "__main__":
    main()
