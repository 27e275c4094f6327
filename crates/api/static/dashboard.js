// The dashboard's progressive enhancement; every page works without it.
// - Buttons with data-copy put their value on the clipboard and say so (in the button and in the
//   page's aria-live status line). They stay hidden when this script does not run.
// - Forms with data-autosubmit submit when one of their selects changes (the filters keep their button).
"use strict";

function announce(message) {
  const status = document.getElementById("status");
  if (!status) return;
  status.textContent = message;
  status.classList.add("visible");
  clearTimeout(announce.timer);
  announce.timer = setTimeout(() => status.classList.remove("visible"), 4000);
}

// For browsers without the asynchronous clipboard (or pages not served from a secure context).
function copyWithSelection(text) {
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.appendChild(area);
  area.select();
  const copied = document.execCommand("copy");
  area.remove();
  return copied;
}

async function copy(button) {
  const text = button.dataset.copy;
  let copied = false;
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      copied = true;
    } else {
      copied = copyWithSelection(text);
    }
  } catch {
    copied = copyWithSelection(text);
  }
  if (copied) {
    button.classList.add("copied");
    button.setAttribute("data-state", "copied");
    setTimeout(() => {
      button.classList.remove("copied");
      button.removeAttribute("data-state");
    }, 2000);
    announce(`Copied ${text} to the clipboard`);
  } else {
    announce(`Could not copy; select the link and copy it yourself: ${text}`);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.hidden = false;
    button.addEventListener("click", () => copy(button));
  }
  for (const form of document.querySelectorAll("form[data-autosubmit]")) {
    for (const select of form.querySelectorAll("select")) {
      select.addEventListener("change", () => form.requestSubmit());
    }
  }
});

// The New Link form's UTM tags follow the platform and the campaign (utm_source=instagram, the campaign's
// name) until the person edits them; what they typed is never overwritten.
document.addEventListener("DOMContentLoaded", () => {
  const tags = document.querySelector("fieldset[data-utm-prefill]");
  if (!tags) return;
  const form = tags.closest("form");
  const follow = (selectName, fieldName, valueOf) => {
    const select = form.querySelector(`select[name="${selectName}"]`);
    const field = form.querySelector(`input[name="${fieldName}"]`);
    if (!select || !field) return;
    let filled = field.value;
    field.addEventListener("input", () => { filled = null; });
    const update = () => {
      if (filled === null || field.value !== filled) return;
      field.value = select.value ? valueOf(select) : "";
      filled = field.value;
    };
    select.addEventListener("change", update);
    if (!field.value) update();
  };
  follow("platform", "utm_source", (select) => select.value);
  follow("campaign_id", "utm_campaign", (select) => select.options[select.selectedIndex].text);
});
