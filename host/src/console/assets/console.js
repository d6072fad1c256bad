// The toolhost console's one script: it keeps the approval queue and the
// live calls current over server-sent events. Every page works without it.
"use strict";

// The approval queue, one page of it: each change comes as an event naming
// one held call, which is fetched alone (joined, changed) or removed (left),
// so a reason being typed is never lost, focus stays put, and no event makes
// the browser read the whole queue. After a reconnect or a lag the page
// reads its own page of the queue again and merges it in.
function followQueue(section) {
  const queueUrl = section.dataset.liveQueue;
  const announcer = document.getElementById("announcer");
  const count = document.getElementById("queue-count");
  const list = document.getElementById("queue");
  const size = Number(list.dataset.size) || 50;
  const after = list.dataset.after ? "?after=" + encodeURIComponent(list.dataset.after) : "";
  const gone = new Set();
  let reading = false, again = false;

  const item = (id) => [...list.children].find((li) => li.dataset.id === id);
  const nextLink = () => document.getElementById("queue-next");
  function settle() {
    const empty = document.getElementById("queue-empty");
    if (empty) { empty.hidden = list.children.length > 0; }
  }
  function remove(li) {
    if (li.contains(document.activeElement)) { document.getElementById("queue-heading").focus(); }
    li.remove();
  }
  async function read(url) {
    const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    if (response.redirected || !response.ok) { return null; }
    return new DOMParser().parseFromString(await response.text(), "text/html");
  }
  async function fetchItem(id) {
    const page = await read(queueUrl + "/" + encodeURIComponent(id));
    const li = page && page.querySelector("li.held-call");
    return li && !gone.has(id) ? document.importNode(li, true) : null;
  }

  // A call held: the queue's newest, so it belongs on this page only if
  // this page is the queue's last and has room; otherwise the page links on.
  async function joined(id) {
    count.textContent = String(Number(count.textContent) + 1);
    if (item(id) || nextLink()) { return; }
    if (list.children.length >= size) {
      const link = document.createElement("a");
      link.id = "queue-next";
      link.rel = "next";
      link.href = "/console/approvals?after=" + encodeURIComponent(list.lastElementChild.dataset.id);
      link.textContent = "Next " + size + " waiting";
      document.getElementById("queue-pages").appendChild(link);
      return;
    }
    const li = await fetchItem(id);
    if (!li || item(id)) { return; }
    li.classList.add("arrived");
    list.appendChild(li);
    settle();
    announcer.textContent = "Held for review: " + li.querySelector("h3").textContent.trim();
  }
  // A first decision of two: replaced, unless the reviewer works in it.
  async function changed(id) {
    const li = item(id);
    if (!li || li.contains(document.activeElement)) { return; }
    const fresh = await fetchItem(id);
    if (fresh && li.isConnected) { li.replaceWith(fresh); }
  }
  function left(id) {
    gone.add(id);
    count.textContent = String(Math.max(0, Number(count.textContent) - 1));
    const li = item(id);
    if (li) { remove(li); settle(); }
  }

  // This page of the queue, read again and merged in item by item.
  async function refresh() {
    if (reading) { again = true; return; }
    reading = true;
    try {
      const page = await read(queueUrl + after);
      const fresh = page && page.getElementById("queue");
      if (!fresh) { return; }
      const wanted = new Map([...fresh.children].map((li) => [li.dataset.id, li]));
      for (const li of [...list.children]) {
        const current = wanted.get(li.dataset.id);
        if (!current) { remove(li); } else if (!li.contains(document.activeElement) && current.innerHTML !== li.innerHTML) {
          li.replaceWith(document.importNode(current, true));
        }
      }
      for (const [id, li] of wanted) {
        if (!item(id)) { list.appendChild(document.importNode(li, true)); }
      }
      count.textContent = fresh.dataset.total;
      const pages = page.getElementById("queue-pages");
      if (pages) { document.getElementById("queue-pages").replaceWith(document.importNode(pages, true)); }
      settle();
    } finally {
      reading = false;
      if (again) { again = false; refresh(); }
    }
  }

  const events = new EventSource(section.dataset.stream);
  events.addEventListener("joined", (e) => { joined(e.data); });
  events.addEventListener("changed", (e) => { changed(e.data); });
  events.addEventListener("left", (e) => { left(e.data); });
  events.addEventListener("lagged", refresh);
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
