"use strict";
// The report's charts as inline SVG, drawn from the figures html.py gathers (figures.py): no
// library, no network. Every label is set with textContent, like the rest of the page.
const ReportCharts = (function () {
  const NS = "http://www.w3.org/2000/svg", W = 420, TOP = 12, SHOWN = 12;

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v; else node.setAttribute(k, String(v));
    }
    for (const child of children) if (child != null) node.append(child);
    return node;
  }
  const tip = (text) => svg("title", {text});
  const clip = (text, n) => (text.length > n ? text.slice(0, n - 1) + "…" : text);
  function html(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = text;
    return node;
  }
  function legend(items) {
    const box = html("div", "legend");
    for (const [cls, text] of items) { const item = html("span", "key"); item.append(html("i", "swatch " + cls), text); box.append(item); }
    return box;
  }
  function frame(height, label) {
    return svg("svg", {class: "chart", viewBox: "0 0 " + W + " " + height, width: W, height, role: "img", "aria-label": label});
  }
  function ms(v) {
    if (v >= 1000) return +(v / 1000).toPrecision(3) + " s";
    return +v.toPrecision(v < 1 ? 1 : 3) + " ms";
  }
  const share = (part, whole) => (whole ? Math.round((part / whole) * 100) : 0);

  // Pass rate per simulation: passed, failed and errored conversations stacked; the base run's
  // counts as a thin bar beneath. Those with the fewest passes come first.
  function passRates(host, sims, baseline, pick, total) {
    const rows = Object.entries(sims).map(([name, sim], order) => ({name, v: sim.verdict, base: (baseline[name] || {}).base, order}));
    rows.sort((a, b) => a.v.passes / a.v.runs - b.v.passes / b.v.runs || b.v.errors - a.v.errors || a.order - b.order);
    const shown = rows.slice(0, SHOWN), withBase = shown.some((r) => r.base);
    const ROW = withBase ? 24 : 18, LABEL = 128, X = LABEL + 6, BW = W - X - 44;
    const plot = frame(TOP + shown.length * ROW, "Passed, failed and errored conversations per simulation");
    shown.forEach((row, i) => {
      const y = TOP + i * ROW - 8, group = svg("g", {class: "bar-row", "data-name": row.name});
      const base = row.base, baseText = base ? " · base run " + base.passes + " passed, " + base.failures + " failed, " + base.errors + " errors" : "";
      group.append(tip(row.name + ": " + row.v.passes + " passed, " + row.v.failures + " failed, " + row.v.errors + " errors" + baseText),
        svg("text", {x: LABEL, y: y + 9, "text-anchor": "end", class: "label", text: clip(row.name, 22)}));
      stack(group, row.v, X, y, BW, withBase ? 11 : 12, "");
      if (base) stack(group, base, X, y + 14, BW, 5, " base");
      group.append(svg("text", {x: W - 2, y: y + 9, "text-anchor": "end", class: "value", text: row.v.passes + "/" + row.v.runs}));
      group.addEventListener("click", () => pick(row.name));
      plot.append(group);
    });
    const items = [["pass", "passed"], ["fail", "failed"], ["error", "errors"]];
    if (withBase) items.push(["base-key", "thin bar: base run"]);
    host.replaceChildren(plot, legend(items));
    const listed = total > rows.length ? "the table lists " + rows.length + " of them." : "the table lists every one.";
    if (total > SHOWN) host.append(html("p", "chart-note", SHOWN + " of " + total + " simulations, fewest passes first; " + listed));
  }
  function stack(group, counts, x, y, width, height, extra) {
    const runs = counts.passes + counts.failures + counts.errors;
    if (!runs) return;
    for (const [cls, n] of [["pass", counts.passes], ["fail", counts.failures], ["error", counts.errors]]) {
      if (!n) continue;
      const w = (width * n) / runs;
      group.append(svg("rect", {class: "seg " + cls + extra, x, y, width: Math.max(w - 0.5, 0.5), height, "data-count": n}));
      x += w;
    }
  }

  // App latency per simulation: each reply counted in log-scale bins, p50 and p95 marked, the
  // simulation's max_latency_ms limit drawn; the base run's histogram in grey above. Slowest first.
  function latencies(host, names, ctx, options) {
    const opts = options || {}, B = ctx.figures.bins_per_decade, floor = ctx.figures.floor_ms || 0.01;
    const rows = names.map((name, order) => {
      const sim = ctx.summary.simulations[name] || {}, fig = ctx.figures.simulations[name] || {};
      const base = ctx.baseFigures && ctx.baseFigures.simulations[name], change = (ctx.baseline[name] || {}).base;
      return {name, order, bins: fig.latency || [], limit: fig.limit, p50: (sim.latency_ms || {}).app_p50, p95: (sim.latency_ms || {}).app_p95,
        baseBins: base ? base.latency : [], baseP50: change && change.p50_ms, baseP95: change && change.p95_ms};
    }).filter((r) => r.bins.length || r.baseBins.length);
    if (!rows.length) { host.replaceChildren(html("p", "chart-note", "No app reply has a latency.")); return; }
    rows.sort((a, b) => (b.p95 || 0) - (a.p95 || 0) || a.order - b.order);
    const shown = opts.all ? rows : rows.slice(0, SHOWN), withBase = shown.some((r) => r.baseBins.length || r.baseP50 != null);
    const values = [];
    for (const r of shown) {
      for (const [bin] of r.bins.concat(r.baseBins)) values.push(10 ** (bin / B), 10 ** ((bin + 1) / B));
      for (const v of [r.limit, r.p95, r.baseP95]) if (v) values.push(Math.max(v, floor));
    }
    let lo = Math.floor(Math.log10(Math.min(...values))), hi = Math.ceil(Math.log10(Math.max(...values)) - 1e-9);
    if (hi <= lo) hi = lo + 1;
    const every = Math.ceil((hi - lo) / 5);  // a label every decade, or every other one on a wide axis
    const LABEL = opts.label === false ? 4 : 128, X = LABEL + 6, PW = W - X - 8, HEAD = opts.tall ? 34 : 12, BASE = withBase ? (opts.tall ? 18 : 7) : 0;
    const ROW = HEAD + BASE + (withBase ? 9 : 6), height = TOP + shown.length * ROW + 16;
    const sx = (v) => X + ((Math.log10(Math.max(v, floor)) - lo) / (hi - lo)) * PW;  // 0 ms sits on the floor
    const plot = frame(height, "App latency per simulation");
    for (let d = lo; d <= hi; d++) {
      for (const m of [1, 2, 5]) {
        const v = m * 10 ** d, x = sx(v);
        if (d === hi && m > 1) continue;
        plot.append(svg("line", {class: "grid" + (m === 1 ? " decade" : ""), x1: x, x2: x, y1: TOP - 6, y2: height - 14}));
        if ((m === 1 && (d - lo) % every === 0) || hi - lo <= 2) plot.append(svg("text", {class: "tick", x, y: height - 3, "text-anchor": "middle", text: ms(v)}));
      }
    }
    shown.forEach((r, i) => {
      const top = TOP + i * ROW - 6, group = svg("g", {class: "lat-row", "data-name": r.name});
      const count = r.bins.reduce((n, [, c]) => n + c, 0);
      group.append(tip(r.name + ": " + count + " replies · p50 " + (r.p50 != null ? ms(r.p50) : "–") + " · p95 " + (r.p95 != null ? ms(r.p95) : "–") +
        (r.limit ? " · limit " + ms(r.limit) : "") + (withBase ? " · base p50 " + (r.baseP50 != null ? ms(r.baseP50) : "–") + " · base p95 " + (r.baseP95 != null ? ms(r.baseP95) : "–") : "")));
      if (opts.label !== false) group.append(svg("text", {x: LABEL, y: top + BASE + HEAD - 2, "text-anchor": "end", class: "label", text: clip(r.name, 22)}));
      if (BASE) histogram(group, r.baseBins, sx, B, top, BASE, " base", r.baseP50, r.baseP95);
      histogram(group, r.bins, sx, B, top + BASE + (BASE ? 2 : 0), HEAD, "", r.p50, r.p95);
      if (r.limit) group.append(svg("line", {class: "limit", x1: sx(r.limit), x2: sx(r.limit), y1: top - 2, y2: top + BASE + HEAD + 4}));
      if (ctx.pick) group.addEventListener("click", () => ctx.pick(r.name));
      plot.append(group);
    });
    const items = [["lat", "replies"], ["p50", "p50"], ["p95", "p95"]];
    if (shown.some((r) => r.limit)) items.push(["limit", "max_latency_ms limit"]);
    if (withBase) items.splice(1, 0, ["lat-base", "base run"]);
    host.replaceChildren(plot, legend(items));
    const among = Math.max(rows.length, opts.among || 0);  // simulations left without figures are among them
    if (among > shown.length) host.append(html("p", "chart-note", SHOWN + " of " + among + " simulations, highest p95 first."));
  }
  function histogram(group, bins, sx, B, top, height, extra, p50, p95) {
    const most = Math.max(1, ...bins.map(([, n]) => n));
    for (const [bin, n] of bins) {
      const x = sx(10 ** (bin / B)), w = sx(10 ** ((bin + 1) / B)) - x, h = Math.max(1.5, (height * n) / most);
      group.append(svg("rect", {class: "lat-bin" + extra, x, y: top + height - h, width: Math.max(w - 0.6, 0.8), height: h, "data-count": n}));
    }
    for (const [cls, v] of [["p50", p50], ["p95", p95]]) {
      if (v != null) group.append(svg("line", {class: "mark " + cls + extra, x1: sx(v), x2: sx(v), y1: top - 1, y2: top + height + 1}));
    }
  }

  // How conversations ended: how many turns each took, stacked by why it ended; with a base run,
  // its conversations in a panel of their own on the same scales.
  // The overview (`whole`) also counts the conversations of simulations kept without figures of their own.
  function endings(host, names, ctx, whole) {
    const kinds = ctx.figures.endings;
    const tally = (figures) => {
      const byTurns = {}, totals = {};
      const lists = names.map((name) => (figures.simulations[name] || {}).endings || []);
      if (whole && figures.rest) lists.push(figures.rest.endings);
      for (const list of lists) {
        for (const [turns, how, n] of list) {
          (byTurns[turns] = byTurns[turns] || {})[how] = (byTurns[turns][how] || 0) + n;
          totals[how] = (totals[how] || 0) + n;
        }
      }
      return {byTurns, totals};
    };
    const panels = [];
    if (ctx.baseFigures) panels.push(["base run", tally(ctx.baseFigures)]);
    panels.push([ctx.baseFigures ? "this run" : "", tally(ctx.figures)]);
    const turns = panels.flatMap(([, t]) => Object.keys(t.byTurns).map(Number));
    if (!turns.length) { host.replaceChildren(html("p", "chart-note", "No conversation to count.")); return; }
    const first = Math.min(...turns), last = Math.max(...turns), columns = last - first + 1;
    const most = Math.max(...panels.flatMap(([, t]) => Object.values(t.byTurns).map((c) => Object.values(c).reduce((a, b) => a + b, 0))));
    const H = 72, GAP = 14, PW = (W - 24 - GAP * (panels.length - 1)) / panels.length, height = TOP + 8 + H + 18;
    const plot = frame(height, "Turns each conversation took, by how it ended");
    plot.append(svg("text", {class: "tick", x: 2, y: TOP + 8, text: String(most)}), svg("text", {class: "tick", x: 2, y: TOP + 8 + H, text: "0"}));
    panels.forEach(([title, t], p) => {
      const x0 = 24 + p * (PW + GAP), step = PW / columns, panel = svg("g", {class: "panel", "data-panel": title || "this run"});
      if (title) panel.append(svg("text", {class: "label", x: x0, y: TOP - 2, text: title}));
      panel.append(svg("line", {class: "axis", x1: x0, x2: x0 + PW, y1: TOP + 8 + H, y2: TOP + 8 + H}));
      for (let c = 0; c < columns; c++) {
        const count = first + c, stackOf = t.byTurns[count] || {};
        let y = TOP + 8 + H;
        for (const how of kinds) {
          const n = stackOf[how];
          if (!n) continue;
          const h = (H * n) / most;
          y -= h;
          const bw = Math.max(Math.min(step * 0.8, 28), 1);
          panel.append(svg("rect", {class: "end end-" + how, x: x0 + (c + 0.5) * step - bw / 2, y, width: bw, height: h, "data-turns": count, "data-count": n},
            tip(n + " conversation(s) of " + count + " turns ended " + how)));
        }
        if (columns <= 16 || c % Math.ceil(columns / 12) === 0) panel.append(svg("text", {class: "tick", x: x0 + (c + 0.5) * step, y: height - 4, "text-anchor": "middle", text: String(count)}));
      }
      plot.append(panel);
    });
    const head = panels[panels.length - 1][1].totals, base = ctx.baseFigures ? panels[0][1].totals : null;
    host.replaceChildren(plot, legend(kinds.map((how) => ["end-" + how, how.replace(/_/g, " ") + " " + (head[how] || 0) + (base ? " (base " + (base[how] || 0) + ")" : "")])));
    host.append(html("p", "chart-note", "x: turns per conversation (messages of both sides)"));
  }

  // The overview above the table: the whole run.
  function overview(ctx) {
    const names = Object.keys(ctx.summary.simulations), total = Math.max(ctx.total || 0, names.length);
    passRates(document.getElementById("chart-pass"), ctx.summary.simulations, ctx.baseline, ctx.pick, total);
    // the simulations without figures, or not listed, are among those the chart's rows were picked from
    latencies(document.getElementById("chart-latency"), names, ctx, {among: ctx.figures.rest || total > names.length ? total : 0});
    endings(document.getElementById("chart-endings"), names, ctx, true);
  }

  // One simulation's latency distribution and endings, in its opened row.
  function simulation(name, ctx) {
    const box = html("div", "sim-charts"), lat = html("figure", "card"), ends = html("figure", "card");
    if (ctx.figures.rest && !ctx.figures.simulations[name]) {  // one of many simulations kept without figures
      box.append(html("p", "chart-note", "No charts of this simulation, to keep this page small: its conversations are in conversations.jsonl."));
      return box;
    }
    lat.append(html("figcaption", null, "App latency"), html("div"));
    ends.append(html("figcaption", null, "How its conversations ended"), html("div"));
    latencies(lat.lastChild, [name], {...ctx, pick: null}, {all: true, tall: true, label: false});
    endings(ends.lastChild, [name], ctx);
    box.append(lat, ends);
    return box;
  }

  return {overview, simulation};
})();
