// inlet's tenant pages: the live preview of the field mapping, and OAuth in a popup when the page is framed.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  if (window.self !== window.top) {
    for (const form of document.querySelectorAll("form.oauth")) form.target = "_blank"; // consent pages refuse frames
  }
  const form = document.getElementById("mapping");
  if (!form) return;
  for (const select of form.querySelectorAll("select.choice")) {
    const expr = document.getElementById(select.dataset.expr);
    const sync = () => { expr.hidden = select.value !== "expr"; };
    select.addEventListener("change", sync);
    sync();
  }
  let timer = null;
  const schedule = () => { clearTimeout(timer); timer = setTimeout(() => preview(form), 250); };
  form.addEventListener("change", schedule);
  form.addEventListener("input", (event) => { if (event.target.classList.contains("expr")) schedule(); });
  form.addEventListener("submit", (event) => {
    if (event.submitter && event.submitter.value === "preview") { event.preventDefault(); preview(form); }
  });
});

async function preview(form) {
  const summary = document.getElementById("preview-summary");
  const list = document.getElementById("preview-records");
  if (!form.elements.connection) return;
  summary.textContent = "Mapping your records…";
  const body = new URLSearchParams(new FormData(form));
  let data;
  try {
    const response = await fetch(form.dataset.preview, { method: "POST", body, credentials: "omit" });
    data = await response.json();
  } catch (error) {
    summary.textContent = "The preview is not available right now.";
    return;
  }
  list.replaceChildren();
  if (data.mapping_error) {
    summary.textContent = data.mapping_error;
    summary.className = "error";
  } else {
    summary.className = data.would_quarantine ? "error" : "";
    summary.textContent = `${data.would_quarantine} of ${data.checked} stored records would not fit (now: ${data.quarantined_now}).`;
  }
  for (const record of data.records) list.append(renderRecord(record));
}

function renderRecord(record) {
  const item = document.createElement("li");
  const title = document.createElement("h3");
  title.textContent = record.external_id;
  item.append(title);
  if (record.error) {
    item.className = "bad";
    const error = document.createElement("p");
    error.className = "error";
    error.textContent = record.error;
    item.append(error);
    return item;
  }
  const fields = document.createElement("dl");
  for (const [name, value] of Object.entries(record.mapped)) {
    const term = document.createElement("dt");
    term.textContent = name;
    const detail = document.createElement("dd");
    detail.textContent = value === null ? "—" : String(value);
    detail.dataset.field = name;
    fields.append(term, detail);
  }
  item.append(fields);
  return item;
}
