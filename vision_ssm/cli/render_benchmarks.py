"""Writes BENCHMARKS.md from the committed result files in vision_ssm/bench/results/.

    python tools/render_benchmarks.py            # rewrite BENCHMARKS.md
    python tools/render_benchmarks.py --check    # exit 1 if BENCHMARKS.md is out of date
"""
import argparse
import sys
from pathlib import Path

from vision_ssm.bench import render
from vision_ssm.cli import REPO_ROOT
from vision_ssm.files import write_text_atomic


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default=str(render.RESULTS_DIR), help="folder of result JSON files")
    p.add_argument("--out", default=str(REPO_ROOT / "BENCHMARKS.md"))
    p.add_argument("--check", action="store_true", help="compare instead of writing")
    args = p.parse_args(argv)
    page = render.render(render.load_results(Path(args.results)))
    out = Path(args.out)
    if args.check:
        if not out.is_file() or out.read_text() != page:
            print(f"{out} is out of date: run python tools/render_benchmarks.py", file=sys.stderr)
            return 1
        return 0
    write_text_atomic(out, page)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
