/**
 * bench/chart.svg, drawn by hand (no dependency): one horizontal bar per figure that has a
 * ceiling, as a ratio of that ceiling (1.0 = as fast as the part walnats sits on), with the
 * target as a tick; then latency and memory figures against their targets.
 */
import type { Result } from './lib.ts';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function renderChart(results: Result[], meta: { date: string; quick: boolean; cpus: number }): string {
  const W = 980;
  const labelW = 470;
  const barW = W - labelW - 90;
  const rowH = 24;
  const parts: string[] = [];
  let y = 40;
  const title = `walnats bench ${meta.date.slice(0, 10)}${meta.quick ? ' (quick)' : ''}, ${meta.cpus} CPUs`;
  parts.push(`<text x="10" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`);

  const section = (text: string) => {
    y += 14;
    parts.push(`<text x="10" y="${y}" font-size="13" font-weight="bold">${esc(text)}</text>`);
    y += 10;
  };
  const bar = (label: string, frac: number, maxFrac: number, valueText: string, targetFrac: number | undefined, pass: boolean | undefined) => {
    const w = Math.max(1, Math.min(1, frac / maxFrac) * barW);
    const color = pass === undefined ? '#7a8fa6' : pass ? '#3a9d5d' : '#d0583f';
    parts.push(`<text x="${labelW - 6}" y="${y + 16}" font-size="11" text-anchor="end">${esc(label.length > 78 ? label.slice(0, 77) + '…' : label)}</text>`);
    parts.push(`<rect x="${labelW}" y="${y + 4}" width="${w.toFixed(1)}" height="${rowH - 8}" fill="${color}"/>`);
    parts.push(`<text x="${(labelW + w + 4).toFixed(1)}" y="${y + 16}" font-size="11">${esc(valueText)}</text>`);
    if (targetFrac !== undefined) {
      const tx = labelW + Math.min(1, targetFrac / maxFrac) * barW;
      parts.push(`<line x1="${tx.toFixed(1)}" x2="${tx.toFixed(1)}" y1="${y + 1}" y2="${y + rowH - 1}" stroke="#222" stroke-width="2"/>`);
    }
    y += rowH;
  };
  const axis = (maxFrac: number, unit: string) => {
    for (let i = 0; i <= 4; i++) {
      const x = labelW + (i / 4) * barW;
      parts.push(`<line x1="${x}" x2="${x}" y1="${y}" y2="${y + 4}" stroke="#888"/>`);
      parts.push(`<text x="${x}" y="${y + 15}" font-size="10" text-anchor="middle">${+((maxFrac * i) / 4).toFixed(2)}${unit}</text>`);
    }
    y += 22;
  };

  const ratios = results.filter((r) => r.ratio !== undefined && Number.isFinite(r.ratio));
  if (ratios.length) {
    section('Ratio to the ceiling measured in the same run (bar = walnats ÷ ceiling; black tick = target)');
    const max = Math.max(1, ...ratios.map((r) => r.ratio!));
    for (const r of ratios) {
      const t = /([\d.]+)\s*×/.exec(r.target?.text ?? '');
      bar(`${r.area}: ${r.name}`, r.ratio!, max, `${r.ratio!.toFixed(2)} ×`, t ? Number(t[1]) : undefined, r.target?.pass);
    }
    axis(max, '×');
  }
  const ms = results.filter((r) => r.unit === 'ms p99');
  if (ms.length) {
    section('Latency p99, ms (black tick = target)');
    const targets = ms.map((r) => Number(/<\s*([\d.]+)/.exec(r.target?.text ?? '')?.[1] ?? NaN));
    const max = Math.max(20, ...targets.filter(Number.isFinite).map((t) => t * 2));
    ms.forEach((r, i) => bar(`${r.area}: ${r.name}`, r.value, max, `${r.value.toFixed(1)} ms${r.value > max ? ' (off scale)' : ''}`, Number.isFinite(targets[i]) ? targets[i] : undefined, r.target?.pass));
    axis(max, '');
  }
  const mem = results.filter((r) => r.unit === 'MB');
  if (mem.length) {
    section('Peak RSS of walnats cdc, MB (black tick = target)');
    const max = Math.max(500, ...mem.map((r) => r.value));
    for (const r of mem) bar(r.name, r.value, max, `${r.value.toFixed(0)} MB`, 250, r.target?.pass);
    axis(max, '');
  }
  const H = y + 10;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif">\n<rect width="${W}" height="${H}" fill="#fff"/>\n${parts.join('\n')}\n</svg>\n`;
}
