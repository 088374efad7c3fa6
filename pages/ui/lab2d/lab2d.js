/*
 * The 2-D lab's view (Streamlit components v2): a canvas that draws the decision regions, the data,
 * and either x with DeepFool's iterates, r(x) and the osculating circle ("lab") or a universal
 * vector v with the points it fools ("universal"). Dragging x or v's tip, and the direction / ‖v‖ /
 * angle controls, recompute with Lab2dMath (lab2d_math.js, prepended to this file) and repaint in
 * the browser; only the end of a drag is reported to Python (setStateValue "x" or "v").
 *
 * Timing hook: each repaint during a drag or a control change appends
 * {kind, draw_ms, frame_ms} to window.__lab2dTimings (from the event's time stamp to the end of the
 * synchronous draw, and to the next requestAnimationFrame callback).
 */
const HANDLE_PX = 14; // how close to x or to v's tip a press grabs it (CSS pixels, times the view's scale)
const KIND_LABELS = { S_f: "S_f (flat)", S_c: "S_c (curved)", custom: "my own v" };

function fmt(v, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (!Number.isFinite(v)) return "∞";
  return v.toFixed(digits);
}

function signed(v, digits) {
  if (!Number.isFinite(v)) return fmt(v, digits);
  return (v >= 0 ? "+" : "−") + Math.abs(v).toFixed(digits);
}

function record(kind, t0, t1) {
  requestAnimationFrame(() => {
    const t2 = performance.now();
    const list = (window.__lab2dTimings = window.__lab2dTimings || []);
    list.push({ kind: kind, draw_ms: t1 - t0, frame_ms: t2 - t0 });
  });
}

