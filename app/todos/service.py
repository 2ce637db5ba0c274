"""Todo operations shared by the HTML routes and the JSON API; each commits or changes nothing."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import Select, func, select, text, tuple_

from app.db import commit_and_keep, db
from app.errors import ApiError
from app.faults import Effect
from app.models import Todo, TodoCount
from app.validation import clean_text


@dataclass(frozen=True)
class Page:
    """One page of todos: a numbered page (?page=N) or the page after a cursor (?cursor=)."""

    items: Sequence[Any]
    page: int | None
    per_page: int
    total: int
    next: str | None

    @property
    def pages(self) -> int:
        """Number of pages (at least 1)."""
        return max(1, -(-self.total // self.per_page))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the page."""
        return {
            "items": [t.to_dict() for t in self.items],
            "page": self.page,
            "per_page": self.per_page,
            "total": self.total,
            "pages": self.pages,
            "next": self.next,
        }


def parse_id(raw: Any) -> int:
    """An id from a URL or JSON body: a positive integer, else 404 (no such todo)."""
    if isinstance(raw, bool):
        raise ApiError(400, "id must be an integer")
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ApiError(404, f"todo {str(raw)[:40]!r} not found") from None
    if value < 1 or value > 2**31 - 1:
        raise ApiError(404, f"todo {value} not found")
    return value


def slow_query_fault() -> None:
    """Under the slow_db fault, run a real slow query first (it shows as a DB span)."""
    board = current_app.extensions["faults"]
    seconds = board.seconds("slow_db")
    if seconds > 0:
        board.mark(Effect("slow_db", f"{seconds:g}s"), seconds)
        db.session.execute(text("SELECT pg_sleep(:s)"), {"s": seconds})


def get_todo(todo_id: Any) -> Todo:
    """The todo with this id, or 404."""
    slow_query_fault()
    todo = db.session.get(Todo, parse_id(todo_id))
    if todo is None:
        raise ApiError(404, f"todo {todo_id} not found")
    return todo


def page_number(raw: Any) -> int:
    """A ?page= value: a positive integer (1 when absent)."""
    try:
        number = int(raw) if raw not in (None, "") else 1
    except (TypeError, ValueError):
        raise ApiError(400, "page must be a positive integer") from None
    # Bounded: an offset past PostgreSQL's bigint range is a database error (a 500), not a page.
    if not 1 <= number <= 2**31 - 1:
        raise ApiError(400, "page must be a positive integer")
    return number


def make_cursor(todo: Any) -> str:
    """The cursor of the page that starts after this todo: its place in list order."""
    return f"{todo.position}.{todo.id}"


# What make_cursor writes: ASCII digits only (int() would also take "+1", " 1", "1_0" and
# other scripts' digits), at most 9 of them, so that every match is within the integer
# columns' range and the OpenAPI document can state the format exactly (lab positions and
# ids stay far below 10**9).
CURSOR_PATTERN = r"^-?[0-9]{1,9}\.[0-9]{1,9}$"


def parse_cursor(raw: str) -> tuple[int, int]:
    """(position, id) from a cursor made by make_cursor, or a 400."""
    if not re.fullmatch(CURSOR_PATTERN.strip("^$"), raw):
        raise ApiError(400, "cursor is not valid: pass the `next` value of the previous page")
    position, todo_id = raw.split(".")
    return int(position), int(todo_id)


def _rows_and_total(query: Select[*tuple[Any, ...]], brief: bool) -> tuple[list[Any], int | None]:
    """Run a page query with the todo count joined to every row (one statement, not two).

    The total is None when the page is empty (no row carried it).
    """
    count = TodoCount.__table__.c
    rows = db.session.execute(query.add_columns(count.n).join(TodoCount.__table__, count.id == 1)).all()
    # Brief rows keep their named columns (and the count beside them); ORM rows give the object.
    return (list(rows) if brief else [row[0] for row in rows]), (rows[0].n if rows else None)


def _total() -> int:
    """The number of todos, from the counter the triggers keep (no scan of the table)."""
    return db.session.scalar(select(TodoCount.n).where(TodoCount.id == 1)) or 0


