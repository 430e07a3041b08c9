/**
 * deploy/grafana/walnats.json against the metrics walnats actually exports (src/metrics.ts):
 * every walnats_* series it queries exists with the labels it uses, and every walnats_*
 * metric has a panel.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/metrics.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const dashboard = JSON.parse(fs.readFileSync(path.join(ROOT, 'deploy/grafana/walnats.json'), 'utf8'));
const panels: any[] = dashboard.panels;
const exprs: string[] = panels.flatMap((p) => (p.targets ?? []).map((t: { expr: string }) => t.expr));

const metrics = createMetrics({ defaultMetrics: false });
const exported = new Map(metrics.registry.getMetricsAsArray().map((m) => [m.name, m]));

describe('deploy/grafana/walnats.json', () => {
  it('is a dashboard with unique panel ids, laid out on the 24-column grid', () => {
    expect(dashboard.uid).toBe('walnats-overview');
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) {
      expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
      if (p.type !== 'row') expect(p.datasource).toEqual({ type: 'prometheus', uid: '${datasource}' });
    }
    expect(dashboard.templating.list.map((v: { name: string }) => v.name)).toEqual(['datasource', 'job', 'instance']);
  });

  it('queries only metrics that walnats exports, histograms through their buckets', () => {
    for (const e of exprs) {
      for (const [name] of e.matchAll(/walnats_[a-z_]+/g)) {
        const base = name.replace(/_(bucket|sum|count)$/, '');
        const m = exported.get(name) ?? exported.get(base);
        expect(m, `${name} in ${e}`).toBeDefined();
        if (name !== base) expect((m as { constructor: { name: string } }).constructor.name, name).toBe('Histogram');
      }
    }
  });

  it('groups only by labels that the metrics have', () => {
    for (const e of exprs) {
      for (const m of e.matchAll(/(?:sum|max) by \(([^)]+)\) \((?:rate\(|increase\()?(walnats_[a-z_]+)/g)) {
        const [, by, name] = m;
        const metric = exported.get(name.replace(/_bucket$/, '')) as unknown as { labelNames: string[] };
        for (const l of by.split(',').map((s) => s.trim())) {
          if (l !== 'le' && l !== 'instance' && l !== 'job') expect(metric.labelNames, `${name} by ${l}`).toContain(l);
        }
      }
    }
  });

  it('has a panel for every walnats_* metric', () => {
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/walnats_[a-z_]+/g)].map(([n]) => n.replace(/_(bucket|sum|count)$/, ''))));
    expect([...exported.keys()].filter((n) => !used.has(n))).toEqual([]);
  });
});
