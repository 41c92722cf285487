"""kernels/vectors.py: Numba's target features, as a fresh process importing convkit gets them."""
import os
import subprocess
import sys

import llvmlite.binding as llvm

from convkit.kernels import vectors

# What Numba's code generator was built with, in the child process.
FEATURES = ("from numba.core.registry import cpu_target\n"
            "print(cpu_target.target_context.codegen()._tm_features)\n")


def child_features(prologue: str, **env_changes) -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CPU_FEATURES", "NUMBA_CPU_NAME")}
    env.update(env_changes)
    run = subprocess.run([sys.executable, "-c", prologue + FEATURES], env=env,
                         capture_output=True, text=True, check=True)
    return run.stdout.strip()


def test_importing_convkit_lifts_the_256_bit_preference_on_avx512_hosts():
    host = llvm.get_host_cpu_features().flatten()
    expected = vectors.wide_vector_features() or host  # no AVX-512: left as it is
    assert child_features("import convkit\n") == expected
    if "+avx512f" in host.split(","):
        assert expected == host + ",-prefer-256-bit"


def test_a_callers_own_choice_is_kept():
    host = llvm.get_host_cpu_features().flatten()
    assert child_features("import convkit\n", NUMBA_CPU_FEATURES=host) == host
    assert child_features("import convkit\nimport os\n"
                          "assert os.environ['NUMBA_CPU_NAME'] == 'generic'\n"
                          "assert 'NUMBA_CPU_FEATURES' not in os.environ\n",
                          NUMBA_CPU_NAME="generic") != vectors.wide_vector_features()


def test_numba_already_compiling_is_left_alone():
    """Numba's target built before convkit's import: its features are fixed; convkit must not
    claim otherwise (the environment would then promise a tuning the code does not have)."""
    host = llvm.get_host_cpu_features().flatten()
    assert child_features("import numba\nnumba.njit(lambda: 1)()\nimport convkit, os\n"
                          "assert 'NUMBA_CPU_FEATURES' not in os.environ\n") == host
