/* The explorer's logic (models/reports/explore_page.html): reads the embedded data, applies the
   filters and draws every view from the same filtered set. No library, no network.

   Data (explore.py's page_data): labels[i] (true class of image i), classes[k] (names),
   models[m] = {name, description, pred[i], conf[i]}, sprite = {tile, columns}: image i is the
   tile at column i % columns, row floor(i / columns) of the one embedded PNG. */
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("explore-data").textContent);
  const SPRITE = document.getElementById("sprite");
  const N = DATA.labels.length, K = DATA.classes.length, M = DATA.models.length;
  const TILE = DATA.sprite.tile, COLUMNS = DATA.sprite.columns;
  const CONF_EDGES = [0.5, 0.7, 0.9, 0.99];           // confidence bins: below 0.5, 0.5-0.7, ... 0.99 and up
  const CONF_BINS = ["< 0.5", "0.5-0.7", "0.7-0.9", "0.9-0.99", ">= 0.99"];
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                   "#bcbd22", "#17becf"];
  const RIGHT = "#2ca02c", WRONG = "#d62728";
  const BIN_COLOURS = ["#d73027", "#fc8d59", "#fee08b", "#91cf60", "#1a9850"];
  const GALLERY_MAX = 2000;                           // thumbnails drawn at once (a whole grid row can be 10,000)

  const state = {model: 0, outcome: "all", confMin: 0, confMax: 1, classes: new Array(K).fill(true),
                 selection: null, rows: "true", cols: "outcome", colour: "pred"};

  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, text) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const fmt = (x, digits) => (x === null || Number.isNaN(x) ? "-" : x.toFixed(digits));
  const confBin = (c) => { let b = 0; while (b < CONF_EDGES.length && c >= CONF_EDGES[b]) b++; return b; };
  const isRight = (i, m) => DATA.models[m].pred[i] === DATA.labels[i];

  // ---- filters: one predicate, used by every view -----------------------------------------------
  function passes(i, m) {
    if (!state.classes[DATA.labels[i]]) return false;
    const c = DATA.models[m].conf[i];
    if (c < state.confMin || c > state.confMax) return false;
    if (state.outcome === "correct") return isRight(i, m);
    if (state.outcome === "wrong") return !isRight(i, m);
    return true;
  }
  function visible() {                               // image indices shown, for the chosen model
    const shown = [];
    for (let i = 0; i < N; i++) if (passes(i, state.model)) shown.push(i);
    return shown;
  }

  // ---- facets of the grid: each maps an (image, model) item to one of its values ------------------
  const modelNames = DATA.models.map((d) => d.name);
  const FACETS = {
    none: {label: "(none)", values: ["all"], of: () => 0, colours: ["#4c78a8"]},
    true: {label: "true class", values: DATA.classes, of: (i) => DATA.labels[i], colours: PALETTE},
    pred: {label: "predicted class", values: DATA.classes, of: (i, m) => DATA.models[m].pred[i], colours: PALETTE},
    conf: {label: "confidence", values: CONF_BINS, of: (i, m) => confBin(DATA.models[m].conf[i]), colours: BIN_COLOURS},
    outcome: {label: "right / wrong", values: ["right", "wrong"], of: (i, m) => (isRight(i, m) ? 0 : 1),
              colours: [RIGHT, WRONG]},
    model: {label: "model", values: modelNames, of: (i, m) => m, colours: ["#4c78a8", "#f58518", "#54a24b"]},
  };
  const colourOf = (facet, value) => facet.colours[value % facet.colours.length];

  function gridItems() {                             // (image, model) items: every model when a facet is "model"
    const byModel = [state.rows, state.cols, state.colour].includes("model");
    const models = byModel ? DATA.models.map((_, m) => m) : [state.model];
    const items = [];
    for (const m of models) for (let i = 0; i < N; i++) if (passes(i, m)) items.push({i, m});
    return items;
  }

  // ---- selections: what the gallery shows ------------------------------------------------------------
  function selectionItems(sel) {
    const m = state.model, items = [];
    const pick = (test) => { for (const i of visible()) if (test(i)) items.push({i, m}); };
    if (sel.kind === "cell") pick((i) => DATA.labels[i] === sel.t && DATA.models[m].pred[i] === sel.p);
    else if (sel.kind === "missed") pick((i) => DATA.labels[i] === sel.t && !isRight(i, m));
    else if (sel.kind === "false") pick((i) => DATA.models[m].pred[i] === sel.p && !isRight(i, m));
    else if (sel.kind === "lost") pick((i) => DATA.labels[i] === sel.t && isRight(i, 0) && !isRight(i, 1));
    else if (sel.kind === "gained") pick((i) => DATA.labels[i] === sel.t && !isRight(i, 0) && isRight(i, 1));
    else if (sel.kind === "block") {
      const rows = FACETS[sel.rows], cols = FACETS[sel.cols];
      for (const item of gridItems()) {
        if (rows.of(item.i, item.m) === sel.r && cols.of(item.i, item.m) === sel.c) items.push(item);
      }
    }
    return items;
  }
  function selectionTitle(sel) {
    const cls = DATA.classes, name = modelNames[state.model];
    switch (sel.kind) {
      case "cell": return `true ${cls[sel.t]}, predicted ${cls[sel.p]} by ${name}`;
      case "missed": return `true ${cls[sel.t]}, predicted otherwise by ${name}`;
      case "false": return `predicted ${cls[sel.p]} by ${name}, true class otherwise`;
      case "lost": return `true ${cls[sel.t]}: ${modelNames[0]} right, ${modelNames[1]} wrong`;
      case "gained": return `true ${cls[sel.t]}: ${modelNames[0]} wrong, ${modelNames[1]} right`;
      default: return `${FACETS[sel.rows].label} ${FACETS[sel.rows].values[sel.r]}, `
        + `${FACETS[sel.cols].label} ${FACETS[sel.cols].values[sel.c]}`;
    }
  }
  function select(sel) { state.selection = sel; renderMatrix(); renderGallery(); }

  // ---- thumbnails: a small canvas cut from the sprite --------------------------------------------------
  function thumbnail(i) {
    const canvas = el("canvas", {width: TILE, height: TILE});
    canvas.getContext("2d").drawImage(SPRITE, (i % COLUMNS) * TILE, Math.floor(i / COLUMNS) * TILE, TILE, TILE,
                                      0, 0, TILE, TILE);
    return canvas;
  }

  // ---- views ---------------------------------------------------------------------------------------------
  function confusion(shown, m) {
    const counts = Array.from({length: K}, () => new Array(K).fill(0));
    for (const i of shown) counts[DATA.labels[i]][DATA.models[m].pred[i]]++;
    return counts;
  }

  function renderSummary(shown) {
    const m = state.model, right = shown.filter((i) => isRight(i, m)).length;
    const models = DATA.models.map((d) => `${d.name}: ${d.description}`).join("; ");
    $("summary").textContent = `${models}. Shown: ${shown.length.toLocaleString("en")} of `
      + `${N.toLocaleString("en")} test images (${DATA.source}); ${modelNames[m]} predicts `
      + `${right.toLocaleString("en")} of them right (${fmt(shown.length ? right / shown.length : NaN, 4)}).`;
  }

  function renderMatrix() {
    const shown = visible(), counts = confusion(shown, state.model), table = $("confusion");
    let maxRight = 1, maxWrong = 1;
    counts.forEach((row, t) => row.forEach((n, p) => {
      if (t === p) maxRight = Math.max(maxRight, n); else maxWrong = Math.max(maxWrong, n);
    }));
    table.replaceChildren();
    const head = el("tr");
    head.append(el("th"));
    DATA.classes.forEach((name) => head.append(el("th", {class: "col"}, name)));
    head.append(el("th", {class: "col"}, "total"));
    table.append(head);
    const sel = state.selection;
    counts.forEach((row, t) => {
      const tr = el("tr");
      tr.append(el("th", {class: "row"}, DATA.classes[t]));
      row.forEach((n, p) => {
        const td = el("td", {class: "cell", "data-true": t, "data-pred": p, "data-count": n}, n ? String(n) : "");
        const share = Math.sqrt(n / (t === p ? maxRight : maxWrong));
        td.style.background = n ? (t === p ? `rgba(44,160,44,${0.12 + 0.6 * share})`
                                           : `rgba(214,39,40,${0.12 + 0.75 * share})`) : "#f7f7f7";
        td.title = `true ${DATA.classes[t]}, predicted ${DATA.classes[p]}: ${n}`;
        if (sel && sel.kind === "cell" && sel.t === t && sel.p === p) td.classList.add("selected");
        td.addEventListener("click", () => select({kind: "cell", t, p}));
        tr.append(td);
      });
      tr.append(el("td", {class: "total"}, String(row.reduce((a, b) => a + b, 0))));
      table.append(tr);
    });
    const foot = el("tr");
    foot.append(el("th", {class: "row"}, "total"));
    for (let p = 0; p < K; p++) foot.append(el("td", {class: "total"}, String(counts.reduce((a, r) => a + r[p], 0))));
    foot.append(el("td", {class: "total"}, String(shown.length)));
    table.append(foot);
  }

  function renderGallery() {
    const gallery = $("gallery"), sel = state.selection;
    gallery.replaceChildren();
    $("gallery-more").textContent = "";
    if (!sel) { $("gallery-title").textContent = "click a cell"; $("gallery-count").textContent = "0"; return; }
    const items = selectionItems(sel), both = sel.kind === "lost" || sel.kind === "gained";
    $("gallery-title").textContent = selectionTitle(sel);
    $("gallery-count").textContent = String(items.length);
    $("gallery-more").textContent = items.length > GALLERY_MAX
      ? `showing the first ${GALLERY_MAX.toLocaleString("en")}: narrow the selection or the filters to see the rest` : "";
    const fragment = document.createDocumentFragment();
    for (const {i, m} of items.slice(0, GALLERY_MAX)) {
      const d = DATA.models[m], right = d.pred[i] === DATA.labels[i];
      const card = el("div", {class: `gallery-item ${right ? "right" : "wrong"}`, "data-index": i,
                              "data-true": DATA.labels[i], "data-pred": d.pred[i], "data-model": d.name,
                              "data-conf": d.conf[i]});
      card.append(thumbnail(i), el("div", {class: "true"}, `true: ${DATA.classes[DATA.labels[i]]}`));
      const shownModels = both ? DATA.models.map((_, k) => k) : [m];
      for (const k of shownModels) {
        const dk = DATA.models[k];
        card.append(el("div", {class: "pred"}, `${dk.name}: ${DATA.classes[dk.pred[i]]} ${fmt(dk.conf[i], 2)}`));
      }
      card.title = `test image ${i}`;
      fragment.append(card);
    }
    gallery.append(fragment);
  }

  let gridLayout = null;                              // what the last grid drawing put where (hit tests)
  function renderGrid() {
    const rows = FACETS[state.rows], cols = FACETS[state.cols], colour = FACETS[state.colour];
    const items = gridItems(), R = rows.values.length, C = cols.values.length;
    const blocks = Array.from({length: R * C}, () => []);
    for (const item of items) blocks[rows.of(item.i, item.m) * C + cols.of(item.i, item.m)].push(item);
    for (const block of blocks) block.sort((a, b) => colour.of(a.i, a.m) - colour.of(b.i, b.m) || a.i - b.i);
    const largest = blocks.reduce((most, block) => Math.max(most, block.length), 1);
    const labelW = 112, headH = 20, gap = 8, maxHeight = 1600;
    const width = Math.max(600, $("grid-wrap").clientWidth - 4);
    // The largest tiles (18 px down to 2) whose blocks, as wide as the page allows, fit maxHeight;
    // every block has the same size, so their fill compares the counts.
    let size = 18, bw = 1, bh = 1;
    for (; size >= 2; size--) {
      bw = Math.max(1, Math.floor((width - labelW - C * gap) / (C * size)));
      bw = Math.min(bw, largest);
      bh = Math.ceil(largest / bw);
      if (headH + R * (bh * size + gap) <= maxHeight) break;
    }
    size = Math.max(size, 2);
    const blockW = bw * size, blockH = bh * size;
    const canvas = $("grid"), ctx = canvas.getContext("2d");
    canvas.width = labelW + C * (blockW + gap);
    canvas.height = headH + R * (blockH + gap);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#333";
    ctx.textBaseline = "middle";
    cols.values.forEach((v, c) => ctx.fillText(String(v).slice(0, Math.max(3, Math.floor(blockW / 6))),
                                                labelW + c * (blockW + gap), headH / 2));
    rows.values.forEach((v, r) => ctx.fillText(String(v).slice(0, 18), 2, headH + r * (blockH + gap) + blockH / 2));
    const drawImages = size >= 8;
    blocks.forEach((block, b) => {
      const x0 = labelW + (b % C) * (blockW + gap), y0 = headH + Math.floor(b / C) * (blockH + gap);
      ctx.fillStyle = "#f2f2f2";
      ctx.fillRect(x0, y0, blockW, blockH);
      block.forEach((item, k) => {
        const x = x0 + (k % bw) * size, y = y0 + Math.floor(k / bw) * size;
        ctx.fillStyle = colourOf(colour, colour.of(item.i, item.m));
        if (drawImages) {                             // the image in a frame of its colour
          const frame = size >= 12 ? 2 : 1;
          ctx.fillRect(x, y, size, size);
          ctx.drawImage(SPRITE, (item.i % COLUMNS) * TILE, Math.floor(item.i / COLUMNS) * TILE, TILE, TILE,
                        x + frame, y + frame, size - 2 * frame, size - 2 * frame);
        } else {
          ctx.fillRect(x, y, size - (size > 3 ? 1 : 0), size - (size > 3 ? 1 : 0));
        }
      });
    });
    gridLayout = {rows: state.rows, cols: state.cols, blocks, labelW, headH, gap, blockW, blockH, bw, size, C, R};
    canvas.dataset.layout = JSON.stringify({labelW, headH, gap, blockW, blockH});   // where each block is
    $("grid-count").textContent = `${items.length.toLocaleString("en")} items`
      + ([state.rows, state.cols, state.colour].includes("model") ? " (image, model)" : ` (${modelNames[state.model]})`);
    $("grid-count").dataset.count = String(items.length);
    const legend = $("grid-legend");
    legend.replaceChildren(el("span", {}, `colour: ${colour.label}`));
    colour.values.forEach((v, k) => {
      const entry = el("span");
      const swatch = el("i");
      swatch.style.background = colourOf(colour, k);
      entry.append(swatch, String(v));
      legend.append(entry);
    });
  }

  function gridHit(event) {                           // {block, item} under the pointer, or null
    const L = gridLayout, rect = $("grid").getBoundingClientRect();
    const x = event.clientX - rect.left - L.labelW, y = event.clientY - rect.top - L.headH;
    if (x < 0 || y < 0) return null;
    const c = Math.floor(x / (L.blockW + L.gap)), r = Math.floor(y / (L.blockH + L.gap));
    const bx = x - c * (L.blockW + L.gap), by = y - r * (L.blockH + L.gap);
    if (c >= L.C || r >= L.R || bx >= L.blockW || by >= L.blockH) return null;
    const block = L.blocks[r * L.C + c], k = Math.floor(by / L.size) * L.bw + Math.floor(bx / L.size);
    return {r, c, item: block[k] || null};
  }

  function linkCell(n, sel) {
    const td = el("td");
    const span = el("span", {class: n ? "link" : "link zero"}, String(n));
    if (n) span.addEventListener("click", () => select(sel));
    td.append(span);
    return td;
  }

  function renderPerClass(shown) {
    const m = state.model, counts = confusion(shown, m), table = $("per-class");
    table.replaceChildren();
    const head = el("tr");
    for (const h of ["class", "images", "predicted as it", "precision", "recall", "missed", "false alarms"]) {
      head.append(el("th", {}, h));
    }
    table.append(head);
    for (let k = 0; k < K; k++) {
      const support = counts[k].reduce((a, b) => a + b, 0), predicted = counts.reduce((a, r) => a + r[k], 0);
      const right = counts[k][k];
      const precision = predicted ? right / predicted : NaN, recall = support ? right / support : NaN;
      const tr = el("tr", {"data-class": k});
      tr.append(el("td", {}, DATA.classes[k]), el("td", {}, String(support)), el("td", {}, String(predicted)));
      for (const value of [precision, recall]) {
        const td = el("td", {}, fmt(value, 3));
        const bar = el("span", {class: "bar"});
        bar.style.width = `${Number.isNaN(value) ? 0 : Math.round(80 * value)}px`;
        td.append(bar);
        tr.append(td);
      }
      tr.append(linkCell(support - right, {kind: "missed", t: k}), linkCell(predicted - right, {kind: "false", p: k}));
      table.append(tr);
    }
  }

  function renderPairs(shown) {
    const counts = confusion(shown, state.model), pairs = [], box = $("pairs");
    counts.forEach((row, t) => row.forEach((n, p) => { if (t !== p && n) pairs.push({t, p, n}); }));
    pairs.sort((a, b) => b.n - a.n || a.t - b.t || a.p - b.p);
    box.replaceChildren();
    if (!pairs.length) { box.append(el("p", {class: "hint"}, "no wrong predictions among the shown images")); return; }
    const pred = DATA.models[state.model].pred;
    for (const {t, p, n} of pairs.slice(0, 8)) {
      const row = el("div", {class: "pair", "data-true": t, "data-pred": p, "data-count": n});
      row.append(el("span", {class: "what"}, `${DATA.classes[t]} predicted as ${DATA.classes[p]}: ${n}`));
      let examples = 0;
      for (const i of shown) {
        if (DATA.labels[i] === t && pred[i] === p) { row.append(thumbnail(i)); if (++examples === 12) break; }
      }
      row.addEventListener("click", () => select({kind: "cell", t, p}));
      box.append(row);
    }
  }

  function renderCompare(shown) {
    const box = $("compare");
    box.replaceChildren();
    if (M < 2) {
      box.append(el("p", {class: "hint"}, "One model only: pass --pruned (or run `sysdl prune` and "
        + "`sysdl report prune`, which writes the pruned model explore reads by default) to compare."));
      return;
    }
    const [a, b] = modelNames;
    box.append(el("p", {class: "hint"}, `${b} against ${a} on the shown images: "lost" are images ${a} gets `
      + `right and ${b} gets wrong, "gained" the reverse.`));
    const table = el("table", {id: "compare-table"}), head = el("tr");
    for (const h of ["class", "images", `${a} right`, `${b} right`, "lost", "gained", "net"]) head.append(el("th", {}, h));
    table.append(head);
    const total = {n: 0, a: 0, b: 0, lost: 0, gained: 0};
    const addRow = (label, r, t) => {
      const tr = el("tr", t === undefined ? {} : {"data-class": t});
      tr.append(el("td", {}, label), el("td", {}, String(r.n)), el("td", {}, String(r.a)), el("td", {}, String(r.b)));
      if (t === undefined) tr.append(el("td", {}, String(r.lost)), el("td", {}, String(r.gained)));
      else tr.append(linkCell(r.lost, {kind: "lost", t}), linkCell(r.gained, {kind: "gained", t}));
      tr.append(el("td", {}, (r.gained - r.lost > 0 ? "+" : "") + String(r.gained - r.lost)));
      table.append(tr);
    };
    for (let t = 0; t < K; t++) {
      const r = {n: 0, a: 0, b: 0, lost: 0, gained: 0};
      for (const i of shown) {
        if (DATA.labels[i] !== t) continue;
        const ra = isRight(i, 0), rb = isRight(i, 1);
        r.n++; r.a += ra; r.b += rb; r.lost += ra && !rb; r.gained += !ra && rb;
      }
      for (const key of Object.keys(total)) total[key] += r[key];
      addRow(DATA.classes[t], r, t);
    }
    addRow("all classes", total);
    box.append(table);
  }

  function update() {
    const shown = visible();
    renderSummary(shown);
    renderMatrix();
    renderGallery();
    renderGrid();
    renderPerClass(shown);
    renderPairs(shown);
    renderCompare(shown);
  }

  // ---- controls --------------------------------------------------------------------------------------------
  function fillSelect(select, options, value) {
    for (const [key, label] of options) select.append(el("option", {value: key}, label));
    select.value = value;
  }
  function setUp() {
    fillSelect($("model"), modelNames.map((name, m) => [String(m), `${name} (${DATA.models[m].description})`]), "0");
    const facetOptions = Object.entries(FACETS).filter(([key]) => key !== "model" || M > 1).map(([k, f]) => [k, f.label]);
    fillSelect($("facet-rows"), facetOptions, state.rows);
    fillSelect($("facet-cols"), facetOptions, state.cols);
    fillSelect($("facet-colour"), facetOptions, state.colour);
    DATA.classes.forEach((name, k) => {
      const box = el("input", {type: "checkbox", "data-class": k});
      box.checked = true;
      box.addEventListener("change", () => { state.classes[k] = box.checked; update(); });
      const label = el("label");
      label.append(box, name);
      $("filter-classes").append(label);
    });
    const setAll = (on) => {
      state.classes.fill(on);
      for (const box of $("filter-classes").querySelectorAll("input")) box.checked = on;
      update();
    };
    $("classes-all").addEventListener("click", () => setAll(true));
    $("classes-none").addEventListener("click", () => setAll(false));
    $("model").addEventListener("change", (e) => { state.model = Number(e.target.value); update(); });
    $("filter-outcome").addEventListener("change", (e) => { state.outcome = e.target.value; update(); });
    const bound = (input, fallback) => { const v = parseFloat(input.value); return Number.isNaN(v) ? fallback : v; };
    $("filter-conf-min").addEventListener("input", (e) => { state.confMin = bound(e.target, 0); update(); });
    $("filter-conf-max").addEventListener("input", (e) => { state.confMax = bound(e.target, 1); update(); });
    for (const [id, key] of [["facet-rows", "rows"], ["facet-cols", "cols"], ["facet-colour", "colour"]]) {
      $(id).addEventListener("change", (e) => { state[key] = e.target.value; renderGrid(); });
    }
    const grid = $("grid"), tip = $("grid-tip");
    grid.addEventListener("mousemove", (event) => {
      const hit = gridHit(event);
      if (!hit || !hit.item) { tip.style.display = "none"; return; }
      const {i, m} = hit.item, d = DATA.models[m];
      tip.textContent = `image ${i}: true ${DATA.classes[DATA.labels[i]]}, ${d.name} predicts `
        + `${DATA.classes[d.pred[i]]} (${fmt(d.conf[i], 2)})`;
      tip.style.left = `${event.offsetX + 12}px`;
      tip.style.top = `${event.offsetY + 12}px`;
      tip.style.display = "block";
    });
    grid.addEventListener("mouseleave", () => { tip.style.display = "none"; });
    grid.addEventListener("click", (event) => {
      const hit = gridHit(event);
      if (hit) select({kind: "block", rows: gridLayout.rows, cols: gridLayout.cols, r: hit.r, c: hit.c});
    });
  }

  function firstSelection() {                         // the most confused pair, where there is one
    const counts = confusion(visible(), state.model);
    let best = null;
    counts.forEach((row, t) => row.forEach((n, p) => {
      if (t !== p && n && (!best || n > best.n)) best = {t, p, n};
    }));
    return best && {kind: "cell", t: best.t, p: best.p};
  }

  SPRITE.decode().then(() => {
    setUp();
    state.selection = firstSelection();
    update();
    window.sysdlReadyMs = performance.now();          // read by models/reports/browser.py
    document.body.dataset.ready = "1";
  });
})();
