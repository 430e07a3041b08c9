/**
 * A real JetStream cluster of N nats-server processes on 127.0.0.1 (for the fault tests and
 * `scripts/fault-soak.ts`): each node with its own client port, route port, server name and
 * store directory, all in one cluster, routes to every other node. A node can be killed
 * (SIGKILL, as a machine dying) or stopped, and started again on the same ports and store.
 *
 * `startNatsCluster` returns once every node listens and the JetStream meta group has a
 * leader (checked by creating and deleting a replicated probe stream), so a stream with
 * `num_replicas: N` can be created right away.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { freePort, waitFor } from './ports.ts';
import { spawnNatsServer, type NatsProcess } from './nats.ts';

export interface NatsClusterNode {
  readonly index: number;
  /** Server name (`-n`), as JetStream reports it in `cluster.leader` / `replicas`. */
  readonly name: string;
  readonly port: number;
  readonly clusterPort: number;
  readonly url: string;
  readonly storeDir: string;
  readonly running: boolean;
  /** SIGKILL: the node dies without a goodbye, as a crashed machine. */
  kill(): Promise<void>;
  /** SIGTERM: lame-duck free graceful shutdown. */
  stop(): Promise<void>;
  /** Starts the node again on the same ports and store. */
  start(): Promise<void>;
  log(): string;
}

export interface NatsCluster {
  readonly name: string;
  readonly nodes: NatsClusterNode[];
  /** Every node's client URL (the seed list). */
  readonly urls: string[];
  /** The node with this server name. */
  node(name: string): NatsClusterNode;
  /** Waits until the JetStream meta group has a leader (through any running node). */
  waitForMetaLeader(timeoutMs?: number): Promise<void>;
  destroy(): Promise<void>;
}

let clusterCounter = 0;

export async function startNatsCluster(size = 3, extraArgs: string[] = []): Promise<NatsCluster> {
  if (!Number.isInteger(size) || size < 1) throw new Error(`invalid cluster size ${size}`);
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'walnats-nats-cluster-'));
  const clusterName = `walnats-test-${process.pid}-${++clusterCounter}`;
  const ports: Array<{ port: number; clusterPort: number }> = [];
  const taken = new Set<number>();
  while (ports.length < size) {
    const port = await freePort();
    const clusterPort = await freePort();
    if (port === clusterPort || taken.has(port) || taken.has(clusterPort)) continue;
    taken.add(port);
    taken.add(clusterPort);
    ports.push({ port, clusterPort });
  }

  const nodes: NatsClusterNode[] = ports.map(({ port, clusterPort }, index) => {
    const name = `n${index + 1}`;
    const storeDir = path.join(base, name);
    fs.mkdirSync(storeDir);
    const routes = ports
      .filter((_, j) => j !== index)
      .map((p) => `nats://127.0.0.1:${p.clusterPort}`)
      .join(',');
    let child: ChildProcess | undefined;
    let proc: NatsProcess | undefined;
    const halt = async (signal: NodeJS.Signals) => {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const done = new Promise((r) => c.once('exit', r));
      c.kill(signal);
      await done;
      child = undefined;
    };
    const node: NatsClusterNode = {
      index,
      name,
      port,
      clusterPort,
      url: `nats://127.0.0.1:${port}`,
      storeDir,
      get running() {
        return !!child && child.exitCode === null && child.signalCode === null;
      },
      async start() {
        if (node.running) return;
        const args = [
          '-js', '-sd', storeDir, '-a', '127.0.0.1', '-p', String(port), '-n', name,
          '--cluster_name', clusterName, '--cluster', `nats://127.0.0.1:${clusterPort}`, '--routes', routes,
          ...extraArgs,
        ];
        proc = spawnNatsServer(args, port, `nats-server ${name}`);
        child = proc.child;
        await proc.ready;
      },
      kill: () => halt('SIGKILL'),
      stop: () => halt('SIGTERM'),
      log: () => proc?.log() ?? '',
    };
    return node;
  });

  const cluster: NatsCluster = {
    name: clusterName,
    nodes,
    urls: nodes.map((n) => n.url),
    node(name) {
      const n = nodes.find((x) => x.name === name);
      if (!n) throw new Error(`no node ${name} in cluster ${clusterName} (${nodes.map((x) => x.name).join(', ')})`);
      return n;
    },
    async waitForMetaLeader(timeoutMs = 60_000) {
      const live = nodes.filter((n) => n.running).map((n) => n.url);
      const nc = await connect({ servers: live, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
      try {
        const jsm = await jetstreamManager(nc, { timeout: 5000, checkAPI: false });
        const replicas = Math.min(size, nodes.filter((n) => n.running).length);
        // A replicated stream can only be created once the meta group has a leader and
        // enough peers are known; creating one is the most direct readiness check.
        const probeName = `WALNATS_CLUSTER_PROBE_${process.pid}_${clusterCounter}`;
        await waitFor(`JetStream meta leader in cluster ${clusterName}`, async () => {
          await jsm.streams.add({ name: probeName, subjects: [`_walnats_probe.${process.pid}.${clusterCounter}`], num_replicas: replicas });
          await jsm.streams.delete(probeName);
          return true;
        }, timeoutMs, 500);
      } finally {
        await nc.close();
      }
    },
    async destroy() {
      await Promise.all(nodes.map((n) => n.kill()));
      fs.rmSync(base, { recursive: true, force: true });
    },
  };

  try {
    await Promise.all(nodes.map((n) => n.start()));
    await cluster.waitForMetaLeader();
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
  return cluster;
}
