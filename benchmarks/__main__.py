import os

# Thread pools that spin after a call steal the cores from whichever library runs next in
# the round robin; every pool (Numba's OpenMP, torch's, ONNX Runtime's) waits passively.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .run import main  # noqa: E402

raise SystemExit(main())
