"""The OpenAPI document of the JSON API (kept beside the routes it describes)."""

from __future__ import annotations

from typing import Any

from app.idempotency import HEADER, KEY_MAX, REPLAY_HEADER
from app.models import TEXT_MAX
from app.todos.service import CURSOR_PATTERN
from app.validation import text_pattern


def _error() -> dict[str, Any]:
    return {"$ref": "#/components/responses/Error"}


def openapi_document() -> dict[str, Any]:
    """The document served at /api/openapi.json."""
    todo_id = {
        "name": "todo_id", "in": "path", "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    }
    text = {"type": "string", "minLength": 1, "maxLength": TEXT_MAX, "pattern": text_pattern(),
            "description": "1 to 500 characters with at least one that is not whitespace; no "
                           "control character, lone surrogate (not in the pattern: a UTF-8 "
                           "string cannot hold one), non-character or invisible format character "
                           "(bidi controls, zero-width space, ...; ZWJ and ZWNJ are fine). Tabs "
                           "and line breaks are allowed and stored as one space; the text is "
                           "trimmed."}
    idempotency_key = {
        "name": HEADER, "in": "header", "required": False,
        "description": f"Makes a retry safe: the same key with the same request within "
                       f"IDEMPOTENCY_RETENTION gets the first answer again (with "
                       f"`{REPLAY_HEADER}: true`) and writes nothing; with another request, 422.",
        "schema": {"type": "string", "pattern": f"^[!-~]{{1,{KEY_MAX}}}$"},
    }
    replayed = {"description": "`true` when this is the stored answer of an earlier request",
                "schema": {"type": "string", "enum": ["true"]}}
    change = {
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False, "minProperties": 1,
            "properties": {"text": text, "done": {"type": "boolean"}}}}}},
        "responses": {
            "200": {"description": "The changed todo", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Todo"}}}},
            "400": _error(), "404": _error(), "413": _error(), "415": _error(),
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Todo Observability Lab API", "version": "1.0.0"},
        "paths": {
            "/api/todos": {
                "get": {
                    "summary": "List todos, a page at a time",
                    "description": (
                        "Numbered pages (`page`) or, to walk a long list at a cost that does not grow "
                        "with the offset, cursors: start without `page` and `cursor`, then pass each "
                        "answer's `next` as `cursor` until `next` is null."),
                    "operationId": "listTodos",
                    "parameters": [
                        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                        {"name": "cursor", "in": "query",
                         "description": "the `next` of the previous page (opaque); not with `page`",
                         "schema": {"type": "string", "pattern": CURSOR_PATTERN}},
                        {"name": "per_page", "in": "query",
                         "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                    ],
                    "responses": {
                        "200": {"description": "A page of todos", "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/TodoPage"}}}},
                        "400": _error(),
                    },
                },
                "post": {
                    "summary": "Create a todo",
                    "operationId": "createTodo",
                    "parameters": [idempotency_key],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["text"], "additionalProperties": False,
                        "properties": {"text": text}}}}},
                    "responses": {
                        "201": {"description": "Created (or the replayed answer of a retry)",
                                "headers": {
                                    "Location": {"required": True, "schema": {"type": "string"}},
                                    REPLAY_HEADER: replayed},
                                "content": {"application/json": {
                                    "schema": {"$ref": "#/components/schemas/Todo"}}}},
                        "400": _error(), "413": _error(), "415": _error(), "422": _error(),
                    },
                },
            },
            "/api/todos/{todo_id}": {
                "parameters": [todo_id],
                "get": {
                    "summary": "Read a todo", "operationId": "getTodo",
                    "responses": {
                        "200": {"description": "The todo", "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/Todo"}}}},
                        "404": _error(),
                    },
                },
                "patch": {"summary": "Change a todo's text or done flag", "operationId": "updateTodo",
                          **change},
                "put": {"summary": "The same as PATCH (for clients that only send PUT)",
                        "operationId": "replaceTodo", **change},
                "delete": {
                    "summary": "Delete a todo", "operationId": "deleteTodo",
                    "responses": {"204": {"description": "Deleted"}, "404": _error()},
                },
            },
        },
        "components": {
            "schemas": {
                "Todo": {
                    "type": "object",
                    "required": ["id", "text", "done", "position", "created_at", "updated_at"],
                    "properties": {
                        "id": {"type": "integer"}, "text": {"type": "string"},
                        "done": {"type": "boolean"}, "position": {"type": "integer"},
                        "created_at": {"type": "string", "format": "date-time"},
                        "updated_at": {"type": "string", "format": "date-time"},
                    },
                },
                "TodoPage": {
                    "type": "object",
                    "required": ["items", "page", "per_page", "total", "pages", "next"],
                    "properties": {
                        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Todo"}},
                        "page": {"type": ["integer", "null"],
                                 "description": "the page number; null for a page asked by cursor"},
                        "per_page": {"type": "integer"},
                        "total": {"type": "integer"}, "pages": {"type": "integer"},
                        "next": {"type": ["string", "null"],
                                 "description": "cursor of the following page; null on the last"},
                    },
                },
                "Error": {
                    "type": "object", "required": ["error", "request_id"],
                    "properties": {"error": {"type": "string"}, "request_id": {"type": "string"}},
                },
            },
            "responses": {
                "Error": {"description": "An error", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        },
    }
