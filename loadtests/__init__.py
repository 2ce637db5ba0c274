"""Synthetic load for the todo lab: Locust users, load shapes and a headless runner.

`locust -f loadtests/locustfile.py` opens the web UI; `python -m loadtests.run` (and
`lab load`) runs headless and writes Locust's CSV and HTML reports under `reports/`.
Only `users.py` and `locustfile.py` import Locust (it monkeypatches with gevent on
import); everything else here is plain Python that tests and the launcher may import.
"""
