"""Locust users for the room benchmark (bench/room.py): a room of learners and its facilitator.

Each Learner joins, then works through ROOM_EXERCISES exercises in order, checking each one
to three times (wrong, wrong, right; each push one verdict, as a check cell sends it) with
ROOM_THINK_S seconds between checks; then every learner waits for the others, and the room
pushes ROOM_BURSTS times all at once (the moment everyone runs the cell the facilitator asked
for). The Facilitator asks for the page's data every two seconds, as the page does. The last
learner to finish stops the run. Configured by the environment: ROOM_CODE, ROOM_TOKEN,
ROOM_LEARNERS, ROOM_EXERCISES, ROOM_THINK_S, ROOM_BURSTS, ROOM_SEED.
"""

from __future__ import annotations

import os
import random
import uuid
from typing import Any

import gevent
from gevent.event import Event
from locust import HttpUser, between, constant, task
from locust.exception import StopUser

CODE = os.environ.get("ROOM_CODE", "")
TOKEN = os.environ.get("ROOM_TOKEN", "")
EXERCISES = int(os.environ.get("ROOM_EXERCISES", "40"))
THINK_S = float(os.environ.get("ROOM_THINK_S", "1.0"))
BURSTS = int(os.environ.get("ROOM_BURSTS", "5"))
RANDOM = random.Random(int(os.environ.get("ROOM_SEED", "7")))

_learners = 0  # learners who joined
_done = 0  # learners who finished their exercises
_everyone_done = Event()
_bursts = [Event() for _ in range(BURSTS)]
_burst_pushes = [0] * BURSTS


def _verdict(exercise: str, status: str, attempt: int) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "exercise": exercise, "status": status, "module": "bench",
            "mistake": "a_known_mistake" if status == "wrong" else "", "attempt": attempt}


class Learner(HttpUser):
    """One learner's lab: a join, the exercises with their attempts, then the bursts."""

    fixed_count = int(os.environ.get("ROOM_LEARNERS", "30"))
    wait_time = constant(0)

    def on_start(self) -> None:
        global _learners
        _learners += 1
        self.learner = uuid.uuid4().hex
        self.name = f"learner {_learners}"
        self.client.post("/api/join", json={"learner": self.learner, "name": self.name},
                         headers={"X-Room-Code": CODE}, name="join")

    def _push(self, verdict: dict[str, Any], name: str) -> None:
        self.client.post("/api/verdicts", headers={"X-Room-Code": CODE}, name=name,
                         json={"learner": self.learner, "name": self.name, "verdicts": [verdict]})

    @task
    def workshop(self) -> None:
        global _done
        for number in range(EXERCISES):
            exercise = f"{number // 8 + 1}.{number % 8 + 1}"
            wrong = RANDOM.choice((0, 0, 1, 2))  # up to 3 attempts: most right at once
            for attempt in range(1, wrong + 2):
                gevent.sleep(RANDOM.uniform(0.5, 1.5) * THINK_S)
                self._push(_verdict(exercise, "wrong" if attempt <= wrong else "right", attempt),
                           "push (workshop pace)")
        _done += 1
        if _done == _learners:
            _everyone_done.set()
        _everyone_done.wait()
        for burst in range(BURSTS):
            _bursts[burst].wait()  # released by the facilitator for everyone at the same moment
            self._push(_verdict("9.9", "right", burst + 1), "push (all at once)")
            _burst_pushes[burst] += 1
        raise StopUser()


class Facilitator(HttpUser):
    """The facilitator's page: the room's data every two seconds; it calls the bursts."""

    fixed_count = 1
    wait_time = between(2.0, 2.0)

    @task
    def page(self) -> None:
        self.client.get("/api/room", headers={"Authorization": f"Bearer {TOKEN}"}, name="page data")
        if not _everyone_done.is_set():
            return
        for burst in range(BURSTS):
            _bursts[burst].set()
            while _burst_pushes[burst] < _learners:
                gevent.sleep(0.05)
            gevent.sleep(1.0)
        self.client.get("/api/room", headers={"Authorization": f"Bearer {TOKEN}"}, name="page data")
        self.environment.runner.quit()
