"""``python -m benchmarks``: see :mod:`benchmarks.run`."""
from .run import main  # run.py fixes the thread settings before NumPy loads

if __name__ == "__main__":  # not on import (e.g. pytest --doctest-modules benchmarks)
    raise SystemExit(main())
