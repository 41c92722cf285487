import os
import sys

from hypothesis import settings

sys.path.insert(0, os.path.dirname(__file__))  # tests import the shared oracle as `oracle`

# A compile is not a failure (deadline=None); a fixed example budget keeps CI bounded.
settings.register_profile("ci", deadline=None, max_examples=60, derandomize=True,
                          print_blob=True)
settings.register_profile("dev", deadline=None, max_examples=60)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
