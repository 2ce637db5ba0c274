"""The rows of the list page as HTML, made in Python: the page's one loop that runs per todo.

In Jinja the loop cost about half a millisecond for 50 rows on the lab machine (a context
lookup and an attribute lookup per value, a filter call per escape), about a fifth of the
page's CPU in process; one f-string per row costs a third of that (docs/benchmarks.md,
change 12). The markup is that of a row in app/templates/index.html, where the list is; the
names of its controls come from the labels there (aria-labelledby), and app/static/app.js
relies on its data attributes.

Every value put in a row is an integer (the id) or escaped here, once (the text, the URLs).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flask import get_template_attribute
from markupsafe import Markup, escape


def edit_form(action: str, page: int | None, value: str, error: str, focus: bool) -> str:
    """The edit form of app/templates/edit_form.html (its macro, called from Python)."""
    macro = get_template_attribute("edit_form.html", "edit_form")
    return str(macro(action, page, value, error, focus))


def render_rows(
    items: Iterable[Any],
    urls: Mapping[str, str],
    page: int | None,
    edit_id: int | None = None,
    edit_text: str = "",
    edit_error: str = "",
) -> Markup:
    """The <li> of each todo (id, text, done); the row edit_id holds its open edit form."""
    toggle, delete, edit_link = escape(urls["toggle"]), escape(urls["delete"]), escape(urls["edit_link"])
    rows = []
    for todo in items:
        todo_id = int(todo.id)
        text = escape(todo.text)
        done = bool(todo.done)
        form = ""
        if todo_id == edit_id:
            form = edit_form(urls["edit"] + str(todo_id), page, edit_text, edit_error, True)
        rows.append(
            f'\n<li class="todo{" done" if done else ""}" data-id="{todo_id}">'
            f'<button form="row-actions" formaction="{toggle}{todo_id}" class="toggle" '
            f'aria-pressed="{"true" if done else "false"}" aria-labelledby="l-done t{todo_id}">'
            f'<span class="box"></span></button><div class="body">'
            f'<span class="text" id="t{todo_id}" data-text>{text}</span>'
            f'<a class="edit" href="{edit_link}{todo_id}#edit-text" data-edit-link>Edit'
            f'<span class="visually-hidden"> {text}</span></a>{form}</div>'
            f'<div class="actions"><button form="row-actions" formaction="{delete}{todo_id}" '
            f'class="danger" aria-labelledby="l-del t{todo_id}">Delete</button></div></li>'
        )
    # Safe: every value above is an integer or went through escape (the macro escapes its own).
    return Markup("".join(rows))  # noqa: S704
