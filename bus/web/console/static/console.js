// Live feed: the server says (server-sent events) when the index moved on; new rows that
// match the page's filters are fetched as rendered HTML and put on top of the list.
"use strict";
(function () {
  const rows = document.getElementById("feed-rows");
  const status = document.getElementById("feed-status");
  if (!status) return;
  let lastId = rows ? Number(rows.dataset.lastId || 0) : 0;
  let fetching = false;
  let again = false;

  function showStatus(data) {
    status.className = "feed-status state-" + data.state;
    status.title = data.message;
    status.querySelector(".text").textContent = data.state;
  }

  async function fetchRows() {
    if (fetching) { again = true; return; }
    fetching = true;
    try {
      const response = await fetch("/rows?after=" + lastId + "&" + rows.dataset.query,
                                   { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) return;
      const html = await response.text();
      lastId = Math.max(lastId, Number(response.headers.get("X-Last-Id") || lastId));
      const added = Number(response.headers.get("X-Count") || 0);
      if (added > 0) {
        const template = document.createElement("template");
        template.innerHTML = html;
        rows.prepend(template.content);
        const count = document.getElementById("count");
        if (count) count.textContent = String(Number(count.textContent) + added);
        const empty = document.getElementById("empty");
        if (empty) empty.remove();
      }
    } finally {
      fetching = false;
      if (again) { again = false; fetchRows(); }
    }
  }

  const events = new EventSource("/events");
  events.addEventListener("feed", function (event) {
    const data = JSON.parse(event.data);
    showStatus(data);
    if (rows && rows.dataset.live === "yes" && data.last_id > lastId) fetchRows();
  });
})();
