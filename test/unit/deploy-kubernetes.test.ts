/**
 * deploy/kubernetes, checked offline: every object against the Kubernetes (and Prometheus
 * Operator) OpenAPI schemas bundled in the kubernetes-models packages, then the things a
 * schema cannot see — selectors that match, probes on the port and paths walnats serves,
 * environment that the config loader accepts, one CDC reader, a scaled gateway.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { loadConfig, type Command } from '../../src/config.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const DIR = path.join(ROOT, 'deploy/kubernetes');

type Obj = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; [k: string]: any };

const kustomization = YAML.parse(fs.readFileSync(path.join(DIR, 'kustomization.yaml'), 'utf8')) as { resources: string[]; namespace: string };
const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort();
const objects: Array<Obj & { file: string }> = files.flatMap((file) =>
  YAML.parseAllDocuments(fs.readFileSync(path.join(DIR, file), 'utf8')).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
    return { ...(d.toJS() as Obj), file };
  }),
);
const byKind = (kind: string) => objects.filter((o) => o.kind === kind);
const one = (kind: string, name: string) => {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name}`);
  return o;
};
const matches = (selector: Record<string, string>, labels: Record<string, string> = {}) => Object.entries(selector).every(([k, v]) => labels[k] === v);

/** The kubernetes-models module of an apiVersion. */
function modelModule(apiVersion: string): string {
  if (apiVersion.startsWith('monitoring.coreos.com/')) return `@kubernetes-models/prometheus-operator/${apiVersion}`;
  return `kubernetes-models/${apiVersion}`;
}

