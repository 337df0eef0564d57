/* Sortable, filterable table of runs (the study index). Plain script, no network. */
(function () {
  "use strict";
  var table = document.getElementById("run-table");
  if (!table) return;
  var body = table.tBodies[0], heads = table.tHead.rows[0].cells, filter = document.getElementById("filter");
  var shown = document.getElementById("shown");
  function value(row, col, num) {
    var cell = row.cells[col], v = cell.getAttribute("data-v");
    if (v === null) v = cell.textContent.trim();
    if (!num) return v.toLowerCase();
    return v === "" ? null : parseFloat(v);
  }
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener("click", function () {
      var num = th.getAttribute("data-type") === "num";
      var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = value(a, col, num), y = value(b, col, num);
        if (x === null && y === null) return 0;
        if (x === null) return 1;  // empty cells last whichever the direction
        if (y === null) return -1;
        return (x < y ? -1 : x > y ? 1 : 0) * dir;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  function apply() {
    var words = filter.value.toLowerCase().split(/\s+/).filter(Boolean), k = 0;
    Array.prototype.forEach.call(body.rows, function (r) {
      var text = r.textContent.toLowerCase() + " mcs=" + value(r, 5, false) + " seed=" + value(r, 6, false);
      var ok = words.every(function (w) { return text.indexOf(w) >= 0; });
      r.hidden = !ok; k += ok;
    });
    shown.textContent = k + " of " + body.rows.length + " runs";
  }
  filter.addEventListener("input", apply);
  apply();
})();
