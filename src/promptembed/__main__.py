"""``python -m promptembed``: the command line (also what ``torchrun -m promptembed finetune ...`` runs)."""

from __future__ import annotations

import sys

from promptembed.cli import main

if __name__ == "__main__":
    sys.exit(main())
