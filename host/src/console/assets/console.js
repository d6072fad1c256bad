// The toolhost console's one script: it keeps the approval queue and the
// live calls current over server-sent events. Every page works without it.
"use strict";

// The approval queue: on any change, read the queue again and merge it in,
// item by item, so a reason being typed is never lost and focus stays put.
function followQueue(section) {
  const queueUrl = section.dataset.liveQueue;
  const announcer = document.getElementById("announcer");
  const count = document.getElementById("queue-count");
  let reading = false, again = false;

  async function refresh() {
    if (reading) { again = true; return; }
    reading = true;
    try {
      const response = await fetch(queueUrl, { credentials: "same-origin", cache: "no-store" });
      if (response.redirected || !response.ok) { return; }
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html").getElementById("queue");
      const list = document.getElementById("queue");
      if (!fresh || !list) { return; }
      const wanted = new Map([...fresh.children].map((li) => [li.dataset.id, li]));
      for (const li of [...list.children]) {
        if (!wanted.has(li.dataset.id)) {
          if (li.contains(document.activeElement)) { document.getElementById("queue-heading").focus(); }
          li.remove();
        }
      }
      // An item whose content changed (a first decision of two) is replaced,
      // unless the reviewer is working in it.
      for (const li of [...list.children]) {
        const current = wanted.get(li.dataset.id);
        if (current && !li.contains(document.activeElement) && current.innerHTML !== li.innerHTML) {
          li.replaceWith(document.importNode(current, true));
        }
      }
      const have = new Set([...list.children].map((li) => li.dataset.id));
      const arrived = [];
      for (const [id, li] of wanted) {
        if (!have.has(id)) {
          const node = document.importNode(li, true);
          node.classList.add("arrived");
          list.appendChild(node);
          arrived.push(node.querySelector("h3").textContent.trim());
        }
      }
      count.textContent = String(list.children.length);
      const empty = document.getElementById("queue-empty");
      if (empty) { empty.hidden = list.children.length > 0; }
      if (arrived.length) { announcer.textContent = "Held for review: " + arrived.join("; "); }
    } finally {
      reading = false;
      if (again) { again = false; refresh(); }
    }
  }

  const events = new EventSource(section.dataset.stream);
  for (const name of ["held", "decision", "approved", "rejected", "expired", "lapsed", "executing", "done", "lagged"]) {
    events.addEventListener(name, refresh);
  }
  // A reconnect may have missed changes.
  events.addEventListener("open", refresh);
}

// Live calls: add each finished call on top, keep the last 200.
function followCalls(table) {
  const body = table.tBodies[0];
  const state = document.getElementById("live-state");
  const events = new EventSource(table.dataset.stream);
  events.addEventListener("open", () => { state.textContent = "Following."; });
  events.addEventListener("error", () => { state.textContent = "Reconnecting…"; });
  events.addEventListener("lagged", (e) => { state.textContent = e.data + " calls were too quick to show; the audit trail has them."; });
  events.addEventListener("call", (e) => {
    const call = JSON.parse(e.data);
    const row = body.insertRow(0);
    const cells = [call.time, call.tool, call.outcome, call.session || "", call.token || "", call.via, call.ms + " ms"];
    cells.forEach((text, i) => {
      const cell = row.insertCell();
      if (i === 2) {
        const tag = document.createElement("span");
        tag.className = "state " + (call.outcome === "ok" ? "ok" : call.outcome === "held" ? "held" : "failed");
        tag.textContent = text;
        cell.appendChild(tag);
      } else {
        cell.textContent = text;
      }
    });
    row.dataset.id = call.id;
    while (body.rows.length > 200) { body.deleteRow(body.rows.length - 1); }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const queue = document.querySelector("[data-live-queue]");
  if (queue) { document.getElementById("queue-heading").tabIndex = -1; followQueue(queue); }
  const live = document.getElementById("live");
  if (live) { followCalls(live); }
});
