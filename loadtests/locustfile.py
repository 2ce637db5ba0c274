"""The lab's locustfile: `locust -f loadtests/locustfile.py [--shape ramp --shape-users 20 ...]`.

User classes and weights come from `loadtests.users` (LOAD_WEIGHTS="reader=5,writer=3,
exporter=1,api=2"; a weight of 0 leaves that class out; Locust's own `--class-picker`,
`--tags reader` and user class names on the command line work as usual). The load shape is
chosen by name at run time: a LoadTestShape in a locustfile is always used, so there is one
shape class here that delegates to the profile named by --shape / LOAD_SHAPE (also editable
in the web UI's custom parameters before pressing Start).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

# Locust imports this file by path: make the checkout importable (`loadtests.*`) however it
# was started (venv, container with the repository mounted, another working directory).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from locust import LoadTestShape, events  # noqa: E402

from loadtests import users  # noqa: E402
from loadtests.shapes import SHAPE_NAMES, Tick, make_profile  # noqa: E402

log = logging.getLogger(__name__)


@events.init_command_line_parser.add_listener
def add_shape_arguments(parser: Any) -> None:
    """--shape and its overrides, each also settable through a LOAD_* variable."""
    parser.add_argument(
        "--shape", choices=SHAPE_NAMES, default="steady", env_var="LOAD_SHAPE",
        include_in_web_ui=True, help="load profile: " + ", ".join(SHAPE_NAMES),
    )
    parser.add_argument(
        "--shape-users", type=int, default=None, env_var="LOAD_USERS", include_in_web_ui=True,
        help="peak users of the shape (default: the shape's own)",
    )
    parser.add_argument(
        "--shape-spawn-rate", type=float, default=None, env_var="LOAD_SPAWN_RATE",
        include_in_web_ui=True, help="users started (or stopped) per second",
    )
    parser.add_argument(
        "--shape-duration", type=float, default=None, env_var="LOAD_DURATION",
        include_in_web_ui=True, help="seconds the shape runs before the test stops",
    )


class SelectedShape(LoadTestShape):
    """Delegates every tick to the profile named by the options (read anew at each tick,
    so values changed in the web UI apply to the next run)."""

    def tick(self) -> Tick:
        """(users, spawn_rate) of the selected profile now, or None when it is over."""
        assert self.runner is not None
        options = self.runner.environment.parsed_options
        try:
            profile = make_profile(
                getattr(options, "shape", "steady"),
                getattr(options, "shape_users", None),
                getattr(options, "shape_spawn_rate", None),
                getattr(options, "shape_duration", None),
            )
        except ValueError as exc:
            # A typo in the web UI's parameters: stop this run with a message, not a traceback.
            log.error("load shape: %s; stopping", exc)
            return None
        return profile.tick(self.get_run_time())


# Locust runs every User class it finds in this module: expose only those with a weight
# (through a dict, not a loop variable: that would be one more class found here).
globals().update({
    cls.__name__: cls
    for role, cls in users.USER_CLASSES.items()
    if users.CONFIG.weights[role] > 0
})
