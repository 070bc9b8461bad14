"""``python -m helpers.explain --help``"""
import sys

from .cli import main

sys.exit(main())
