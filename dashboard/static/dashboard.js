// aloop dashboard: every page fetches the JSON API and draws it; it refreshes itself.
"use strict";
const aloop = (() => {
  const esc = (v) => String(v ?? "-").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  const num = (v, digits) => (v === null || v === undefined ? "-" : (digits === undefined ? String(v) : Number(v).toFixed(digits)));
  const pct = (v) => (v === null || v === undefined ? "-" : (100 * v).toFixed(1) + "%");
  // Read when a page function runs: this script loads in <head>, before <body> exists.
  const page = () => document.body.dataset;

  function table(id, columns, rows, rowAttr) {
    const head = columns.map((c) => `<th class="${c.cls || ""}">${esc(c.title)}</th>`).join("");
    const lines = rows.map((r) => `<tr ${rowAttr ? rowAttr(r) : ""}>` +
      columns.map((c) => `<td class="${c.cls || ""}">${c.html ? c.html(r) : esc(c.value(r))}</td>`).join("") + "</tr>").join("");
    document.getElementById(id).innerHTML = `<table><thead><tr>${head}</tr></thead><tbody>${lines}</tbody></table>` +
      (rows.length ? "" : "<p>none</p>");
  }

  async function poll(url, draw) {
    const once = async () => {
      try {
        const response = await fetch(url, {cache: "no-store"});
        if (!response.ok) { document.getElementById("updated").textContent = `error ${response.status}`; return; }
        draw(await response.json());
        document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
        document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
      } catch (err) {
        document.getElementById("updated").textContent = "offline: " + err;
      }
    };
    await once();
    setInterval(once, 1000 * Number(page().refresh || 5));
  }

  const status = (s) => `<span class="status-${esc(s)}">${esc(s)}</span>`;
  const link = (sid) => `<a href="/structures/${encodeURIComponent(sid)}">${esc(sid)}</a>`;
  const layout = (title, x, y, extra) => Object.assign({title: {text: title}, margin: {t: 40, l: 60, r: 20, b: 45},
    xaxis: {title: {text: x}}, yaxis: {title: {text: y}}}, extra || {});

  function campaignsPage() {
    poll("/api/campaigns", (rows) => table("campaigns", [
      {title: "campaign", cls: "text", html: (r) => `<a href="/campaigns/${encodeURIComponent(r.name)}">${esc(r.name)}</a>`},
      {title: "status", cls: "text", html: (r) => status(r.status)},
      {title: "reason", cls: "text", value: (r) => r.status_reason || ""},
      {title: "iterations", value: (r) => r.iterations},
      {title: "dataset size", value: (r) => r.dataset_size},
      {title: "label failures", value: (r) => r.label_failures},
      {title: "last activity", cls: "text", value: (r) => (r.last_activity || "").replace("T", " ").slice(0, 19)},
    ], rows, (r) => `data-campaign="${esc(r.name)}"`));
  }

  function campaignPage() {
    poll(`/api/campaigns/${encodeURIComponent(page().campaign)}`, (d) => {
      const c = d.campaign;
      document.getElementById("head").innerHTML = `<dl><dt>status</dt><dd>${status(c.status)} ${esc(c.status_reason || "")}</dd>` +
        `<dt>iterations</dt><dd id="head-iterations">${esc(c.iterations)}</dd><dt>dataset size</dt><dd id="head-size">${esc(c.dataset_size)} labelled structures</dd>` +
        `<dt>convergence</dt><dd>accurate ratio ≥ ${esc(c.accurate_ratio_target)} for ${esc(c.patience)} iterations, cap ${esc(c.max_iterations)}</dd></dl>`;
      const its = d.iterations;
      // A stage an iteration does not run (iteration 0 seeds instead of training) shows "–".
      const stage = (r, s) => { const st = (r.stages[s] || {}).status; return st ? `<span class="stage-${st}" title="${esc(st)}">${esc(st)}</span>` : "–"; };
      const sysText = (r, key, fmt) => r.systems.length > 1 ? r.systems.map((s) => `${esc(s.name)}: ${esc(fmt(s[key]))}`).join("<br>") : esc(fmt(r[key]));
      table("iterations", [
        {title: "it", value: (r) => r.index},
        ...d.stages.map((s) => ({title: s, cls: "text", html: (r) => stage(r, s)})),
        {title: "sampled", value: (r) => num(r.sampled)},
        {title: "accurate", value: (r) => num(r.accurate)},
        {title: "candidate", value: (r) => num(r.candidate)},
        {title: "failed", value: (r) => num(r.failed)},
        {title: "accurate ratio", html: (r) => sysText(r, "accurate_ratio", pct)},
        {title: "selected", value: (r) => num(r.selected)},
        {title: "labelled", value: (r) => num(r.labelled)},
        {title: "label failures", value: (r) => num(r.label_failures)},
        {title: "DFT s", value: (r) => num(r.dft_wall_s, 1)},
        {title: "committee F RMSE", value: (r) => num(r.committee_forces_rmse, 4)},
        {title: "stage s", value: (r) => d.stages.filter((s) => r.stages[s]).map((s) => num(r.stages[s].seconds, 0)).join(" / ")},
      ], its, (r) => `data-iteration="${r.index}"`);
      const exploring = its.filter((r) => r.index > 0);
      const x = exploring.map((r) => r.index);
      const systems = [...new Set(exploring.flatMap((r) => r.systems.map((s) => s.name)))];
      const ratioTraces = systems.map((name) => ({x, y: exploring.map((r) => (r.systems.find((s) => s.name === name) || {}).accurate_ratio ?? null), name, mode: "lines+markers"}));
      if (systems.length > 1) ratioTraces.push({x, y: exploring.map((r) => r.accurate_ratio), name: "all", mode: "lines+markers"});
      Plotly.react("plot-ratio", ratioTraces, layout("Accurate ratio", "iteration", "ratio", {
        yaxis: {title: {text: "ratio"}, range: [0, 1.05]},
        shapes: c.accurate_ratio_target ? [{type: "line", xref: "paper", x0: 0, x1: 1, y0: c.accurate_ratio_target, y1: c.accurate_ratio_target, line: {dash: "dash", color: "#1a7f37"}}] : [],
        annotations: c.accurate_ratio_target ? [{xref: "paper", x: 1, y: c.accurate_ratio_target, text: "threshold", showarrow: false, yanchor: "bottom", xanchor: "right"}] : [],
      }));
      Plotly.react("plot-size", [{x: its.map((r) => r.index), y: its.map((r) => r.dataset_size), mode: "lines+markers", name: "labelled"}],
        layout("Dataset size", "iteration", "labelled structures"));
      Plotly.react("plot-error", [{x, y: exploring.map((r) => r.committee_forces_rmse), mode: "lines+markers", name: "forces"}],
        layout("Committee error on newly labelled frames", "iteration", "force RMSE (eV/Å)", {yaxis: {title: {text: "force RMSE (eV/Å)"}, type: "log"}}));
      Plotly.react("plot-dft", [{x: its.map((r) => r.index), y: its.map((r) => r.dft_wall_s), type: "bar", name: "DFT"}],
        layout("DFT wall time", "iteration", "seconds (sum over labels)"));
      const hist = [];
      const shapes = [];
      for (const r of exploring) for (const s of r.systems) {
        if (!s.histogram) continue;
        const e = s.histogram.edges;
        hist.push({x: e.slice(0, -1).map((v, i) => (v + e[i + 1]) / 2), y: s.histogram.counts, type: "bar", name: `it ${r.index} ${s.name}`, opacity: 0.6});
      }
      const last = exploring.length ? exploring[exploring.length - 1].systems[0] : null;
      if (last) for (const [v, label] of [[last.trust_lo, "lo"], [last.trust_hi, "hi"]]) {
        shapes.push({type: "line", yref: "paper", y0: 0, y1: 1, x0: v, x1: v, line: {dash: "dot", color: "#cf222e"}, name: label});
      }
      Plotly.react("plot-hist", hist, layout("Max force deviation per iteration (trust window dotted)", "max force deviation (eV/Å)", "frames", {barmode: "overlay", shapes}));
      table("failures", [
        {title: "structure", cls: "text", html: (r) => link(r.structure_id)},
        {title: "iteration", value: (r) => r.iteration},
        {title: "status", cls: "text", value: (r) => r.status},
        {title: "reason", cls: "text", value: (r) => r.reason},
      ], d.label_failures);
      table("selected", [
        {title: "structure", cls: "text", html: (r) => link(r.structure_id)},
        {title: "system", cls: "text", value: (r) => r.system},
        {title: "iteration", value: (r) => r.iteration},
        {title: "max force dev (eV/Å)", value: (r) => num(r.force_dev_max, 4)},
      ], d.selected);
    });
  }

  function structurePage() {
    poll(`/api/structures/${encodeURIComponent(page().structure)}`, (d) => {
      document.getElementById("sid").textContent = d.id;
      const lin = d.lineage || {};
      const unc = d.uncertainty || {};
      const rows = [["campaign", d.campaign], ["system", d.system], ["formula", `${d.formula} (${d.natoms} atoms)`],
        ["origin", `${d.origin}, iteration ${d.iteration}`], ["walker", lin.walker], ["temperature (K)", lin.temperature],
        ["pressure (GPa)", lin.pressure_gpa], ["MD step", lin.md_step], ["committee", (lin.committee || []).join(", ")],
        ["rattled from", lin.parent], ["imported from", lin.source_file],
        ["max force deviation (eV/Å)", unc.force_dev_max === undefined ? undefined : num(unc.force_dev_max, 4)], ["verdict", `${d.verdict || "-"}: ${d.verdict_reason || ""}`],
        ["trained on by", d.trained_models.map((m) => `iteration ${m.iteration} member ${m.member}`).join(", ")]];
      document.getElementById("lineage").innerHTML = "<dl>" + rows.filter((r) => r[1] !== undefined && r[1] !== null && r[1] !== "")
        .map((r) => `<dt>${esc(r[0])}</dt><dd>${esc(r[1])}</dd>`).join("") + "</dl>";
      const g = d.geometry;
      const symbols = {1: "H", 6: "C", 7: "N", 8: "O", 9: "F", 12: "Mg", 17: "Cl"};
      const colours = {1: "#dddddd", 6: "#555555", 7: "#3050f8", 8: "#ff0d0d", 12: "#8aff00", 17: "#1ff01f"};
      Plotly.react("plot-structure", [{type: "scatter3d", mode: "markers+text", x: g.positions.map((p) => p[0]), y: g.positions.map((p) => p[1]), z: g.positions.map((p) => p[2]),
        text: g.numbers.map((z) => symbols[z] || String(z)), marker: {size: g.numbers.map((z) => (z === 1 ? 6 : 10)), color: g.numbers.map((z) => colours[z] || "#ff1493"), line: {width: 1, color: "#333"}}}],
        {title: {text: "Structure (Å)"}, margin: {t: 40, l: 0, r: 0, b: 0}, scene: {aspectmode: "data"}});
      document.getElementById("labels").innerHTML = "<h2>Labels</h2>" + d.labels.map((l) =>
        `<p>${esc(l.status)} at ${esc(l.settings.method === "DFT" ? l.settings.xc : l.settings.method)}/${esc(l.settings.basis)}: energy ${num(l.energy, 6)} eV, ${num(l.wall_time, 2)} s on ${esc(l.host)}${l.error ? "; " + esc(l.error) : ""}</p>` +
        (l.scf_attempts.length ? "<table><tr><th>SCF strategy</th><th>cycles</th><th>converged</th><th>s</th></tr>" +
          l.scf_attempts.map((a) => `<tr><td class="text">${esc(a.strategy)}</td><td>${esc(a.cycles)}</td><td>${esc(a.converged)}</td><td>${num(a.seconds, 2)}</td></tr>`).join("") + "</table>" : "")
      ).join("") || "<p>not labelled</p>";
    });
  }

  return {campaignsPage, campaignPage, structurePage};
})();
