/// /static/clew.js: draws the charts (Chart.js) and graphs (dagre layout, SVG) from the JSON blocks a
/// page carries, and follows live updates on a run page (server-sent events).
enum DashboardScript {
    static let text = #"""
    "use strict";
    (function () {
      function data(id) {
        var el = document.getElementById(id);
        return el ? JSON.parse(el.textContent) : null;
      }
      var colours = { succeeded: "#2e7d32", failed: "#c62828", running: "#1565c0", queued: "#9e9e9e", retrying: "#ef6c00",
        skipped: "#bdbdbd", upstream_failed: "#ad1457", blocked: "#6a1b9a", not_run: "#e0e0e0", scheduled: "#90caf9",
        center: "#ffb300", chunk: "#26a69a", dataset: "#00897b", task: "#5c6bc0", attempt: "#7986cb", value: "#8d6e63", run: "#546e7a" };
      function colour(state) { return colours[state] || "#78909c"; }

      function drawGraph(containerId, graph) {
        var container = document.getElementById(containerId);
        if (!container || !graph || typeof dagre === "undefined") { return; }
        var g = new dagre.graphlib.Graph();
        g.setGraph({ rankdir: "LR", nodesep: 14, ranksep: 36, marginx: 8, marginy: 8 });
        g.setDefaultEdgeLabel(function () { return {}; });
        graph.nodes.forEach(function (n) {
          var label = n.id.length > 42 ? n.id.slice(0, 41) + "…" : n.id;
          g.setNode(n.id, { label: label, width: Math.max(60, label.length * 7 + 16), height: 28, state: n.state });
        });
        graph.edges.forEach(function (e) { if (g.hasNode(e.from) && g.hasNode(e.to)) { g.setEdge(e.from, e.to); } });
        dagre.layout(g);
        var ns = "http://www.w3.org/2000/svg";
        var svg = document.createElementNS(ns, "svg");
        svg.setAttribute("width", g.graph().width + 16);
        svg.setAttribute("height", g.graph().height + 16);
        svg.setAttribute("class", "dag");
        g.edges().forEach(function (e) {
          var pts = g.edge(e).points.map(function (p) { return p.x + "," + p.y; }).join(" ");
          var line = document.createElementNS(ns, "polyline");
          line.setAttribute("points", pts);
          line.setAttribute("class", "edge");
          svg.appendChild(line);
        });
        g.nodes().forEach(function (id) {
          var n = g.node(id);
          var grp = document.createElementNS(ns, "g");
          grp.setAttribute("class", "node");
          grp.setAttribute("data-node", id);
          grp.setAttribute("data-state", n.state);
          var rect = document.createElementNS(ns, "rect");
          rect.setAttribute("x", n.x - n.width / 2); rect.setAttribute("y", n.y - n.height / 2);
          rect.setAttribute("width", n.width); rect.setAttribute("height", n.height);
          rect.setAttribute("rx", 5); rect.setAttribute("fill", colour(n.state));
          var text = document.createElementNS(ns, "text");
          text.setAttribute("x", n.x); text.setAttribute("y", n.y + 4); text.setAttribute("text-anchor", "middle");
          text.textContent = n.label;
          var title = document.createElementNS(ns, "title");
          title.textContent = id + " (" + n.state + ")";
          grp.appendChild(rect); grp.appendChild(text); grp.appendChild(title);
          svg.appendChild(grp);
        });
        container.appendChild(svg);
        container.setAttribute("data-drawn", String(g.nodes().length));
      }

      function chart(id, config) {
        var canvas = document.getElementById(id);
        if (!canvas || typeof Chart === "undefined") { return; }
        config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false }, config.options || {});
        new Chart(canvas, config);
        canvas.setAttribute("data-drawn", "true");
      }

