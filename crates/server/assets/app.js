// borderlens pages: progressive enhancement only. Every page works without this script; with it,
// the control form asks follow-up questions only when they apply, checks identifier check digits
// as they are typed, scans barcodes where the browser can, and keeps a draft on the device so that
// a lost connection loses nothing.
"use strict";

(function () {
  // ---- identifiers: the same check digits as borderlens-domain (ISO 6346, UPU S10) ----------
  var LETTERS = [10, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 23, 24, 25, 26, 27, 28, 29, 30, 31,
    32, 34, 35, 36, 37, 38];

  function normalise(text) {
    return text.replace(/[\s-]/g, "").toUpperCase();
  }

  function iso6346Problem(text) {
    var t = normalise(text);
    if (!/^[A-Z]{3}[UJZ][0-9]{7}$/.test(t)) {
      return "a container number is 3 letters, U, J or Z, and 7 digits (e.g. CSQU3054383)";
    }
    var sum = 0;
    for (var i = 0; i < 10; i++) {
      var ch = t.charCodeAt(i);
      var value = i < 4 ? LETTERS[ch - 65] : ch - 48;
      sum += value * Math.pow(2, i);
    }
    var expected = (sum % 11) % 10;
    var found = t.charCodeAt(10) - 48;
    return expected === found ? "" :
      "check digit is " + found + ", expected " + expected + ": a character is mistyped";
  }

  function s10Problem(text) {
    var t = normalise(text);
    if (!/^[A-Z]{2}[0-9]{9}[A-Z]{2}$/.test(t)) {
      return "a postal item id is 2 letters, 9 digits and 2 letters (e.g. RR473124829GB)";
    }
    var weights = [8, 6, 4, 2, 3, 5, 9, 7];
    var sum = 0;
    for (var i = 0; i < 8; i++) {
      sum += (t.charCodeAt(2 + i) - 48) * weights[i];
    }
    var expected = 11 - (sum % 11);
    if (expected === 10) { expected = 0; }
    if (expected === 11) { expected = 5; }
    var found = t.charCodeAt(10) - 48;
    return expected === found ? "" :
      "check digit is " + found + ", expected " + expected + ": a character is mistyped";
  }

  function checkIdentifier(input) {
    var kind = input.getAttribute("data-check");
    var text = input.value.trim();
    var problem = "";
    if (text !== "") {
      problem = kind === "iso6346" ? iso6346Problem(text) : s10Problem(text);
    }
    input.setCustomValidity(problem);
    var note = document.getElementById(input.id + "-check");
    if (note) {
      note.textContent = text === "" ? "" : (problem === "" ? "check digit valid" : problem);
      note.className = problem === "" ? "check ok" : "check bad";
    }
  }

  // ---- follow-up questions: the schema's conditions, evaluated on the form's answers ---------
  function answers(form, field) {
    var out = [];
    var inputs = form.querySelectorAll("[name='" + field + "']");
    for (var i = 0; i < inputs.length; i++) {
      var el = inputs[i];
      if (el.disabled) { continue; }
      if ((el.type === "checkbox" || el.type === "radio") && !el.checked) { continue; }
      if (el.value !== "") { out.push(el.value); }
    }
    return out;
  }

  function holds(form, condition) {
    if (condition.all) { return condition.all.every(function (c) { return holds(form, c); }); }
    if (condition.any) { return condition.any.some(function (c) { return holds(form, c); }); }
    var given = answers(form, condition.field);
    return given.some(function (v) { return condition["in"].indexOf(v) >= 0; });
  }

  function applyConditions(form) {
    // Fields come in schema order and conditions only read earlier fields: one pass suffices.
    var wrappers = form.querySelectorAll("[data-when]");
    for (var i = 0; i < wrappers.length; i++) {
      var wrapper = wrappers[i];
      var asked = holds(form, JSON.parse(wrapper.getAttribute("data-when")));
      wrapper.hidden = !asked;
      var inputs = wrapper.querySelectorAll("input, select, textarea");
      for (var j = 0; j < inputs.length; j++) {
        inputs[j].disabled = !asked;
        if (inputs[j].hasAttribute("data-required")) { inputs[j].required = asked; }
      }
    }
  }

  // ---- drafts: every answer kept on the device until the server has the result --------------
  // A draft is the logged-in user's (the page's body names them): its key is
  // "borderlens-draft:" + the user name, URI-encoded, + ":" + the declaration id. Another user
  // of the device never sees it, and logging out removes the user's drafts.
  var DRAFT_PREFIX = "borderlens-draft:";

  function userDraftPrefix() {
    var user = document.body ? document.body.getAttribute("data-user") : null;
    return user ? DRAFT_PREFIX + encodeURIComponent(user) + ":" : null;
  }

  function draftKeyFor(declaration) {
    var prefix = userDraftPrefix();
    return prefix === null ? null : prefix + declaration;
  }

  function draftKey(form) { return draftKeyFor(form.getAttribute("data-draft")); }

  // At logout: the user's drafts, and those of before drafts were kept by user (no user in
  // their key), leave the device.
  function clearDraftsAtLogout() {
    var prefix = userDraftPrefix();
    try {
      for (var i = localStorage.length - 1; i >= 0; i--) {
        var key = localStorage.key(i);
        if (key === null || key.indexOf(DRAFT_PREFIX) !== 0) { continue; }
        var unowned = key.slice(DRAFT_PREFIX.length).indexOf(":") < 0;
        if (unowned || (prefix !== null && key.indexOf(prefix) === 0)) {
          localStorage.removeItem(key);
        }
      }
    } catch (e) { /* no storage: nothing kept */ }
  }

  function saveDraft(form) {
    var key = draftKey(form);
    if (key === null) { return; }
    var values = {};
    var inputs = form.querySelectorAll("input[name], select[name], textarea[name]");
    for (var i = 0; i < inputs.length; i++) {
      var el = inputs[i];
      if (el.name === "csrf_token") { continue; }
      if ((el.type === "checkbox" || el.type === "radio") && !el.checked) { continue; }
      (values[el.name] = values[el.name] || []).push(el.value);
    }
    try {
      localStorage.setItem(key, JSON.stringify({ saved: Date.now(), values: values }));
    } catch (e) { /* private mode or full: the form still works */ }
  }

  function restoreDraft(form) {
    var text = null;
    var key = draftKey(form);
    if (key === null) { return; }
    try { text = localStorage.getItem(key); } catch (e) { return; }
    if (!text || form.getAttribute("data-has-errors") === "1") { return; }
    var draft = JSON.parse(text);
    var inputs = form.querySelectorAll("input[name], select[name], textarea[name]");
    for (var i = 0; i < inputs.length; i++) {
      var el = inputs[i];
      var saved = draft.values[el.name];
      if (!saved || el.name === "csrf_token") { continue; }
      if (el.type === "checkbox" || el.type === "radio") {
        el.checked = saved.indexOf(el.value) >= 0;
      } else {
        el.value = saved[0];
      }
    }
    var note = document.getElementById("draft-note");
    if (note) {
      note.hidden = false;
      note.textContent = "Draft restored from this device (saved " +
        new Date(draft.saved).toLocaleString() + "). It is sent only when you submit.";
    }
  }

  // ---- camera scan, where the browser has BarcodeDetector ------------------------------------
  function setUpScan(button) {
    if (!("BarcodeDetector" in window) || !navigator.mediaDevices) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var input = document.getElementById(button.getAttribute("data-scan"));
      var video = document.createElement("video");
      video.setAttribute("playsinline", "");
      video.className = "scan";
      button.parentNode.appendChild(video);
      var detector = new window.BarcodeDetector();
      navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } })
        .then(function (stream) {
          video.srcObject = stream;
          video.play();
          var stop = function () {
            stream.getTracks().forEach(function (t) { t.stop(); });
            video.remove();
          };
          var tries = 0;
          var look = function () {
            detector.detect(video).then(function (codes) {
              if (codes.length > 0) {
                input.value = codes[0].rawValue;
                input.dispatchEvent(new Event("input", { bubbles: true }));
                stop();
              } else if (++tries < 100) {
                setTimeout(look, 300);
              } else {
                stop();
              }
            }).catch(stop);
          };
          look();
        })
        .catch(function () { video.remove(); });
    });
  }

  function localNow() {
    var now = new Date();
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return now.getFullYear() + "-" + pad(now.getMonth() + 1) + "-" + pad(now.getDate()) + "T" +
      pad(now.getHours()) + ":" + pad(now.getMinutes());
  }

  function setUpForm(form) {
    // The server proposed "now" in UTC; on this device "now" is local time with its offset.
    var proposed = form.querySelectorAll("input[data-now]");
    for (var k = 0; k < proposed.length; k++) { proposed[k].value = localNow(); }
    restoreDraft(form);
    var offset = form.querySelector("input[name='tz_offset']");
    if (offset) {
      var minutes = -new Date().getTimezoneOffset();
      var sign = minutes < 0 ? "-" : "+";
      var abs = Math.abs(minutes);
      var pad = function (n) { return (n < 10 ? "0" : "") + n; };
      offset.value = sign + pad(Math.floor(abs / 60)) + ":" + pad(abs % 60);
    }
    var ids = form.querySelectorAll("[data-check]");
    for (var i = 0; i < ids.length; i++) { checkIdentifier(ids[i]); }
    applyConditions(form);
    form.addEventListener("input", function (event) {
      if (event.target.hasAttribute && event.target.hasAttribute("data-check")) {
        checkIdentifier(event.target);
      }
      applyConditions(form);
      saveDraft(form);
    });
    form.addEventListener("change", function () { applyConditions(form); saveDraft(form); });
    form.addEventListener("submit", function (event) {
      saveDraft(form);
      if (navigator.onLine === false) {
        event.preventDefault();
        var note = document.getElementById("draft-note");
        note.hidden = false;
        note.textContent = "No connection: the result is kept on this device. Submit again when " +
          "you are back online; it will be recorded once, whatever the number of tries.";
      }
    });
    var scans = form.querySelectorAll("[data-scan]");
    for (var j = 0; j < scans.length; j++) { setUpScan(scans[j]); }
  }

  // ---- after a result was recorded: its draft is no longer needed ----------------------------
  function clearRecordedDraft() {
    var marker = document.querySelector("[data-recorded]");
    if (!marker) { return; }
    var key = draftKeyFor(marker.getAttribute("data-declaration"));
    if (key === null) { return; }
    try {
      var text = localStorage.getItem(key);
      if (text) {
        var draft = JSON.parse(text);
        var id = (draft.values.submission_id || [])[0];
        if (id === marker.getAttribute("data-recorded")) { localStorage.removeItem(key); }
      }
    } catch (e) { /* nothing to clear */ }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var forms = document.querySelectorAll("form[data-draft]");
    for (var i = 0; i < forms.length; i++) { setUpForm(forms[i]); }
    clearRecordedDraft();
    var logouts = document.querySelectorAll("form[action='/logout']");
    for (var j = 0; j < logouts.length; j++) {
      logouts[j].addEventListener("submit", clearDraftsAtLogout);
    }
  });
})();
