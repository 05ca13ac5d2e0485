// AccessIQ admin UI: the few behaviours htmx does not cover. No inline scripts (CSP: script-src 'self').
(function () {
  "use strict";

  // Rows of repeatable form tables: <template data-row-template="ID"> + [data-add-row="ID"] + [data-remove-row].
  document.addEventListener("click", function (event) {
    var add = event.target.closest("[data-add-row]");
    if (add) {
      event.preventDefault();
      var id = add.getAttribute("data-add-row");
      var template = document.querySelector('template[data-row-template="' + id + '"]');
      var body = document.getElementById(id);
      if (template && body) {
        body.appendChild(template.content.cloneNode(true));
        var inputs = body.lastElementChild ? body.lastElementChild.querySelectorAll("input, select") : [];
        if (inputs.length) inputs[0].focus();
        body.dispatchEvent(new Event("input", { bubbles: true }));
      }
      return;
    }
    var remove = event.target.closest("[data-remove-row]");
    if (remove) {
      event.preventDefault();
      var row = remove.closest("tr");
      var form = remove.closest("form");
      if (row) row.remove();
      if (form) form.dispatchEvent(new Event("input", { bubbles: true }));
    }
  });

  // Enter in a field of a sub-form that shares its parent form's fields presses that sub-form's own
  // button, not the form's first one: <div data-enter-clicks="BUTTON-ID">.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !event.target.closest) return;
    var scope = event.target.closest("[data-enter-clicks]");
    var button = scope && document.getElementById(scope.getAttribute("data-enter-clicks"));
    if (button && event.target.matches("input")) {
      event.preventDefault();
      button.click();
    }
  });

  // Forms that ask before doing something that cannot be undone.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  }, true);

  // A key file chosen beside a multi-line secret fills its text box: <input type=file data-fill="TEXTAREA-ID">.
  // The form also posts the file itself, which the server reads when the box is empty.
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!(input.matches && input.matches("input[type=file][data-fill]")) || !input.files || !input.files.length) {
      return;
    }
    var target = document.getElementById(input.getAttribute("data-fill"));
    var file = input.files[0];
    if (!target || file.size > 64 * 1024) return;
    var reader = new FileReader();
    reader.onload = function () {
      target.value = String(reader.result).trim();
      target.dispatchEvent(new Event("input", { bubbles: true }));
    };
    reader.readAsText(file);
  });

  // Typing in a box that belongs to a choice selects that choice: <input data-selects="RADIO-ID">.
  document.addEventListener("input", function (event) {
    var input = event.target;
    var id = input.getAttribute && input.getAttribute("data-selects");
    var choice = id ? document.getElementById(id) : null;
    if (choice && input.value.trim() !== "") choice.checked = true;
  });

  // Auto-submit filter forms when a select changes.
  document.addEventListener("change", function (event) {
    var select = event.target;
    if (select.matches && select.matches("form[data-autosubmit] select")) {
      select.form.submit();
    }
  });
})();
