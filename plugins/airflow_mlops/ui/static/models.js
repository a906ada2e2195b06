// The Models page's only script: the roll-back form and the Approve / Reject forms of pending
// promotions. They send JSON with the page's CSRF token and show the answer with textContent (never as HTML).
"use strict";
const apiBase = () => `${location.pathname.split("/models/")[0]}/api/models`;

document.addEventListener("DOMContentLoaded", () => {
  const token = document.querySelector('meta[name="csrf-token"]')?.content || "";
  for (const approval of document.querySelectorAll("form.approval")) {
    const result = approval.querySelector("output");
    approval.addEventListener("submit", async (event) => {
      event.preventDefault();
      const decision = event.submitter?.value;
      const comment = approval.elements.comment.value.trim();
      if (decision === "reject" && !comment) { result.textContent = "A comment is required to reject."; return; }
      const buttons = [...approval.querySelectorAll("button")];
      buttons.forEach((b) => { b.disabled = true; });
      result.textContent = decision === "approve" ? "Approving…" : "Rejecting…";
      try {
        const response = await fetch(`${apiBase()}/${encodeURIComponent(approval.dataset.model)}/approvals`, {
          method: "POST",
          credentials: "same-origin",
          headers: {"Content-Type": "application/json", "X-CSRF-Token": token},
          body: JSON.stringify({dag_id: approval.dataset.dagId, run_id: approval.dataset.runId, decision, comment}),
        });
        const answer = await response.json().catch(() => ({}));
        if (!response.ok) {
          result.textContent = `Refused (${response.status}): ${answer.detail || response.statusText}`;
          buttons.forEach((b) => { b.disabled = false; });
          return;
        }
        result.textContent = decision === "approve"
          ? `Approved by ${answer.by}: the DAG run resumes and deploys v${approval.dataset.version}. Reloading…`
          : `Rejected by ${answer.by}: the champion stays. Reloading…`;
        setTimeout(() => location.reload(), 2500);
      } catch (error) {
        result.textContent = `Failed: ${error}`;
        buttons.forEach((b) => { b.disabled = false; });
      }
    });
  }

  const form = document.getElementById("rollback");
  if (!form) return;
  const out = document.getElementById("rollback-result");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const reason = form.elements.reason.value.trim();
    if (!reason) { out.textContent = "A reason is required."; return; }
    const model = form.dataset.model;
    const button = form.querySelector("button");
    button.disabled = true;
    out.textContent = "Rolling back…";
    try {
      const url = `${apiBase()}/${encodeURIComponent(model)}/rollback`;
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
