// The calculator's live update, on top of htmx (templates/calculator/calculator.html).
//
// - Only fields with a value are sent: the server fills in every default, as it does for a
//   bookmarked link, and the request stays short.
// - A request whose address would still be long (a pasted config.json) is sent as a POST to the
//   same URL: servers and proxies refuse long request lines (gunicorn answers 414 past 4094
//   bytes by default), and a refused update must never leave the last result looking current.
// - Any failed update (an error status, no answer, a timeout) says so above the results and
//   marks them stale until an update succeeds.
// - An invalid keystroke keeps the last good result, dimmed and marked stale, and says what is
//   wrong beside the field (the server answers HX-Reswap: none and a calculator-invalid event).
// - A choice (a select, a radio button, a checkbox) updates at once; the form's 400 ms delay
//   is for typing, where each keystroke is not yet the value meant.
(function () {
  "use strict";

  // Safe for every browser, proxy and server in the path; longer goes as a POST.
  var MAX_GET_URL_LENGTH = 2000;

  function isCalculator(element) {
    return element && element.id === "calculator-form";
  }

  function results() {
    return document.getElementById("results");
  }

  function showError(message) {
    var box = document.getElementById("calculator-update-error");
    if (box) {
      box.textContent = message;
      box.setAttribute("role", "alert");
      box.hidden = false;
    }
    var section = results();
    if (section) {
      section.classList.add("stale");
      section.setAttribute("aria-describedby", "calculator-update-error");
    }
  }

  function clearError() {
    var box = document.getElementById("calculator-update-error");
    if (box) {
      box.hidden = true;
      box.textContent = "";
    }
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var detail = event.detail;
    if (!isCalculator(detail.elt)) {
      return;
    }
    var sent = new FormData();
    detail.formData.forEach(function (value, name) {
      if (typeof value !== "string" || value.trim() !== "") {
        sent.append(name, value);
      }
    });
    detail.parameters = sent;
    var query = new URLSearchParams(sent).toString();
    var url = detail.path.split("?")[0] + (query ? "?" + query : "");
    if (detail.verb === "get" && url.length > MAX_GET_URL_LENGTH) {
      detail.verb = "post";
      detail.useUrlParams = false;
      // htmx sets the body's type only for requests that start as a POST
      detail.headers["Content-Type"] = "application/x-www-form-urlencoded";
    }
  });

  // Messages placed beside fields by an invalid keystroke (below); the next good result
  // removes them.
  function clearFieldErrors() {
    document.querySelectorAll(".live-field-error").forEach(function (node) {
      var field = document.getElementById(node.getAttribute("data-for"));
      if (field) {
        field.removeAttribute("aria-invalid");
      }
      node.remove();
    });
  }

  function showFieldError(anchor, message) {
    var field = anchor && document.getElementById(anchor);
    if (!field) {
      return;
    }
    var node = document.createElement("p");
    node.className = "errorlist live-field-error";
    node.id = "live-error-" + anchor;
    node.setAttribute("data-for", anchor);
    node.textContent = message;
    field.setAttribute("aria-invalid", "true");
    field.setAttribute("aria-describedby", node.id);
    field.insertAdjacentElement("afterend", node);
  }

  // The server answers an invalid form with HX-Reswap: none and this event: the last good
  // result stays, dimmed and marked stale, and each message goes beside its field.
  document.body.addEventListener("calculator-invalid", function (event) {
    var errors = (event.detail && event.detail.errors) || [];
    clearFieldErrors();
    errors.forEach(function (item) {
      showFieldError(item.anchor, item.message);
    });
    var first = errors[0];
    showError(
      "The estimate was not updated: " +
        (first ? (first.label ? first.label + ": " : "") + first.message : "check the inputs") +
        " The result below is for the last valid inputs."
    );
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var xhr = event.detail.xhr;
    if (xhr && xhr.getResponseHeader("HX-Reswap") === "none") {
      return; // nothing was swapped: an invalid form (above), the old result stays stale
    }
    if (event.detail.target && event.detail.target.id === "results") {
      clearError();
      clearFieldErrors();
    }
  });

  document.addEventListener("htmx:responseError", function (event) {
    if (!isCalculator(event.detail.elt)) {
      return;
    }
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    var reason = status === 414 ? "the inputs are too long for the server" : "the server answered " + status;
    showError(
      "The estimate was not updated (" + reason + "): the result below is for earlier inputs."
    );
  });

  function unreachable(event) {
    if (isCalculator(event.detail.elt)) {
      showError(
        "The estimate was not updated (the server could not be reached): the result below is for earlier inputs."
      );
    }
  }

  // Back, Forward and reload open the address afresh (htmx keeps no snapshots: base.html), and
  // the server renders the fields and the result from it; but the browser then puts back what
  // the fields held before, which would disagree with the result. Back to what was rendered.
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("calculator-form");
    if (form) {
      form.reset();
    }
  });

  function isChoice(element) {
    if (element instanceof HTMLSelectElement) {
      return true;
    }
    return element instanceof HTMLInputElement && (element.type === "radio" || element.type === "checkbox");
  }

  // A choice fires "input" (which starts the form's delayed update) and then "change": the
  // "submit" sent here cancels that delayed one (htmx keeps one timer per element) and updates
  // now. No inline filter in hx-trigger: htmx evaluates those, and the CSP forbids eval.
  document.addEventListener("change", function (event) {
    var form = event.target && event.target.form;
    if (isCalculator(form) && isChoice(event.target) && window.htmx) {
      window.htmx.trigger(form, "submit");
    }
  });

  // The fit across the catalog's GPUs is folded (templates/calculator/_gpus.html): the form's
  // hidden "fit" field says whether it is open, so that live updates compute its rows only
  // then; opening a fit that a live update left empty (data-folded) updates the results now.
  // "toggle" does not bubble: listened to in the capture phase.
  document.addEventListener(
    "toggle",
    function (event) {
      var details = event.target;
      if (!details || details.id !== "fit-all") {
        return;
      }
      var form = document.getElementById("calculator-form");
      var field = form && form.elements.namedItem("fit");
      if (!field) {
        return;
      }
      field.value = details.open ? "1" : "";
      if (details.open && details.hasAttribute("data-folded") && window.htmx) {
        window.htmx.trigger(form, "submit");
      }
    },
    true
  );

  document.addEventListener("htmx:sendError", unreachable);
  document.addEventListener("htmx:timeout", unreachable);
})();
