// aloop dashboard: every page fetches the JSON API and draws it; it refreshes itself.
"use strict";
const aloop = (() => {
  const esc = (v) => String(v ?? "-").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  const num = (v, digits) => (v === null || v === undefined ? "-" : (digits === undefined ? String(v) : Number(v).toFixed(digits)));
  const pct = (v) => (v === null || v === undefined ? "-" : (100 * v).toFixed(1) + "%");
  // Read when a page function runs: this script loads in <head>, before <body> exists.
  const page = () => document.body.dataset;

  // rowHtml(r, columnCount), when given, may return a whole row of its own (or null).
  function table(id, columns, rows, rowAttr, rowHtml) {
    const head = columns.map((c) => `<th class="${c.cls || ""}">${esc(c.title)}</th>`).join("");
    const lines = rows.map((r) => (rowHtml && rowHtml(r, columns.length)) || (`<tr ${rowAttr ? rowAttr(r) : ""}>` +
      columns.map((c) => `<td class="${c.cls || ""}">${c.html ? c.html(r) : esc(c.value(r))}</td>`).join("") + "</tr>")).join("");
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
  const given = (v) => v !== null && v !== undefined;
  // A hold-out error as "0.0331 (n=24)": force RMSE (eV/Å) on n accumulated hold-out frames.
  const holdoutText = (h) => (h && h.n && given(h.forces_rmse) ? `${num(h.forces_rmse, 4)} (n=${h.n})` : "-");
  const holdoutWords = (h) => (h && h.n && given(h.forces_rmse)
    ? `force RMSE ${num(h.forces_rmse, 4)} eV/Å on ${h.n} hold-out frames, 95th percentile of the max-atom error ${num(h.forces_max_p95, 4)} eV/Å`
    : "no hold-out frames labelled");
  // The final iteration: the production committee trained on every label, once a rule fired.
  function finalWords(f) {
    const st = (f.stages.final || {}).status || "pending";
    if (!f.final) return `production committee (iteration ${f.index}): ${st}`;
    const t = f.final.training;
    return `production committee (iteration ${f.index}): ${st}; ${t.members_trained} member(s) trained on ${t.structures} structures ` +
      `(validation force RMSE ${num(t.valid_forces_rmse, 4)} eV/Å); hold-out ${holdoutWords(f.final.holdout)}`;
  }
  // The accurate ratio as the stopping rule reads it: of the planned walker time when stored
  // (a walker stopped early counts against it), else (older iterations) of the sampled frames.
  // Periodic systems' committee stress deviation; "-" where no system has one.
  const stressDevText = (r) => {
    const parts = (r.systems || []).filter((s) => given(s.stress_dev_median_gpa))
      .map((s) => `${num(s.stress_dev_median_gpa, 2)} / ${num(s.stress_dev_max_gpa, 2)}`);
    return parts.length ? parts.join("; ") : "-";
  };
  const ratioOf = (x) => (x ? (given(x.time_ratio) ? x.time_ratio : x.accurate_ratio) : null);
  function ratioCell(x, sys) {
    if (!given(x.time_ratio)) return esc(pct(x.accurate_ratio));
    const walkers = sys && given(sys.walkers_completed) ? `; ${sys.walkers_completed} of ${sys.walkers} walkers ran every step` : "";
    return `<span class="time-ratio" title="accurate fraction of the planned walker time${esc(walkers)}">${esc(pct(x.time_ratio))}</span>` +
      ` <small title="accurate fraction of the sampled frames">(${esc(pct(x.accurate_ratio))} of frames)</small>`;
  }
  const calibrationWords = (cal) => `n=${cal.n}, scale ${num(cal.scale, 2)} (90 % bound ${num(cal.scale_90, 2)}), Spearman ${num(cal.spearman, 2)}, ` +
    `coverage of the previous 90 % bound ${given(cal.coverage_90) ? pct(cal.coverage_90) + (given(cal.coverage_n) ? ` of ${cal.coverage_n} new frames` : "") : "- (first calibration)"}`;
  // The calibration plot: iterations that stored one, and the one picked (null: the latest).
  let calibrated = [];
  let calibrationChoice = null;

  function drawCalibration() {
    const picker = document.getElementById("calibration-iteration");
    const numbers = document.getElementById("calibration-numbers");
    const options = calibrated.map((r) => String(r.index));
    if (picker.dataset.options !== options.join(",")) {
      picker.innerHTML = options.map((i) => `<option value="${i}">${i}</option>`).join("");
      picker.dataset.options = options.join(",");
      picker.onchange = () => { calibrationChoice = picker.value; drawCalibration(); };
    }
    const axes = {xaxis: {title: {text: "max force deviation (eV/Å)"}, type: "log", dtick: "D2"}, yaxis: {title: {text: "true max-atom force error (eV/Å)"}, type: "log", dtick: "D2"}};
    const chosen = calibrated.find((r) => String(r.index) === calibrationChoice) || calibrated[calibrated.length - 1];
    const pick = document.getElementById("calibration-pick");
    if (!chosen) {
      pick.hidden = true;
      numbers.textContent = "no calibration stored";
      Plotly.react("plot-calibration", [], layout("Calibration: deviation against true error", "", "", {xaxis: {visible: false}, yaxis: {visible: false},
        annotations: [{xref: "paper", yref: "paper", x: 0.5, y: 0.5, showarrow: false, text: "no calibration stored for this campaign"}]}));
      return;
    }
    pick.hidden = false;
    picker.value = String(chosen.index);
    const cal = chosen.calibration;
    const devs = cal.points.map((p) => p[0]);
    const lo = Math.min(...devs);
    const hi = Math.max(...devs);
    const traces = [{x: devs, y: cal.points.map((p) => p[1]), mode: "markers", name: `frames (n=${cal.points.length})`}];
    if (given(cal.scale)) traces.push({x: [lo, hi], y: [cal.scale * lo, cal.scale * hi], mode: "lines", name: `error = ${num(cal.scale, 2)} × deviation (median)`, line: {color: "#1a7f37"}});
    if (given(cal.scale_90)) traces.push({x: [lo, hi], y: [cal.scale_90 * lo, cal.scale_90 * hi], mode: "lines", name: `90 % bound: ${num(cal.scale_90, 2)} × deviation`, line: {dash: "dash", color: "#9a6700"}});
    traces.push({x: [lo, hi], y: [lo, hi], mode: "lines", name: "error = deviation", line: {dash: "dot", color: "#999"}});
    numbers.textContent = calibrationWords(cal);
    Plotly.react("plot-calibration", traces, layout(`Calibration, iteration ${chosen.index}: scale ${num(cal.scale, 2)}, Spearman ${num(cal.spearman, 2)}`, "", "",
      Object.assign(axes, {legend: {x: 0.02, y: 0.98}})));
  }

  function campaignsPage() {
    poll("/api/campaigns", (rows) => table("campaigns", [
      {title: "campaign", cls: "text", html: (r) => `<a href="/campaigns/${encodeURIComponent(r.name)}">${esc(r.name)}</a>`},
      {title: "status", cls: "text", html: (r) => status(r.status)},
      {title: "reason", cls: "text", value: (r) => r.status_reason || ""},
      {title: "iterations", value: (r) => r.iterations},
      {title: "dataset size", value: (r) => r.dataset_size},
      {title: "label failures", value: (r) => r.label_failures},
      {title: "hold-out F RMSE (n)", value: (r) => holdoutText(r.holdout) + (r.holdout && r.holdout.final ? " final" : "")},
      {title: "last activity", cls: "text", value: (r) => (r.last_activity || "").replace("T", " ").slice(0, 19)},
    ], rows, (r) => `data-campaign="${esc(r.name)}"`));
  }

  function campaignPage() {
    poll(`/api/campaigns/${encodeURIComponent(page().campaign)}`, (d) => {
      const c = d.campaign;
      document.getElementById("head").innerHTML = `<dl><dt>status</dt><dd>${status(c.status)} ${esc(c.status_reason || "")}</dd>` +
        `<dt>iterations</dt><dd id="head-iterations">${esc(c.iterations)}</dd><dt>dataset size</dt><dd id="head-size">${esc(c.dataset_size)} labelled structures` +
        (c.holdout_size ? `, ${esc(c.holdout_size)} of them hold-out (never trained on)` : "") + "</dd>" +
        `<dt>convergence</dt><dd>accurate ratio ≥ ${esc(c.accurate_ratio_target)} for ${esc(c.patience)} iterations` +
        (c.force_error_target ? `, or hold-out force RMSE < ${esc(c.force_error_target)} eV/Å on ≥ ${esc(c.holdout_min_frames)} frames` : "") +
        `, cap ${esc(c.max_iterations)}</dd>` +
        (c.holdout ? `<dt>hold-out error</dt><dd id="head-holdout">${esc(holdoutWords(c.holdout))} (${c.holdout.final ? "final committee" : "iteration " + esc(c.holdout.iteration)})</dd>` : "") +
        (d.final ? `<dt>final committee</dt><dd id="head-final">${esc(finalWords(d.final))}</dd>` : "") + "</dl>";
      const its = d.iterations;
      // A stage an iteration does not run (iteration 0 seeds instead of training) shows "–".
      const stage = (r, s) => { const st = (r.stages[s] || {}).status; return st ? `<span class="stage-${st}" title="${esc(st)}">${esc(st)}</span>` : "–"; };
      table("iterations", [
        {title: "it", value: (r) => r.index},
        ...d.stages.map((s) => ({title: s, cls: "text", html: (r) => stage(r, s)})),
        {title: "sampled", value: (r) => num(r.sampled)},
        {title: "accurate", value: (r) => num(r.accurate)},
        {title: "candidate", value: (r) => num(r.candidate)},
        {title: "failed", value: (r) => num(r.failed)},
        {title: "accurate ratio", html: (r) => (r.systems.length > 1 ? r.systems.map((s) => `${esc(s.name)}: ${ratioCell(s, s)}`).join("<br>") : ratioCell(r, r.systems[0]))},
        {title: "selected", value: (r) => num(r.selected)},
        {title: "labelled", value: (r) => num(r.labelled)},
        {title: "label failures", value: (r) => num(r.label_failures)},
        {title: "hold-out labelled", value: (r) => (r.holdout_to_label ? `${r.holdout_labelled}/${r.holdout_to_label}` : "-")},
        {title: "DFT s", value: (r) => num(r.dft_wall_s, 1)},
        {title: "hold-out F RMSE (n)", value: (r) => holdoutText(r.holdout)},
        {title: "F RMSE on selected (biased)", value: (r) => num(r.committee_forces_rmse, 4)},
        {title: "calibration scale", value: (r) => (r.calibration ? num(r.calibration.scale, 2) : "-")},
        {title: "stress dev GPa (median / max)", value: (r) => stressDevText(r)},
        {title: "stage s", value: (r) => d.stages.filter((s) => r.stages[s]).map((s) => num(r.stages[s].seconds, 0)).join(" / ")},
      ], d.final ? [...its, d.final] : its, (r) => `data-iteration="${r.index}"`, (r, n) => (r.is_final
        ? `<tr class="final" data-iteration="${r.index}" data-final="true"><td>final</td><td class="text" colspan="${n - 1}">${esc(finalWords(r))}</td></tr>` : null));
      const exploring = its.filter((r) => r.index > 0);
      const x = exploring.map((r) => r.index);
      const systems = [...new Set(exploring.flatMap((r) => r.systems.map((s) => s.name)))];
      const timed = exploring.some((r) => r.systems.some((s) => given(s.time_ratio)));
      const ratioTraces = systems.map((name) => ({x, y: exploring.map((r) => ratioOf(r.systems.find((s) => s.name === name))), name, mode: "lines+markers"}));
      if (systems.length > 1) ratioTraces.push({x, y: exploring.map((r) => ratioOf(r)), name: "all", mode: "lines+markers"});
      if (timed) ratioTraces.push({x, y: exploring.map((r) => r.accurate_ratio), name: "of sampled frames", mode: "lines", line: {dash: "dot", color: "#999"}});
      Plotly.react("plot-ratio", ratioTraces, layout(timed ? "Accurate ratio (of planned walker time)" : "Accurate ratio", "iteration", "ratio", {
        yaxis: {title: {text: "ratio"}, range: [0, 1.05]},
        shapes: c.accurate_ratio_target ? [{type: "line", xref: "paper", x0: 0, x1: 1, y0: c.accurate_ratio_target, y1: c.accurate_ratio_target, line: {dash: "dash", color: "#1a7f37"}}] : [],
        annotations: c.accurate_ratio_target ? [{xref: "paper", x: 1, y: c.accurate_ratio_target, text: "threshold", showarrow: false, yanchor: "bottom", xanchor: "right"}] : [],
      }));
      Plotly.react("plot-size", [{x: its.map((r) => r.index), y: its.map((r) => r.dataset_size), mode: "lines+markers", name: "labelled"}],
        layout("Dataset size", "iteration", "labelled structures"));
      // The unbiased learning curve: the exploring committee on the accumulated hold-out
      // (random explored frames, labelled, never trained on), then the final committee's point.
      const held = exploring.filter((r) => r.holdout && r.holdout.n && given(r.holdout.forces_rmse));
      const hx = held.map((r) => r.index);
      const heldTraces = [
        {x: hx, y: held.map((r) => r.holdout.forces_rmse), text: held.map((r) => `n=${r.holdout.n}`), customdata: held.map((r) => r.holdout.n_new),
          mode: "lines+markers+text", textposition: "top center", textfont: {size: 10}, name: "force RMSE",
          hovertemplate: "iteration %{x}: %{y:.4f} eV/Å on %{text} hold-out frames (%{customdata} new)<extra></extra>"},
        {x: hx, y: held.map((r) => r.holdout.forces_max_p95), mode: "lines+markers", name: "p95 of max-atom error", line: {dash: "dash"}},
      ];
      const fin = d.final && d.final.final ? d.final.final.holdout : null;
      if (fin && fin.n && given(fin.forces_rmse)) {
        heldTraces.push({x: [d.final.index], y: [fin.forces_rmse], text: [`final n=${fin.n}`], mode: "markers+text", textposition: "bottom center",
          name: "final committee", marker: {symbol: "star", size: 14, color: "#1a7f37"}});
        heldTraces.push({x: [d.final.index], y: [fin.forces_max_p95], mode: "markers", name: "final committee p95", marker: {symbol: "star-open", size: 14, color: "#1a7f37"}});
      }
      const allX = heldTraces.flatMap((t) => t.x);
      if (c.force_error_target && allX.length) {
        heldTraces.push({x: [Math.min(...allX), Math.max(...allX)], y: [c.force_error_target, c.force_error_target], mode: "lines",
          name: `target ${c.force_error_target} eV/Å`, line: {dash: "dot", color: "#cf222e"}});
      }
      Plotly.react("plot-holdout", heldTraces, layout("Hold-out error (random explored frames, never trained on)", "iteration", "force error (eV/Å)", allX.length
        ? {yaxis: {title: {text: "force error (eV/Å)"}, type: "log", dtick: "D2"}}
        : {xaxis: {visible: false}, yaxis: {visible: false},
          annotations: [{xref: "paper", yref: "paper", x: 0.5, y: 0.5, showarrow: false, text: "no hold-out frames labelled in this campaign"}]}));
      calibrated = exploring.filter((r) => r.calibration && r.calibration.points && r.calibration.points.length);
      drawCalibration();
      Plotly.react("plot-error", [{x, y: exploring.map((r) => r.committee_forces_rmse), mode: "lines+markers", name: "forces"}],
        layout("Committee error on the frames selected for high uncertainty (biased)", "iteration", "force RMSE (eV/Å)", {yaxis: {title: {text: "force RMSE (eV/Å)"}, type: "log"}}));
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
      // With select.adaptive_lo the window's lo moved: the configured one, dashed.
      if (last && given(last.fixed_lo) && last.fixed_lo !== last.trust_lo) {
        shapes.push({type: "line", yref: "paper", y0: 0, y1: 1, x0: last.fixed_lo, x1: last.fixed_lo, line: {dash: "dash", color: "#9a6700"}, name: "configured lo"});
      }
      const scaled = last && given(last.calibration_scale) && last.calibration_scale !== 1 ? `; window read on deviation × ${num(last.calibration_scale, 2)}` : "";
      Plotly.react("plot-hist", hist, layout(`Max force deviation per iteration (trust window dotted${scaled})`, "max force deviation (eV/Å)", "frames", {barmode: "overlay", shapes}));
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
        {title: "stress dev (GPa)", value: (r) => (given(r.stress_dev_gpa) ? num(r.stress_dev_gpa, 3) : "-")},
        {title: "verdict", cls: "text", value: (r) => r.verdict},
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
        ["max force deviation (eV/Å)", unc.force_dev_max === undefined ? undefined : num(unc.force_dev_max, 4)], ["stress deviation (GPa)", given(unc.stress_dev_gpa) ? num(unc.stress_dev_gpa, 3) : undefined], ["verdict", `${d.verdict || "-"}: ${d.verdict_reason || ""}`],
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
