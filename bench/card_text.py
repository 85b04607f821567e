"""Card text over every golden scenario (all hooks, full prefetch): how long the detail is, and how many
cards there are. Not a speed benchmark: what a clinician is given to read.

    .venv/bin/python bench/card_text.py            # median, 90th percentile and longest detail
    .venv/bin/python bench/card_text.py --show RULE  # print one rendered card of that rule
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.cards_check import golden_cards  # noqa: E402
from tests.conftest import scenario_cases  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", metavar="RULE", help="print one rendered card of this rule")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        cards = golden_cards(data_dir)
    if args.show:
        name, hook, card = next(c for c in cards if c[2]["source"]["topic"]["code"] == args.show)
        print(f"# {name} ({hook})\n\n**{card['summary']}**\n\n{card['detail']}")
        for link in card.get("links", ()):
            print(f"\n- [{link['label']}]({link['url']})")
        return
    details = sorted(len(c["detail"]) for _, _, c in cards)
    summaries = [len(c["summary"]) for _, _, c in cards]
    print(f"cards: {len(cards)} over {len(scenario_cases())} scenario requests")
    print(
        f"detail characters: median {statistics.median(details):.0f}, "
        f"90th percentile {details[int(0.9 * (len(details) - 1))]}, longest {details[-1]}"
    )
    print(f"summary characters: median {statistics.median(summaries):.0f}, longest {max(summaries)}")


if __name__ == "__main__":
    main()
