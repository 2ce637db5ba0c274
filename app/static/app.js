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

  /** A fresh Idempotency-Key (crypto.randomUUID needs a secure context; plain HTTP on a
   * workshop host is not one, so fall back to random bytes). */
  function newKey() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }

  /** Call a JSON route; resolves with the parsed body, rejects with an ApiFailure.
   * With an Idempotency-Key, a request that got no answer at all is sent once more with the
   * same key: if the first one was written, the server replays its answer instead of
   * writing twice. */
  function api(method, url, body, key) {
    var init = { method: method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (key) init.headers["Idempotency-Key"] = key;
    var sent = fetch(url, init);
    if (key) {
      sent = sent.catch(function () {
        return new Promise(function (resolve) { window.setTimeout(resolve, 500); }).then(function () {
          return fetch(url, init);
        });
      });
    }
    return sent.then(
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
    // The other controls take their names from [data-text] (aria-labelledby); the edit link carries its own.
    li.querySelector("[data-edit-link] span").textContent = " " + text;
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

  /** A move button of a row; its name is the label and the row's text ("Move up: Buy milk"). */
  function moveButton(li, direction) {
    var button = el("button", "icon", direction === "up" ? "↑" : "↓");
    button.type = "button";
    button.dataset.move = direction;
    button.title = direction === "up" ? "Move up (Alt+↑)" : "Move down (Alt+↓)";
    button.setAttribute("aria-labelledby", "l-" + direction + " t" + li.dataset.id);
    return button;
  }

  /** The controls that only work with JavaScript, added to a row: drag handle, move buttons. */
  function addRowTools(li) {
    var handle = el("span", "handle", "⋮⋮");
    handle.setAttribute("aria-hidden", "true");
    handle.title = "Drag to reorder";
    handle.setAttribute("draggable", "true");
    li.insertBefore(handle, li.firstChild);
    var actions = li.querySelector(".actions");
    actions.insertBefore(moveButton(li, "down"), actions.firstChild);
    actions.insertBefore(moveButton(li, "up"), actions.firstChild);
    var link = li.querySelector("[data-edit-link]");
    // With the script, Edit opens the form in place: a disclosure button, not a page load.
    link.setAttribute("role", "button");
    link.setAttribute("aria-expanded", li.querySelector("form[data-edit]") ? "true" : "false");
  }

  /* ---------- edit: the page's one edit form, moved into the row being edited ---------- */
  var editTemplate = document.getElementById("edit-template");

  function closeEdit(focusLink) {
    var form = list.querySelector("form[data-edit]");
    if (!form) return;
    var li = form.closest("li.todo");
    form.remove();
    var link = li.querySelector("[data-edit-link]");
    link.setAttribute("aria-expanded", "false");
    if (focusLink) link.focus();
  }

  function openEdit(li) {
    closeEdit(false);
    var form = editTemplate.content.firstElementChild.cloneNode(true);
    form.action = editTemplate.dataset.action + li.dataset.id;
    form.elements.text.value = textOf(li);
    li.querySelector(".body").appendChild(form);
    li.querySelector("[data-edit-link]").setAttribute("aria-expanded", "true");
    form.elements.text.focus();
    form.elements.text.select();
  }

  if (list) {
    document.querySelectorAll(".js-only").forEach(function (el) { el.hidden = false; });
    items().forEach(addRowTools);
    refreshMoveButtons();

    // Toggle and delete: every row's buttons submit the one row-actions form (form=, formaction=).
    document.querySelector("[data-row-actions]").addEventListener("submit", function (event) {
      var button = event.submitter;
      var li = button && button.closest("li.todo");
      if (!li) return;
      event.preventDefault();
      clearError();
      if (button.classList.contains("toggle")) {
        api("POST", button.formAction).then(
          function (todo) {
            setDone(li, todo.done);
            announce("“" + todo.text + "” marked " + (todo.done ? "done" : "not done") + ".");
          },
          function (failure) { showError("Could not update “" + textOf(li) + "”", failure); }
        );
      } else {
        api("POST", button.formAction).then(
          function () {
            announce("Deleted “" + textOf(li) + "”.");
            removeTodo(li);
          },
          function (failure) { showError("Could not delete “" + textOf(li) + "”", failure); }
        );
      }
    });

    list.addEventListener("submit", function (event) {
      var form = event.target;
      var li = form.closest("li.todo");
      if (!li || !form.hasAttribute("data-edit")) return;
      event.preventDefault();
      clearError();
      var input = form.elements.text;
      var message = validate(input.value, maxLength);
      setFieldError(form, message);
      if (message) { input.focus(); return; }
      api("POST", form.action, { text: input.value }).then(
        function (todo) {
          setText(li, todo.text);
          closeEdit(true);
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
    });

    list.addEventListener("click", function (event) {
      var link = event.target.closest("[data-edit-link]");
      if (link) {
        event.preventDefault();
        var row = link.closest("li.todo");
        if (row.querySelector("form[data-edit]")) closeEdit(true);
        else openEdit(row);
        return;
      }
      var button = event.target.closest("[data-move]");
      if (!button) return;
      move(button.closest("li.todo"), button.dataset.move === "up" ? -1 : 1, button);
    });

    list.addEventListener("keydown", function (event) {
      var li = event.target.closest("li.todo");
      if (!li) return;
      if (event.key === "Escape" && event.target.matches("form[data-edit] input[type=text]")) {
        // Cancel the edit and return to the Edit control.
        closeEdit(true);
        return;
      }
      if (event.key === " " && event.target.matches("[data-edit-link]")) {
        // A link acting as a button answers Space too.
        event.preventDefault();
        event.target.click();
        return;
      }
      if (!event.altKey || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) return;
      if (event.target.matches("input[type=text]")) return;
      event.preventDefault();
      move(li, event.key === "ArrowUp" ? -1 : 1, event.target);
    });

    /* Drag and drop: drag a task by its handle; the drop line shows where it will land. */
    var dragged = null;
    var dragBefore = null;

    function clearDropMarks() {
      items().forEach(function (li) { li.classList.remove("drop-before", "drop-after"); });
    }

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

  // A page restored by Back holds the keys of forms already sent: give it new ones, or
  // the next add would be refused (422) as a reuse of a key with another text.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("[data-idempotency-key]").forEach(function (input) {
      input.value = newKey();
    });
  });

  if (exportForm) {
    exportForm.addEventListener("submit", function (event) {
      event.preventDefault();
      clearError();
      var button = exportForm.querySelector("button");
      button.disabled = true;
      exportStatus.dataset.state = "";
      api("POST", exportForm.action, undefined, newKey()).then(
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
