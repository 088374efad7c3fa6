/*
 * The 2-D lab's geometry in the browser: decision regions, DeepFool's iterates, r(x), the osculating
 * circle and κ, and a universal vector's fooling rate, for the toy models of geometry/toy2d.py.
 *
 * Pure maths, no DOM: the same file runs in the page (prepended to lab2d.js) and under node
 * (`require`, tests/test_lab2d_math.py), where its results are checked against the Python reference
 * (geometry.toy2d, geometry.deepfool, geometry.curvature, geometry.universal). Everything is float64.
 *
 * A model (sent once by pages/ui/lab2d/lab2d.py, `model_spec`) is one of
 *   {type: "mlp", activation: "relu" | "tanh" | "identity", layers: [{W: [[…]] (out × in), b: […]}, …]}
 *     logits = W_L σ(… σ(W_1 x + b_1) …) + b_L (the linear model and the analytic affine classifier
 *     are one layer);
 *   {type: "sphere", center: [c1, c2], r2: R²}  — logits (0, ‖x − c‖² − R²) (geometry.testing).
 *
 * References: Moosavi-Dezfooli, Fawzi, Frossard, "DeepFool", CVPR 2016, Algorithm 2 (ℓ2, overshoot,
 * the 1e-4 constant); ICLR 2018 §4–5 and DESIGN §4 (boundary function F = f_adv − f_label, normal
 * ∇F/‖∇F‖, κ = tᵀH_F t/(‖t‖²‖∇F‖) with a positive sign where the boundary bends around x);
 * CVPR 2017 §2 (fooling rate).
 */
