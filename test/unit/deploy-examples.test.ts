/**
 * The consumer examples name subjects and streams the way walnats does: their copies of the
 * escaping and of the default stream name agree with src/events/subject.ts, and the
 * Redpanda Connect pipeline reads the subject and stream that walnats writes.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { defaultStreamName, escapeToken, tableSubject } from '../../src/events/subject.ts';
import * as ts from '../../examples/consumer-ts/consume.ts';
import * as position from '../../src/events/position.ts';
import { HEADER_DEAD_LETTER } from '../../src/events/dead-letter.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const NAMES = ['orders', 'Order Items', 'a.b', '*', '>', '%', '', 'größe', '日本', 'x-y_z', '$tx', 'emoji 🎉', 'tab\there'];
const hasPython = spawnSync('python3', ['--version']).status === 0;

describe('examples', () => {
  it('consumer-ts escapes names and names streams exactly as walnats does', () => {
    for (const n of NAMES) {
      expect(ts.escapeToken(n), n).toBe(escapeToken(n));
      expect(ts.defaultStreamName('walnats', n || 'x'), n).toBe(defaultStreamName('walnats', n || 'x'));
    }
    expect(ts.tableSubject('walnats', 'my db', 'public', 'Order Items', ['insert'])).toBe(tableSubject('walnats', 'my db', 'public', 'Order Items', 'insert'));
    expect(ts.tableSubject('walnats', 'shop', 'public', 'orders', ['insert', 'delete'])).toBe('walnats.shop.public.orders.*');
  });

  it.skipIf(!hasPython)('consumer-py compiles, and escapes and names streams as walnats does', () => {
    const file = path.join(ROOT, 'examples/consumer-py/consume.py');
    // Run only its pure functions (the module imports nats-py, which CI does not have).
    const script = `
import ast, json, sys
src = open(sys.argv[1]).read()
compile(src, sys.argv[1], 'exec')
tree = ast.parse(src)
keep = [n for n in tree.body if (isinstance(n, ast.FunctionDef) and n.name in ('escape_token', 'default_stream_name'))
        or (isinstance(n, ast.Assign) and any(getattr(t, 'id', '') in ('KEEP', 'ALNUM') for t in n.targets))]
ns = {}
exec(compile(ast.Module(body=[ast.parse('import re').body[0]] + keep, type_ignores=[]), 'funcs', 'exec'), ns)
names = json.loads(sys.argv[2])
print(json.dumps([[ns['escape_token'](n), ns['default_stream_name']('walnats', n or 'x')] for n in names]))
`;
    const r = spawnSync('python3', ['-c', script, file, JSON.stringify(NAMES)], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual(NAMES.map((n) => [escapeToken(n), defaultStreamName('walnats', n || 'x')]));
  });

  it('consumer-go has the same escaping rules and a module file', () => {
    const go = fs.readFileSync(path.join(ROOT, 'examples/consumer-go/main.go'), 'utf8');
    expect(go).toContain('regexp.MustCompile(`^[A-Za-z0-9_-]$`)');
    expect(go).toContain('"%%%02X"');
    expect(go).toContain('"-%02X"');
    expect(go).toContain('msg.Headers().Get("Nats-Msg-Id")');
    expect(fs.readFileSync(path.join(ROOT, 'examples/consumer-go/go.mod'), 'utf8')).toMatch(/require github\.com\/nats-io\/nats\.go v1\.\d+/);
  });

  it('the Redpanda Connect pipeline reads the stream and subject walnats writes, with a durable consumer and dedupe', () => {
    const cfg = YAML.parse(fs.readFileSync(path.join(ROOT, 'examples/redpanda-connect/orders-to-s3.yaml'), 'utf8'));
    const input = cfg.input.nats_jetstream;
    expect(input.stream).toBe(defaultStreamName('walnats', 'shop'));
    expect(input.subject).toBe(tableSubject('walnats', 'shop', 'public', 'orders', 'insert').replace(/insert$/, '*'));
    expect(input.durable).toBeTruthy();
    expect(cfg.pipeline.processors[0].dedupe.key).toContain('Nats-Msg-Id');
    expect(cfg.cache_resources.map((c: { label: string }) => c.label)).toContain(cfg.pipeline.processors[0].dedupe.cache);
    expect(cfg.output.aws_s3.batching.processors[0].archive.format).toBe('lines');
  });

  it('docs/consumers.md documents every header, reserved subject and op, and links every example', () => {
    const doc = fs.readFileSync(path.join(ROOT, 'docs/consumers.md'), 'utf8');
    const headers = Object.entries(position).filter(([k]) => k.startsWith('HEADER_')).map(([, v]) => v as string);
    for (const h of [...headers, HEADER_DEAD_LETTER]) expect(doc, h).toContain(`\`${h}\``);
    for (const r of ['$message', '$tx', '$schema', '$heartbeat', '$deadletter', '$snapshot']) expect(doc, r).toContain(`.${r}`);
    const walnatsOp = doc.split('\n').find((l) => l.startsWith('| `Walnats-Op` |'))!;
    for (const kind of position.EVENT_KINDS) expect(walnatsOp, kind).toMatch(new RegExp(`\\b${kind}\\b`));
    for (const op of ['c', 'u', 'd', 't', 'r', 'm']) expect(doc, op).toContain(`\`${op}\``);
    for (const f of ['consumer-ts/consume.ts', 'consumer-go/main.go', 'consumer-py/consume.py', 'redpanda-connect/orders-to-s3.yaml']) {
      expect(doc).toContain(`](../examples/${f})`);
    }
    const deploy = fs.readFileSync(path.join(ROOT, 'docs/deploy.md'), 'utf8');
    expect(deploy).toContain('](configuration.md)');
    for (const [, target] of deploy.matchAll(/\]\((\.\.\/[^)#]+)\)/g)) expect(fs.existsSync(path.join(ROOT, 'docs', target)), target).toBe(true);
  });
});
