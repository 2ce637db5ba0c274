// The facilitator's page: asks /api/room every POLL_MS with the token and redraws the room.
// Every name and mistake is put in the page as text (textContent), never as HTML.
"use strict";

const POLL_MS = 2000;
let token = "";
let version = "";

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function row(cells, header) {
  const tr = el("tr");
  cells.forEach((c, i) => {
    const cell = i === 0 && header ? el("th", c, {scope: "row"}) : el("td", c);
    tr.appendChild(cell);
  });
  return tr;
}

function percent(share) { return Math.round(share * 100) + "%"; }

function showProblem(text) {
  const p = document.getElementById("problem");
  p.textContent = text;
  p.hidden = !text;
}

function drawStuck(learners) {
  const list = document.getElementById("stuck");
  list.replaceChildren();
  for (const l of learners) {
    for (const reason of l.stuck) list.appendChild(el("li", l.name + ": " + reason));
  }
  if (!list.children.length) list.appendChild(el("li", "nobody right now"));
}

function drawExercises(exercises) {
  const body = document.querySelector("#exercises tbody");
  body.replaceChildren();
  for (const e of exercises) {
    const mistake = e.common_mistake
      ? e.common_mistake + " (" + e.common_mistake_learners + ")" + (e.advice ? ": " + e.advice : "")
      : "";
    body.appendChild(row([e.id, e.module, e.right + " (" + percent(e.share_right) + ")",
                          e.wrong, e.unanswered, mistake], true));
  }
}

function gridCell(cell) {
  const td = el("td");
  const status = cell ? cell.status : "unanswered";
  td.className = status;
  let shown = "·", said = "not answered";
  if (status === "right") {
    shown = "✔"; said = "right";
  } else if (status === "wrong") {
    shown = "✘" + cell.attempts;
    said = "wrong, " + cell.attempts + " attempt" + (cell.attempts === 1 ? "" : "s")
      + (cell.mistake ? ", " + cell.mistake : "");
  }
  td.appendChild(el("span", shown, {"aria-hidden": "true"}));
  td.appendChild(el("span", said, {class: "visually-hidden"}));
  if (cell && cell.mistake) td.title = cell.mistake;
  return td;
}

function drawGrid(view) {
  const head = document.querySelector("#grid thead tr");
  head.replaceChildren(el("th", "Learner", {scope: "col"}));
  for (const e of view.exercises) head.appendChild(el("th", e.id, {scope: "col", title: e.module}));
  const body = document.querySelector("#grid tbody");
  body.replaceChildren();
  for (const l of view.learners) {
    const tr = el("tr");
    if (l.stuck.length) tr.className = "stuck";
    tr.appendChild(el("th", l.name, {scope: "row"}));
    for (const e of view.exercises) tr.appendChild(gridCell(l.cells[e.id]));
    body.appendChild(tr);
  }
}

function drawIncident(view) {
  const body = document.querySelector("#incident tbody");
  body.replaceChildren();
  const diagnosis = {};
  for (const d of view.diagnoses) diagnosis[d.learner] = d;
  for (const l of view.learners) {
    const stage = l.incident.stage || "not started";
    const d = diagnosis[l.name] || {};
    body.appendChild(row([l.name, stage, l.incident.score || "", d.fault || "", d.endpoint || "",
                          d.start ? d.start + " to " + d.end : ""], true));
  }
}

async function poll() {
  try {
    const answer = await fetch("/api/room?since=" + encodeURIComponent(version),
                               {headers: {Authorization: "Bearer " + token}});
    if (answer.status === 401) {
      showProblem("Wrong facilitator token: type the one `lab room serve` printed.");
      document.getElementById("login").hidden = false;
      document.getElementById("room").hidden = true;
      return;
    }
    if (answer.status === 200) {
      const view = await answer.json();
      version = view.version;
      drawStuck(view.learners);
      drawExercises(view.exercises);
      drawGrid(view);
      drawIncident(view);
      document.getElementById("room").hidden = false;
    } else if (answer.status !== 204) {
      showProblem("The room service answered " + answer.status + ".");
      setTimeout(poll, POLL_MS);
      return;
    }
    showProblem("");
    document.getElementById("status").textContent =
      document.querySelectorAll("#grid tbody tr").length + " learner(s); checked at "
      + new Date().toLocaleTimeString();
  } catch (err) {
    showProblem("The room service does not answer; retrying.");
  }
  setTimeout(poll, POLL_MS);
}

function start(given) {
  token = given;
  version = "";
  document.getElementById("login").hidden = true;
  document.getElementById("export").href = "/api/export.csv?token=" + encodeURIComponent(token);
  poll();
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const given = document.getElementById("token").value.trim();
    history.replaceState(null, "", "#token=" + encodeURIComponent(given));
    start(given);
  });
  const fromUrl = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromUrl) {
    start(fromUrl);
  } else {
    document.getElementById("status").textContent = "Type the facilitator token to see the room.";
    form.hidden = false;
    document.getElementById("token").focus();
  }
});