(function (root, factory) {
  const api = factory();
  if (typeof module === "object" && module && module.exports) module.exports = api;
  else root.Lab2dMath = api;
})(typeof globalThis !== "undefined" ? globalThis : this, function () {
  "use strict";

  const EPS = 1e-4; // Algorithm 2's constant added to |f'_l| (geometry/deepfool.py _EPS)

  function act(kind, z) {
    // value, first and second derivative of the activation at z (torch's conventions: relu'(0) = 0)
    if (kind === "tanh") {
      const a = Math.tanh(z);
      const d = 1 - a * a;
      return [a, d, -2 * a * d];
    }
    if (kind === "relu") return z > 0 ? [z, 1, 0] : [0, 0, 0];
    return [z, 1, 0];
  }

  // Flattened weights and scratch buffers per model (the fast path of the region grid, the label
  // checks and the fooling rates: no allocation per evaluation). Same float64 operations, same order.
  const COMPILED = new WeakMap();
  function compiled(model) {
    let c = COMPILED.get(model);
    if (!c) {
      const layers = model.layers.map((L) => ({
        out: L.W.length,
        inp: L.W[0].length,
        W: Float64Array.from(L.W.flat()),
        b: Float64Array.from(L.b),
      }));
      const width = Math.max(2, ...layers.map((l) => l.out));
      c = { layers: layers, u: new Float64Array(width), w: new Float64Array(width), act: model.activation };
      COMPILED.set(model, c);
    }
    return c;
  }

  /* Logits into the compiled model's scratch buffer; returns [buffer, L]. */
  function forward(model, x0, x1) {
    const c = compiled(model);
    let v = c.u;
    let o = c.w;
    v[0] = x0;
    v[1] = x1;
    const tanh = c.act === "tanh";
    const relu = c.act === "relu";
    const n = c.layers.length;
    for (let l = 0; l < n; l++) {
      const { out, inp, W, b } = c.layers[l];
      const last = l === n - 1;
      for (let i = 0; i < out; i++) {
        let s = 0;
        const row = i * inp;
        for (let j = 0; j < inp; j++) s += W[row + j] * v[j];
        s += b[i];
        o[i] = last ? s : tanh ? Math.tanh(s) : relu ? (s > 0 ? s : 0) : s;
      }
      const t = v;
      v = o;
      o = t;
    }
    return [v, c.layers[n - 1].out];
  }

  /* Logits only. */
  function logits(model, x0, x1) {
    if (model.type === "sphere") {
      const a = x0 - model.center[0];
      const b = x1 - model.center[1];
      return [0, a * a + b * b - model.r2];
    }
    const [v, L] = forward(model, x0, x1);
    return Array.from(v.subarray(0, L));
  }

  /* k̂ at (x0, x1): the first largest logit, as torch.argmax. */
  function labelAt(model, x0, x1) {
    if (model.type === "sphere") {
      const a = x0 - model.center[0];
      const b = x1 - model.center[1];
      return a * a + b * b - model.r2 > 0 ? 1 : 0;
    }
    const [v, L] = forward(model, x0, x1);
    let k = 0;
    for (let i = 1; i < L; i++) if (v[i] > v[k]) k = i;
    return k;
  }

  /* Logits f (L), their gradients J (L × 2) and, with order 2, Hessians H (L × [h11, h12, h22])
   * by forward-mode propagation through the layers (d = 2, so two tangents suffice). */
  function jet(model, x, order) {
    if (model.type === "sphere") {
      const a = x[0] - model.center[0];
      const b = x[1] - model.center[1];
      return {
        f: [0, a * a + b * b - model.r2],
        J: [
          [0, 0],
          [2 * a, 2 * b],
        ],
        H: [
          [0, 0, 0],
          [2, 0, 2],
        ],
      };
    }
    let v = [x[0], x[1]];
    let J = [
      [1, 0],
      [0, 1],
    ];
    let H = [
      [0, 0, 0],
      [0, 0, 0],
    ];
    const L = model.layers;
    for (let l = 0; l < L.length; l++) {
      const W = L[l].W;
      const bias = L[l].b;
      const last = l === L.length - 1;
      const nv = new Array(W.length);
      const nJ = new Array(W.length);
      const nH = new Array(W.length);
      for (let i = 0; i < W.length; i++) {
        const row = W[i];
        let s = 0;
        let g0 = 0;
        let g1 = 0;
        let h11 = 0;
        let h12 = 0;
        let h22 = 0;
        for (let j = 0; j < row.length; j++) {
          const w = row[j];
          s += w * v[j];
          g0 += w * J[j][0];
          g1 += w * J[j][1];
          if (order > 1) {
            h11 += w * H[j][0];
            h12 += w * H[j][1];
            h22 += w * H[j][2];
          }
        }
        s += bias[i];
        if (last) {
          nv[i] = s;
          nJ[i] = [g0, g1];
          nH[i] = [h11, h12, h22];
        } else {
          const [a, d1, d2] = act(model.activation, s);
          nv[i] = a;
          nJ[i] = [d1 * g0, d1 * g1];
          nH[i] = [d2 * g0 * g0 + d1 * h11, d2 * g0 * g1 + d1 * h12, d2 * g1 * g1 + d1 * h22];
        }
      }
      v = nv;
      J = nJ;
      H = nH;
    }
    return { f: v, J: J, H: H };
  }

  function predict(model, x) {
    return labelAt(model, x[0], x[1]);
  }

  /* numpy.linspace(a, b, n): i·step + a, the last value exactly b. */
  function linspace(a, b, n) {
    const out = new Array(n);
    const step = (b - a) / (n - 1);
    for (let i = 0; i < n; i++) out[i] = i * step + a;
    if (n > 1) out[n - 1] = b;
    return out;
  }

  /* k̂ on a res × res grid of box = [x1_min, x1_max, x2_min, x2_max]; label[i·res + j] is the
   * class at (x1[j], x2[i]) — geometry.toy2d.decision_regions. For two classes, score holds
   * f_1 − f_0 at the same points (label 1 where it is > 0), for drawing the boundary as a contour. */
  function regions(model, box, res) {
    const g1 = linspace(box[0], box[1], res);
    const g2 = linspace(box[2], box[3], res);
    const label = new Uint8Array(res * res);
    const two = model.type === "sphere" || model.layers[model.layers.length - 1].W.length === 2;
    const score = two ? new Float64Array(res * res) : null;
    for (let i = 0; i < res; i++) {
      for (let j = 0; j < res; j++) {
        const k = i * res + j;
        if (!two) {
          label[k] = labelAt(model, g1[j], g2[i]);
          continue;
        }
        let f0;
        let f1;
        if (model.type === "sphere") {
          const a = g1[j] - model.center[0];
          const b = g2[i] - model.center[1];
          f0 = 0;
          f1 = a * a + b * b - model.r2;
        } else {
          const [v] = forward(model, g1[j], g2[i]);
          f0 = v[0];
          f1 = v[1];
        }
        label[k] = f1 > f0 ? 1 : 0; // ties: class 0, as torch.argmax
        score[k] = f1 - f0;
      }
    }
    return { x1: g1, x2: g2, label: label, score: score };
  }

  /* The decision boundary as line segments [[a1, a2, b1, b2], …] (data units): marching squares on
   * the grid's labels, each crossing placed by linear interpolation of the score f_1 − f_0 (cell
   * edges between different labels when there is no score). Drawing only — the labels are the
   * reference. */
  function boundarySegments(reg) {
    const { x1, x2, label, score } = reg;
    const res = x1.length;
    const segs = [];
    const at = (i, j) => label[i * res + j];
    const cross = (i0, j0, i1, j1) => {
      let t = 0.5;
      if (score) {
        const a = score[i0 * res + j0];
        const b = score[i1 * res + j1];
        if (a !== b) t = Math.min(1, Math.max(0, a / (a - b)));
      }
      return [x1[j0] + t * (x1[j1] - x1[j0]), x2[i0] + t * (x2[i1] - x2[i0])];
    };
    for (let i = 0; i + 1 < res; i++) {
      for (let j = 0; j + 1 < res; j++) {
        const a = at(i, j);
        const b = at(i, j + 1);
        const c = at(i + 1, j + 1);
        const d = at(i + 1, j);
        if (a === b && b === c && c === d) continue;
        const pts = [];
        if (a !== b) pts.push(cross(i, j, i, j + 1));
        if (b !== c) pts.push(cross(i, j + 1, i + 1, j + 1));
        if (c !== d) pts.push(cross(i + 1, j + 1, i + 1, j));
        if (d !== a) pts.push(cross(i + 1, j, i, j));
        if (pts.length === 2) segs.push([pts[0][0], pts[0][1], pts[1][0], pts[1][1]]);
        else if (pts.length === 4) {
          segs.push([pts[0][0], pts[0][1], pts[1][0], pts[1][1]]);
          segs.push([pts[2][0], pts[2][1], pts[3][0], pts[3][1]]);
        }
      }
    }
    return segs;
  }

  /* DeepFool, ℓ2, one point (geometry.deepfool.deepfool with N = 1): candidates are the top
   * classes at x (k̂ first); every step linearises at x + (1 + overshoot)·r_tot and stops as soon as
   * the label there differs from k̂(x). Returns iterates x_0 … x_T, steps r_1 … r_T, r(x) (scaled
   * by 1 + overshoot), k̂(x), k̂(x + r), converged, n_iter and ‖r‖₂. */
  function deepfool(model, x, opts) {
    const o = opts || {};
    const overshoot = o.overshoot === undefined ? 0.02 : o.overshoot;
    const maxIter = o.maxIter === undefined ? 50 : o.maxIter;
    const candidates = o.candidates === undefined ? 10 : o.candidates;
    const x0 = [x[0], x[1]];
    let xe = [x0[0], x0[1]];
    let r = [0, 0];
    const rtot = [0, 0];
    const iterates = [[x0[0], x0[1]]];
    const steps = [];
    let label = 0;
    let advLabel = 0;
    let converged = false;
    let nIter = 0;
    let cls = null;
    if (maxIter === 0) {
      label = predict(model, x0);
      return finish();
    }
    for (let it = 0; it <= maxIter; it++) {
      if (it > 0) {
        const pred = predict(model, xe);
        advLabel = pred;
        if (pred !== label) {
          converged = true;
          break;
        }
        if (it === maxIter) break;
      }
      const { f, J } = jet(model, xe, 1);
      if (it === 0) {
        const order = f.map((_, i) => i).sort((a, b) => f[b] - f[a] || a - b); // stable, descending
        cls = order.slice(0, Math.min(candidates, f.length));
        label = cls[0];
        advLabel = label;
      }
      let best = -1;
      let bestDist = Infinity;
      let bw = null;
      let bf = 0;
      let bn = 0;
      for (let c = 1; c < cls.length; c++) {
        const k = cls[c];
        const w = [J[k][0] - J[label][0], J[k][1] - J[label][1]];
        const fp = f[k] - f[label];
        const wn = Math.sqrt(w[0] * w[0] + w[1] * w[1]);
        const dist = wn > 0 ? Math.abs(fp) / wn : Infinity;
        if (best < 0 || dist < bestDist) {
          best = c;
          bestDist = dist;
          bw = w;
          bf = Math.abs(fp);
          bn = wn;
        }
      }
      let step = [0, 0];
      if (bn > 0) {
        const coef = (bf + EPS) / (bn * bn);
        step = [coef * bw[0], coef * bw[1]];
      }
      rtot[0] += step[0];
      rtot[1] += step[1];
      steps.push(step);
      nIter += 1;
      r = [(1 + overshoot) * rtot[0], (1 + overshoot) * rtot[1]];
      xe = [x0[0] + r[0], x0[1] + r[1]];
      iterates.push([xe[0], xe[1]]);
    }
    return finish();

    function finish() {
      return {
        x: x0,
        r: r,
        xAdv: [x0[0] + r[0], x0[1] + r[1]],
        label: label,
        advLabel: advLabel,
        converged: converged,
        nIter: nIter,
        norm: Math.sqrt(r[0] * r[0] + r[1] * r[1]),
        iterates: iterates,
        steps: steps,
      };
    }
  }

  /* F = f_adv − f_label at y, its gradient and Hessian [h11, h12, h22] (DESIGN §4). */
  function boundaryJet(model, y, label, adv, order) {
    const { f, J, H } = jet(model, y, order);
    return {
      F: f[adv] - f[label],
      g: [J[adv][0] - J[label][0], J[adv][1] - J[label][1]],
      H: [H[adv][0] - H[label][0], H[adv][1] - H[label][1], H[adv][2] - H[label][2]],
    };
  }

  /* The osculating circle at DeepFool's boundary point (geometry.toy2d.osculating_circle):
   * DeepFool with overshoot 0, z = x + r(x), n = ∇F(z)/‖∇F(z)‖, tangent t = (−n₂, n₁) projected on
   * the tangent line, κ = q/(‖Pt‖²‖∇F(z)‖) with q = (Pt)ᵀH_F(z)(Pt) ("exact") or the second
   * difference (F(z + h û) − 2F(z) + F(z − h û))/h²·‖Pt‖² ("finite_difference", û = Pt/‖Pt‖).
   * Returns {ok: false, note} when DeepFool does not reach the boundary. */
  function osculating(model, x, opts) {
    const o = opts || {};
    const method = o.method || "exact";
    const h = o.h === undefined ? 0.1 : o.h;
    const df = o.deepfool || deepfool(model, x, { overshoot: 0 });
    if (!df.converged || df.label === df.advLabel) {
      return { ok: false, note: "DeepFool did not reach the boundary from this point: no boundary point to measure" };
    }
    const z = [x[0] + df.r[0], x[1] + df.r[1]];
    const bj = boundaryJet(model, z, df.label, df.advLabel, method === "exact" ? 2 : 1);
    const gn = Math.sqrt(bj.g[0] * bj.g[0] + bj.g[1] * bj.g[1]);
    const safe = gn > 0 ? gn : 1;
    const n = [bj.g[0] / safe, bj.g[1] / safe];
    const t = [-n[1], n[0]];
    const tn = t[0] * n[0] + t[1] * n[1];
    const u = [t[0] - tn * n[0], t[1] - tn * n[1]];
    const pn = Math.sqrt(u[0] * u[0] + u[1] * u[1]);
    let q;
    if (method === "exact") {
      q = u[0] * (bj.H[0] * u[0] + bj.H[1] * u[1]) + u[1] * (bj.H[1] * u[0] + bj.H[2] * u[1]);
    } else {
      const us = pn > 0 ? pn : 1;
      const s = [(h * u[0]) / us, (h * u[1]) / us];
      const Fp = boundaryJet(model, [z[0] + s[0], z[1] + s[1]], df.label, df.advLabel, 0).F;
      const Fm = boundaryJet(model, [z[0] - s[0], z[1] - s[1]], df.label, df.advLabel, 0).F;
      q = ((Fp - 2 * bj.F + Fm) / (h * h)) * pn * pn;
    }
    const K = pn > 0 ? q / (pn * pn) : NaN;
    const kappa = K / gn;
    let center = [NaN, NaN];
    let radius = Infinity;
    if (kappa !== 0 && Number.isFinite(kappa)) {
      center = [z[0] - n[0] / kappa, z[1] - n[1] / kappa];
      radius = 1 / Math.abs(kappa);
    }
    return {
      ok: true,
      z: z,
      normal: n,
      kappa: kappa,
      center: center,
      radius: radius,
      method: method,
      h: method === "exact" ? null : h,
    };
  }

  /* Which points a perturbation fools: k̂(x + v) ≠ k̂(x) (geometry.toy2d.fooled_mask), and the
   * mean of that mask, the fooling rate (CVPR 2017 §2). `predicted` (N) may be passed to save N
   * forwards; points is an array of [x1, x2]. */
  function fooled(model, points, v, predicted) {
    const mask = new Array(points.length);
    let count = 0;
    for (let i = 0; i < points.length; i++) {
      const p = points[i];
      const k = predicted ? predicted[i] : predict(model, p);
      mask[i] = predict(model, [p[0] + v[0], p[1] + v[1]]) !== k;
      if (mask[i]) count += 1;
    }
    return { mask: mask, rate: points.length ? count / points.length : NaN };
  }

  /* ±ξ·u, the sign that fools more points (+ on a tie), as geometry.study.toy2d.universal_panel. */
  function signedVector(model, points, u, xi, predicted) {
    let best = null;
    for (const sign of [1.0, -1.0]) {
      const v = [sign * xi * u[0], sign * xi * u[1]];
      const fo = fooled(model, points, v, predicted);
      if (best === null || fo.rate > best.rate) best = { v: v, mask: fo.mask, rate: fo.rate };
    }
    return best;
  }

  /* v = norm·(cos θ, sin θ), θ in degrees (geometry.toy2d.direction_vector). */
  function directionVector(angleDeg, norm) {
    const t = (angleDeg * Math.PI) / 180;
    return [norm * Math.cos(t), norm * Math.sin(t)];
  }

  /* The custom v's (angle, ‖v‖) for a vector dragged from `origin` to `tip`
   * (geometry.toy2d.vector_from_click): the angle in degrees in (−180, 180] rounded to angleStep,
   * the norm rounded to normStep and clipped to [lo, hi]. null when tip = origin (no direction). */
  function vectorFromDrag(tip, origin, lo, hi, normStep, angleStep) {
    const as = angleStep === undefined ? 1.0 : angleStep;
    const v = [tip[0] - origin[0], tip[1] - origin[1]];
    const length = Math.hypot(v[0], v[1]);
    if (!(length > 0) || !Number.isFinite(length)) return null;
    let angle = roundHalfEven(Math.atan2(v[1], v[0]) / (Math.PI / 180.0) / as) * as; // math.degrees
    angle = angle <= -180.0 ? 180.0 : angle;
    const norm = Math.min(Math.max(roundHalfEven(length / normStep) * normStep, lo), hi);
    return [angle, Math.round(norm * 1e10) / 1e10];
  }

  function roundHalfEven(t) {
    // Python's round(): ties to even
    const r = Math.round(t);
    return Math.abs(t % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }

  return {
    EPS: EPS,
    vectorFromDrag: vectorFromDrag,
    logits: logits,
    jet: jet,
    predict: predict,
    linspace: linspace,
    regions: regions,
    boundarySegments: boundarySegments,
    deepfool: deepfool,
    osculating: osculating,
    fooled: fooled,
    signedVector: signedVector,
    directionVector: directionVector,
  };
});
