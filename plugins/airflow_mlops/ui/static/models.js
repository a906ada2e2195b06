// The Models page's only script: the roll-back form. It sends JSON with the page's CSRF token and
// shows the answer with textContent (never as HTML).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("rollback");
  if (!form) return;
  const out = document.getElementById("rollback-result");
  const token = document.querySelector('meta[name="csrf-token"]')?.content || "";
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const reason = form.elements.reason.value.trim();
    if (!reason) { out.textContent = "A reason is required."; return; }
    const model = form.dataset.model;
    const button = form.querySelector("button");
    button.disabled = true;
    out.textContent = "Rolling back…";
    try {
      const url = `${location.pathname.split("/models/")[0]}/api/models/${encodeURIComponent(model)}/rollback`;
      const response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRF-Token": token},
        body: JSON.stringify({reason, to_version: form.elements.to_version.value.trim() || null,
                              expected_champion: form.dataset.champion}),
      });
      const answer = await response.json().catch(() => ({}));
      if (!response.ok) {
        out.textContent = `Refused (${response.status}): ${answer.detail || response.statusText}`;
        button.disabled = false;
        return;
      }
      out.textContent = `Champion is now version ${answer.champion}. Reloading…`;
      setTimeout(() => location.reload(), 600);
    } catch (error) {
      out.textContent = `Failed: ${error}`;
      button.disabled = false;
    }
  });
});
