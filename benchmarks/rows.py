"""Every row file of the benchmark, in the order its rows run: adding a file of rows is one line here."""
from . import cases, cases_variants, cases_explain  # noqa: F401  (importing a file registers its rows)
