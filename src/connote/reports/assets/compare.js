/* Two runs side by side: a cross-table of their clusters. Loads each run's run.js (and its map's .js for
 * the image hashes) with classic <script> tags, which work over file://. Text goes in by textContent. */
(function () {
  "use strict";
  var A = document.getElementById("run-a"), B = document.getElementById("run-b");
  var out = document.getElementById("compare"), agree = document.getElementById("agree");
  if (!A || !B) return;
  var runs = {}, maps = {};
  function load(src, done) {
    var s = document.createElement("script"); s.src = src;
    s.onload = done; s.onerror = function () { done(new Error(src)); };
    document.head.appendChild(s);
  }
  function getRun(id, done) {
    if (runs[id]) return done(runs[id]);
    window.CONNOTE_RUN = null;
    load("run-" + id + "/run.js", function () {
      var r = window.CONNOTE_RUN; if (!r) return done(null);
      runs[id] = r;
      if (!r.map || maps[r.map]) return done(r);
      window.CONNOTE_MAP = null;
      load("maps/" + r.map + ".js", function () { maps[r.map] = window.CONNOTE_MAP; done(r); });
    });
  }
  function el(tag, text, attrs) {
    var e = document.createElement(tag); if (text !== undefined && text !== null) e.textContent = text;
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]); return e;
  }
  function name(run, c) { var i = run.clusters[String(c)] || {}; var kw = (i.keywords || []).slice(0, 3).join(", "); return (c < 0 ? "outliers" : (i.title || ("Cluster " + c))) + (kw && !i.label ? " (" + kw + ")" : ""); }
  // adjusted Rand index from the cross-table (Hubert & Arabie 1985), outliers as one more group
  function ari(table, n) {
    function c2(x) { return x * (x - 1) / 2; }
    var idx = 0, rows = 0, cols = {}, colSum = 0;
    Object.keys(table).forEach(function (a) {
      var r = 0;
      Object.keys(table[a]).forEach(function (b) { var v = table[a][b]; idx += c2(v); r += v; cols[b] = (cols[b] || 0) + v; });
      rows += c2(r);
    });
    Object.keys(cols).forEach(function (b) { colSum += c2(cols[b]); });
    var expected = n > 1 ? rows * colSum / c2(n) : 0, max = (rows + colSum) / 2;
    return max === expected ? (idx === rows && idx === colSum ? 1 : 0) : (idx - expected) / (max - expected);
  }
  function show() {
    var a = A.value, b = B.value;
    getRun(a, function (ra) { getRun(b, function (rb) {
      out.textContent = "";
      if (!ra || !rb || !maps[ra.map] || !maps[rb.map]) { out.appendChild(el("p", "These runs have no map data (their features are missing), so they cannot be compared here.", { class: "muted" })); return; }
      var shaB = {}; maps[rb.map].shas.forEach(function (s, i) { shaB[s] = rb.labels[i]; });
      var table = {}, sizes = {}, both = 0, same = 0;
      maps[ra.map].shas.forEach(function (s, i) {
        if (!(s in shaB)) return;
        var ca = ra.labels[i], cb = shaB[s]; both++;
        (table[ca] = table[ca] || {})[cb] = (table[ca][cb] || 0) + 1; sizes[ca] = (sizes[ca] || 0) + 1;
      });
      agree.textContent = both + " images in both runs · adjusted Rand index " + ari(table, both).toFixed(3);
      var t = el("table", null, { class: "cmp", id: "cmp-table" });
      var hr = el("tr"); hr.appendChild(el("th", "run " + a + " cluster")); hr.appendChild(el("th", "images")); hr.appendChild(el("th", "where they are in run " + b)); t.appendChild(hr);
      Object.keys(table).map(Number).sort(function (x, y) { return (x < 0) - (y < 0) || sizes[y] - sizes[x]; }).forEach(function (ca) {
        var tr = el("tr", null, { "data-cluster": ca });
        var td = el("td"); td.appendChild(el("a", name(ra, ca), { href: "run-" + a + "/" + ((ra.clusters[String(ca)] || {}).href || "index.html") })); tr.appendChild(td);
        tr.appendChild(el("td", String(sizes[ca])));
        var flows = el("td");
        Object.keys(table[ca]).map(Number).sort(function (x, y) { return table[ca][y] - table[ca][x]; }).slice(0, 5).forEach(function (cb) {
          var share = table[ca][cb] / sizes[ca], div = el("div");
          var bar = el("span", null, { class: "flow" }); bar.style.width = Math.max(2, Math.round(120 * share)) + "px"; div.appendChild(bar);
          div.appendChild(document.createTextNode(Math.round(100 * share) + "% → "));
          div.appendChild(el("a", name(rb, cb), { href: "run-" + b + "/" + ((rb.clusters[String(cb)] || {}).href || "index.html") }));
          flows.appendChild(div);
        });
        tr.appendChild(flows); t.appendChild(tr);
      });
      out.appendChild(t);
    }); });
  }
  A.onchange = show; B.onchange = show;
  var q = /a=(\d+).*b=(\d+)/.exec(location.search + location.hash);
  if (q) { A.value = q[1]; B.value = q[2]; }
  if (A.options.length) show();
})();
