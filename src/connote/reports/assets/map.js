/* connote's map of a run: every image as a point of a 2-D layout, coloured by cluster.
 * Plain script (no modules, no network): reads window.CONNOTE_MAP (coordinates, names, thumbnails, the start
 * of each description) and window.CONNOTE_RUN (labels, clusters, extra columns), both loaded by <script> tags.
 * Points are written straight into an ImageData buffer (fast at 50,000 points); a grid index finds the point
 * under the cursor. Every user-controlled string reaches the page through textContent, never innerHTML. */
(function () {
  "use strict";
  var M = window.CONNOTE_MAP, R = window.CONNOTE_RUN;
  var box = document.getElementById("map");
  if (!M || !R || !box) return;
  var canvas = box.querySelector("canvas"), ctx = canvas.getContext("2d");
  var tip = document.getElementById("tip"), side = document.getElementById("side");
  var n = M.x.length, labels = R.labels;
  var GREY = [190, 194, 202];
  var baseSize = Math.max(1.6, Math.min(7, 9 - 1.5 * Math.log10(Math.max(1, n))));  // fewer points, bigger dots

  // ------------------------------------------------------------------ colours
  function hsl(h, s, l) {
    var a = s * Math.min(l, 1 - l);
    function f(k) { var t = (k + h / 30) % 12; return Math.round(255 * (l - a * Math.max(-1, Math.min(t - 3, 9 - t, 1)))); }
    return [f(0), f(8), f(4)];
  }
  function palette(i) { return hsl((i * 137.508) % 360, 0.62, i % 2 ? 0.42 : 0.52); }
  function pack(c) { return (255 << 24) | (c[2] << 16) | (c[1] << 8) | c[0]; }
  function faint(c) { return [Math.round(c[0] * 0.18 + 235 * 0.82), Math.round(c[1] * 0.18 + 237 * 0.82), Math.round(c[2] * 0.18 + 241 * 0.82)]; }

  var colorBy = "cluster", cats = [], catColors = {}, pointCat = new Array(n);
  function setColouring(name) {
    colorBy = name;
    var values = name === "cluster" ? labels : R.columns[name];
    var seen = {};
    cats = [];
    for (var i = 0; i < n; i++) {
      var v = values[i] === null || values[i] === undefined ? "" : String(values[i]);
      pointCat[i] = v;
      if (!(v in seen)) { seen[v] = 0; cats.push(v); }
      seen[v]++;
    }
    if (name === "cluster") cats.sort(function (a, b) { return (+a) - (+b); });
    else cats.sort(function (a, b) { return seen[b] - seen[a]; });
    catColors = {};
    var k = 0;
    cats.forEach(function (v) {
      var outlier = (name === "cluster" && v === "-1") || v === "" || v === "(none)";  // no value: grey
      catColors[v] = outlier ? GREY : palette(k++);
    });
    // packed colours per point (plain and faded), outliers (and blanks) drawn first, clustered points on top
    colA = new Uint32Array(n); colF = new Uint32Array(n);
    var packed = {}, faded = {};
    cats.forEach(function (v) { packed[v] = pack(catColors[v]); faded[v] = pack(faint(catColors[v])); });
    var grey = [], rest = [];
    for (var j = 0; j < n; j++) {
      colA[j] = packed[pointCat[j]]; colF[j] = faded[pointCat[j]];
      (catColors[pointCat[j]] === GREY ? grey : rest).push(j);
    }
    order = Int32Array.from(grey.concat(rest));
    legend();
    schedule();
  }

  // ------------------------------------------------------------------ view
  var dpr = window.devicePixelRatio || 1, W = 0, H = 0, base = 1, view = { k: 1, tx: 0, ty: 0 };
  var order = new Int32Array(0), colA = null, colF = null, img = null, buf = null;
  var X = Float32Array.from(M.x), Y = Float32Array.from(M.y);
  var minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
  for (var b = 0; b < n; b++) {
    if (X[b] < minX) minX = X[b]; if (X[b] > maxX) maxX = X[b]; if (Y[b] < minY) minY = Y[b]; if (Y[b] > maxY) maxY = Y[b];
  }
  if (!n) { minX = minY = 0; maxX = maxY = 1; }
  var spanX = Math.max(maxX - minX, 1e-6), spanY = Math.max(maxY - minY, 1e-6);
  // a second canvas on top for what changes often (hover ring, the open image, the selection box)
  var over = document.createElement("canvas"), octx = over.getContext("2d");
  canvas.after(over);
  function resize() {
    var r = box.getBoundingClientRect();
    W = Math.max(1, Math.round(r.width * dpr)); H = Math.max(1, Math.round(r.height * dpr));
    canvas.width = over.width = W; canvas.height = over.height = H;
    base = Math.min(W / spanX, H / spanY) * 0.92;  // the data's extent fills the map
    img = ctx.createImageData(W, H); buf = new Uint32Array(img.data.buffer);
  }
  function reset() {
    view = { k: 1, tx: (W - spanX * base) / 2 - minX * base, ty: (H - spanY * base) / 2 - (1 - maxY) * base };
    schedule();
  }
  function sx(i) { return X[i] * base * view.k + view.tx; }
  function sy(i) { return (1 - Y[i]) * base * view.k + view.ty; }

  // ------------------------------------------------------------------ highlight state
  var match = null, selected = null, current = -1, hover = -1;

  var pending = false, needBase = false;
  function schedule() { needBase = true; frame(); }
  function scheduleOverlay() { frame(); }
  function frame() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () { pending = false; if (needBase) { needBase = false; draw(); } drawOverlay(); });
  }

  function draw() {
    buf.fill(0xffffffff);
    var size = Math.max(2, Math.min(14, Math.round(baseSize * dpr * Math.pow(view.k, 0.35)))), half = size >> 1;
    var disc = [], dxs = [], dys = [];  // pixel offsets of a round point
    for (var dy = 0; dy < size; dy++) for (var dx = 0; dx < size; dx++) {
      var ex = dx - (size - 1) / 2, ey = dy - (size - 1) / 2;
      if (size < 4 || ex * ex + ey * ey <= (size / 2) * (size / 2) + 0.25) { disc.push(dy * W + dx); dxs.push(dx); dys.push(dy); }
    }
    var nd = disc.length, D = Int32Array.from(disc);
    var dim = match !== null || selected !== null, s = base * view.k, tx = view.tx - half, ty = view.ty - half;
    var xmax = W - size, ymax = H - size, lit = [];
    function put(i, col) {
      var x0 = Math.round(X[i] * s + tx), y0 = Math.round((1 - Y[i]) * s + ty);
      if (x0 >= 0 && y0 >= 0 && x0 <= xmax && y0 <= ymax) {
        var at = y0 * W + x0;
        for (var q = 0; q < nd; q++) buf[at + D[q]] = col;
      } else if (x0 > -size && y0 > -size && x0 < W && y0 < H) {
        for (var q2 = 0; q2 < nd; q2++) {
          var x = x0 + dxs[q2], y = y0 + dys[q2];
          if (x >= 0 && y >= 0 && x < W && y < H) buf[y * W + x] = col;
        }
      }
    }
    for (var o = 0; o < order.length; o++) {
      var i = order[o];
      if (!dim) { put(i, colA[i]); continue; }
      if ((match === null || match[i]) && (selected === null || selected[i])) lit.push(i); else put(i, colF[i]);
    }
    for (var l = 0; l < lit.length; l++) put(lit[l], colA[lit[l]]);
    ctx.putImageData(img, 0, 0);
    if (colorBy === "cluster") drawLabels();
  }
  function drawOverlay() {
    octx.clearRect(0, 0, W, H);
    ring(hover, "#1d2330"); ring(current, "#e8590c");
    if (drag && drag.select) {
      octx.strokeStyle = "#3b5bdb"; octx.lineWidth = dpr; octx.setLineDash([4 * dpr, 3 * dpr]);
      octx.strokeRect(drag.x0, drag.y0, drag.x1 - drag.x0, drag.y1 - drag.y0); octx.setLineDash([]);
    }
  }
  function ring(i, colour) {
    if (i < 0) return;
    octx.beginPath(); octx.arc(sx(i), sy(i), 6 * dpr, 0, 2 * Math.PI);
    octx.strokeStyle = colour; octx.lineWidth = 2 * dpr; octx.stroke();
  }

  // cluster labels at each cluster's median position, larger clusters first, never overlapping
  var centres = null;
  function median(a) { a.sort(function (p, q) { return p - q; }); return a[a.length >> 1]; }
  function computeCentres() {
    var xs = {}, ys = {};
    for (var i = 0; i < n; i++) { var c = labels[i]; if (c < 0) continue; (xs[c] = xs[c] || []).push(M.x[i]); (ys[c] = ys[c] || []).push(M.y[i]); }
    // label just above the cluster (above its 90th-percentile top), so it never hides the points
    centres = Object.keys(xs).map(function (c) {
      var y = ys[c].slice().sort(function (p, q) { return p - q; });
      return { c: c, x: median(xs[c]), y: y[Math.min(y.length - 1, Math.floor(0.9 * y.length))], size: xs[c].length };
    });
    centres.sort(function (a, b) { return b.size - a.size; });
  }
  function labelText(c) {
    var info = R.clusters[c] || {};
    var mark = info.unstable ? " (unstable)" : "";  // below 0.5 stability across seeds
    if (info.label) return c + ": " + info.label + mark;
    return c + (info.keywords && info.keywords.length ? ": " + info.keywords.slice(0, 3).join(", ") : "") + mark;
  }
  function drawLabels() {
    if (!centres) computeCentres();
    var placed = [];
    ctx.font = "600 " + Math.round(12.5 * dpr) + "px system-ui, sans-serif";
    ctx.textAlign = "center"; ctx.textBaseline = "middle"; ctx.lineJoin = "round";
    centres.forEach(function (p) {
      var t = labelText(p.c), w = ctx.measureText(t).width, h = 16 * dpr;
      var x = p.x * base * view.k + view.tx, y = (1 - p.y) * base * view.k + view.ty - 12 * dpr;
      if (x + w / 2 < 0 || x - w / 2 > W || y < 0 || y > H) return;
      x = Math.max(w / 2 + 2, Math.min(W - w / 2 - 2, x)); y = Math.max(h / 2, y);  // keep it inside the map
      var r = [x - w / 2, y - h / 2, x + w / 2, y + h / 2];
      for (var j = 0; j < placed.length; j++) { var q = placed[j]; if (r[0] < q[2] && r[2] > q[0] && r[1] < q[3] && r[3] > q[1]) return; }
      placed.push(r);
      ctx.strokeStyle = "rgba(255,255,255,.92)"; ctx.lineWidth = 4 * dpr; ctx.strokeText(t, x, y);
      ctx.fillStyle = "#1d2330"; ctx.fillText(t, x, y);
    });
  }

  // ------------------------------------------------------------------ nearest point (grid index)
  var G = 256, grid = new Array(G * G);
  for (var i = 0; i < n; i++) {
    var gx = Math.min(G - 1, Math.max(0, Math.floor(X[i] * G))), gy = Math.min(G - 1, Math.max(0, Math.floor(Y[i] * G)));
    var cell = gy * G + gx; (grid[cell] = grid[cell] || []).push(i);
  }
  function pick(px, py) {
    var wx = (px - view.tx) / (base * view.k), wy = 1 - (py - view.ty) / (base * view.k);
    var rad = 9 * dpr / (base * view.k), best = -1, bd = rad * rad;
    var x0 = Math.max(0, Math.floor((wx - rad) * G)), x1 = Math.min(G - 1, Math.floor((wx + rad) * G));
    var y0 = Math.max(0, Math.floor((wy - rad) * G)), y1 = Math.min(G - 1, Math.floor((wy + rad) * G));
    for (var gy = y0; gy <= y1; gy++) for (var gx = x0; gx <= x1; gx++) {
      var cell = grid[gy * G + gx]; if (!cell) continue;
      for (var j = 0; j < cell.length; j++) {
        var i = cell[j], dx = X[i] - wx, dy = Y[i] - wy, d = dx * dx + dy * dy;
        if (d < bd && (match === null || match[i])) { bd = d; best = i; }
      }
    }
    return best;
  }

  // ------------------------------------------------------------------ DOM helpers (text only)
  function el(tag, text, attrs) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = text;
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    return e;
  }
  function thumb(i) { return M.thumbs[i] ? "../thumbs/" + M.shas[i] + ".jpg" : null; }
  function clusterName(i) { var c = String(labels[i]); return (R.clusters[c] || {}).title || ("Cluster " + c); }
  function clusterHref(i) { var c = String(labels[i]); return (R.clusters[c] || {}).href || "#"; }

  function showTip(i, mx, my) {
    tip.textContent = "";
    var t = thumb(i); if (t) tip.appendChild(el("img", null, { src: t, alt: "" }));
    tip.appendChild(el("b", clusterName(i)));
    tip.appendChild(el("div", M.names[i], { class: "muted path" }));
    if (M.snippets[i]) tip.appendChild(el("div", M.snippets[i]));
    var r = box.getBoundingClientRect();
    tip.style.display = "block";
    tip.style.left = Math.min(mx + 14, r.width - 262) + "px";
    tip.style.top = Math.max(4, Math.min(my + 14, r.height - tip.offsetHeight - 4)) + "px";
  }

  // details (full description + model call) come in chunks by the first two hex digits of the hash
  var chunks = {}, waiting = {};
  window.connoteDetails = function (prefix, head, items) {
    chunks[prefix] = { head: head, items: items };
    (waiting[prefix] || []).forEach(function (f) { f(); });
    delete waiting[prefix];
  };
  function loadChunk(prefix, done) {
    if (!M.details) return done();
    if (chunks[prefix]) return done();
    if (waiting[prefix]) { waiting[prefix].push(done); return; }
    waiting[prefix] = [done];
    var s = document.createElement("script");
    s.src = "../" + M.details + "/" + prefix + ".js";
    s.onerror = function () { chunks[prefix] = { head: {}, items: {} }; window.connoteDetails(prefix, {}, {}); };
    document.head.appendChild(s);
  }

  function openPoint(i) {
    current = i; scheduleOverlay();
    side.textContent = "";
    var sha = M.shas[i];
    var t = thumb(i);
    if (t) side.appendChild(el("img", null, { src: t, alt: M.names[i], class: "big" }));
    var h = el("h2", M.names[i], { class: "path" }); h.style.fontSize = "1rem"; side.appendChild(h);
    var p = el("p"); var a = el("a", clusterName(i), { href: clusterHref(i) + "#img-" + sha }); p.appendChild(a);
    p.appendChild(document.createTextNode(" · open in its cluster page (files, typicality)")); side.appendChild(p);
    if (M.root) {  // names are paths relative to the images root
      var href = M.root + M.names[i].split("/").map(encodeURIComponent).join("/");
      var o = el("p"); o.appendChild(el("a", "open the original image", { href: href, id: "original" })); side.appendChild(o);
    }
    var body = el("div", "loading description…", { class: "muted", id: "detail-body" }); side.appendChild(body);
    var sh = el("div", sha, { class: "muted sha" }); sh.style.fontSize = ".72rem"; side.appendChild(sh);
    loadChunk(sha.slice(0, 2), function () {
      if (current !== i) return;
      var ch = chunks[sha.slice(0, 2)] || { head: {}, items: {} }, d = ch.items[sha];
      body.textContent = ""; body.className = "";
      if (!d) { body.appendChild(el("p", M.details ? "No description for this image." : "This run has no descriptions.", { class: "muted" })); return; }
      body.appendChild(el("p", d.text, { class: "text" }));
      var tb = el("table", null, { class: "call" });
      function row(k, v) { if (v === null || v === undefined || v === "") return; var tr = el("tr"); tr.appendChild(el("th", k)); tr.appendChild(el("td", String(v))); tb.appendChild(tr); }
      row("call", d.call_id ? "#" + d.call_id + " · " + (d.backend || "") : "none (imported description)");
      row("model", d.model || ch.head.model); row("tokens", d.tokens); row("cost", d.cost); row("when", d.when);
      if (d.status && d.status !== "ok") row("status", d.status + (d.reason ? ": " + d.reason : ""));
      row("describer", ch.head.describer); row("description set", ch.head.name); row("prompt", ch.head.prompt);
      body.appendChild(tb);
    });
  }

  function showSelection() {
    var ids = [];
    for (var i = 0; i < n; i++) if (selected[i]) ids.push(i);
    side.textContent = "";
    side.appendChild(el("h3", ids.length + " image" + (ids.length === 1 ? "" : "s") + " selected"));
    var counts = {};
    ids.forEach(function (i) { var c = clusterName(i); counts[c] = (counts[c] || 0) + 1; });
    var ul = el("ul"); ul.style.paddingLeft = "18px";
    Object.keys(counts).sort(function (a, b) { return counts[b] - counts[a]; }).forEach(function (c) { ul.appendChild(el("li", c + ": " + counts[c])); });
    side.appendChild(ul);
    var clear = el("button", "Clear selection", { type: "button", id: "clearsel" });
    clear.onclick = function () { selected = null; shownCat = null; side.textContent = ""; schedule(); };
    side.appendChild(clear);
    var g = el("div", null, { class: "sel", id: "selection" });
    ids.slice(0, 300).forEach(function (i) {
      var a = el("a", null, { href: clusterHref(i) + "#img-" + M.shas[i], title: M.names[i], "data-sha": M.shas[i] });
      var t = thumb(i); if (t) a.appendChild(el("img", null, { src: t, alt: "", loading: "lazy" }));
      a.appendChild(document.createTextNode(M.names[i]));
      g.appendChild(a);
    });
    side.appendChild(g);
    if (ids.length > 300) side.appendChild(el("p", "… and " + (ids.length - 300) + " more", { class: "muted" }));
  }

  function legend() {
    var lg = document.getElementById("legend"); lg.textContent = "";
    cats.slice(0, 40).forEach(function (v) {
      var s = el("span", null, { role: "button", tabindex: "0", "data-cat": v, title: "highlight and list these images" }), dot = el("i"), c = catColors[v];
      s.onclick = function () { showCategory(v); };
      dot.style.background = "rgb(" + c.join(",") + ")"; s.appendChild(dot);
      var info = colorBy === "cluster" ? (R.clusters[v] || {}) : {};
      s.appendChild(document.createTextNode(colorBy === "cluster" ? (v === "-1" ? "outliers" : info.title || v) : (v || "(none)")));
      if (info.unstable) {  // found by the other seeds at a mean Jaccard below 0.5
        s.appendChild(el("small", " unstable " + info.stability.toFixed(2), { class: "unstable" }));
        s.title = "stability across seeds " + info.stability.toFixed(2) + " (below 0.5: the other seeds do not find this cluster)";
      }
      lg.appendChild(s);
    });
    if (cats.length > 40) lg.appendChild(el("span", "+" + (cats.length - 40) + " more", { class: "muted" }));
  }

  // a legend entry (or #cluster=C in the address) highlights its images and lists them
  var shownCat = null;
  function showCategory(v) {
    if (shownCat === v) { shownCat = null; selected = null; side.textContent = ""; schedule(); return; }
    shownCat = v; selected = new Uint8Array(n);
    var xs = [], ys = [];
    for (var i = 0; i < n; i++) if (pointCat[i] === v) { selected[i] = 1; xs.push(X[i]); ys.push(Y[i]); }
    if (xs.length) {  // zoom to where most of the highlighted images are (5th to 95th percentile; at most 40x)
      xs.sort(function (a, b) { return a - b; }); ys.sort(function (a, b) { return a - b; });
      var lo = Math.floor(0.05 * (xs.length - 1)), hi = Math.ceil(0.95 * (xs.length - 1));
      var x0 = xs[lo], x1 = xs[hi], y0 = ys[lo], y1 = ys[hi];
      var k = Math.max(1, Math.min(40, 0.7 * Math.min(W, H) / (base * Math.max(x1 - x0, y1 - y0, 1e-3))));
      view.k = k; view.tx = W / 2 - (x0 + x1) / 2 * base * k; view.ty = H / 2 - (1 - (y0 + y1) / 2) * base * k;
    }
    showSelection(); schedule();
  }

  // ------------------------------------------------------------------ search
  var searchBox = document.getElementById("search"), found = document.getElementById("found");
  var allLoaded = false;
  function textOf(i) {
    var ch = chunks[M.shas[i].slice(0, 2)], d = ch && ch.items[M.shas[i]];
    return (d ? d.text : M.snippets[i] || "") + " " + M.names[i];
  }
  function runSearch() {
    var q = searchBox.value.trim().toLowerCase();
    if (!q) { match = null; found.textContent = ""; schedule(); return; }
    match = new Uint8Array(n); var k = 0;
    for (var i = 0; i < n; i++) if (textOf(i).toLowerCase().indexOf(q) >= 0) { match[i] = 1; k++; }
    found.textContent = k + " of " + n + " match" + (allLoaded ? "" : " (so far)");
    schedule();
    if (!allLoaded) loadAll();
  }
  var loadingAll = false;
  function loadAll() {
    if (loadingAll || !M.details) { allLoaded = !M.details; return; }
    loadingAll = true;
    var prefixes = {}; M.shas.forEach(function (s) { prefixes[s.slice(0, 2)] = 1; });
    var left = Object.keys(prefixes).length;
    Object.keys(prefixes).forEach(function (p) { loadChunk(p, function () { if (--left === 0) { allLoaded = true; runSearch(); } }); });
  }
  var timer = null;
  searchBox.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(runSearch, 120); });

  // ------------------------------------------------------------------ mouse: pan, zoom, hover, click, box select
  var drag = null, selMode = false, selBtn = document.getElementById("selmode");
  selBtn.onclick = function () { selMode = !selMode; selBtn.classList.toggle("on", selMode); box.classList.toggle("select", selMode); };
  function local(e) { var r = box.getBoundingClientRect(); return [(e.clientX - r.left) * dpr, (e.clientY - r.top) * dpr, e.clientX - r.left, e.clientY - r.top]; }
  box.addEventListener("pointerdown", function (e) {
    var p = local(e);
    drag = { x0: p[0], y0: p[1], x1: p[0], y1: p[1], tx: view.tx, ty: view.ty, select: selMode || e.shiftKey, moved: false };
    box.setPointerCapture(e.pointerId);
  });
  box.addEventListener("pointermove", function (e) {
    var p = local(e);
    if (drag) {
      drag.x1 = p[0]; drag.y1 = p[1];
      if (Math.abs(drag.x1 - drag.x0) + Math.abs(drag.y1 - drag.y0) > 4 * dpr) drag.moved = true;
      tip.style.display = "none";
      if (drag.select) { scheduleOverlay(); return; }
      if (drag.moved) { view.tx = drag.tx + drag.x1 - drag.x0; view.ty = drag.ty + drag.y1 - drag.y0; schedule(); }
      return;
    }
    var i = pick(p[0], p[1]);
    if (i !== hover) { hover = i; scheduleOverlay(); }
    if (i >= 0) showTip(i, p[2], p[3]); else tip.style.display = "none";
  });
  box.addEventListener("pointerup", function (e) {
    var d = drag; drag = null;
    if (!d) return;
    if (d.select && d.moved) {
      var xa = Math.min(d.x0, d.x1), xb = Math.max(d.x0, d.x1), ya = Math.min(d.y0, d.y1), yb = Math.max(d.y0, d.y1);
      selected = new Uint8Array(n);
      for (var i = 0; i < n; i++) { var x = sx(i), y = sy(i); if (x >= xa && x <= xb && y >= ya && y <= yb) selected[i] = 1; }
      showSelection(); schedule(); return;
    }
    if (!d.moved) { var p = local(e), j = pick(p[0], p[1]); if (j >= 0) openPoint(j); }
    schedule();
  });
  box.addEventListener("pointerleave", function () { if (!drag) { hover = -1; tip.style.display = "none"; scheduleOverlay(); } });
  box.addEventListener("wheel", function (e) {
    e.preventDefault();
    var p = local(e), f = Math.exp(-e.deltaY * (e.deltaMode ? 0.05 : 0.0015));
    var k = Math.max(0.5, Math.min(400, view.k * f)); f = k / view.k;
    view.tx = p[0] - (p[0] - view.tx) * f; view.ty = p[1] - (p[1] - view.ty) * f; view.k = k;
    tip.style.display = "none"; schedule();
  }, { passive: false });
  document.getElementById("reset").onclick = reset;

  var colorSel = document.getElementById("colorby");
  Object.keys(R.columns || {}).forEach(function (name) { colorSel.appendChild(el("option", name, { value: name })); });
  colorSel.onchange = function () { setColouring(colorSel.value); };

  window.addEventListener("resize", function () {  // keep what is in the middle of the map in the middle
    var cx = (W / 2 - view.tx) / (base * view.k), cy = (H / 2 - view.ty) / (base * view.k);
    resize();
    view.tx = W / 2 - cx * base * view.k; view.ty = H / 2 - cy * base * view.k;
    schedule();
  });
  resize(); reset(); setColouring("cluster");

  // #sha=<hash>: open that image (links from the cluster pages)
  function fromHash() {
    var c = /cluster=(-?\d+)/.exec(location.hash);
    if (c && colorBy === "cluster") { shownCat = null; showCategory(c[1]); return; }
    var m = /sha=([0-9a-f]{8,64})/.exec(location.hash);
    if (!m) return;
    var i = M.shas.indexOf(m[1]);
    if (i >= 0) { view.k = 4; view.tx = W / 2 - M.x[i] * base * 4; view.ty = H / 2 - (1 - M.y[i]) * base * 4; openPoint(i); }
  }
  window.addEventListener("hashchange", fromHash); fromHash();

  // for tests and benchmarks: screen position of a point, and timed redraws
  window.connoteMap = {
    n: n,
    screen: function (i) { return [sx(i) / dpr, sy(i) / dpr]; },
    index: function (sha) { return M.shas.indexOf(sha); },
    drawTimed: function (frames) {
      var t = [];
      for (var f = 0; f < frames; f++) {
        view.k *= f % 2 ? 1 / 1.1 : 1.1; view.tx += f % 2 ? -3 : 3;
        var t0 = performance.now(); draw(); t.push(performance.now() - t0);
      }
      return t;
    },
    state: function () { return { match: match ? match.reduce(function (a, b) { return a + b; }, 0) : null, current: current }; }
  };
})();
