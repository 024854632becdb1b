// borderlens X-ray viewer: progressive enhancement of the pages that show a scan. Without this
// script they show the view as a grey PNG with the objects as SVG boxes, and the annotation
// form takes box corners as numbers. With it:
// - the view is drawn from the raw 16-bit transmission (window and level over the full range,
//   an "auto" window from the data's percentiles), with pseudo-colour for dual-energy views
//   (organic orange, inorganic green, metal blue, from the ratio of ln T at the two energies);
// - zoom (buttons, wheel, pinch, + and -) and pan (drag in the pan tool, arrow keys);
// - every source's objects as layers that can be shown or hidden;
// - on the annotation page, boxes are drawn with the mouse, a finger or a pen (drag in the box
//   tool) or the keyboard (N: a new box at the centre; arrows move the selected box by 1 px,
//   Shift+arrows grow it and Alt+arrows shrink it by 10 px, Delete removes it), written into the
//   form's rows, which stay the one thing that is sent.
"use strict";

(function () {
  var root = document.querySelector("[data-viewer]");
  if (!root || !window.fetch || !window.DataView) {
    return;
  }
  var W = Number(root.dataset.width);
  var H = Number(root.dataset.height);
  var energies = (root.dataset.energies || "").split(",").filter(Boolean);
  var layers = [];
  try {
    layers = JSON.parse(root.dataset.layers || "[]");
  } catch (e) {
    layers = [];
  }
  var editable = !!root.dataset.editable;
  var form = editable ? document.getElementById("review") : null;
  var COLOURS = {
    annotator: ["#00bcd4", "#e91e63", "#8bc34a", "#ffc107", "#9c27b0", "#03a9f4"],
    reviewer: ["#ffffff"],
    machine: ["#ff9800"],
    consensus: ["#ffeb3b"],
    truth: ["#4caf50"]
  };

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      e.setAttribute(k, attrs[k]);
    });
    if (text !== undefined) {
      e.textContent = text;
    }
    return e;
  }

  // ---- controls ------------------------------------------------------------------------------
  var controls = el("div", { class: "viewer-controls", role: "group", "aria-label": "Viewer" });
  function labelled(text, input) {
    var l = el("label", {}, text + " ");
    l.appendChild(input);
    controls.appendChild(l);
    return input;
  }
  var win = labelled("Window", el("input", { type: "range", id: "vw-window", min: "16",
    max: "65535", step: "1", value: "65535" }));
  var lev = labelled("Level", el("input", { type: "range", id: "vw-level", min: "0",
    max: "65535", step: "1", value: "32768" }));
  var auto = el("button", { type: "button", id: "vw-auto" }, "Auto window");
  controls.appendChild(auto);
  var dual = energies.indexOf("low") >= 0 && energies.indexOf("high") >= 0;
  var pseudo = el("input", { type: "checkbox", id: "vw-pseudo" });
  if (dual) {
    pseudo.checked = true;
    labelled("Pseudo-colour", pseudo);
  }
  var zin = el("button", { type: "button", id: "vw-zoom-in", "aria-label": "Zoom in" }, "+");
  var zout = el("button", { type: "button", id: "vw-zoom-out", "aria-label": "Zoom out" }, "−");
  var zreset = el("button", { type: "button", id: "vw-zoom-reset" }, "Fit");
  controls.appendChild(zin);
  controls.appendChild(zout);
  controls.appendChild(zreset);
  var tool = el("select", { id: "vw-tool" });
  ["pan", "box"].forEach(function (t) {
    tool.appendChild(el("option", { value: t }, t === "pan" ? "Pan" : "Draw a box"));
  });
  if (editable) {
    tool.value = "box";
    labelled("Tool", tool);
  }
  var layerBox = el("fieldset", { class: "viewer-layers" });
  layerBox.appendChild(el("legend", {}, "Layers"));
  var shownLayers = layers.map(function () {
    return true;
  });
  var perKind = {};
  layers.forEach(function (layer, i) {
    var list = COLOURS[layer.kind] || ["#ffffff"];
    var n = perKind[layer.kind] || 0;
    perKind[layer.kind] = n + 1;
    layer.colour = list[n % list.length];
    var box = el("input", { type: "checkbox", id: "vw-layer-" + i, "data-layer": layer.name });
    box.checked = true;
    box.addEventListener("change", function () {
      shownLayers[i] = box.checked;
      draw();
    });
    var l = el("label", {});
    // (a style set through the CSSOM: the pages' policy refuses style attributes)
    l.style.color = layer.colour;
    l.appendChild(box);
    l.appendChild(document.createTextNode(" " + layer.name + " (" + layer.kind + ", " +
      layer.objects.length + ")"));
    layerBox.appendChild(l);
  });
  var status = el("output", { id: "vw-status", "aria-live": "off" });
  var canvas = el("canvas", { id: "vw-canvas", width: String(W), height: String(H), tabindex: "0",
    role: "img", "aria-label": "X-ray view; + and - zoom, arrows pan" +
      (editable ? "; N draws a box, arrows move the selected box, Delete removes it" : "") });
  canvas.style.touchAction = "none";
  var figure = root.querySelector("figure");
  root.insertBefore(controls, figure);
  root.insertBefore(canvas, figure);
  root.insertBefore(status, figure);
  if (layers.length) {
    root.insertBefore(layerBox, figure);
  }
  figure.hidden = true;
  var ctx = canvas.getContext("2d");
  // The canvas holds as many pixels as it shows (sharp boxes and text over a small view);
  // drawing is in the view's pixels through `k`, canvas pixels per view pixel at zoom 1.
  var k = 1;
  function fit() {
    var width = canvas.getBoundingClientRect().width || W;
    var ratio = window.devicePixelRatio || 1;
    var next = Math.max(1, Math.round(width * ratio));
    if (next !== canvas.width) {
      var change = next / canvas.width;
      tx *= change;
      ty *= change;
      canvas.width = next;
      canvas.height = Math.max(1, Math.round(next * H / W));
    }
    k = canvas.width / W;
  }
  var base = el("canvas", { width: String(W), height: String(H) });
  var baseCtx = base.getContext("2d");

  // ---- data ----------------------------------------------------------------------------------
  var channels = {};
  function load(energy) {
    return fetch(root.dataset.raw + "&energy=" + energy, { credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) {
          throw new Error(energy + " channel: " + r.status);
        }
        return r.arrayBuffer();
      })
      .then(function (buffer) {
        var view = new DataView(buffer);
        var out = new Uint16Array(buffer.byteLength / 2);
        for (var i = 0; i < out.length; i++) {
          out[i] = view.getUint16(2 * i, true);
        }
        channels[energy] = out;
      });
  }
  function primary() {
    return channels.high || channels.low;
  }

  function autoWindow() {
    var data = primary();
    var histogram = new Uint32Array(256);
    for (var i = 0; i < data.length; i++) {
      histogram[data[i] >> 8]++;
    }
    var lo = 0;
    var hi = 255;
    var seen = 0;
    for (var b = 0; b < 256; b++) {
      seen += histogram[b];
      if (seen >= data.length * 0.005) {
        lo = b;
        break;
      }
    }
    seen = 0;
    for (b = 255; b >= 0; b--) {
      seen += histogram[b];
      if (seen >= data.length * 0.005) {
        hi = b;
        break;
      }
    }
    var low = lo * 256;
    var high = Math.max(hi * 256 + 255, low + 16);
    win.value = String(high - low);
    lev.value = String(Math.round((high + low) / 2));
  }

  function render() {
    var data = primary();
    if (!data) {
      return;
    }
    var w = Number(win.value);
    var l = Number(lev.value);
    var lowEdge = l - w / 2;
    var image = baseCtx.createImageData(W, H);
    var px = image.data;
    var colour = dual && pseudo.checked;
    var lowData = channels.low;
    var highData = channels.high;
    for (var i = 0; i < data.length; i++) {
      var b = (data[i] - lowEdge) / w;
      b = b < 0 ? 0 : b > 1 ? 1 : b;
      var r;
      var g;
      var bl;
      if (colour) {
        var tl = lowData[i] / 65535;
        var th = highData[i] / 65535;
        var hue;
        if (th > 0.97 || tl <= 0 || th <= 0) {
          hue = [255, 255, 255];
        } else {
          var ratio = Math.log(tl) / Math.log(th);
          hue = ratio < 1.6 ? [255, 150, 30] : ratio < 3.5 ? [40, 190, 60] : [40, 90, 255];
        }
        if (b > 0.5) {
          var f = (b - 0.5) * 2;
          r = hue[0] + (255 - hue[0]) * f;
          g = hue[1] + (255 - hue[1]) * f;
          bl = hue[2] + (255 - hue[2]) * f;
        } else {
          r = hue[0] * b * 2;
          g = hue[1] * b * 2;
          bl = hue[2] * b * 2;
        }
      } else {
        r = g = bl = b * 255;
      }
      px[4 * i] = r;
      px[4 * i + 1] = g;
      px[4 * i + 2] = bl;
      px[4 * i + 3] = 255;
    }
    baseCtx.putImageData(image, 0, 0);
    draw();
  }

  // ---- the form's rows (annotation page) -------------------------------------------------------
  function field(row, name) {
    return form.querySelector("[name='" + name + row + "']");
  }
  function rowCount() {
    return Number(form.querySelector("[name=rows]").value);
  }
  function rowBox(i) {
    var del = field(i, "del");
    if (del && del.checked) {
      return null;
    }
    var v = ["x0_", "y0_", "x1_", "y1_"].map(function (n) {
      var f = field(i, n);
      return f && f.value !== "" ? Number(f.value) : NaN;
    });
    if (v.some(isNaN)) {
      return null;
    }
    var label = field(i, "label");
    return { x0: v[0], y0: v[1], x1: v[2], y1: v[3], label: label ? label.value : "",
      proposal: !!(field(i, "p") && field(i, "p").value !== "") };
  }
  function setRow(i, b) {
    var c = clampBox(b);
    field(i, "x0_").value = c.x0.toFixed(1);
    field(i, "y0_").value = c.y0.toFixed(1);
    field(i, "x1_").value = c.x1.toFixed(1);
    field(i, "y1_").value = c.y1.toFixed(1);
  }
  function clampBox(b) {
    var x0 = Math.max(0, Math.min(b.x0, b.x1));
    var x1 = Math.min(W, Math.max(b.x0, b.x1));
    var y0 = Math.max(0, Math.min(b.y0, b.y1));
    var y1 = Math.min(H, Math.max(b.y0, b.y1));
    return { x0: x0, y0: y0, x1: x1, y1: y1 };
  }
  // a blank row for a new box (a copy of the last row when none is left)
  function blankRow() {
    for (var i = 0; i < rowCount(); i++) {
      var p = field(i, "p");
      if ((!p || p.value === "") && field(i, "x0_").value === "" && field(i, "label").value === "") {
        return i;
      }
    }
    var n = rowCount();
    var last = form.querySelector("tr[data-row='" + (n - 1) + "']");
    var copy = last.cloneNode(true);
    copy.setAttribute("data-row", String(n));
    copy.removeAttribute("data-proposal");
    copy.querySelectorAll("[name]").forEach(function (input) {
      input.name = input.name.replace(/\d+$/, String(n));
      if (input.type === "checkbox") {
        input.remove();
      } else {
        input.value = "";
      }
      var label = input.getAttribute("aria-label");
      if (label) {
        input.setAttribute("aria-label", label.replace(/row \d+/, "row " + (n + 1)));
      }
    });
    copy.querySelectorAll("a").forEach(function (a) {
      a.remove();
    });
    copy.firstElementChild.firstChild.textContent = (n + 1) + " (new)";
    last.parentNode.appendChild(copy);
    form.querySelector("[name=rows]").value = String(n + 1);
    return n;
  }
  var classPick = null;
  if (editable) {
    // the class given to boxes drawn on the canvas: the guideline's classes of the form
    classPick = el("select", { id: "vw-class" });
    var first = form.querySelector("select[name^=label]");
    Array.prototype.forEach.call(first ? first.options : [], function (o) {
      if (o.value) {
        classPick.appendChild(el("option", { value: o.value }, o.textContent));
      }
    });
    labelled("Class", classPick);
    form.addEventListener("input", draw);
    form.addEventListener("change", draw);
  }
  var selected = -1;

  // ---- view transform ------------------------------------------------------------------------
  var scale = 1;
  var tx = 0;
  var ty = 0;
  function toImage(event) {
    var rect = canvas.getBoundingClientRect();
    var cx = (event.clientX - rect.left) * (canvas.width / rect.width);
    var cy = (event.clientY - rect.top) * (canvas.height / rect.height);
    return { x: (cx - tx) / (k * scale), y: (cy - ty) / (k * scale), cx: cx, cy: cy };
  }
  function zoomAt(factor, cx, cy) {
    var next = Math.min(32, Math.max(1, scale * factor));
    tx = cx - (cx - tx) * (next / scale);
    ty = cy - (cy - ty) * (next / scale);
    scale = next;
    limit();
    draw();
  }
  function limit() {
    tx = Math.min(0, Math.max(canvas.width - canvas.width * scale, tx));
    ty = Math.min(0, Math.max(canvas.height - canvas.height * scale, ty));
  }

  function strokeBox(b, colour, text, width) {
    // line and text sizes in CSS pixels, whatever the zoom
    var px = (window.devicePixelRatio || 1) / (k * scale);
    ctx.strokeStyle = colour;
    ctx.lineWidth = (width || 2) * px;
    ctx.strokeRect(b.x0, b.y0, b.x1 - b.x0, b.y1 - b.y0);
    if (text) {
      ctx.fillStyle = colour;
      ctx.font = 13 * px + "px sans-serif";
      ctx.fillText(text, b.x0, Math.max(b.y0 - 3 * px, 13 * px - ty / (k * scale)));
    }
  }
  function draw() {
    fit();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.setTransform(k * scale, 0, 0, k * scale, tx, ty);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(base, 0, 0);
    layers.forEach(function (layer, i) {
      if (!shownLayers[i]) {
        return;
      }
      layer.objects.forEach(function (o, n) {
        var b = o.bbox;
        strokeBox({ x0: b[0], y0: b[1], x1: b[2], y1: b[3] }, layer.colour,
          layer.name + " " + (n + 1) + ": " + o.label);
      });
    });
    if (form) {
      for (var i = 0; i < rowCount(); i++) {
        var b = rowBox(i);
        if (b) {
          strokeBox(b, b.proposal ? "#ff9800" : "#00bcd4", (i + 1) + " " + b.label,
            i === selected ? 4 : 2);
        }
      }
    }
    if (drag && drag.box) {
      strokeBox(clampBox(drag.box), "#ffffff", "", 1);
    }
    status.textContent = "window " + win.value + ", level " + lev.value + ", zoom " +
      scale.toFixed(1) + "×" + (hover ? "; T = " + hover : "");
  }

  // ---- pointer: pan, draw, pinch -------------------------------------------------------------
  var drag = null;
  var pointers = {};
  var hover = "";
  function hit(p) {
    if (!form) {
      return -1;
    }
    for (var i = rowCount() - 1; i >= 0; i--) {
      var b = rowBox(i);
      if (b && p.x >= b.x0 && p.x <= b.x1 && p.y >= b.y0 && p.y <= b.y1) {
        return i;
      }
    }
    return -1;
  }
  canvas.addEventListener("pointerdown", function (event) {
    canvas.focus();
    canvas.setPointerCapture(event.pointerId);
    pointers[event.pointerId] = toImage(event);
    var ids = Object.keys(pointers);
    if (ids.length === 2) {
      var a = pointers[ids[0]];
      var c = pointers[ids[1]];
      drag = { pinch: Math.hypot(a.cx - c.cx, a.cy - c.cy) };
      return;
    }
    var p = pointers[event.pointerId];
    if (editable && tool.value === "box") {
      var at = hit(p);
      if (at >= 0 && !event.shiftKey) {
        selected = at;
        var b = rowBox(at);
        drag = { move: at, from: p, start: b };
      } else {
        drag = { box: { x0: p.x, y0: p.y, x1: p.x, y1: p.y } };
      }
    } else {
      drag = { pan: p, tx: tx, ty: ty };
    }
    draw();
  });
  canvas.addEventListener("pointermove", function (event) {
    var p = toImage(event);
    var data = primary();
    var x = Math.floor(p.x);
    var y = Math.floor(p.y);
    if (data && x >= 0 && y >= 0 && x < W && y < H) {
      hover = (data[y * W + x] / 65535).toFixed(3) + " at (" + x + ", " + y + ")";
    }
    if (pointers[event.pointerId]) {
      pointers[event.pointerId] = p;
    }
    if (!drag) {
      draw();
      return;
    }
    if (drag.pinch) {
      var ids = Object.keys(pointers);
      if (ids.length === 2) {
        var a = pointers[ids[0]];
        var c = pointers[ids[1]];
        var d = Math.hypot(a.cx - c.cx, a.cy - c.cy);
        zoomAt(d / drag.pinch, (a.cx + c.cx) / 2, (a.cy + c.cy) / 2);
        drag.pinch = d;
      }
      return;
    }
    if (drag.pan) {
      tx = drag.tx + (p.cx - drag.pan.cx);
      ty = drag.ty + (p.cy - drag.pan.cy);
      limit();
    } else if (drag.box) {
      drag.box.x1 = p.x;
      drag.box.y1 = p.y;
    } else if (drag.move !== undefined) {
      var dx = p.x - drag.from.x;
      var dy = p.y - drag.from.y;
      var s = drag.start;
      setRow(drag.move, { x0: s.x0 + dx, y0: s.y0 + dy, x1: s.x1 + dx, y1: s.y1 + dy });
    }
    draw();
  });
  function release(event) {
    delete pointers[event.pointerId];
    if (drag && drag.box) {
      var b = clampBox(drag.box);
      if (b.x1 - b.x0 >= 2 && b.y1 - b.y0 >= 2) {
        var row = blankRow();
        setRow(row, b);
        field(row, "label").value = classPick.value;
        selected = row;
      }
    }
    drag = null;
    draw();
  }
  canvas.addEventListener("pointerup", release);
  canvas.addEventListener("pointercancel", release);
  canvas.addEventListener("wheel", function (event) {
    event.preventDefault();
    var p = toImage(event);
    zoomAt(event.deltaY < 0 ? 1.25 : 0.8, p.cx, p.cy);
  }, { passive: false });

  // ---- keyboard ------------------------------------------------------------------------------
  canvas.addEventListener("keydown", function (event) {
    var step = event.shiftKey || event.altKey ? 10 : 1;
    var moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (event.key === "+" || event.key === "=") {
      zoomAt(1.25, canvas.width / 2, canvas.height / 2);
    } else if (event.key === "-") {
      zoomAt(0.8, canvas.width / 2, canvas.height / 2);
    } else if (editable && (event.key === "n" || event.key === "N")) {
      var side = Math.max(W, H) / 8;
      var cx = (canvas.width / 2 - tx) / (k * scale);
      var cy = (canvas.height / 2 - ty) / (k * scale);
      var row = blankRow();
      setRow(row, { x0: cx - side / 2, y0: cy - side / 2, x1: cx + side / 2, y1: cy + side / 2 });
      field(row, "label").value = classPick.value;
      selected = row;
    } else if (editable && selected >= 0 && (event.key === "Delete" || event.key === "Backspace")) {
      var del = field(selected, "del");
      if (del) {
        del.checked = true;
      } else {
        ["x0_", "y0_", "x1_", "y1_", "label"].forEach(function (n) {
          field(selected, n).value = "";
        });
      }
      selected = -1;
    } else if (moves[event.key]) {
      var m = moves[event.key];
      var b = editable && selected >= 0 ? rowBox(selected) : null;
      if (b && event.shiftKey) {
        setRow(selected, { x0: b.x0, y0: b.y0, x1: b.x1 + m[0] * step, y1: b.y1 + m[1] * step });
      } else if (b && event.altKey) {
        // shrink, whichever way the arrow points, down to 2 px
        setRow(selected, { x0: b.x0, y0: b.y0,
          x1: Math.max(b.x0 + 2, b.x1 - Math.abs(m[0]) * step),
          y1: Math.max(b.y0 + 2, b.y1 - Math.abs(m[1]) * step) });
      } else if (b) {
        setRow(selected, { x0: b.x0 + m[0] * step, y0: b.y0 + m[1] * step,
          x1: b.x1 + m[0] * step, y1: b.y1 + m[1] * step });
      } else {
        tx -= m[0] * 20;
        ty -= m[1] * 20;
        limit();
      }
    } else if (event.key === "Escape") {
      selected = -1;
    } else {
      return;
    }
    event.preventDefault();
    draw();
  });

  window.addEventListener("resize", draw);
  win.addEventListener("input", render);
  lev.addEventListener("input", render);
  pseudo.addEventListener("change", render);
  auto.addEventListener("click", function () {
    autoWindow();
    render();
  });
  zin.addEventListener("click", function () {
    zoomAt(1.25, canvas.width / 2, canvas.height / 2);
  });
  zout.addEventListener("click", function () {
    zoomAt(0.8, canvas.width / 2, canvas.height / 2);
  });
  zreset.addEventListener("click", function () {
    scale = 1;
    tx = 0;
    ty = 0;
    draw();
  });

  Promise.all(energies.map(load))
    .then(function () {
      autoWindow();
      render();
      root.setAttribute("data-ready", "1");
    })
    .catch(function (error) {
      // the grey PNG and SVG boxes stay
      figure.hidden = false;
      canvas.hidden = true;
      controls.hidden = true;
      status.textContent = "The 16-bit view could not be loaded (" + error.message +
        "); showing the 8-bit view.";
    });
})();