function createView(root) {
  const M = globalThis.Lab2dMath;
  const S = {
    data: null,
    modelKey: null,
    model: null,
    points: [],
    predicted: [],
    centroid: [0, 0],
    reg: null,
    segments: [],
    staticLayer: null,
    staticSize: "",
    x: null,
    lastDataX: null,
    kind: "custom",
    xi: 0.3,
    angle: 0,
    lastDataV: null,
    v: [0, 0],
    vMask: [],
    vRate: NaN,
    drag: null,
    setStateValue: null,
  };

  // the view's scale (data.scale, the app's present mode: pages/ui/layout.figure_scale): every font, marker, line
  // width and dash of the canvas, and the title / readout / controls' text (CSS --lab2d-scale), grow by it
  const k = () => (S.data && S.data.scale > 0 ? S.data.scale : 1);
  root.innerHTML = "";
  const title = document.createElement("div");
  title.className = "lab2d-title";
  const canvas = document.createElement("canvas");
  canvas.className = "lab2d-canvas";
  const readout = document.createElement("div");
  readout.className = "lab2d-readout";
  readout.setAttribute("aria-live", "polite");
  const controls = document.createElement("div");
  controls.className = "lab2d-controls";
  const hint = document.createElement("div");
  hint.className = "lab2d-hint";
  root.append(title, canvas, readout, controls, hint);

  // ------------------------------------------------------------------ controls (universal mode)
  const kindBox = document.createElement("div");
  kindBox.className = "lab2d-kinds";
  kindBox.setAttribute("role", "radiogroup");
  kindBox.setAttribute("aria-label", "direction of v");
  const kindInputs = {};
  const name = "lab2d-kind-" + Math.random().toString(36).slice(2);
  for (const k of ["S_f", "S_c", "custom"]) {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "radio";
    input.name = name;
    input.value = k;
    input.addEventListener("change", (e) => {
      if (!input.checked) return;
      S.kind = k;
      repaint("control", e.timeStamp);
      report("v");
    });
    kindInputs[k] = input;
    label.append(input, document.createTextNode(" " + KIND_LABELS[k]));
    kindBox.append(label);
  }
  function slider(text, onInput) {
    const label = document.createElement("label");
    label.className = "lab2d-slider";
    const span = document.createElement("span");
    const input = document.createElement("input");
    input.type = "range";
    input.addEventListener("input", (e) => {
      onInput(parseFloat(input.value));
      repaint("control", e.timeStamp);
    });
    input.addEventListener("change", () => report("v"));
    label.append(span, input);
    return { label: label, span: span, input: input, text: text };
  }
  const xiSlider = slider("‖v‖ = ξ", (val) => {
    S.xi = val;
  });
  const angleSlider = slider("angle", (val) => {
    S.angle = val;
    S.kind = "custom";
  });
  angleSlider.input.min = "-180";
  angleSlider.input.max = "180";
  angleSlider.input.step = "1";
  controls.append(kindBox, xiSlider.label, angleSlider.label);

  // ------------------------------------------------------------------ geometry of the canvas
  function frame() {
    const d = S.data;
    const W = Math.max(200, Math.floor(root.clientWidth || canvas.clientWidth || 600));
    const box = d.box;
    const m = 10;
    // as tall as the box needs at this width (equal scales on both axes), at most d.height
    const H = Math.min(d.height, Math.ceil(((W - 2 * m) * (box[3] - box[2])) / (box[1] - box[0]) + 2 * m));
    const s = Math.min((W - 2 * m) / (box[1] - box[0]), (H - 2 * m) / (box[3] - box[2]));
    const ox = (W - s * (box[1] - box[0])) / 2;
    const oy = (H - s * (box[3] - box[2])) / 2;
    return {
      W: W,
      H: H,
      s: s,
      px: (a) => ox + (a - box[0]) * s,
      py: (b) => oy + (box[3] - b) * s,
      ux: (X) => box[0] + (X - ox) / s,
      uy: (Y) => box[3] - (Y - oy) / s,
      rect: [ox, oy, s * (box[1] - box[0]), s * (box[3] - box[2])],
    };
  }

  function setup(fr) {
    const dpr = window.devicePixelRatio || 1;
    const size = fr.W + "x" + fr.H + "@" + dpr + "*" + k();
    if (canvas.width !== Math.round(fr.W * dpr) || canvas.height !== Math.round(fr.H * dpr)) {
      canvas.width = Math.round(fr.W * dpr);
      canvas.height = Math.round(fr.H * dpr);
      canvas.style.width = fr.W + "px";
      canvas.style.height = fr.H + "px";
    }
    if (S.staticSize !== size || !S.staticLayer) {
      S.staticLayer = drawStatic(fr, dpr);
      S.staticSize = size;
    }
    return dpr;
  }

  // Regions (pale class colours), the boundary between grid cells, and the data: drawn once per model and size.
  function drawStatic(fr, dpr) {
    const d = S.data;
    const res = d.resolution;
    const layer = document.createElement("canvas");
    layer.width = canvas.width;
    layer.height = canvas.height;
    const g = layer.getContext("2d");
    g.scale(dpr, dpr);
    g.fillStyle = "#ffffff";
    g.fillRect(0, 0, fr.W, fr.H);
    const img = document.createElement("canvas");
    img.width = res;
    img.height = res;
    const ig = img.getContext("2d");
    const id = ig.createImageData(res, res);
    const pale = d.colors.pale.map(hexRgb);
    const lab = S.reg.label;
    for (let i = 0; i < res; i++) {
      const row = res - 1 - i; // x2 grows upward
      for (let j = 0; j < res; j++) {
        const c = pale[lab[i * res + j] ? 1 : 0];
        const o = (row * res + j) * 4;
        id.data[o] = c[0];
        id.data[o + 1] = c[1];
        id.data[o + 2] = c[2];
        id.data[o + 3] = 255;
      }
    }
    ig.putImageData(id, 0, 0);
    g.imageSmoothingEnabled = false;
    const [rx, ry, rw, rh] = fr.rect;
    g.drawImage(img, rx, ry, rw, rh);
    // the boundary: the zero contour of f_1 − f_0 between the grid's labels (marching squares)
    g.strokeStyle = "#000";
    g.lineWidth = 2 * k();
    g.lineCap = "round";
    g.beginPath();
    for (const sg of S.segments) {
      g.moveTo(fr.px(sg[0]), fr.py(sg[1]));
      g.lineTo(fr.px(sg[2]), fr.py(sg[3]));
    }
    g.stroke();
    const cls = d.colors.classes;
    for (let i = 0; i < S.points.length; i++) {
      const p = S.points[i];
      g.beginPath();
      g.arc(fr.px(p[0]), fr.py(p[1]), 3.2 * k(), 0, 2 * Math.PI);
      g.fillStyle = cls[S.predicted[i] ? 1 : 0];
      g.fill();
      g.lineWidth = 0.6 * k();
      g.strokeStyle = "#fff";
      g.stroke();
    }
    return layer;
  }

  function hexRgb(h) {
    const n = parseInt(h.slice(1), 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }

  function arrow(g, fr, a, b, color, width) {
    const X0 = fr.px(a[0]);
    const Y0 = fr.py(a[1]);
    const X1 = fr.px(b[0]);
    const Y1 = fr.py(b[1]);
    const L = Math.hypot(X1 - X0, Y1 - Y0);
    g.strokeStyle = color;
    g.fillStyle = color;
    g.lineWidth = width * k();
    g.setLineDash([]);
    g.beginPath();
    g.moveTo(X0, Y0);
    g.lineTo(X1, Y1);
    g.stroke();
    if (L > 1) {
      const ux = (X1 - X0) / L;
      const uy = (Y1 - Y0) / L;
      const hl = Math.min(14 * k(), L * 0.6);
      g.beginPath();
      g.moveTo(X1, Y1);
      g.lineTo(X1 - hl * ux + hl * 0.45 * uy, Y1 - hl * uy - hl * 0.45 * ux);
      g.lineTo(X1 - hl * ux - hl * 0.45 * uy, Y1 - hl * uy + hl * 0.45 * ux);
      g.closePath();
      g.fill();
    }
  }

  function star(g, X, Y, R0, color) {
    const R = R0 * k();
    g.beginPath();
    for (let k = 0; k < 10; k++) {
      const r = k % 2 ? R * 0.45 : R;
      const t = -Math.PI / 2 + (k * Math.PI) / 5;
      g.lineTo(X + r * Math.cos(t), Y + r * Math.sin(t));
    }
    g.closePath();
    g.fillStyle = color;
    g.fill();
    g.lineWidth = 1.2 * k();
    g.strokeStyle = "#000";
    g.stroke();
  }

  // ------------------------------------------------------------------ the lab: x, DeepFool, κ
  let lab = null;
  function computeLab() {
    const d = S.data;
    const df = M.deepfool(S.model, S.x, { overshoot: 0.02, maxIter: 50 });
    let osc = null;
    let note = "";
    if (df.converged) {
      osc = M.osculating(S.model, S.x, d.curvature);
      if (!osc.ok) {
        note = osc.note;
        osc = null;
      }
    } else {
      note = "DeepFool did not reach the boundary from this point within 50 steps.";
    }
    lab = { df: df, osc: osc, note: note };
  }

  function drawLab(g, fr) {
    const d = S.data;
    const df = lab.df;
    const box = d.box;
    const span = Math.max(box[1] - box[0], box[3] - box[2]);
    g.save();
    g.beginPath();
    g.rect(...fr.rect);
    g.clip();
    // each step's linearised boundary: through x_i + r_i, orthogonal to r_i
    g.strokeStyle = "#666";
    g.lineWidth = 1 * k();
    g.setLineDash([2 * k(), 3 * k()]);
    g.beginPath();
    for (let i = 0; i < df.steps.length; i++) {
      const p = df.iterates[i];
      const st = df.steps[i];
      const n = Math.hypot(st[0], st[1]);
      if (n === 0) continue;
      const foot = [p[0] + st[0], p[1] + st[1]];
      const t = [-st[1] / n, st[0] / n];
      g.moveTo(fr.px(foot[0] - span * t[0]), fr.py(foot[1] - span * t[1]));
      g.lineTo(fr.px(foot[0] + span * t[0]), fr.py(foot[1] + span * t[1]));
    }
    g.stroke();
    // the osculating circle at z = x + r(x)
    const osc = lab.osc;
    if (osc && Number.isFinite(osc.radius) && osc.radius < 20 * span) {
      g.setLineDash([]);
      g.strokeStyle = "#9467BD";
      g.lineWidth = 2 * k();
      g.beginPath();
      g.arc(fr.px(osc.center[0]), fr.py(osc.center[1]), osc.radius * fr.s, 0, 2 * Math.PI);
      g.stroke();
    }
    // DeepFool's iterates x0 → x1 → …
    g.setLineDash([6 * k(), 4 * k()]);
    g.strokeStyle = "#111";
    g.lineWidth = 2 * k();
    g.beginPath();
    df.iterates.forEach((p, i) => (i ? g.lineTo(fr.px(p[0]), fr.py(p[1])) : g.moveTo(fr.px(p[0]), fr.py(p[1]))));
    g.stroke();
    g.setLineDash([]);
    g.fillStyle = "#111";
    g.font = Math.round(12 * k()) + "px sans-serif";
    df.iterates.forEach((p, i) => {
      if (i === 0) return;
      g.beginPath();
      g.arc(fr.px(p[0]), fr.py(p[1]), 3.5 * k(), 0, 2 * Math.PI);
      g.fill();
      if (i < 6) g.fillText("x" + i, fr.px(p[0]) - 16 * k(), fr.py(p[1]) - 6 * k());
    });
    arrow(g, fr, S.x, [S.x[0] + df.r[0], S.x[1] + df.r[1]], "#2CA02C", 3);
    g.restore();
    star(g, fr.px(S.x[0]), fr.py(S.x[1]), 10, "#2CA02C");
  }

  function labText() {
    const df = lab.df;
    const osc = lab.osc;
    const parts = [
      "x = (" + fmt(S.x[0], 3) + ", " + fmt(S.x[1], 3) + ")",
      "‖r(x)‖ = " + (df.converged ? fmt(df.norm, 3) : "—"),
      "DeepFool steps " + df.nIter,
    ];
    if (osc) {
      parts.push("κ at z = x + r(x): " + signed(osc.kappa, 3) + (osc.h ? " (h = " + osc.h + ")" : " (exact)"));
      parts.push("radius 1/|κ| = " + (Number.isFinite(osc.radius) ? fmt(osc.radius, 3) : "∞ (straight)"));
    }
    if (lab.note) parts.push(lab.note);
    return parts;
  }

  // ------------------------------------------------------------------ universal vectors
  function computeV() {
    const d = S.data;
    const u = d.directions && d.directions[S.kind];
    let res;
    if (S.kind !== "custom" && u) {
      res = M.signedVector(S.model, S.points, u, S.xi, S.predicted);
    } else {
      const v = M.directionVector(S.angle, S.xi);
      const fo = M.fooled(S.model, S.points, v, S.predicted);
      res = { v: v, mask: fo.mask, rate: fo.rate };
    }
    S.v = res.v;
    S.vMask = res.mask;
    S.vRate = res.rate;
  }

  function drawV(g, fr) {
    g.lineWidth = 2 * k();
    g.strokeStyle = "#000";
    for (let i = 0; i < S.points.length; i++) {
      if (!S.vMask[i]) continue;
      const p = S.points[i];
      g.beginPath();
      g.arc(fr.px(p[0]), fr.py(p[1]), 6.5 * k(), 0, 2 * Math.PI);
      g.stroke();
    }
    const c = S.centroid;
    const tip = [c[0] + S.v[0], c[1] + S.v[1]];
    arrow(g, fr, c, tip, "#000", 3);
    g.beginPath();
    g.arc(fr.px(tip[0]), fr.py(tip[1]), 7 * k(), 0, 2 * Math.PI);
    g.fillStyle = "rgba(255,255,255,0.85)";
    g.fill();
    g.lineWidth = 2 * k();
    g.strokeStyle = "#000";
    g.stroke();
  }

  function vText() {
    const n = S.vMask.filter(Boolean).length;
    return [
      "v along " + S.kind + ": fooling rate " + fmt(100 * S.vRate, 0) + " % (" + n + " of " + S.points.length + ")",
      "‖v‖ = " + fmt(Math.hypot(S.v[0], S.v[1]), 2),
      "v = (" + fmt(S.v[0], 3) + ", " + fmt(S.v[1], 3) + ")",
    ];
  }

  function syncControls() {
    const d = S.data;
    const has = (k) => k === "custom" || !!(d.directions && d.directions[k]);
    for (const k in kindInputs) {
      kindInputs[k].checked = S.kind === k;
      kindInputs[k].disabled = !has(k);
    }
    xiSlider.span.textContent = xiSlider.text + " = " + fmt(S.xi, 2);
    angleSlider.span.textContent = angleSlider.text + " = " + fmt(S.angle, 0) + "°";
    angleSlider.input.disabled = S.kind !== "custom";
  }

  // ------------------------------------------------------------------ repaint
  function repaint(kind, t0) {
    if (!S.data || !S.model) return;
    const fr = frame();
    const dpr = setup(fr);
    const g = canvas.getContext("2d");
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.drawImage(S.staticLayer, 0, 0);
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    let parts;
    if (S.data.mode === "lab") {
      computeLab();
      drawLab(g, fr);
      parts = labText();
      root.dataset.rx = lab.df.converged ? String(lab.df.norm) : "";
      root.dataset.kappa = lab.osc ? String(lab.osc.kappa) : "";
    } else {
      computeV();
      drawV(g, fr);
      syncControls();
      parts = vText();
      root.dataset.rate = String(S.vRate);
    }
    const hp = S.data.mode === "lab" ? S.x : [S.centroid[0] + S.v[0], S.centroid[1] + S.v[1]];
    root.dataset.handle = fr.px(hp[0]).toFixed(1) + "," + fr.py(hp[1]).toFixed(1); // CSS px in the canvas
    readout.textContent = parts.join("  ·  ");
    root.dataset.repaints = String((parseInt(root.dataset.repaints || "0", 10) || 0) + 1);
    if (t0 !== undefined) record(kind, t0, performance.now());
  }

  function report(what) {
    if (!S.setStateValue) return;
    if (what === "x") S.setStateValue("x", [S.x[0], S.x[1]]);
    else S.setStateValue("v", { kind: S.kind, xi: S.xi, angle: S.angle, v: [S.v[0], S.v[1]] });
  }

  // ------------------------------------------------------------------ pointer: drag x or v's tip
  function toData(e) {
    const r = canvas.getBoundingClientRect();
    const fr = frame();
    return [fr.ux(e.clientX - r.left), fr.uy(e.clientY - r.top)];
  }

  function setTip(p) {
    const d = S.data;
    const [lo, hi, step] = d.xi_range;
    const av = M.vectorFromDrag(p, S.centroid, lo, hi, step, 1.0);
    if (!av) return;
    S.kind = "custom";
    S.angle = av[0];
    S.xi = av[1];
    angleSlider.input.value = String(S.angle);
    xiSlider.input.value = String(S.xi);
  }

  canvas.addEventListener("pointerdown", (e) => {
    if (!S.data || e.button !== 0) return;
    const p = toData(e);
    S.drag = S.data.mode === "lab" ? "x" : "v";
    canvas.setPointerCapture(e.pointerId);
    if (S.drag === "x") S.x = p;
    else setTip(p);
    repaint(S.drag, e.timeStamp);
    e.preventDefault();
  });
  canvas.addEventListener("pointermove", (e) => {
    const fr = S.data ? frame() : null;
    if (!S.drag) {
      if (fr) canvas.style.cursor = nearHandle(e, fr) ? "grab" : "crosshair";
      return;
    }
    const p = toData(e);
    if (S.drag === "x") S.x = p;
    else setTip(p);
    repaint(S.drag, e.timeStamp);
  });
  function endDrag(e) {
    if (!S.drag) return;
    const what = S.drag;
    S.drag = null;
    if (canvas.hasPointerCapture(e.pointerId)) canvas.releasePointerCapture(e.pointerId);
    report(what);
  }
  canvas.addEventListener("pointerup", endDrag);
  canvas.addEventListener("pointercancel", endDrag);

  function nearHandle(e, fr) {
    const r = canvas.getBoundingClientRect();
    const X = e.clientX - r.left;
    const Y = e.clientY - r.top;
    let h = null;
    if (S.data.mode === "lab" && S.x) h = S.x;
    else if (S.data.mode === "universal") h = [S.centroid[0] + S.v[0], S.centroid[1] + S.v[1]];
    return h && Math.hypot(fr.px(h[0]) - X, fr.py(h[1]) - Y) <= HANDLE_PX * k();
  }

  if (typeof ResizeObserver !== "undefined") {
    let lastW = 0;
    new ResizeObserver(() => {
      const w = Math.floor(root.clientWidth);
      if (w && w !== lastW) {
        lastW = w;
        repaint();
      }
    }).observe(root);
  }

  // ------------------------------------------------------------------ new data from Python
  S.update = function (d) {
    const prev = S.data;
    S.data = d;
    const key = JSON.stringify([d.model, d.points, d.box, d.resolution]);
    if (key !== S.modelKey) {
      S.modelKey = key;
      S.model = d.model;
      S.points = d.points;
      S.predicted = d.points.map((p) => M.predict(d.model, p));
      let c0 = 0;
      let c1 = 0;
      for (const p of d.points) {
        c0 += p[0];
        c1 += p[1];
      }
      S.centroid = d.points.length ? [c0 / d.points.length, c1 / d.points.length] : [0, 0];
      S.reg = M.regions(d.model, d.box, d.resolution);
      S.segments = M.boundarySegments(S.reg);
      S.staticLayer = null;
    }
    const dx = JSON.stringify(d.x);
    if (dx !== S.lastDataX || !S.x) {
      S.lastDataX = dx;
      S.x = d.x ? [d.x[0], d.x[1]] : d.points.length ? d.points[0].slice() : [0, 0];
    }
    const dv = JSON.stringify([d.kind, d.xi, d.angle]);
    if (dv !== S.lastDataV) {
      S.lastDataV = dv;
      S.kind = d.kind;
      S.xi = d.xi;
      S.angle = d.angle;
    }
    const [lo, hi, step] = d.xi_range;
    xiSlider.input.min = String(lo);
    xiSlider.input.max = String(hi);
    xiSlider.input.step = String(step);
    xiSlider.input.value = String(S.xi);
    angleSlider.input.value = String(S.angle);
    title.textContent = d.title || "";
    title.style.display = d.title ? "" : "none";
    controls.style.display = d.mode === "universal" ? "" : "none";
    hint.textContent =
      d.mode === "lab"
        ? "Drag x (the green star), or press anywhere to move it there: DeepFool, r(x) and the osculating circle follow in your browser."
        : "Drag the tip of v (the black arrow from the data's centroid), or use the controls: the ringed points are those v fools.";
    root.style.setProperty("--lab2d-scale", String(k()));
    root.dataset.scale = String(k());
    root.dataset.mode = d.mode;
    root.dataset.ready = "1";
    if (!prev || prev.mode !== d.mode) root.dataset.repaints = "0";
    repaint();
  };

  return S;
}

export default function (component) {
  const { data, setStateValue, parentElement } = component;
  let root = parentElement.querySelector(".lab2d");
  if (!root) {
    root = document.createElement("div");
    root.className = "lab2d";
    parentElement.appendChild(root);
  }
  if (!root.__lab2d) root.__lab2d = createView(root);
  const S = root.__lab2d;
  S.setStateValue = setStateValue;
  S.update(data);
}
