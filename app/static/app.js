/* The todo page, enhanced: every form still works without this file (posts and redirects).
 * With it, toggle, edit, delete, reorder and export happen in place through the JSON routes.
 * Plain browser JavaScript, no build step; task text only ever goes through textContent. */
(function () {
  "use strict";

  var flash = document.querySelector("[data-flash]");
  var announcer = document.querySelector("[data-announce]");
  var list = document.querySelector("[data-todos]");
  var POLL_MS = 700;

  /** A failed JSON call, carrying the server's message and request id. */
  function ApiFailure(message, requestId, status) {
    this.message = message;
    this.requestId = requestId;
    this.status = status;
  }

  /** Call a JSON route; resolves with the parsed body, rejects with an ApiFailure. */
  function api(method, url, body) {
    var init = { method: method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(
      function (response) {
        var requestId = response.headers.get("X-Request-ID");
        return response.json().then(
          function (data) {
            if (!response.ok) {
              throw new ApiFailure(data.error || response.statusText, data.request_id || requestId, response.status);
            }
            return data;
          },
          function () {
            throw new ApiFailure("unexpected answer (HTTP " + response.status + ")", requestId, response.status);
          }
        );
      },
      function () {
        throw new ApiFailure("the server could not be reached", null, 0);
      }
    );
  }

  /** Show an error from a JSON call, with its request id so it can be found in the logs. */
  function showError(what, failure) {
    var text = what + ": " + (failure && failure.message ? failure.message : String(failure));
    if (failure && failure.requestId) text += " (request id " + failure.requestId + ")";
    flash.querySelector("[data-flash-text]").textContent = text;
    flash.hidden = false;
  }

  function clearError() {
    flash.hidden = true;
    flash.querySelector("[data-flash-text]").textContent = "";
  }

  flash.querySelector("[data-dismiss]").addEventListener("click", clearError);

  function announce(text) {
    // Clear first so that the same message twice is announced twice.
    announcer.textContent = "";
    window.setTimeout(function () { announcer.textContent = text; }, 50);
  }

  /** The client-side check, worded as the server's so users see one message either way. */
  function validate(raw, max) {
    var text = raw.trim();
    if (!text) return "task text must not be empty";
    if (text.length > max) return "task text must be at most " + max + " characters (got " + text.length + ")";
    return null;
  }

  function setFieldError(form, message) {
    var input = form.querySelector("input[type=text]");
    var error = form.querySelector("[data-error]");
    error.textContent = message || "";
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  /* ---------- add: client-side validation, then the ordinary form post ---------- */
  var addForm = document.querySelector("[data-add]");
  var maxLength = (addForm && Number(addForm.dataset.max)) || 500;
  if (addForm) {
    addForm.addEventListener("submit", function (event) {
      var message = validate(addForm.elements.task.value, maxLength);
      if (message) {
        event.preventDefault();
        setFieldError(addForm, message);
        addForm.elements.task.focus();
      }
    });
    addForm.elements.task.addEventListener("input", function () { setFieldError(addForm, null); });
  }

  /* ---------- the list ---------- */
  function items() { return list ? Array.prototype.slice.call(list.querySelectorAll("li.todo")) : []; }
  function textOf(li) { return li.querySelector("[data-text]").textContent; }
  function idOf(li) { return Number(li.dataset.id); }

  function setText(li, text) {
    li.querySelector("[data-text]").textContent = text;
    li.querySelectorAll("[data-name]").forEach(function (el) { el.textContent = text; });
  }

  function setDone(li, done) {
    li.classList.toggle("done", done);
    li.querySelector("button.toggle").setAttribute("aria-pressed", done ? "true" : "false");
  }

  var countEl = document.querySelector("[data-count]");
  var total = countEl ? Number(countEl.dataset.total || 0) : 0;

  function setTotal(value) {
    total = value;
    countEl.dataset.total = String(value);
    countEl.textContent = value ? value + " task" + (value === 1 ? "" : "s") : "";
  }

  /** Enable/disable move buttons at the ends of the page (moving across pages is not offered). */
  function refreshMoveButtons() {
    var all = items();
    all.forEach(function (li, index) {
      li.querySelector("[data-move=up]").disabled = index === 0;
      li.querySelector("[data-move=down]").disabled = index === all.length - 1;
    });
  }

  /** Save the order of this page; on failure put the list back as it was. */
  function saveOrder(before, movedLi) {
    var order = items().map(idOf);
    var position = order.indexOf(idOf(movedLi)) + 1;
    refreshMoveButtons();
    movedLi.classList.remove("moved");
    void movedLi.offsetWidth; // restart the highlight animation
    movedLi.classList.add("moved");
    announce("Moved “" + textOf(movedLi) + "” to position " + position + " of " + order.length + ".");
    clearError();
    return api("POST", "/reorder", { order: order }).catch(function (failure) {
      before.forEach(function (li) { list.appendChild(li); });
      refreshMoveButtons();
      showError("Could not save the new order", failure);
    });
  }

  /** Move a todo one place up (-1) or down (+1), keeping keyboard focus where it was. */
  function move(li, step, focusTarget) {
    var before = items();
    var sibling = step < 0 ? li.previousElementSibling : li.nextElementSibling;
    if (!sibling) return;
    list.insertBefore(li, step < 0 ? sibling : sibling.nextElementSibling);
    saveOrder(before, li);
    var target = focusTarget;
    if (!target || target.disabled) {
      target = li.querySelector(step < 0 ? "[data-move=up]" : "[data-move=down]");
      if (target.disabled) target = li.querySelector(step < 0 ? "[data-move=down]" : "[data-move=up]");
    }
    if (target && !target.disabled) target.focus();
  }

  function removeTodo(li) {
    var next = li.nextElementSibling || li.previousElementSibling;
    li.remove();
    setTotal(total - 1);
    refreshMoveButtons();
    if (next) {
      next.querySelector("button.toggle").focus();
    } else if (total > 0) {
      // This page is now empty but others are not: show the page before it.
      var page = Number(list.dataset.page || 1);
      window.location.assign("/?page=" + Math.max(1, page - 1));
    } else {
      list.hidden = true;
      document.querySelector("[data-empty]").hidden = false;
      var hint = document.getElementById("reorder-hint");
      if (hint) hint.hidden = true;
      addForm.elements.task.focus();
    }
  }

  if (list) {
    document.querySelectorAll(".js-only").forEach(function (el) { el.hidden = false; });
    refreshMoveButtons();

    list.addEventListener("submit", function (event) {
      var form = event.target;
      var li = form.closest("li.todo");
      if (!li) return;
      event.preventDefault();
      clearError();
      if (form.hasAttribute("data-toggle")) {
        api("POST", form.action).then(
          function (todo) {
            setDone(li, todo.done);
            announce("“" + todo.text + "” marked " + (todo.done ? "done" : "not done") + ".");
          },
          function (failure) { showError("Could not update “" + textOf(li) + "”", failure); }
        );
      } else if (form.hasAttribute("data-delete")) {
        api("POST", form.action).then(
          function () {
            announce("Deleted “" + textOf(li) + "”.");
            removeTodo(li);
          },
          function (failure) { showError("Could not delete “" + textOf(li) + "”", failure); }
        );
      } else if (form.hasAttribute("data-edit")) {
        var input = form.elements.text;
        var message = validate(input.value, maxLength);
        setFieldError(form, message);
        if (message) { input.focus(); return; }
        api("POST", form.action, { text: input.value }).then(
          function (todo) {
            setText(li, todo.text);
            input.value = todo.text;
            var details = form.closest("details");
            details.open = false;
            details.querySelector("summary").focus();
            announce("Saved “" + todo.text + "”.");
          },
          function (failure) {
            if (failure.status === 400) {
              setFieldError(form, failure.message);
              input.focus();
            } else {
              showError("Could not save “" + textOf(li) + "”", failure);
            }
          }
        );
      }
    });

    list.addEventListener("click", function (event) {
      var button = event.target.closest("[data-move]");
      if (!button) return;
      move(button.closest("li.todo"), button.dataset.move === "up" ? -1 : 1, button);
    });

    list.addEventListener("keydown", function (event) {
      var li = event.target.closest("li.todo");
      if (!li) return;
      if (event.key === "Escape" && event.target.matches("details.edit input[type=text]")) {
        // Cancel the edit: restore the saved text and return to the Edit control.
        var details = event.target.closest("details");
        event.target.value = textOf(li);
        setFieldError(details.querySelector("form"), null);
        details.open = false;
        details.querySelector("summary").focus();
        return;
      }
      if (!event.altKey || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) return;
      if (event.target.matches("input[type=text]")) return;
      event.preventDefault();
      move(li, event.key === "ArrowUp" ? -1 : 1, event.target);
    });

    // Opening an edit form puts the cursor in its field.
    list.addEventListener("toggle", function (event) {
      var details = event.target;
      if (details.matches && details.matches("details.edit") && details.open) {
        var input = details.querySelector("input[type=text]");
        input.focus();
        input.select();
      }
    }, true);

    /* Drag and drop: drag a task by its handle; the drop line shows where it will land. */
    var dragged = null;
    var dragBefore = null;

    function clearDropMarks() {
      items().forEach(function (li) { li.classList.remove("drop-before", "drop-after"); });
    }

    items().forEach(function (li) {
      var handle = li.querySelector(".handle");
      handle.setAttribute("draggable", "true");
    });

    list.addEventListener("dragstart", function (event) {
      if (!event.target.classList || !event.target.classList.contains("handle")) return;
      dragged = event.target.closest("li.todo");
      dragBefore = items();
      dragged.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", String(idOf(dragged)));
      if (event.dataTransfer.setDragImage) event.dataTransfer.setDragImage(dragged, 16, 16);
    });

    list.addEventListener("dragover", function (event) {
      var target = event.target.closest && event.target.closest("li.todo");
      if (!dragged || !target) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
      clearDropMarks();
      if (target === dragged) return;
      var box = target.getBoundingClientRect();
      var after = event.clientY > box.top + box.height / 2;
      target.classList.add(after ? "drop-after" : "drop-before");
    });

    list.addEventListener("drop", function (event) {
      var target = event.target.closest && event.target.closest("li.todo");
      if (!dragged || !target) return;
      event.preventDefault();
      var after = target.classList.contains("drop-after");
      clearDropMarks();
      if (target !== dragged) {
        list.insertBefore(dragged, after ? target.nextElementSibling : target);
        var changed = items().some(function (li, i) { return li !== dragBefore[i]; });
        if (changed) saveOrder(dragBefore, dragged);
      }
    });

    list.addEventListener("dragend", function () {
      clearDropMarks();
      if (dragged) dragged.classList.remove("dragging");
      dragged = null;
    });
  }

  /* ---------- export: start, poll, offer the download ---------- */
  var exportForm = document.querySelector("[data-export-form]");
  var exportStatus = document.querySelector("[data-export-status]");
  var LABELS = { queued: "Queued", running: "Running", succeeded: "Done", failed: "Failed" };
  var BADGES = { queued: "badge-queued", running: "badge-running", succeeded: "badge-done", failed: "badge-failed" };

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderExport(state) {
    if (exportStatus.dataset.state === state.state && state.state !== "succeeded") return;
    exportStatus.dataset.state = state.state;
    exportStatus.replaceChildren();
    exportStatus.appendChild(el("span", "badge " + BADGES[state.state], LABELS[state.state] || state.state));
    exportStatus.appendChild(document.createTextNode(" "));
    if (state.state === "queued") exportStatus.appendChild(el("span", "", "Waiting for a worker…"));
    if (state.state === "running") exportStatus.appendChild(el("span", "", "Writing the CSV…"));
    if (state.state === "failed") exportStatus.appendChild(el("span", "", state.error || "the export failed"));
    if (state.state === "succeeded") {
      exportStatus.appendChild(el("span", "", state.rows + " row" + (state.rows === 1 ? "" : "s") + " exported."));
      var link = el("a", "download", "Download CSV");
      link.href = state.download_url;
      link.setAttribute("download", "");
      exportStatus.appendChild(link);
    }
  }

  function poll(taskId) {
    api("GET", "/tasks/" + encodeURIComponent(taskId)).then(
      function (state) {
        renderExport(state);
        if (state.state === "queued" || state.state === "running") {
          window.setTimeout(function () { poll(taskId); }, POLL_MS);
        } else {
          exportForm.querySelector("button").disabled = false;
        }
      },
      function (failure) {
        exportForm.querySelector("button").disabled = false;
        showError("Could not check the export", failure);
      }
    );
  }

  if (exportForm) {
    exportForm.addEventListener("submit", function (event) {
      event.preventDefault();
      clearError();
      var button = exportForm.querySelector("button");
      button.disabled = true;
      exportStatus.dataset.state = "";
      api("POST", exportForm.action).then(
        function (started) {
          // Remember the export in the address, so a reload still shows its status.
          var url = new URL(window.location.href);
          url.searchParams.set("export", started.task_id);
          url.hash = "export";
          window.history.replaceState(null, "", url.toString());
          renderExport({ state: "queued" });
          poll(started.task_id);
        },
        function (failure) {
          button.disabled = false;
          showError("Could not start the export", failure);
        }
      );
    });
    // app.js polls, so the no-JavaScript "Check again" link is not needed.
    exportStatus.querySelectorAll("[data-check-again]").forEach(function (a) { a.remove(); });
    var current = exportStatus.dataset.exportId;
    if (current && (exportStatus.dataset.state === "queued" || exportStatus.dataset.state === "running")) {
      exportForm.querySelector("button").disabled = true;
      poll(current);
    }
  }
})();
