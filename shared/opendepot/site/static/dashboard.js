/* opendepot dashboards: interaction only (every figure is in the HTML without this script).
   Plain ES2017, no framework, no request to another host. The view lives in the URL query:
   ?tab=&area=&date=&indicator= (area "fra", "reg-11", "dep-75"); changing a control redraws
   the view and updates the URL (history.replaceState); loading a URL restores its view.
   - area: the area's static page ({area}/, rendered by the same Python as this page) gives
     its tiles and charts, swapped in;
   - date: tiles of that day from data/{area}.csv, a marker on every chart, the map of that day
     from data/map-{indicator}.csv;
   - indicator: the map recoloured with the classes of opendepot.site.maps (quintiles rounded
     to 2 significant figures, same palette). */
(function () {
  "use strict";
  var board = document.querySelector(".dashboard");
  if (!board || !window.fetch || !window.URLSearchParams) { return; }
  var form = board.querySelector("form.controls");
  var baseUrl = new URL(board.getAttribute("data-base"), location.href);
  var status = board.querySelector(".view-status");
  var PALETTE = ["#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#084594"];
  var NO_DATA = "#e5e5e5";
  var cache = new Map();
  var index = null;
  var shownArea = board.getAttribute("data-area-id");

  function get(rel) {
    var url = new URL(rel, baseUrl).href;
    if (!cache.has(url)) {
      cache.set(url, fetch(url).then(function (r) {
        if (!r.ok) { throw new Error(r.status + " " + url); }
        return r.text();
      }));
    }
    return cache.get(url);
  }
  function csv(text) {
    var lines = text.split("\n").filter(function (l) { return l !== ""; });
    return { header: lines[0].split(";"), rows: lines.slice(1).map(function (l) { return l.split(";"); }) };
  }
  var nf0 = new Intl.NumberFormat("fr-FR", { maximumFractionDigits: 0 });
  var nf1 = new Intl.NumberFormat("fr-FR", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  function fr(v, digits) {
    var s = (digits ? nf1 : nf0).format(v);
    return s.replace(/[\u00a0 ]/g, "\u202f").replace("-", "\u2212");
  }
  function fmt(v, unit) {
    if (unit === "€") {
      if (Math.abs(v) >= 1e9) { return fr(v / 1e9, 1) + " Md€"; }
      if (Math.abs(v) >= 1e7) { return fr(v / 1e6, 1) + " M€"; }
      return fr(v, 0) + " €";
    }
    return fr(v, Number.isInteger(v) ? 0 : 1);
  }
  var dateFmt = new Intl.DateTimeFormat("fr-FR", { day: "numeric", month: "long", year: "numeric", timeZone: "UTC" });
  function frDate(iso) { return dateFmt.format(new Date(iso + "T00:00:00Z")); }
  function addDays(iso, n) {
    var d = new Date(iso + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + n);
    return d.toISOString().slice(0, 10);
  }
  function num(cell) { return cell === undefined || cell === "" ? null : Number(cell); }
  function say(text) { if (status) { status.textContent = text; } }

  function indicator(id) {
    return index.indicators.filter(function (i) { return i.id === id; })[0];
  }

  /* --- the view in the URL ------------------------------------------------------------- */
  function defaults() {
    return { tab: "series", area: board.getAttribute("data-area-id"), date: "",
             indicator: index.map ? index.map["default"] : "" };
  }
  function fromUrl() {
    var q = new URLSearchParams(location.search);
    var v = defaults();
    ["tab", "area", "date", "indicator"].forEach(function (k) { if (q.get(k)) { v[k] = q.get(k); } });
    if (!index.areas.some(function (a) { return a.id === v.area; })) { v.area = defaults().area; }
    if (index.map && index.map.indicators.indexOf(v.indicator) < 0) { v.indicator = defaults().indicator; }
    if (v.date && !(/^\d{4}-\d{2}-\d{2}$/.test(v.date) && index.first && v.date >= index.first && v.date <= index.last)) { v.date = ""; }
    return v;
  }
  function fromForm(tab) {
    var v = { tab: tab, area: form.elements.area.value, date: form.elements.date.value,
              indicator: form.elements.indicator ? form.elements.indicator.value : "" };
    if (v.date === form.elements.date.max) { v.date = ""; }
    return v;
  }
  function toUrl(v) {
    var q = new URLSearchParams();
    q.set("tab", v.tab); q.set("area", v.area); q.set("date", v.date); q.set("indicator", v.indicator);
    history.replaceState(null, "", location.pathname + "?" + q.toString());
  }
  var view = null;

  /* --- area: swap in the area's own page ----------------------------------------------- */
  function absolutize(node, pageUrl) {
    node.querySelectorAll("a[href]").forEach(function (a) {
      a.setAttribute("href", new URL(a.getAttribute("href"), pageUrl).href);
    });
  }
  function showArea(area) {
    if (area === shownArea) { return Promise.resolve(); }
    var rel = area + "/";
    return get(rel).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var pageUrl = new URL(rel, baseUrl).href;
      [".area-name", "ul.tiles", "[data-tab-panel=series]"].forEach(function (sel) {
        var mine = board.querySelector(sel), theirs = doc.querySelector(".dashboard " + sel);
        if (mine && theirs) {
          absolutize(theirs, pageUrl);
          mine.replaceWith(document.importNode(theirs, true));
        }
      });
      document.title = doc.title;
      shownArea = area;
      board.setAttribute("data-area-id", area);
    });
  }

  /* --- date: tiles of that day --------------------------------------------------------- */
  function setTile(li, table, day) {
    var id = li.getAttribute("data-indicator"), col = table.header.indexOf(id);
    if (col < 0) { return; }
    var byDay = table.byDay, row = byDay[day], prev = byDay[addDays(day, -1)];
    var v = row ? num(row[col]) : null, p = prev ? num(prev[col]) : null;
    var ind = indicator(id);
    li.setAttribute("data-date", day);
    li.classList.toggle("no-data", v === null);
    var value = li.querySelector(".value");
    value.setAttribute("data-value", v === null ? "" : String(v));
    value.textContent = v === null ? "–" : fmt(v, ind.unit) + (ind.unit && ind.unit !== "€" ? " " + ind.unit : "");
    var delta = li.querySelector(".delta");
    if (v !== null && p !== null) {
      if (!delta) {
        delta = document.createElement("span");
        delta.className = "delta";
        value.after(delta);
      }
      delta.setAttribute("data-value", String(v - p));
      delta.textContent = (v - p > 0 ? "+" : "") + fmt(v - p) + " depuis la veille";
    } else if (delta) { delta.remove(); }
    var rate = li.querySelector(".rate"), popCol = table.header.indexOf(id + "_pop");
    if (rate) {
      var sum = 0, ok = v !== null && popCol >= 0, pop = row ? num(row[popCol]) : null;
      for (var k = 0; ok && k < 7; k += 1) {
        var r = byDay[addDays(day, -k)], x = r ? num(r[col]) : null;
        if (x === null) { ok = false; } else { sum += x; }
      }
      rate.hidden = !(ok && pop);
      if (ok && pop) { rate.textContent = fr(Math.round(sum / pop * 1e6) / 10, 1) + " pour 100 000 habitants sur 7 jours"; }
    }
    var when = li.querySelector(".when");
    if (when) { when.textContent = v === null ? "pas de donnée ce jour" : "au " + frDate(day); }
  }
  function showDate(area, day) {
    board.querySelectorAll("svg[data-start]").forEach(function (svg) {
      var marker = svg.querySelector(".marker");
      if (!marker) { return; }
      var i = day ? (Date.parse(day) - Date.parse(svg.getAttribute("data-start"))) / 864e5 : -1;
      var inside = day && i >= 0 && i < Number(svg.getAttribute("data-days"));
      var x = Number(svg.getAttribute("data-x0")) + Number(svg.getAttribute("data-slot")) * (i + 0.5);
      marker.setAttribute("x1", x); marker.setAttribute("x2", x);
      marker.setAttribute("visibility", inside ? "visible" : "hidden");
    });
    if (!day || index.first === index.last) { return Promise.resolve(); }
    return get("data/" + area + ".csv").then(function (text) {
      var table = csv(text);
      table.byDay = {};
      table.rows.forEach(function (r) { table.byDay[r[0]] = r; });
      board.querySelectorAll("ul.tiles li.tile").forEach(function (li) { setTile(li, table, day); });
    }, function () {
      board.querySelectorAll("ul.tiles li.tile").forEach(function (li) {
        li.setAttribute("data-date", day);
      });
    });
  }

  /* --- map: recolour by indicator and day ---------------------------------------------- */
  function nice(x) {
    if (x === 0 || !isFinite(x)) { return x; }
    var mag = Math.pow(10, Math.floor(Math.log10(Math.abs(x))) - 1);
    return Math.round(Math.round(x / mag) * mag * 1e10) / 1e10;
  }
  function breaks(values) {
    var vals = values.slice().sort(function (a, b) { return a - b; }), out = [];
    if (!vals.length) { return out; }
    for (var k = 1; k < 5; k += 1) {
      var pos = k * (vals.length - 1) / 5, lo = Math.floor(pos);
      var q = vals[lo] + (vals[Math.min(lo + 1, vals.length - 1)] - vals[lo]) * (pos - lo);
      var b = nice(q);
      if (vals[0] < b && b <= vals[vals.length - 1] && (!out.length || b > out[out.length - 1])) { out.push(b); }
    }
    return out;
  }
  function colours(count) {
    if (count <= 1) { return [PALETTE[2]]; }
    var out = [];
    for (var i = 0; i < count; i += 1) { out.push(PALETTE[Math.round(i * (PALETTE.length - 1) / (count - 1))]); }
    return out;
  }
  function legendItem(fill, text, n, noun, cls) {
    var li = document.createElement("li");
    if (cls) { li.className = cls; }
    li.innerHTML = '<svg class="swatch" width="18" height="12" aria-hidden="true"><rect width="18" height="12" stroke="#8c8c8c" stroke-width="0.5"/></svg>';
    li.querySelector("rect").setAttribute("fill", fill);
    li.appendChild(document.createTextNode(" " + text + " (" + n + " " + (n <= 1 ? noun[0] : noun[1]) + ")"));
    return li;
  }
  function showMap(id, day) {
    var fig = board.querySelector("figure.map");
    if (!fig || !index.map || !id) { return Promise.resolve(); }
    return get("data/map-" + id + ".csv").then(function (text) {
      var table = csv(text), row = table.rows[table.rows.length - 1];
      if (day) { row = table.rows.filter(function (r) { return r[0] === day; })[0] || [day]; }
      var values = {};
      table.header.slice(1).forEach(function (code, k) { values[code] = num(row[k + 1]); });
      var ind = indicator(id), unit = ind.unit === "€" ? "" : ind.unit;
      var paths = fig.querySelectorAll("path[data-code]");
      var have = [];
      paths.forEach(function (p) { var v = values[p.getAttribute("data-code")]; if (v !== null && v !== undefined) { have.push(v); } });
      var bounds = breaks(have), fills = colours(bounds.length + 1), counts = fills.map(function () { return 0; });
      function cls(v) { return bounds.filter(function (b) { return v >= b; }).length; }
      paths.forEach(function (p) {
        var v = values[p.getAttribute("data-code")], title = p.querySelector("title");
        var name = title ? title.textContent.split(" : ")[0] : "";
        if (v === null || v === undefined) {
          p.classList.add("no-data"); p.setAttribute("fill", NO_DATA); p.removeAttribute("data-value");
        } else {
          counts[cls(v)] += 1;
          p.classList.remove("no-data"); p.setAttribute("fill", fills[cls(v)]); p.setAttribute("data-value", String(v));
        }
        if (title) { title.textContent = name + " : " + (v === null || v === undefined ? "pas de donnée" : (fmt(v, ind.unit) + " " + unit).trim()); }
      });
      var noun = fig.getAttribute("data-level") === "reg" ? ["région", "régions"] : ["département", "départements"];
      var legend = fig.querySelector("ul.legend");
      if (legend) {
        legend.textContent = "";
        fills.forEach(function (f, i) {
          var t = !bounds.length ? "toutes les valeurs" : i === 0 ? "moins de " + fmt(bounds[0], ind.unit)
            : i === bounds.length ? fmt(bounds[i - 1], ind.unit) + " ou plus"
            : "de " + fmt(bounds[i - 1], ind.unit) + " à moins de " + fmt(bounds[i], ind.unit);
          legend.appendChild(legendItem(f, (t + " " + unit).trim(), counts[i], noun, ""));
        });
        if (paths.length > have.length) { legend.appendChild(legendItem(NO_DATA, "pas de donnée", paths.length - have.length, noun, "no-data")); }
      }
      var coverage = fig.querySelector(".coverage");
      if (coverage) {
        coverage.setAttribute("data-reported", String(have.length));
        coverage.setAttribute("data-total", String(paths.length));
        coverage.textContent = have.length + " " + (have.length <= 1 ? noun[0] : noun[1]) + " sur " + paths.length + " " + (have.length <= 1 ? "a" : "ont") + " des données";
      }
      fig.querySelectorAll("table.map-data tr[data-row]").forEach(function (tr) {
        var v = values[tr.getAttribute("data-row")];
        tr.lastElementChild.textContent = v === null || v === undefined ? "–" : fmt(v, ind.unit);
      });
      var link = board.querySelector("a.map-csv");
      if (link) { link.setAttribute("href", new URL("data/map-" + id + ".csv", baseUrl).href); }
      var title = ind.label + " par département" + (row[0] && index.first !== index.last ? ", au " + frDate(row[0]) : "");
      fig.setAttribute("data-map", id);
      fig.querySelector("figcaption").textContent = title;
      var svgTitle = fig.querySelector("svg > title");
      if (svgTitle) { svgTitle.textContent = title; }
      var caption = fig.querySelector("table.map-data caption");
      if (caption) { caption.textContent = title; }
    });
  }

  /* --- tabs and the whole view --------------------------------------------------------- */
  /* Tabs mark a section and bring it into view; every section stays readable. */
  function showTab(tab, scroll) {
    board.querySelectorAll("[data-tab-panel]").forEach(function (p) {
      var on = p.getAttribute("data-tab-panel") === tab;
      p.classList.toggle("current", on);
      if (on && scroll) { p.scrollIntoView({ block: "start" }); }
    });
    board.querySelectorAll("nav.tabs a[data-tab]").forEach(function (a) {
      if (a.getAttribute("data-tab") === tab) { a.setAttribute("aria-current", "true"); } else { a.removeAttribute("aria-current"); }
    });
  }
  function apply(v) {
    var before = view;
    view = v;
    form.elements.area.value = v.area;
    form.elements.date.value = v.date || form.elements.date.max;
    if (form.elements.indicator && v.indicator) { form.elements.indicator.value = v.indicator; }
    showTab(v.tab, !before && v.tab !== "series");
    say("Chargement…");
    var areaChanged = !before || before.area !== v.area;
    return showArea(v.area).then(function () {
      var jobs = [showDate(v.area, v.date)];
      if (!before || before.date !== v.date || before.indicator !== v.indicator) {
        jobs.push(showMap(v.indicator, v.date));
      }
      return Promise.all(jobs);
    }).then(function () {
      say(areaChanged && before ? "Vue mise à jour." : "");
      board.setAttribute("data-view-ready", "true");
    }, function (e) {
      say("Impossible de charger les données de cette vue (" + e.message + ").");
      board.setAttribute("data-view-ready", "true");
    });
  }

  get("data/index.json").then(function (text) {
    index = JSON.parse(text);
    form.addEventListener("submit", function (e) { e.preventDefault(); });
    form.addEventListener("change", function () {
      var v = fromForm(view ? view.tab : "series");
      toUrl(v);
      apply(v);
    });
    board.querySelectorAll("nav.tabs a[data-tab]").forEach(function (a) {
      a.addEventListener("click", function (e) {
        e.preventDefault();
        var v = Object.assign({}, view, { tab: a.getAttribute("data-tab") });
        view = v;
        showTab(v.tab, true);
        toUrl(v);
      });
    });
    var start = fromUrl();
    var d = defaults();
    if (location.search) {
      apply(start);
    } else {
      view = d;
      showTab(d.tab, false);
      board.setAttribute("data-view-ready", "true");
    }
  }).catch(function (e) { say("Interaction indisponible : " + e.message); });
}());
