// floe's run page: the lineage graph (layered left to right), column lineage and the span
// waterfall, drawn from the JSON block #floe-run. No network, no library: plain DOM and SVG.
(function () {
  'use strict';
  var started = performance.now();
  var RUN = JSON.parse(document.getElementById('floe-run').textContent);
  var DS = RUN.datasets || [];
  var EDGES = RUN.edges || [];
  var CEDGES = RUN.column_edges || [];
  var SPANS = RUN.spans || [];

  var NODE_W = 230, HEAD_H = 30, COL_H = 18, GAP_X = 110, GAP_Y = 14, PAD = 30;
  var OUTCOME_TEXT = { ok: 'ok', failed: 'failed', skipped: 'skipped',
    unfinished: 'never finished', input: 'read only' };

  DS.forEach(function (d, i) {
    d.index = i;
    d.lname = d.name.toLowerCase();
    d.columns = d.columns || [];
    d.checks = d.checks || [];
    d.depends_on = d.depends_on || [];
    d.columns.forEach(function (c) { c.classifications = c.classifications || []; });
    d.colIndex = {};
    d.columns.forEach(function (c, j) { d.colIndex[c.name] = j; });
  });

  function esc(s) {
    return String(s == null ? '' : s).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }
  function short(s, n) { s = String(s); return s.length > n ? s.slice(0, n - 1) + '\u2026' : s; }
  function $(id) { return document.getElementById(id); }
  function colKey(ds, field) { return ds + '\u0000' + field; }

  // --- column lineage index ------------------------------------------------------------------
  var colOut = {}, colIn = {};
  CEDGES.forEach(function (e, i) {
    e.transformations = e.transformations || [];
    (colOut[colKey(e.source, e.source_field)] = colOut[colKey(e.source, e.source_field)] || []).push(i);
    (colIn[colKey(e.target, e.target_field)] = colIn[colKey(e.target, e.target_field)] || []).push(i);
  });
  function walk(start, index, far) {
    var seen = {}, edges = {}, queue = [start];
    seen[start] = 0;
    while (queue.length) {
      var key = queue.shift();
      (index[key] || []).forEach(function (i) {
        edges[i] = true;
        var e = CEDGES[i];
        var next = far === 'target' ? colKey(e.target, e.target_field) : colKey(e.source, e.source_field);
        if (!(next in seen)) { seen[next] = seen[key] + 1; queue.push(next); }
      });
    }
    delete seen[start];
    return { cols: seen, edges: edges };
  }

  // --- state ---------------------------------------------------------------------------------
  var state = {
    collapse: 'none', expanded: {}, showColumns: DS.length <= 40, search: '',
    selected: null, column: null, view: { x: 0, y: 0, k: 1 }
  };
  var graph = null; // the laid-out visible graph

  function groupKey(d) { return state.collapse === 'schema' ? d.schema : d.group; }

  // --- the visible graph and its layered layout ----------------------------------------------
  function visibleGraph() {
    var nodes = [], byId = {}, nodeOf = new Array(DS.length);
    var path = state.column ? state.column.datasets : null;
    DS.forEach(function (d) {
      var id;
      if (state.collapse !== 'none' && !state.expanded[groupKey(d)] && !(path && path[d.index])) {
        var g = groupKey(d) || '(none)';
        id = 'g:' + g;
        if (!byId[id]) {
          byId[id] = { id: id, group: g, members: [], label: g, outcome: 'ok' };
          nodes.push(byId[id]);
        }
        byId[id].members.push(d.index);
      } else {
        id = 'd' + d.index;
        byId[id] = { id: id, ds: d, label: d.label, outcome: d.outcome };
        nodes.push(byId[id]);
      }
      nodeOf[d.index] = byId[id];
    });
    var rank = { failed: 4, unfinished: 3, skipped: 2, ok: 1, input: 0 };
    nodes.forEach(function (n) {
      if (n.members) {
        var worst = 'input';
        n.members.forEach(function (m) { if (rank[DS[m].outcome] > rank[worst]) worst = DS[m].outcome; });
        n.outcome = worst;
      }
      var cols = n.ds && (state.showColumns || (path && path[n.ds.index])) ? n.ds.columns.length : 0;
      n.showCols = cols > 0;
      n.h = HEAD_H + (cols ? cols * COL_H + 6 : 0);
      n.succ = []; n.pred = [];
    });
    var seen = {}, edges = [];
    EDGES.forEach(function (e) {
      var a = nodeOf[e.source], b = nodeOf[e.target];
      if (a === b) return;
      var key = a.id + '>' + b.id;
      if (seen[key]) { seen[key].datasets.push(e); return; }
      var edge = { a: a, b: b, datasets: [e] };
      seen[key] = edge; edges.push(edge);
      a.succ.push(b); b.pred.push(a);
    });
    layout(nodes);
    return { nodes: nodes, edges: edges, byId: byId, nodeOf: nodeOf };
  }

  function layout(nodes) {
    // Longest path from the sources (Kahn); a cycle, which lineage should not have, is cut.
    var indeg = new Map(), queue = [], layer = new Map();
    nodes.forEach(function (n) { indeg.set(n, n.pred.length); layer.set(n, 0); });
    nodes.forEach(function (n) { if (!n.pred.length) queue.push(n); });
    var done = 0;
    while (done < nodes.length) {
      if (!queue.length) { // a cycle: take the unplaced node with the fewest open inputs
        var pick = null;
        nodes.forEach(function (n) { if (indeg.get(n) > 0 && (!pick || indeg.get(n) < indeg.get(pick))) pick = n; });
        indeg.set(pick, 0); queue.push(pick);
      }
      var n = queue.shift();
      done++;
      n.succ.forEach(function (m) {
        if (layer.get(m) < layer.get(n) + 1) layer.set(m, layer.get(n) + 1);
        var left = indeg.get(m) - 1;
        indeg.set(m, left);
        if (left === 0) queue.push(m);
      });
      indeg.set(n, -1);
    }
    var layers = [];
    nodes.forEach(function (n) {
      var l = layer.get(n); n.layer = l;
      (layers[l] = layers[l] || []).push(n);
    });
    for (var i = 0; i < layers.length; i++) layers[i] = layers[i] || [];
    layers.forEach(function (ns) {
      ns.sort(function (a, b) {
        var ga = a.ds ? a.ds.group : a.group, gb = b.ds ? b.ds.group : b.group;
        return ga < gb ? -1 : ga > gb ? 1 : (a.label < b.label ? -1 : a.label > b.label ? 1 : 0);
      });
      ns.forEach(function (n, j) { n.pos = j; });
    });
    // Barycenter sweeps: order each layer by the mean position of its neighbours.
    function sweep(ns, key) {
      ns.forEach(function (n) {
        var nb = n[key];
        if (!nb.length) { n.bc = n.pos; return; }
        var s = 0; nb.forEach(function (m) { s += m.pos; }); n.bc = s / nb.length;
      });
      ns.sort(function (a, b) { return a.bc - b.bc || a.pos - b.pos; });
      ns.forEach(function (n, j) { n.pos = j; });
    }
    for (var it = 0; it < 4; it++) {
      for (var d = 1; d < layers.length; d++) sweep(layers[d], 'pred');
      for (var u = layers.length - 2; u >= 0; u--) sweep(layers[u], 'succ');
    }
    var heights = layers.map(function (ns) {
      return ns.reduce(function (s, n) { return s + n.h + GAP_Y; }, 0);
    });
    var tallest = Math.max.apply(null, heights.concat([0]));
    layers.forEach(function (ns, l) {
      var y = PAD + (tallest - heights[l]) / 2;
      ns.forEach(function (n) { n.x = PAD + l * (NODE_W + GAP_X); n.y = y; y += n.h + GAP_Y; });
    });
  }

  // --- drawing the graph ---------------------------------------------------------------------
  function curve(x1, y1, x2, y2) {
    var dx = Math.max(40, (x2 - x1) / 2);
    return 'M' + x1 + ',' + y1 + 'C' + (x1 + dx) + ',' + y1 + ' ' + (x2 - dx) + ',' + y2 + ' ' + x2 + ',' + y2;
  }
  function colY(n, field) {
    var j = n.ds.colIndex[field];
    return n.y + HEAD_H + (j == null ? 0 : j * COL_H + COL_H / 2);
  }

  function nodeMarkup(n, colClass) {
    var out = [], d = n.ds;
    var cls = 'node o-' + n.outcome + (n.members ? ' group' : '');
    if (d) {
      out.push('<g class="' + cls + '" data-node="' + n.id + '" data-name="' + esc(d.name) +
        '" data-namespace="' + esc(d.namespace) + '" data-outcome="' + esc(d.outcome) +
        '" transform="translate(' + n.x + ',' + n.y + ')">');
      // The error also shows where a custom tooltip cannot: the browser's own, on hover.
      if (d.error) out.push('<title>' + esc(d.name + '\n' + OUTCOME_TEXT[d.outcome] + '\n\n' + d.error) + '</title>');
    } else {
      out.push('<g class="' + cls + '" data-node="' + esc(n.id) + '" data-group="' + esc(n.group) +
        '" transform="translate(' + n.x + ',' + n.y + ')"><title>' + esc(n.group + ': ' +
        n.members.length + ' datasets (select to expand)') + '</title>');
    }
    out.push('<rect class="box" width="' + NODE_W + '" height="' + n.h + '" rx="6"></rect>');
    out.push('<rect class="bar" width="6" height="' + n.h + '" rx="3"></rect>');
    if (d) {
      out.push('<text class="title" x="14" y="19">' + esc(short(d.label, 27)) + '</text>');
      var badges = [];
      var failedChecks = d.checks.filter(function (c) { return c.status === 'failed'; }).length;
      if (d.checks.length) badges.push((failedChecks ? '\u2717' + failedChecks + ' ' : '') + '\u2713' + (d.checks.length - failedChecks));
      var names = {};
      d.columns.forEach(function (c) { c.classifications.forEach(function (t) { names[t.name] = true; }); });
      if (Object.keys(names).length) badges.push(short(Object.keys(names).join(','), 14));
      if (badges.length) out.push('<text class="badge-t" x="' + (NODE_W - 8) + '" y="19" text-anchor="end">' + esc(badges.join(' ')) + '</text>');
      if (n.showCols) {
        d.columns.forEach(function (c, j) {
          var y = HEAD_H + j * COL_H;
          var k = colClass[colKey(d.index, c.name)] || '';
          out.push('<g class="col' + k + '" data-col="' + esc(c.name) + '" transform="translate(0,' + y + ')">' +
            '<rect class="cbg" x="6" width="' + (NODE_W - 6) + '" height="' + COL_H + '"></rect>' +
            '<text x="14" y="13">' + esc(short(c.name, 19)) + '</text>');
          var tags = c.classifications.map(function (t) { return t; });
          if (tags.length) {
            out.push('<text class="cls ' + esc(tags[0].origin) + '" x="' + (NODE_W - 66) + '" y="13" text-anchor="end">' +
              esc(short(tags.map(function (t) { return t.name; }).filter(function (x, i, all) { return all.indexOf(x) === i; }).join(','), 7)) + '</text>');
          }
          if (c.type) out.push('<text class="ctype" x="' + (NODE_W - 8) + '" y="13" text-anchor="end">' + esc(short(c.type.toLowerCase(), 9)) + '</text>');
          out.push('</g>');
        });
      }
    } else {
      out.push('<text class="title" x="14" y="19">\u25b8 ' + esc(short(n.group, 20)) + '</text>');
      out.push('<text class="badge-t" x="' + (NODE_W - 8) + '" y="19" text-anchor="end">' + n.members.length + '</text>');
    }
    out.push('</g>');
    return out.join('');
  }

  function draw() {
    graph = visibleGraph();
    var sel = state.column, colClass = {}, pathEdges = {};
    if (sel) {
      colClass[colKey(sel.ds, sel.field)] = ' c-sel';
      Object.keys(sel.up.cols).forEach(function (k) { colClass[k] = ' c-up'; });
      Object.keys(sel.down.cols).forEach(function (k) { colClass[k] = ' c-down'; });
    }
    var parts = [];
    graph.edges.forEach(function (e) {
      var a = e.a, b = e.b;
      var dim = sel && !(sel.datasets[a.ds ? a.ds.index : -1] && sel.datasets[b.ds ? b.ds.index : -1]);
      var src = a.ds ? a.ds.name : a.group, dst = b.ds ? b.ds.name : b.group;
      parts.push('<path class="edge' + (dim ? ' dim' : '') + '" data-source="' + esc(src) + '" data-target="' +
        esc(dst) + '" d="' + curve(a.x + NODE_W, a.y + HEAD_H / 2, b.x, b.y + HEAD_H / 2) + '"></path>');
    });
    graph.nodes.forEach(function (n) { parts.push(nodeMarkup(n, colClass)); });
    if (sel) {
      var labels = [];
      [['up', sel.up.edges], ['down', sel.down.edges]].forEach(function (pair) {
        Object.keys(pair[1]).forEach(function (i) {
          if (pathEdges[i]) return;
          pathEdges[i] = true;
          var e = CEDGES[i], a = graph.nodeOf[e.source], b = graph.nodeOf[e.target];
          if (!a.ds || !b.ds || !a.showCols || !b.showCols) return;
          var t = e.transformations[0] || { type: 'DIRECT' };
          var masking = e.transformations.some(function (x) { return x.masking; });
          var x1 = a.x + NODE_W, y1 = colY(a, e.source_field), x2 = b.x, y2 = colY(b, e.target_field);
          parts.push('<path class="cedge ' + pair[0] + (t.type === 'INDIRECT' ? ' indirect' : '') + (masking ? ' masking' : '') +
            '" data-source="' + esc(DS[e.source].name + '.' + e.source_field) + '" data-target="' +
            esc(DS[e.target].name + '.' + e.target_field) + '" d="' + curve(x1, y1, x2, y2) + '"></path>');
          var label = t.type + (t.subtype ? '/' + t.subtype : '') + (masking ? ' (masked)' : '');
          // Each label sits by the column it feeds: target rows never share a line.
          labels.push('<text class="clabel" x="' + (x2 - 6) + '" y="' + (y2 - 4) + '" text-anchor="end">' + esc(label) + '</text>');
        });
      });
      parts.push(labels.join(''));
    }
    if (!DS.length) {
      parts.push('<text class="empty" x="24" y="40">No lineage events for this run: lineage is off, ' +
        'or it went to an endpoint and not to the local file.</text>');
    }
    var vp = $('viewport');
    vp.innerHTML = parts.join('');
    applyView();
    markSearch();
    markSelected();
  }

  // --- pan, zoom, fit ------------------------------------------------------------------------
  var svg = $('graph');
  function applyView() {
    var v = state.view;
    $('viewport').setAttribute('transform', 'translate(' + v.x + ',' + v.y + ') scale(' + v.k + ')');
    svg.classList.toggle('far', v.k < 0.3); // too small to read: boxes and edges only
  }
  function bounds(nodes) {
    var x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    nodes.forEach(function (n) {
      x0 = Math.min(x0, n.x); y0 = Math.min(y0, n.y);
      x1 = Math.max(x1, n.x + NODE_W); y1 = Math.max(y1, n.y + n.h);
    });
    return { x0: x0, y0: y0, x1: x1, y1: y1 };
  }
  function fit(nodes) {
    nodes = nodes || graph.nodes;
    if (!nodes.length) return;
    var b = bounds(nodes), w = svg.clientWidth || 800, h = svg.clientHeight || 600;
    var k = Math.min(1.2, (w - 20) / (b.x1 - b.x0 + 20), (h - 20) / (b.y1 - b.y0 + 20));
    k = Math.max(k, 0.02);
    state.view = { k: k, x: (w - (b.x1 + b.x0) * k) / 2, y: (h - (b.y1 + b.y0) * k) / 2 };
    applyView();
  }
  // A small graph gets a shorter box: as tall as it is drawn at the width's zoom, within limits.
  function sizeGraph() {
    if (!graph.nodes.length) return;
    var b = bounds(graph.nodes), w = svg.clientWidth || 800;
    var k = Math.min(1.2, (w - 20) / (b.x1 - b.x0 + 20));
    $('graph-wrap').style.height = Math.round(Math.min(620, Math.max(320, (b.y1 - b.y0) * k + 60))) + 'px';
  }
  function centerOn(n) {
    var w = svg.clientWidth || 800, h = svg.clientHeight || 600, k = Math.max(state.view.k, 0.8);
    state.view = { k: k, x: w / 2 - (n.x + NODE_W / 2) * k, y: h / 2 - (n.y + n.h / 2) * k };
    applyView();
  }
  svg.addEventListener('wheel', function (ev) {
    ev.preventDefault();
    var r = svg.getBoundingClientRect(), px = ev.clientX - r.left, py = ev.clientY - r.top;
    var v = state.view, f = Math.exp(-ev.deltaY * 0.0015), k = Math.min(4, Math.max(0.02, v.k * f));
    state.view = { k: k, x: px - (px - v.x) * k / v.k, y: py - (py - v.y) * k / v.k };
    applyView();
  }, { passive: false });
  var drag = null;
  svg.addEventListener('mousedown', function (ev) {
    drag = { x: ev.clientX, y: ev.clientY, vx: state.view.x, vy: state.view.y, moved: false };
    svg.classList.add('panning');
  });
  window.addEventListener('mousemove', function (ev) {
    if (!drag) return;
    var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    state.view.x = drag.vx + dx; state.view.y = drag.vy + dy;
    applyView();
  });
  window.addEventListener('mouseup', function () { svg.classList.remove('panning'); setTimeout(function () { drag = null; }, 0); });

  // --- search --------------------------------------------------------------------------------
  var matches = [], matchAt = -1;
  function markSearch() {
    var term = state.search, nodes = $('viewport').querySelectorAll('.node');
    matches = [];
    for (var i = 0; i < nodes.length; i++) {
      var el = nodes[i], n = graph.byId[el.getAttribute('data-node')], hit = false;
      if (term) {
        if (n.ds) hit = n.ds.lname.indexOf(term) >= 0;
        else hit = n.members.some(function (m) { return DS[m].lname.indexOf(term) >= 0; });
        if (hit) matches.push(n);
      }
      el.classList.toggle('match', hit);
      el.classList.toggle('dim', !!term && !hit);
    }
    $('search-count').textContent = term ? matches.length + (matches.length === 1 ? ' match' : ' matches') : '';
  }
  var searchTimer = null;
  $('search').addEventListener('input', function (ev) {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(function () { state.search = ev.target.value.trim().toLowerCase(); matchAt = -1; markSearch(); }, 80);
  });
  $('search').addEventListener('keydown', function (ev) {
    if (ev.key !== 'Enter') return;
    clearTimeout(searchTimer);
    state.search = ev.target.value.trim().toLowerCase();
    markSearch();
    if (!matches.length) return;
    matchAt = (matchAt + 1) % matches.length;
    var n = matches[matchAt];
    if (n.ds) selectDataset(n.ds.index); else expandGroup(n.group);
    var now = n.ds ? graph.byId['d' + n.ds.index] : null;
    if (now) centerOn(now);
  });

  // --- selection and details -----------------------------------------------------------------
  function markSelected() {
    var nodes = $('viewport').querySelectorAll('.node');
    for (var i = 0; i < nodes.length; i++) {
      nodes[i].classList.toggle('selected', state.selected != null && nodes[i].getAttribute('data-node') === 'd' + state.selected);
    }
    // The selected dataset's own inputs and outputs stand out of a dense graph.
    var name = state.selected != null ? DS[state.selected].name : null;
    var edges = $('viewport').querySelectorAll('path.edge');
    for (var j = 0; j < edges.length; j++) {
      var e = edges[j];
      e.classList.toggle('hl', name !== null && (e.getAttribute('data-source') === name || e.getAttribute('data-target') === name));
    }
  }
  function tags(list) {
    return list.map(function (t) {
      return '<span class="tag ' + esc(t.origin) + '" title="' + esc(t.origin) + '">' + esc(t.name) +
        (t.origin !== 'declared' ? ' \u00b7 ' + esc(t.origin) : '') + '</span>';
    }).join('');
  }
  function ref(dsIndex, field) {
    return '<a class="link" data-goto-ds="' + dsIndex + '" data-goto-col="' + esc(field) + '">' +
      esc(DS[dsIndex].label + '.' + field) + '</a>';
  }
  function transformText(e) {
    if (!e.transformations.length) return '';
    return e.transformations.map(function (t) {
      return t.type + (t.subtype ? '/' + t.subtype : '') + (t.masking ? ' masked' : '');
    }).join(', ');
  }
  function datasetDetails(d) {
    var h = [];
    h.push('<h3>' + esc(d.label) + ' <span class="badge o-' + esc(d.outcome) + '">' + esc(OUTCOME_TEXT[d.outcome]) + '</span></h3>');
    h.push('<div class="meta">' + esc(d.name) + '<br>' + esc(d.kind) + ' \u00b7 group ' + esc(d.group) +
      ' \u00b7 schema ' + esc(d.schema) + '</div>');
    h.push('<details class="meta"><summary>namespace</summary>' + esc(d.namespace) + '</details>');
    if (d.job) h.push('<div class="meta">job ' + esc(d.job) + (d.started_at ? '<br>started ' + esc(d.started_at) : '') +
      (d.finished_at ? '<br>ended ' + esc(d.finished_at) : '') + '</div>');
    if (d.error) h.push('<pre class="error" id="dataset-error">' + esc(d.error) + '</pre>');
    if (d.description) h.push('<p>' + esc(d.description) + '</p>');
    if (d.span_id) h.push('<p><a class="link" data-goto-span="' + esc(d.span_id) + '">its span in the waterfall</a></p>');
    if (d.columns.length) {
      h.push('<table><tr><th>column</th><th>type</th><th>classification</th></tr>');
      d.columns.forEach(function (c) {
        h.push('<tr><td><a class="link" data-goto-ds="' + d.index + '" data-goto-col="' + esc(c.name) + '">' + esc(c.name) +
          '</a></td><td>' + esc(c.type || '') + '</td><td>' + tags(c.classifications) + '</td></tr>');
      });
      h.push('</table>');
    } else {
      h.push('<p class="hint">No schema for this dataset in the lineage events.</p>');
    }
    if (d.checks.length) {
      h.push('<h4>checks</h4><table>');
      d.checks.forEach(function (c) {
        h.push('<tr><td class="st-' + esc(c.status) + '">' + esc(c.status) + '</td><td>' + esc(c.name) +
          (c.column ? ' (' + esc(c.column) + ')' : '') + (c.message ? '<pre class="error">' + esc(c.message) + '</pre>' : '') + '</td></tr>');
      });
      h.push('</table>');
    }
    if (d.depends_on.length) {
      h.push('<h4>the whole dataset depends on</h4><p>' + d.depends_on.map(function (r) { return ref(r.dataset, r.field); }).join(', ') + '</p>');
    }
    if (d.sql) h.push('<details><summary>compiled SQL</summary><pre>' + esc(d.sql) + '</pre></details>');
    if (state.collapse !== 'none') h.push('<p><a class="link" data-collapse-group="' + esc(groupKey(d)) + '">collapse ' + esc(groupKey(d)) + '</a></p>');
    return h.join('');
  }
  function columnDetails(sel) {
    var d = DS[sel.ds], c = d.columns[d.colIndex[sel.field]] || { name: sel.field, classifications: [] };
    var h = ['<h3>' + esc(d.label + '.' + c.name) + '</h3>'];
    h.push('<div class="meta">' + esc(d.name) + (c.type ? ' \u00b7 ' + esc(c.type) : '') + '</div>');
    if (c.description) h.push('<p>' + esc(c.description) + '</p>');
    if (c.classifications.length) {
      h.push('<h4>classifications</h4><ul>');
      c.classifications.forEach(function (t) {
        h.push('<li>' + tags([t]) + (t.sources && t.sources.length ? ' from ' + t.sources.map(function (r) { return ref(r.dataset, r.field); }).join(', ') : '') + '</li>');
      });
      h.push('</ul>');
    }
    function list(title, side, far) {
      var keys = Object.keys(side.cols);
      h.push('<h4>' + title + ' (' + keys.length + ')</h4>');
      if (!keys.length) { h.push('<p class="hint">none in this run</p>'); return; }
      h.push('<table class="col-' + far + '">');
      Object.keys(side.edges).forEach(function (i) {
        var e = CEDGES[i];
        var from = ref(e.source, e.source_field), to = ref(e.target, e.target_field);
        var cls = (DS[far === 'up' ? e.source : e.target].columns[DS[far === 'up' ? e.source : e.target].colIndex[far === 'up' ? e.source_field : e.target_field]] || {}).classifications || [];
        h.push('<tr data-edge="' + i + '"><td>' + from + ' \u2192 ' + to + '</td><td>' + esc(transformText(e)) + '</td><td>' + tags(cls) + '</td></tr>');
      });
      h.push('</table>');
    }
    list('upstream', sel.up, 'up');
    list('downstream', sel.down, 'down');
    h.push('<p><a class="link" data-clear-column="1">clear the column selection</a></p>');
    return h.join('');
  }
  function showDetails() {
    var box = $('details');
    if (state.column) box.innerHTML = columnDetails(state.column);
    else if (state.selected != null) box.innerHTML = datasetDetails(DS[state.selected]);
  }
  function selectDataset(i) {
    var redraw = !!state.column; // a column's path changed what is drawn
    state.selected = i;
    state.column = null;
    var g = groupKey(DS[i]);
    if (state.collapse !== 'none' && !state.expanded[g]) { state.expanded[g] = true; redraw = true; }
    if (redraw) draw(); else markSelected();
    showDetails();
  }
  function selectColumn(i, field) {
    var up = walk(colKey(i, field), colIn, 'source');
    var down = walk(colKey(i, field), colOut, 'target');
    var datasets = {};
    datasets[i] = true;
    [up, down].forEach(function (side) {
      Object.keys(side.cols).forEach(function (k) { datasets[k.split('\u0000')[0]] = true; });
    });
    state.selected = i;
    state.column = { ds: i, field: field, up: up, down: down, datasets: datasets };
    draw();
    showDetails();
  }
  function expandGroup(g) { state.expanded[g] = true; draw(); }

  svg.addEventListener('click', function (ev) {
    if (drag && drag.moved) return;
    var col = ev.target.closest('[data-col]'), node = ev.target.closest('.node');
    if (!node) return;
    var n = graph.byId[node.getAttribute('data-node')];
    if (!n) return;
    if (n.members) { expandGroup(n.group); return; }
    if (col) selectColumn(n.ds.index, col.getAttribute('data-col'));
    else selectDataset(n.ds.index);
  });
  document.addEventListener('click', function (ev) {
    var a = ev.target.closest('a[data-goto-ds], a[data-goto-span], a[data-clear-column], a[data-collapse-group]');
    if (!a) return;
    ev.preventDefault();
    if (a.hasAttribute('data-goto-span')) { selectSpan(a.getAttribute('data-goto-span'), true); return; }
    if (a.hasAttribute('data-clear-column')) { state.column = null; draw(); showDetails(); return; }
    if (a.hasAttribute('data-collapse-group')) {
      delete state.expanded[a.getAttribute('data-collapse-group')]; state.selected = null;
      draw(); return;
    }
    var i = +a.getAttribute('data-goto-ds'), field = a.getAttribute('data-goto-col');
    if (field) selectColumn(i, field); else selectDataset(i);
  });

  // Hover: the dataset, its outcome and (for a failure) dbt's error.
  var tip = $('tooltip');
  svg.addEventListener('mousemove', function (ev) {
    var node = ev.target.closest('.node');
    if (!node || drag) { tip.hidden = true; return; }
    var n = graph.byId[node.getAttribute('data-node')];
    if (!n) { tip.hidden = true; return; }
    var text;
    if (n.ds) {
      var d = n.ds;
      text = d.name + '\n' + OUTCOME_TEXT[d.outcome] + (d.error ? '\n\n' + d.error.split('\n').slice(0, 8).join('\n') : '');
    } else {
      text = n.group + ': ' + n.members.length + ' datasets';
    }
    tip.textContent = text;
    var r = $('graph-wrap').getBoundingClientRect();
    tip.hidden = false;
    tip.style.left = Math.min(ev.clientX - r.left + 14, r.width - 300) + 'px';
    tip.style.top = (ev.clientY - r.top + 14) + 'px';
  });
  svg.addEventListener('mouseleave', function () { tip.hidden = true; });

  document.addEventListener('keydown', function (ev) {
    if (ev.key !== 'Escape' || !state.column) return;
    state.column = null; draw(); showDetails();
  });
  $('collapse').addEventListener('change', function (ev) {
    state.collapse = ev.target.value; state.expanded = {};
    draw(); fit();
  });
  $('show-columns').checked = state.showColumns;
  $('show-columns').addEventListener('change', function (ev) { state.showColumns = ev.target.checked; draw(); fit(); });
  $('fit').addEventListener('click', function () { fit(); });

  // --- the waterfall -------------------------------------------------------------------------
  var spanIndex = {};
  SPANS.forEach(function (s, i) { spanIndex[s.span_id] = i; s.attributes = s.attributes || {}; s.events = s.events || []; });
  var datasetOfSpan = {};
  DS.forEach(function (d) { if (d.span_id) datasetOfSpan[d.span_id] = d.index; });

  // One light HTML row per span; rows off screen are neither laid out nor painted
  // (content-visibility), so a run with thousands of spans draws as fast as a small one.
  function drawWaterfall() {
    var wrap = $('waterfall-wrap');
    if (!SPANS.length) { wrap.innerHTML = '<p class="hint">No spans for this run (traces off, or sent to an endpoint).</p>'; return; }
    var t0 = Infinity, t1 = -Infinity;
    SPANS.forEach(function (s) { t0 = Math.min(t0, s.start_ns); t1 = Math.max(t1, s.end_ns); });
    var total = Math.max(t1 - t0, 1);
    var out = ['<div class="wf"><div class="wf-axis"><span class="name">span</span><span class="track">'];
    for (var q = 0; q <= 4; q++) out.push('<b>' + (total * q / 4 / 1e9).toFixed(2) + 's</b>');
    out.push('</span><span class="dur">duration</span></div>');
    SPANS.forEach(function (s) {
      out.push('<div class="row s-' + esc(s.status) + ' d' + Math.min(s.depth, 9) + '" data-span-id="' + esc(s.span_id) +
        '" data-status="' + esc(s.status) + '" title="' + esc(s.name + (s.message ? '\n' + s.message : '')) + '">' +
        '<span class="name">' + esc(s.name) + '</span><span class="track"><i class="bar"></i></span>' +
        '<span class="dur">' + ((s.end_ns - s.start_ns) / 1e9).toFixed(3) + 's</span></div>');
    });
    out.push('</div>');
    wrap.innerHTML = out.join('');
    var bars = wrap.getElementsByClassName('bar');
    for (var i = 0; i < SPANS.length; i++) { // the bar's place on the run's time axis, in %
      var s = SPANS[i], style = bars[i].style;
      style.left = ((s.start_ns - t0) / total * 100).toFixed(3) + '%';
      style.width = Math.max(0.15, (s.end_ns - s.start_ns) / total * 100).toFixed(3) + '%';
    }
  }
  function value(v) { return typeof v === 'object' ? JSON.stringify(v) : String(v); }
  function selectSpan(id, scroll) {
    var i = spanIndex[id];
    if (i == null) return;
    var s = SPANS[i], rows = $('waterfall-wrap').querySelectorAll('.row.selected');
    for (var r = 0; r < rows.length; r++) rows[r].classList.remove('selected');
    var row = $('waterfall-wrap').querySelector('.row[data-span-id="' + id + '"]');
    if (row) {
      row.classList.add('selected');
      if (scroll) {
        $('waterfall').scrollIntoView({ block: 'start' });
        $('waterfall-wrap').scrollTop = Math.max(0, row.offsetTop - 100);
      }
    }
    var h = ['<h3>' + esc(s.name) + ' <span class="badge o-' + (s.status === 'error' ? 'failed' : 'ok') + '">' + esc(s.status) + '</span></h3>'];
    h.push('<div class="meta">span ' + esc(s.span_id) + (s.parent_id ? ' \u00b7 parent ' + esc(s.parent_id) : '') + '<br>' +
      ((s.end_ns - s.start_ns) / 1e9).toFixed(3) + ' s</div>');
    if (s.message) h.push('<pre class="error">' + esc(s.message) + '</pre>');
    if (datasetOfSpan[id] != null) h.push('<p><a class="link" data-goto-ds="' + datasetOfSpan[id] + '">show its dataset in the graph</a></p>');
    h.push('<table id="span-attributes">');
    Object.keys(s.attributes).sort().forEach(function (k) {
      h.push('<tr><th>' + esc(k) + '</th><td>' + esc(value(s.attributes[k])) + '</td></tr>');
    });
    h.push('</table>');
    s.events.forEach(function (e) {
      h.push('<h4>event: ' + esc(e.name) + '</h4><table>');
      Object.keys(e.attributes || {}).forEach(function (k) {
        h.push('<tr><th>' + esc(k) + '</th><td><pre>' + esc(value(e.attributes[k])) + '</pre></td></tr>');
      });
      h.push('</table>');
    });
    $('span-details').innerHTML = h.join('');
  }
  $('waterfall-wrap').addEventListener('click', function (ev) {
    var row = ev.target.closest('.row');
    if (row) selectSpan(row.getAttribute('data-span-id'), false);
  });

  // A failed run opens on its (first) failing dataset.
  var failed = DS.filter(function (d) { return d.outcome === 'failed'; })[0];
  if (failed) state.selected = failed.index;
  draw();
  sizeGraph();
  fit();
  drawWaterfall();
  if (failed) showDetails();
  var ms = performance.now() - started;
  document.documentElement.setAttribute('data-floe-render-ms', ms.toFixed(1));
  document.documentElement.setAttribute('data-floe-ready', '1');
})();