describe('deploy/kubernetes', () => {
  it('lists every manifest in kustomization.yaml', () => {
    expect([...kustomization.resources].sort()).toEqual(files);
    for (const o of objects) if (o.kind !== 'Namespace') expect(o.metadata.name).toMatch(/^walnats/);
    expect(one('Namespace', kustomization.namespace)).toBeTruthy();
  });

  it('validates every object against the Kubernetes OpenAPI schemas (kubernetes-models, offline)', async () => {
    const problems: string[] = [];
    for (const o of objects) {
      const spec = modelModule(o.apiVersion);
      let mod: Record<string, new (data: unknown) => { validate(): void }>;
      try {
        mod = (await import(/* @vite-ignore */ spec)) as typeof mod;
      } catch (err) {
        throw new Error(`cannot load ${spec}: install the devDependencies kubernetes-models and @kubernetes-models/prometheus-operator (${(err as Error).message})`);
      }
      const Model = mod[o.kind];
      if (!Model) {
        problems.push(`${o.file}: ${o.apiVersion} has no kind ${o.kind}`);
        continue;
      }
      const { file: _file, ...data } = o;
      try {
        new Model(data).validate();
      } catch (err) {
        problems.push(`${o.file}: ${o.kind}/${o.metadata.name}: ${(err as Error).message}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('the schema validation does catch mistakes', async () => {
    const { Deployment } = (await import(/* @vite-ignore */ modelModule('apps/v1'))) as Record<string, new (d: unknown) => { validate(): void }>;
    const bad = structuredClone(one('Deployment', 'walnats-gateway')) as Obj;
    delete (bad as Partial<Obj>).file;
    bad.spec.template.spec.containers[0].ports[0].containerPort = '8080';
    expect(() => new Deployment(bad).validate()).toThrow(/containerPort/);
  });

  it('selectors match their pods, services reach a named container port', () => {
    const deployments = byKind('Deployment');
    for (const d of deployments) expect(matches(d.spec.selector.matchLabels, d.spec.template.metadata.labels), d.metadata.name).toBe(true);
    for (const s of byKind('Service')) {
      const targets = deployments.filter((d) => matches(s.spec.selector, d.spec.template.metadata.labels));
      expect(targets.map((d) => d.metadata.name), s.metadata.name).toEqual([s.metadata.name]);
      for (const p of s.spec.ports) {
        const names = targets[0].spec.template.spec.containers.flatMap((c: any) => c.ports.map((cp: any) => cp.name));
        expect(names, `${s.metadata.name} → ${p.targetPort}`).toContain(p.targetPort);
      }
    }
    for (const pdb of byKind('PodDisruptionBudget')) {
      expect(matches(pdb.spec.selector.matchLabels, one('Deployment', pdb.metadata.name).spec.template.metadata.labels)).toBe(true);
    }
  });

  it('probes /healthz (liveness) and /readyz (readiness) on the port walnats listens on', () => {
    const config = one('ConfigMap', 'walnats-config').data as Record<string, string>;
    for (const d of byKind('Deployment')) {
      const [c] = d.spec.template.spec.containers;
      const http = c.ports.find((p: any) => p.name === 'http');
      expect(http.containerPort).toBe(Number(config.WALNATS_HTTP_PORT));
      expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
      // A CDC standby is not ready by design (503 "cdc is a standby"), which would stall its
      // rolling updates: the daemon's readiness is its health; the gateway's is /readyz.
      const readiness = c.args[0] === 'cdc' ? '/healthz' : '/readyz';
      expect(c.readinessProbe.httpGet, d.metadata.name).toEqual({ path: readiness, port: 'http' });
      if (c.startupProbe) expect(c.startupProbe.httpGet.port).toBe('http');
    }
  });

  it('gives each container an environment the config loader accepts for its command', () => {
    const config = one('ConfigMap', 'walnats-config').data as Record<string, string>;
    const secret = one('Secret', 'walnats-secrets').stringData as Record<string, string>;
    for (const k of [...Object.keys(config), ...Object.keys(secret)]) expect(k).toMatch(/^WALNATS_/);
    for (const d of byKind('Deployment')) {
      const [c] = d.spec.template.spec.containers;
      const refs = c.envFrom.map((e: any) => e.configMapRef?.name ?? e.secretRef?.name);
      expect(refs.sort()).toEqual(['walnats-config', 'walnats-secrets']);
      const env: Record<string, string> = { ...config, ...secret, NODE_ENV: 'production' };
      for (const e of c.env ?? []) env[e.name] = e.value ?? 'from-ref';
      const command = c.args[0] as Command;
      expect(() => loadConfig({ command, env }), d.metadata.name).not.toThrow();
    }
    // NODE_ENV=production (the image's) makes the gateway refuse to start without auth.
    expect(secret.WALNATS_ADMIN_SECRET ?? secret.WALNATS_JWT_SECRET).toBeTruthy();
  });

  it('runs an active CDC daemon with a standby, rolled without a gap, and a scaled gateway', () => {
    const cdc = one('Deployment', 'walnats-cdc');
    expect(cdc.spec.template.spec.containers[0].args).toEqual(['cdc']);
    expect(cdc.spec.replicas).toBe(2);
    expect(cdc.spec.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
    expect(one('PodDisruptionBudget', 'walnats-cdc').spec.minAvailable).toBe(1);
    // Standbys are scraped too (walnats_active tells which one streams).
    expect(one('Service', 'walnats-cdc').spec.publishNotReadyAddresses).toBe(true);
    const gw = one('Deployment', 'walnats-gateway');
    expect(gw.spec.template.spec.containers[0].args).toEqual(['gateway']);
    expect(gw.spec.replicas).toBeGreaterThanOrEqual(2);
    const hpa = one('HorizontalPodAutoscaler', 'walnats-gateway');
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'walnats-gateway' });
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
    // No HPA may scale the CDC daemon.
    expect(byKind('HorizontalPodAutoscaler').map((h) => h.spec.scaleTargetRef.name)).not.toContain('walnats-cdc');
  });

  it('runs unprivileged with a read-only root filesystem and a writable /tmp', () => {
    for (const d of byKind('Deployment')) {
      const pod = d.spec.template.spec;
      expect(pod.securityContext.runAsNonRoot).toBe(true);
      const [c] = pod.containers;
      expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
      const tmp = c.volumeMounts.find((m: any) => m.mountPath === '/tmp');
      expect(pod.volumes.find((v: any) => v.name === tmp.name).emptyDir).toBeDefined();
      // Longer than the process's own graceful stop.
      expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(30);
    }
  });

  it('has a ServiceMonitor that scrapes /metrics of both services', () => {
    const sm = one('ServiceMonitor', 'walnats');
    const services = byKind('Service').filter((s) => matches(sm.spec.selector.matchLabels, s.metadata.labels));
    expect(services.map((s) => s.metadata.name).sort()).toEqual(['walnats-cdc', 'walnats-gateway']);
    for (const e of sm.spec.endpoints) {
      expect(e.path).toBe('/metrics');
      for (const s of services) expect(s.spec.ports.map((p: any) => p.name)).toContain(e.port);
    }
  });
});