      function health() {
        var d = data("health-data");
        if (!d) { return; }
        chart("health-chart", { type: "bar", data: { labels: d.days, datasets: [
          { label: "succeeded", data: d.succeeded, backgroundColor: colours.succeeded },
          { label: "failed", data: d.failed, backgroundColor: colours.failed } ] },
          options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } } });
      }

      function run() {
        drawGraph("run-graph", data("graph-data"));
        var g = data("gantt-data");
        if (g) {
          chart("gantt-chart", { type: "bar", data: { labels: g.map(function (t) { return t.task; }), datasets: [{ label: "ms since the first task started",
            data: g.map(function (t) { return [t.start, Math.max(t.end, t.start + 1)]; }),
            backgroundColor: g.map(function (t) { return colour(t.state); }) }] },
            options: { indexAxis: "y", plugins: { legend: { display: false } } } });
        }
        var d = data("durations-data");
        if (d) {
          var palette = ["#1565c0", "#2e7d32", "#c62828", "#6a1b9a", "#ef6c00", "#00838f", "#ad1457", "#4e342e"];
          chart("durations-chart", { type: "line", data: { labels: d.runs, datasets: d.tasks.map(function (t, i) {
            return { label: t.task, data: t.millis, borderColor: palette[i % palette.length], spanGaps: true, tension: 0.2 }; }) },
            options: { scales: { y: { beginAtZero: true, title: { display: true, text: "ms" } }, x: { ticks: { display: false } } } } });
        }
        live();
      }

      function live() {
        var state = document.getElementById("run-state");
        if (!state || typeof EventSource === "undefined") { return; }
        var parts = location.pathname.split("/");
        var url = "/api/stream?dag=" + parts[2] + "&run=" + parts[3];
        var source = new EventSource(url);
        source.addEventListener("run", function (msg) {
          var e = JSON.parse(msg.data);
          if (e.task) {
            var row = document.querySelector('tr[data-task="' + CSS.escape(e.task) + '"] .state');
            if (row) { row.textContent = e.state; row.className = "state " + e.state; }
            var node = document.querySelector('g.node[data-node="' + CSS.escape(e.task) + '"] rect');
            if (node) { node.setAttribute("fill", colour(e.state)); }
          } else if (e.type.indexOf("run.") === 0) {
            state.textContent = e.state; state.className = "state " + e.state;
          }
        });
        window.addEventListener("beforeunload", function () { source.close(); });
      }

      document.addEventListener("DOMContentLoaded", function () {
        var page = document.body.getAttribute("data-page");
        if (page === "health") { health(); }
        if (page === "run") { run(); }
        if (page === "lineage") { drawGraph("lineage-graph", data("graph-data")); }
        document.body.setAttribute("data-ready", "true");
      });
    })();
    """#
}

/// /static/clew.css.
enum DashboardStyle {
    static let text = """
    body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #212121; background: #fafafa; }
    header { display: flex; align-items: center; gap: 1.5em; padding: .6em 1.2em; background: #263238; color: #eceff1; }
    header a { color: #eceff1; text-decoration: none; margin-right: 1em; } .brand { font-weight: 700; font-size: 1.2em; }
    .who { margin-left: auto; } .who button { font-size: .85em; }
    main { padding: 1em 1.5em; max-width: 1400px; }
    table { border-collapse: collapse; width: 100%; margin: .5em 0 1.5em; background: #fff; }
    th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #e0e0e0; vertical-align: top; }
    code { font-size: .92em; } pre { background: #fff; padding: .6em; border: 1px solid #e0e0e0; overflow: auto; }
    .state { padding: 0 .45em; border-radius: 3px; background: #eceff1; }
    .state.succeeded, .state.ready, .state.consumed { background: #c8e6c9; } .state.failed, .state.invalid, .state.upstream_failed { background: #ffcdd2; }
    .state.running, .state.producing, .state.consuming { background: #bbdefb; } .state.retrying, .state.resubmitted { background: #ffe0b2; }
    .cards { display: flex; gap: 1em; } .card { background: #fff; border: 1px solid #e0e0e0; padding: .6em 1em; }
    .n { font-weight: 700; font-size: 1.3em; } .ok { color: #2e7d32; } .bad { color: #c62828; }
    .chart { position: relative; height: 260px; background: #fff; border: 1px solid #e0e0e0; padding: .4em; }
    .graph { overflow: auto; background: #fff; border: 1px solid #e0e0e0; min-height: 60px; }
    svg.dag text { font: 11px system-ui, sans-serif; fill: #fff; pointer-events: none; }
    svg.dag .edge { fill: none; stroke: #90a4ae; stroke-width: 1.4; }
    .grid { display: flex; flex-wrap: wrap; gap: 2px; max-width: 1200px; }
    .cell { width: 12px; height: 12px; background: #e0e0e0; display: block; }
    .cell.ready, .cell.consumed { background: #66bb6a; } .cell.failed, .cell.invalid { background: #e53935; }
    .cell.producing, .cell.consuming { background: #42a5f5; } .cell.pending { background: #bdbdbd; } .cell.resubmitted { background: #ffa726; }
    .error { color: #c62828; } .hint { color: #757575; } .err { color: #c62828; font-size: .9em; }
    table.runs-grid { width: auto; } table.runs-grid td, table.runs-grid th { padding: 1px 2px; border: 0; }
    table.runs-grid th.run { writing-mode: vertical-rl; transform: rotate(180deg); font-weight: 400; font-size: .75em; max-height: 9em; overflow: hidden; }
    a.sq { width: 14px; height: 14px; display: block; background: #eceff1; border: 1px solid #fff; }
    a.sq.succeeded { background: #66bb6a; } a.sq.failed, a.sq.upstream_failed, a.sq.blocked { background: #e53935; }
    a.sq.running, a.sq.scheduled { background: #42a5f5; } a.sq.retrying, a.sq.cleared, a.sq.queued { background: #ffa726; }
    a.sq.skipped { background: #f8bbd0; } a.sq.cancelled { background: #9e9e9e; } a.sq.none { background: #fafafa; border-color: #eee; }
    pre.source { max-height: 36em; } .reason { color: #616161; font-size: .9em; }
    .stepper a { margin-right: 1em; } form { margin: .5em 0; } label { margin-right: 1em; }
    """
}