def _selected(brief: bool) -> Select[*tuple[Any, ...]]:
    """The todos in list order: whole ORM objects, or (brief) only what the page shows.

    The brief query names the table's columns, not the model's attributes: a statement without
    ORM entities runs as Core, without the ORM's per-statement compile and row processing
    (0.15-0.2 ms of the page's CPU in process, docs/benchmarks.md change 12).
    """
    if brief:
        c = Todo.__table__.c
        return select(c.id, c.text, c.done, c.position).order_by(c.position, c.id)
    return select(Todo).order_by(Todo.position, Todo.id)


def list_page(page: Any, per_page: int, brief: bool = False) -> Page:
    """A numbered page of todos in list order; page numbers start at 1.

    brief: rows carry id, text, done and position only (the HTML page), not ORM objects.
    """
    number = page_number(page)
    slow_query_fault()
    query = _selected(brief).limit(per_page).offset((number - 1) * per_page)
    items, total = _rows_and_total(query, brief)
    if total is None:  # an empty page: the count is still needed for "page N of M"
        total = _total()
    more = number * per_page < total
    return Page(items, number, per_page, total, make_cursor(items[-1]) if items and more else None)


def list_after(cursor: str, per_page: int) -> Page:
    """The page after a cursor (keyset pagination): its cost does not grow with the offset."""
    position, todo_id = parse_cursor(cursor)
    slow_query_fault()
    query = _selected(False).where(tuple_(Todo.position, Todo.id) > tuple_(position, todo_id))
    items, total = _rows_and_total(query.limit(per_page + 1), False)
    more = len(items) > per_page
    items = items[:per_page]
    return Page(items, None, per_page, _total() if total is None else total,
                make_cursor(items[-1]) if more else None)


def add_todo(raw_text: Any) -> Todo:
    """Stage a todo at the end of the list, flushed (its id is known); the caller commits."""
    text = clean_text(raw_text)
    last = db.session.scalar(select(func.max(Todo.position))) or 0
    todo = Todo(text=text, done=False, position=last + 1)
    db.session.add(todo)
    db.session.flush()
    return todo


def create_todo(raw_text: Any) -> Todo:
    """Add a todo at the end of the list."""
    todo = add_todo(raw_text)
    commit_and_keep()
    return todo


def update_todo(todo_id: Any, changes: dict[str, Any]) -> Todo:
    """Change text and/or done of a todo; unknown fields are refused."""
    unknown = set(changes) - {"text", "done"}
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    todo = get_todo(todo_id)
    if "text" in changes:
        todo.text = clean_text(changes["text"])
    if "done" in changes:
        if not isinstance(changes["done"], bool):
            raise ApiError(400, "done must be true or false")
        todo.done = changes["done"]
    commit_and_keep()
    return todo


def toggle_todo(todo_id: Any) -> Todo:
    """Flip a todo between done and not done."""
    todo = get_todo(todo_id)
    todo.done = not todo.done
    commit_and_keep()
    return todo


def delete_todo(todo_id: Any) -> None:
    """Remove a todo."""
    todo = get_todo(todo_id)
    db.session.delete(todo)
    db.session.commit()


def reorder(order: Any) -> list[int]:
    """Put the given todos in the given order, in the slots they occupied between them.

    Reordering a page leaves every other page where it was.
    """
    if not isinstance(order, list) or not order:
        raise ApiError(400, "order must be a non-empty list of todo ids")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in order):
        raise ApiError(400, "order must be a list of integers")
    if len(set(order)) != len(order):
        raise ApiError(400, "order must not repeat an id")
    if len(order) > 1000:
        raise ApiError(400, "order may hold at most 1000 ids")
    todos = {t.id: t for t in db.session.scalars(select(Todo).where(Todo.id.in_(order)))}
    missing = [i for i in order if i not in todos]
    if missing:
        raise ApiError(404, f"todo(s) not found: {', '.join(map(str, missing[:10]))}")
    slots = sorted(t.position for t in todos.values())
    # Equal positions (concurrent adds) are spread out so that the order is strict.
    for index in range(1, len(slots)):
        if slots[index] <= slots[index - 1]:
            slots[index] = slots[index - 1] + 1
    for todo_id, slot in zip(order, slots, strict=True):
        todos[todo_id].position = slot
    db.session.commit()
    return list(order)
