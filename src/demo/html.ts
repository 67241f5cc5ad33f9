import { barChart, esc, REPORT_CSS } from '../bench/html.js';
import type {
  ClaimResult,
  DemoResult,
  Evidence,
  LimitResult,
  MitigationResult,
  QuantifyRow,
  TraceStepResult,
} from './result.js';

/**
 * The demo's report, `weft-demo/report.html`: one self-contained file (inline CSS and SVG, no script,
 * nothing fetched) in the bench report's style — the talk's table beside the measured one with its
 * charts, both traces as diagrams with what each had to show, the limits with their evidence, the mitigation, and
 * the mapping from the talk's claims to what was measured.
 */

const f = (x: number | undefined, d = 2) => (x === undefined ? '–' : x.toFixed(d));

const STATUS_CLASS: Record<string, string> = {
  passed: 'ok',
  confirmed: 'ok',
  shown: 'ok',
  measured: 'ok',
  traced: 'ok',
  'not-applicable': 'na',
  'not-measured': 'na',
  failed: 'bad',
  differs: 'bad',
  'not-shown': 'bad',
  unreachable: 'drop',
};
const badge = (s: string) => `<span class="badge ${STATUS_CLASS[s] ?? ''}">${esc(s)}</span>`;

function tableHtml(head: string[], rows: string[][], numeric: (i: number) => boolean = () => false): string {
  return `<table class="summary"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c, i) => `<td${numeric(i) ? ' class="num"' : ''}>${c}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

function quantifyTable(rows: QuantifyRow[]): string {
  return tableHtml(
    [
      'Path',
      'Gbit/s (1 stream)',
      '× native',
      'Gbit/s (4 streams)',
      'RTT p50 µs',
      'pod MTU',
      'talk Gbit/s',
      'talk × VM-VM',
      'status',
    ],
    rows.map((r) => [
      esc(r.label),
      r.status === 'measured' ? f(r.gbps) : '',
      r.status === 'measured' ? f(r.ratio) : '',
      r.status === 'measured' ? f(r.gbps4) : '',
      r.status === 'measured' ? f(r.rttP50Us, 0) : '',
      r.mtu !== undefined ? String(r.mtu) : '',
      r.talk ? f(r.talk.gbps, r.talk.gbps < 1 ? 3 : 2) : '',
      r.talk ? f(r.talk.ratio) : '',
      `${badge(r.status === 'unreachable' ? 'unreachable' : r.status)}${r.reason ? ` <span class="why">${esc(r.reason)}</span>` : ''}`,
    ]),
    (i) => i >= 1 && i <= 7,
  );
}

/** Chart labels (the bar chart leaves ~30 characters for them). */
const SHORT: Record<QuantifyRow['id'], string> = {
  native: 'VM to VM (native)',
  'host-gw+pairs': 'host-gw + pairs (the fix)',
  'host-gw': 'host-gw, no fix',
  vxlan: 'vxlan',
  udp: 'udp (weft)',
  'udp-batch1': 'udp, batch=1 (Flannel 2015)',
  neutron: 'neutron',
};

function quantifyCharts(rows: QuantifyRow[]): string {
  const cats = rows.map((r) => SHORT[r.id]);
  return [
    barChart({
      id: 'ratio',
      title: 'Throughput as a ratio of VM to VM: measured here (1 stream) and in the talk (10 GbE)',
      unit: '× native',
      categories: cats,
      digits: 2,
      reference: { at: 1, label: 'native' },
      series: [
        {
          name: 'measured here',
          color: '#2f6db5',
          values: rows.map((r) => (r.status === 'measured' ? r.ratio : undefined)),
        },
        { name: 'the talk, 2015', color: '#e0a526', values: rows.map((r) => r.talk?.ratio) },
      ],
    }),
    barChart({
      id: 'throughput',
      title: 'Throughput measured here, Gbit/s (one machine: both ends share its cores)',
      unit: 'Gbit/s',
      categories: cats,
      digits: 2,
      series: [
        {
          name: '1 stream',
          color: '#2f6db5',
          values: rows.map((r) => (r.status === 'measured' ? r.gbps : undefined)),
        },
        {
          name: '4 streams',
          color: '#8fb8e8',
          values: rows.map((r) => (r.status === 'measured' ? r.gbps4 : undefined)),
        },
      ],
    }),
  ].join('\n');
}

/** A trace as a sequence diagram: one column per host, one row per hop, request down and reply back. */
function traceDiagram(t: TraceStepResult, id: string): string {
  if (!t.hops?.length)
    return `<div class="trace none" data-trace="${id}"><b>${esc(t.from ?? '')} → ${esc(t.to ?? '')} on ${esc(t.backend)}</b>: ${badge(t.status)} ${esc(t.reason ?? '')}</div>`;
  const hops = t.hops;
  const hosts = [...new Set(hops.map((h) => h.host))];
  const colW = 150;
  const rowH = 22;
  const left = 150;
  const top = 40;
  const x = (host: string) => left + hosts.indexOf(host) * colW + colW / 2;
  const label = (h: (typeof hops)[number]) =>
    `${h.device} ${h.event}${h.nat ? ` ${h.nat}` : ''}${h.layers.length ? ` [${h.layers.length}× encap]` : ''}`;
  // Wide enough for the longest label right of its lane (the last lane's would be cut off otherwise).
  const width = Math.max(
    left + hosts.length * colW + 40,
    ...hops.map((h) => Math.ceil(x(h.host) + 9 + label(h).length * 7 + 10)),
  );
  const height = top + hops.length * rowH + 20;
  const out: string[] = [
    `<svg class="chart trace" data-trace="${id}" viewBox="0 0 ${width} ${height}" role="img" aria-label="trace ${esc(id)}">`,
  ];
  hosts.forEach((h) => {
    out.push(
      `<text x="${x(h)}" y="20" text-anchor="middle" class="cat">${esc(h)}</text>`,
      `<line x1="${x(h)}" y1="28" x2="${x(h)}" y2="${height - 10}" class="grid"/>`,
    );
  });
  hops.forEach((h, i) => {
    const y = top + i * rowH;
    const prev = hops[i - 1];
    if (prev && prev.direction === h.direction)
      out.push(
        `<line x1="${x(prev.host)}" y1="${y - rowH}" x2="${x(h.host)}" y2="${y}" class="${h.direction === 'request' ? 'req' : 'rep'}"/>`,
      );
    const fill = h.drop
      ? '#c8452f'
      : h.layers.length >= 2
        ? '#c8452f'
        : h.layers.length === 1
          ? '#e0a526'
          : '#2a8c5a';
    out.push(
      `<circle cx="${x(h.host)}" cy="${y}" r="5" fill="${fill}"><title>${esc(`${h.host}/${h.device} ${h.event} ${h.layers.join(' | ')} ${h.nat ?? ''} ${h.drop ?? ''}`)}</title></circle>`,
      `<text x="8" y="${y + 4}" class="tick">+${h.tUs.toFixed(0)} µs (+${h.dtUs.toFixed(0)})</text>`,
      `<text x="${x(h.host) + 9}" y="${y + 4}" class="val">${esc(label(h))}</text>`,
    );
  });
  out.push('</svg>');
  const checks = (t.checks ?? [])
    .map((c) => `<li>${badge(c.ok ? 'shown' : 'not-shown')} ${esc(c.what)}</li>`)
    .join('');
  const segments = (t.segments ?? []).map((x) => `${x.segment} ${x.us.toFixed(0)} µs`).join(', ');
  return `<figure><figcaption>${badge(t.status)} ${esc(`${t.from} → ${t.to} on ${t.backend}: ${t.verdict ?? ''} — ${t.why ?? ''}${t.rttUs !== undefined ? `, round trip ${t.rttUs.toFixed(0)} µs` : ''}${t.pathMtu ? `, path MTU ${t.pathMtu}` : ''}`)}</figcaption>${out.join('')}<p class="sub">green: no encapsulation · amber: one (weft's or Neutron's) · red: both, or a drop · left: µs since the probe left (+ since the previous hop)${segments ? ` · time by segment: ${esc(segments)}` : ''}</p>${t.mtuNote ? `<p class="sub">${esc(t.mtuNote)}</p>` : ''}${checks ? `<ul class="checks">${checks}</ul>` : ''}</figure>`;
}

function evidenceHtml(ev: Evidence[]): string {
  return ev
    .map(
      (e) =>
        `<div class="ev"><div class="what"><span class="kind">${esc(e.kind)}</span> ${esc(e.what)}</div><pre>${esc(e.output)}</pre></div>`,
    )
    .join('');
}

function limitsHtml(ls: LimitResult[]): string {
  return ls
    .map(
      (l) =>
        `<div class="limit" data-limit="${l.id}"><h3>${badge(l.status)} ${esc(l.claim)} <span class="sub">(${esc(l.backend)})</span></h3><p>${esc(l.finding)}</p>${evidenceHtml(l.evidence)}</div>`,
    )
    .join('');
}

function mitigationHtml(m: MitigationResult | undefined, after: TraceStepResult | undefined): string {
  if (!m)
    return '<p class="sub">Not applicable on this underlay: the mitigation needs Neutron (run weft demo without --underlay flat).</p>';
  const t = m.throughput;
  const facts: [string, string][] = [
    [
      'switch',
      `${m.from} → ${m.to} in ${m.switchSeconds} s; pods kept: ${m.podsKept ? 'yes (same namespaces, interfaces, addresses)' : 'NO'}`,
    ],
    ['pod pairs', `${m.podPairs.answered}/${m.podPairs.total} answer one ping right after the switch`],
    [
      'pod MTU',
      `${m.mtu.before} → ${m.mtu.after}; DF ${m.df.passes} bytes ${m.df.passed ? 'passes' : 'FAILS'}, ${m.df.fails} ${m.df.failed ? 'fails' : 'PASSES'}`,
    ],
    [
      'throughput',
      `vxlan ${f(t.vxlanGbps)} → neutron ${f(t.neutronGbps)} Gbit/s in the bench (native ${f(t.nativeGbps)}); live after the switch ${f(t.liveGbps)}`,
    ],
    [
      'outside',
      `the external host ${m.external.reached ? 'reaches' : 'does NOT reach'} pod ${m.external.pod}${m.external.seenSource ? `, seen as ${m.external.seenSource}` : ''}`,
    ],
  ];
  const ports = m.asked
    ? tableHtml(
        ['node', 'port', 'port security', 'allowed address pairs'],
        m.asked.ports.map((p) => [
          esc(p.node),
          `<code>${esc(p.portId)}</code>`,
          p.portSecurity ? 'on' : 'off',
          esc(p.pairs.join(', ') || 'none'),
        ]),
      ) +
      tableHtml(
        ['router route: destination', 'next hop'],
        m.asked.routes.map((r) => [esc(r.destination), esc(r.nexthop)]),
      )
    : '';
  return `<table class="kv">${facts.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>
<h3>The trace again</h3>${after ? traceDiagram(after, 'after') : ''}
<h3>What weft asked of Neutron (from its API)</h3>${ports}
<details><summary>evidence</summary>${evidenceHtml(m.evidence)}</details>`;
}

function claimsHtml(cs: ClaimResult[]): string {
  return tableHtml(
    ['the talk said', 'source', 'measured here', 'verdict'],
    cs.map((c) => [
      esc(c.claim),
      `<span class="sub">${esc(c.source)}</span>`,
      esc(c.measured),
      badge(c.verdict),
    ]),
  );
}

const EXTRA_CSS = `.badge{display:inline-block;border-radius:3px;padding:0 6px;font-size:12px;font-weight:600;background:#e6eaef}
.badge.ok{background:#dff3e6;color:#1d6b3f}.badge.bad{background:#fbe2de;color:#9d2a1b}
.badge.drop{background:#fbe2de;color:#9d2a1b}.badge.na{background:#eef0f3;color:#5b6570}.why{color:#5b6570;font-size:12px}
.trace.none{border:1px dashed #c9ced6;background:#f7f8fa;padding:10px;border-radius:4px;margin:8px 0}
ul.checks{list-style:none;padding-left:0;font-size:13px}ul.checks li{margin:2px 0}
svg.trace .req{stroke:#2f6db5;stroke-width:1.5}svg.trace .rep{stroke:#2a8c5a;stroke-width:1.5;stroke-dasharray:4 2}
.limit{border:1px solid #e6eaef;border-radius:4px;padding:4px 12px;margin:10px 0}.limit h3{font-size:15px}
.ev .what{font-size:12px;color:#3a434c;margin-top:6px}.ev .kind{font-weight:600;text-transform:uppercase;font-size:10px;color:#7a4fb0}
pre{background:#f5f7f9;border:1px solid #e6eaef;padding:6px 8px;font-size:12px;white-space:pre-wrap;margin:2px 0 6px}
`;

export function renderDemoHtml(r: DemoResult): string {
  const steps = tableHtml(
    ['step', 'status', 'seconds', 'summary'],
    r.steps.map((s) => [esc(s.title), badge(s.status), String(s.seconds), esc(s.error ?? s.summary)]),
    (i) => i === 2,
  );
  const p = r.provision;
  const mapping = p
    ? tableHtml(
        ['template field or label', 'value', 'became'],
        p.mapping.map((m) => [`<code>${esc(m.field)}</code>`, esc(m.value), esc(m.became)]),
      ) +
      tableHtml(
        ['node', 'address', 'subnet', 'hypervisor', 'pod subnet'],
        p.nodes.map((n) => [
          esc(n.name),
          esc(n.publicIP),
          esc(n.underlaySubnet),
          esc(n.hypervisor ?? '–'),
          esc(n.podSubnet),
        ]),
      ) +
      `<p>${p.podPairs.answered}/${p.podPairs.total} pod pairs answered one ping right after <code>lab up</code> returned (${esc(
        Object.entries(p.timings)
          .map(([k, v]) => `${k} ${v} s`)
          .join(', '),
      )}).</p>`
    : '<p class="sub">not provisioned</p>';
  const q = r.quantify;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>weft demo: the talk on ${esc(r.underlay)} (${esc(r.startedAt)})</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
${REPORT_CSS}${EXTRA_CSS}</style></head><body>
<h1>weft demo — overlay networking for containers, on ${r.underlay === 'neutron' ? 'real OpenStack Neutron' : 'a flat lab'}</h1>
<div class="sub">“Optimizing and Extending Overlay Networking for Containers” (OpenStack Summit Tokyo 2015), replayed end to end · ${esc(r.startedAt)} → ${esc(r.finishedAt)} (${r.seconds} s) · weft ${esc(r.tool.version)} · schema ${esc(r.schema)} · ${r.ok ? badge('passed') : badge('failed')}</div>
<h2>Steps</h2>${steps}
<h2>1. Provision: a Magnum cluster template as the lab</h2>${mapping}
<h2>2. Trace: pod → service VIP → pod on another hypervisor</h2>${r.traces[0] ? traceDiagram(r.traces[0], 'before') : '<p class="sub">not run</p>'}
<h2>3. Quantify: one bench run beside the talk's table</h2>
${q ? `<p>${q.repetitions} repetition(s) of ${q.seconds} s per measurement; ratios against node to node on the same two nodes in the same run. The talk's figures: ${esc(q.talkSource)}. <b>host-gw with the fix</b>: ${esc(q.fixMethod)}. Full bench result: <code>${esc(q.benchFile)}</code>.</p>${quantifyTable(q.rows)}${quantifyCharts(q.rows)}` : '<p class="sub">not run</p>'}
<h2>4. Limits from the container's side</h2>${limitsHtml(r.limits)}
<h2>5. Mitigate: the running cluster switched to neutron</h2>${mitigationHtml(r.mitigation, r.traces[1])}
<h2>The talk's claims, measured</h2>${claimsHtml(r.claims)}
</body></html>
`;
}
